//! `/api/v1/reports/usage` (U3, L8): proof-of-play reports, as JSON pages
//! or a CSV download, and per-access-group usage summaries.
//!
//! Who may do what: any role reads reports, over events of devices that
//! were attached inside its domain when the event arrived (T4; events of a
//! device that was not attached are shown to root-level users only). Every
//! report covers at most [`MAX_RANGE_DAYS`] days; a CSV download holds at
//! most [`MAX_CSV_ROWS`] rows (a larger one is refused, so a download is
//! never silently cut); JSON is paged.
//!
//! The `user` filter: events carry no user (devices play, not people), so
//! `user=U` means usage under U's licenses — events whose access group is
//! one U has (or had) a membership in. The user must be one the caller may
//! see (404 otherwise).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId};
use signet_common::sync::Outcome;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::sees_user;
use super::{ApiError, ApiQuery, AppState, Caller};
use crate::access_groups::{self, AccessGroup, GROUPS, MemberRef};
use crate::fleet::events::{StoredEvent, events_in_hour, hours_between};
use crate::identity::{USERS, User};

/// The longest time range of one report, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The most rows of a CSV download.
pub const MAX_CSV_ROWS: usize = 100_000;
/// The most rows of one JSON page.
pub const MAX_JSON_PAGE: usize = 1000;
/// The most events one summary reads; beyond it the summary says
/// `truncated`.
pub const MAX_SUMMARY_EVENTS: usize = 2_000_000;
/// The default range: this many days before `to`.
const DEFAULT_RANGE_DAYS: i64 = 7;
/// The longest filter value.
const MAX_FILTER_LEN: usize = 128;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage_report))
        .routes(routes!(group_usage))
}

/// How a report is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// A JSON page.
    #[default]
    Json,
    /// A CSV download with a header row.
    Csv,
}

/// Usage report filter (U3). Times are RFC 3339; the range is
/// `[from, to)`, by default the 7 days before now.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageFilter {
    /// Only events licensed through this access group.
    pub access_group: Option<String>,
    /// Only events licensed through an access group this user is or was a
    /// member of.
    pub user: Option<String>,
    /// Only events of this device.
    pub device: Option<String>,
    /// Only events of devices at this node or below.
    pub node: Option<String>,
    /// Only events of this item.
    pub item: Option<String>,
    /// Events starting at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events starting before this time.
    pub to: Option<DateTime<Utc>>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>)]
    pub format: Option<ReportFormat>,
    /// JSON paging: the `next` of the previous page.
    pub after: Option<String>,
    /// JSON paging: rows per page (default and maximum 1000).
    pub limit: Option<usize>,
}

/// One event as reports show it (U1): the CSV columns, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// Event id.
    pub id: String,
    /// When it started.
    pub start: DateTime<Utc>,
    /// Device.
    pub device: String,
    /// The device's node when the event arrived.
    pub node: Option<String>,
    /// Item.
    pub item: String,
    /// Access group whose license covered it.
    pub access_group: Option<String>,
    /// Version of the license terms (the group manifest) that covered it.
    pub license_version: Option<u64>,
    /// Milliseconds shown.
    pub duration_ms: u64,
    /// `played` or `skipped`.
    pub outcome: String,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// Country of the device's node.
    pub country: Option<String>,
    /// Region of the device's node.
    pub region: Option<String>,
    /// Device operating system.
    pub os: String,
    /// Agent version.
    pub agent_version: String,
}

/// The CSV header: [`UsageRow`]'s fields, in order.
const CSV_HEADER: [&str; 14] = [
    "id",
    "start",
    "device",
    "node",
    "item",
    "access_group",
    "license_version",
    "duration_ms",
    "outcome",
    "skip_reason",
    "country",
    "region",
    "os",
    "agent_version",
];

impl From<&StoredEvent> for UsageRow {
    fn from(stored: &StoredEvent) -> Self {
        let e = &stored.event;
        Self {
            id: e.id.clone(),
            start: e.start,
            device: e.device_id.to_string(),
            node: stored.node.as_ref().map(ToString::to_string),
            item: e.item.to_string(),
            access_group: e.access_group.as_ref().map(ToString::to_string),
            license_version: e.license_version,
            duration_ms: e.duration_ms,
            outcome: match e.outcome {
                Outcome::Played => "played",
                Outcome::Skipped => "skipped",
            }
            .to_owned(),
            skip_reason: e.skip_reason.clone(),
            country: e.country.clone(),
            region: e.region.clone(),
            os: e.os.clone(),
            agent_version: e.agent_version.clone(),
        }
    }
}

/// One JSON page of a usage report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsagePage {
    /// The rows, by start time.
    pub events: Vec<UsageRow>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Which events a report reads: the caller's domain and the filters.
struct Selection<'a> {
    /// The caller (domain, tree).
    caller: &'a Caller,
    /// `[from, to)`.
    from: DateTime<Utc>,
    /// End of the range (exclusive).
    to: DateTime<Utc>,
    /// Devices at this node or below.
    node: Option<NodeId>,
    /// This device.
    device: Option<DeviceId>,
    /// This item.
    item: Option<ItemId>,
    /// Licensed through one of these groups.
    groups: Option<BTreeSet<AccessGroupId>>,
}

impl Selection<'_> {
    fn matches(&self, stored: &StoredEvent) -> bool {
        let e = &stored.event;
        let visible = match &stored.node {
            Some(node) => {
                self.caller.sees(node)
                    && self
                        .node
                        .as_ref()
                        .is_none_or(|top| self.caller.tree.is_within(node, top))
            }
            None => self.caller.is_root_level() && self.node.is_none(),
        };
        visible
            && e.start >= self.from
            && e.start < self.to
            && self.device.as_ref().is_none_or(|d| &e.device_id == d)
            && self.item.as_ref().is_none_or(|i| &e.item == i)
            && self.groups.as_ref().is_none_or(|groups| {
                e.access_group
                    .as_ref()
                    .is_some_and(|group| groups.contains(group))
            })
    }

    /// Visits matching events after `after` in time order until `visit`
    /// says stop; returns the number of events read.
    fn visit(
        &self,
        state: &AppState,
        after: Option<&str>,
        max_read: usize,
        mut visit: impl FnMut(&str, &StoredEvent) -> bool,
    ) -> Result<(usize, bool), ApiError> {
        let mut read = 0;
        for hour in hours_between(&state.store, self.from, self.to)? {
            if after.is_some_and(|a| a.get(..13).is_some_and(|h| h > hour.as_str())) {
                continue;
            }
            for (key, stored) in events_in_hour(&state.store, &hour)? {
                if after.is_some_and(|a| key.as_str() <= a) {
                    continue;
                }
                read += 1;
                if read > max_read {
                    return Ok((read, true));
                }
                if self.matches(&stored) && !visit(&key, &stored) {
                    return Ok((read, false));
                }
            }
        }
        Ok((read, false))
    }
}

fn filter_value(name: &str, value: Option<&String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_FILTER_LEN => Err(ApiError::bad_request(
            "invalid_query",
            format!("{name} must be 1 to {MAX_FILTER_LEN} bytes"),
        )),
        other => Ok(other.cloned()),
    }
}

/// The range asked for, checked.
fn range(
    state: &AppState,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = to.unwrap_or_else(|| state.clock.now());
    let from = from.unwrap_or(to - TimeDelta::days(DEFAULT_RANGE_DAYS));
    if from >= to {
        return Err(ApiError::bad_request(
            "invalid_range",
            "from must be before to",
        ));
    }
    if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
        return Err(ApiError::bad_request(
            "range_too_long",
            format!("a report covers at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// A group the caller may see (its node inside the domain), or 404.
fn visible_group(state: &AppState, caller: &Caller, id: &str) -> Result<AccessGroup, ApiError> {
    state
        .store
        .get::<AccessGroup>(GROUPS, id)?
        .filter(|group| caller.sees(&group.node))
        .ok_or_else(|| ApiError::not_found("access group"))
}

/// Proof-of-play events (U1, U3) inside the caller's domain, filtered by
/// access group, user, device, node, item and time; a JSON page or a CSV
/// download (`format=csv`, `text/csv` with a header row).
#[utoipa::path(get, path = "/api/v1/reports/usage", tag = "reports", params(UsageFilter), security(("bearer" = [])),
    responses((status = 200, description = "A JSON page, or with format=csv a text/csv download", body = UsagePage),
        (status = 400, description = "Invalid filter or range, or a CSV over the row limit", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "A filter names a node, group or user the caller cannot see", body = super::ErrorBody)))]
pub async fn usage_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<UsageFilter>,
) -> Result<Response, ApiError> {
    let (from, to) = range(&state, filter.from, filter.to)?;
    let node = filter_value("node", filter.node.as_ref())?.map(NodeId::new);
    if node.as_ref().is_some_and(|n| !caller.sees(n)) {
        return Err(ApiError::not_found("node"));
    }
    let mut groups: Option<BTreeSet<AccessGroupId>> = None;
    if let Some(id) = filter_value("access_group", filter.access_group.as_ref())? {
        let group = visible_group(&state, &caller, &id)?;
        groups = Some(BTreeSet::from([group.id]));
    }
    if let Some(id) = filter_value("user", filter.user.as_ref())? {
        let user = state
            .store
            .get::<User>(USERS, &id)?
            .filter(|u| sees_user(&caller, u))
            .ok_or_else(|| ApiError::not_found("user"))?;
        let theirs: BTreeSet<AccessGroupId> =
            access_groups::memberships_of(&state.store, &MemberRef::user(&user.id))?
                .into_iter()
                .map(|(group, _)| group.id)
                .collect();
        groups = Some(match groups {
            Some(only) => only.intersection(&theirs).cloned().collect(),
            None => theirs,
        });
    }
    let selection = Selection {
        caller: &caller,
        from,
        to,
        node,
        device: filter_value("device", filter.device.as_ref())?.map(DeviceId::new),
        item: filter_value("item", filter.item.as_ref())?.map(ItemId::new),
        groups,
    };
    match filter.format.unwrap_or_default() {
        ReportFormat::Json => {
            let limit = filter
                .limit
                .unwrap_or(MAX_JSON_PAGE)
                .clamp(1, MAX_JSON_PAGE);
            let mut rows: Vec<(String, UsageRow)> = Vec::new();
            let mut more = false;
            selection.visit(
                &state,
                filter.after.as_deref(),
                usize::MAX,
                |key, stored| {
                    if rows.len() == limit {
                        more = true;
                        return false;
                    }
                    rows.push((key.to_owned(), UsageRow::from(stored)));
                    true
                },
            )?;
            let next = if more {
                rows.last().map(|(key, _)| key.clone())
            } else {
                None
            };
            Ok(Json(UsagePage {
                events: rows.into_iter().map(|(_, row)| row).collect(),
                next,
            })
            .into_response())
        }
        ReportFormat::Csv => {
            if filter.after.is_some() || filter.limit.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "after and limit page JSON reports; a CSV download holds the whole range",
                ));
            }
            let mut rows = Vec::new();
            let mut over = false;
            selection.visit(&state, None, usize::MAX, |_, stored| {
                if rows.len() == MAX_CSV_ROWS {
                    over = true;
                    return false;
                }
                rows.push(UsageRow::from(stored));
                true
            })?;
            if over {
                return Err(ApiError::bad_request(
                    "report_too_large",
                    format!(
                        "more than {MAX_CSV_ROWS} events match: narrow the time range or the filters"
                    ),
                ));
            }
            csv_response(&rows, from, to)
        }
    }
}

/// `rows` as a CSV download with a header row.
fn csv_response(
    rows: &[UsageRow],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer
        .write_record(CSV_HEADER)
        .map_err(|e| ApiError::internal(&e))?;
    for row in rows {
        writer.serialize(row).map_err(|e| ApiError::internal(&e))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    let filename = format!(
        "attachment; filename=\"signet-usage-{}-{}.csv\"",
        from.format("%Y%m%dT%H%M%SZ"),
        to.format("%Y%m%dT%H%M%SZ")
    );
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Summary range.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryRange {
    /// Events starting at or after this time (default: 7 days before `to`).
    pub from: Option<DateTime<Utc>>,
    /// Events starting before this time (default: now).
    pub to: Option<DateTime<Utc>>,
}

/// One item's usage under a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemUsage {
    /// The item.
    pub item: String,
    /// Times it played.
    pub played: u64,
    /// Times it was due but skipped.
    pub skipped: u64,
    /// Total milliseconds played.
    pub played_ms: u64,
}

/// An access group's usage (L8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupUsage {
    /// The group.
    pub access_group: String,
    /// Its name.
    pub name: String,
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// Per item, by item id.
    pub items: Vec<ItemUsage>,
    /// Plays over all items.
    pub played: u64,
    /// Skips over all items.
    pub skipped: u64,
    /// Milliseconds played over all items.
    pub played_ms: u64,
    /// Whether the range held more events than one summary reads
    /// ([`MAX_SUMMARY_EVENTS`]): narrow it for exact totals.
    pub truncated: bool,
}

/// Usage of one access group (L8): plays, skips and time played per item,
/// over events of devices inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/reports/usage/access-groups/{id}", tag = "reports",
    params(("id" = String, Path, description = "Access group id"), SummaryRange), security(("bearer" = [])),
    responses((status = 200, description = "The summary", body = GroupUsage),
        (status = 400, description = "Invalid range", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "No such group inside the caller's domain", body = super::ErrorBody)))]
pub async fn group_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<SummaryRange>,
) -> Result<Json<GroupUsage>, ApiError> {
    if id.is_empty() || id.len() > MAX_FILTER_LEN {
        return Err(ApiError::not_found("access group"));
    }
    let group = visible_group(&state, &caller, &id)?;
    let (from, to) = range(&state, query.from, query.to)?;
    let selection = Selection {
        caller: &caller,
        from,
        to,
        node: None,
        device: None,
        item: None,
        groups: Some(BTreeSet::from([group.id.clone()])),
    };
    let mut items: BTreeMap<String, ItemUsage> = BTreeMap::new();
    let (_, truncated) = selection.visit(&state, None, MAX_SUMMARY_EVENTS, |_, stored| {
        let e = &stored.event;
        let usage = items.entry(e.item.to_string()).or_default();
        match e.outcome {
            Outcome::Played => {
                usage.played += 1;
                usage.played_ms = usage.played_ms.saturating_add(e.duration_ms);
            }
            Outcome::Skipped => usage.skipped += 1,
        }
        true
    })?;
    let items: Vec<ItemUsage> = items
        .into_iter()
        .map(|(item, usage)| ItemUsage { item, ..usage })
        .collect();
    Ok(Json(GroupUsage {
        access_group: group.id.to_string(),
        name: group.name,
        from,
        to,
        played: items.iter().map(|i| i.played).sum(),
        skipped: items.iter().map(|i| i.skipped).sum(),
        played_ms: items.iter().fold(0, |t, i| t.saturating_add(i.played_ms)),
        items,
        truncated,
    }))
}
