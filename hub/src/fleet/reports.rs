//! Proof-of-play reports (U1, U3, L8): usage as JSON pages or a CSV
//! download, and per-access-group usage summaries.
//!
//! Owns: the report query, parsed once and bounded ([`UsageQuery`],
//! [`TimeRange`]); which stored events a report reads ([`Selection`]); JSON
//! paging, the CSV columns and their encoding, and the per-item tally of a
//! group. Who sees which event is [`Viewer::sees_event`]'s rule, nowhere
//! else; which items a report may name is [`ItemSight`]'s (M1). Must not:
//! write anything, or know HTTP (the API sets the headers).
//!
//! Items the caller cannot view (M1: restricted to permission groups they
//! are not in, or held by access groups they hold no valid entitlement
//! in) are left out of every report: their events are not listed, not in
//! the CSV and not counted in a group's summary, and an `item` filter
//! naming one is not found (404), as for other tenants. Left out rather
//! than aggregated under a blank name: a count of plays of "something you
//! cannot see" at a site would still tell a Viewer the item exists, and
//! Moderators and above, who answer for the numbers, view every item in
//! their domain (M1) and so see every event their domain holds. Events of
//! items no longer stored name only an id, and stay.
//!
//! Every report covers at most [`MAX_RANGE_DAYS`] days; a CSV download holds
//! at most [`MAX_CSV_ROWS`] rows (a larger one is refused, so a download is
//! never silently cut); JSON is paged. The `user` filter: events carry no
//! user when a screen played them, so `user=U` means usage under U's
//! licenses — events whose access group is one U has (or had) a membership
//! in — less other users' browser playbacks (M6: those carry their user).
//! The user must be one the caller may see.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId, UserId};
use signet_common::sync::{Outcome, PlayEvent};

use super::events::{StoredEvent, events_in_hour, hours_between};
use super::service::{FleetError, Viewer};
use crate::access_groups::{self, AccessGroup, GROUPS, MemberRef};
use crate::app::Hub;
use crate::content::visibility::Viewer as ItemViewer;
use crate::content::{CONTENT, ContentItem};
use crate::identity::{Actor, USERS, User};
use crate::store::{Store, StoreError};
use crate::tenancy::load_tree_in;

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
/// The longest filter value: an id.
pub const MAX_FILTER_LEN: usize = signet_common::ids::MAX_ID_LEN;
/// The longest paging cursor (an event key: its start and its id).
const MAX_CURSOR_LEN: usize = 512;

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

/// Usage report filter (U3), as the query string says it. Times are RFC
/// 3339; the range is `[from, to)`, by default the 7 days before now.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
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

/// A report's time range `[from, to)`, checked: `from` before `to`, at
/// most [`MAX_RANGE_DAYS`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Start (inclusive).
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// The range asked for: `to` defaults to `now`, `from` to
    /// [`DEFAULT_RANGE_DAYS`] days before `to`.
    ///
    /// # Errors
    /// [`FleetError::InvalidRange`], [`FleetError::RangeTooLong`].
    pub fn parse(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, FleetError> {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - TimeDelta::days(DEFAULT_RANGE_DAYS));
        if from >= to {
            return Err(FleetError::InvalidRange);
        }
        if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
            return Err(FleetError::RangeTooLong);
        }
        Ok(Self { from, to })
    }

    /// Whether `at` lies inside.
    #[must_use]
    pub fn holds(&self, at: DateTime<Utc>) -> bool {
        at >= self.from && at < self.to
    }
}

/// A filter value: 1 to `max` bytes, else 400 `invalid_query` naming it.
///
/// # Errors
/// [`FleetError::InvalidQuery`].
pub fn filter_value(
    name: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, FleetError> {
    match value {
        Some(v) if v.is_empty() || v.len() > max => Err(FleetError::InvalidQuery(format!(
            "{name} must be 1 to {max} bytes"
        ))),
        other => Ok(other),
    }
}

/// How a usage report is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageOutput {
    /// A JSON page of at most `limit` rows after the cursor `after`.
    Page {
        /// The `next` of the previous page.
        after: Option<String>,
        /// Rows per page, 1 to [`MAX_JSON_PAGE`].
        limit: usize,
    },
    /// The whole range as CSV.
    Csv,
}

/// A usage report query (U3), parsed once from [`UsageFilter`]: every value
/// bounded, the range checked, the output decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// The time range.
    pub range: TimeRange,
    /// Licensed through this access group (an id still to look up).
    pub access_group: Option<String>,
    /// Licensed through a group of this user (an id still to look up).
    pub user: Option<String>,
    /// This device.
    pub device: Option<DeviceId>,
    /// Devices at this node or below.
    pub node: Option<NodeId>,
    /// This item.
    pub item: Option<ItemId>,
    /// JSON page or CSV.
    pub output: UsageOutput,
}

impl UsageQuery {
    /// Parses `filter` at `now`. A CSV download holds the whole range, so
    /// `after` and `limit` go with JSON only.
    ///
    /// # Errors
    /// 400s: [`FleetError::InvalidQuery`], [`FleetError::InvalidRange`],
    /// [`FleetError::RangeTooLong`].
    pub fn parse(filter: UsageFilter, now: DateTime<Utc>) -> Result<Self, FleetError> {
        let range = TimeRange::parse(filter.from, filter.to, now)?;
        let id = |name, value| filter_value(name, value, MAX_FILTER_LEN);
        let output = match filter.format.unwrap_or_default() {
            ReportFormat::Json => UsageOutput::Page {
                after: filter_value("after", filter.after, MAX_CURSOR_LEN)?,
                limit: filter
                    .limit
                    .unwrap_or(MAX_JSON_PAGE)
                    .clamp(1, MAX_JSON_PAGE),
            },
            ReportFormat::Csv if filter.after.is_some() || filter.limit.is_some() => {
                return Err(FleetError::InvalidQuery(
                    "after and limit page JSON reports; a CSV download holds the whole range"
                        .into(),
                ));
            }
            ReportFormat::Csv => UsageOutput::Csv,
        };
        Ok(Self {
            range,
            access_group: id("access_group", filter.access_group)?,
            user: id("user", filter.user)?,
            device: id("device", filter.device)?.map(DeviceId::new),
            node: id("node", filter.node)?.map(NodeId::new),
            item: id("item", filter.item)?.map(ItemId::new),
            output,
        })
    }
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
    /// The user who played it in a browser (M6); empty for a screen.
    pub user: Option<String>,
}

/// The CSV header: [`UsageRow`]'s fields, in order.
pub const CSV_HEADER: [&str; 15] = [
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
    "user",
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
            user: stored.user.as_ref().map(ToString::to_string),
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

/// What a usage report answers.
#[derive(Debug)]
pub enum UsageReport {
    /// A JSON page.
    Page(UsagePage),
    /// A CSV download with its header row.
    Csv {
        /// The CSV bytes (UTF-8).
        bytes: Vec<u8>,
        /// The download's file name.
        filename: String,
    },
}

/// Which items a report may name (M1): all but the stored items the caller
/// cannot view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemSight {
    /// The stored items the caller cannot view.
    hidden: BTreeSet<ItemId>,
}

impl ItemSight {
    /// Every item may be named (for callers resolved elsewhere).
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// What `actor` may name, by content's view rule, now.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn load(hub: &Hub, actor: &Actor) -> Result<Self, FleetError> {
        let viewer = ItemViewer::load(hub, actor)?;
        let hidden = hub
            .store
            .transact(|tx| {
                let (tree, _) = load_tree_in(tx)?;
                let holders = viewer.holders_in(tx)?;
                let all: Vec<ContentItem> = tx.scan(CONTENT, "")?;
                Ok::<_, StoreError>(
                    all.into_iter()
                        .filter(|item| !viewer.may_view(&tree, item, &holders))
                        .map(|item| item.id)
                        .collect(),
                )
            })
            .await?;
        Ok(Self { hidden })
    }

    /// The stored items the caller cannot view.
    pub fn hidden(&self) -> impl Iterator<Item = &ItemId> {
        self.hidden.iter()
    }

    /// Whether a report may name `item`.
    #[must_use]
    pub fn names(&self, item: &ItemId) -> bool {
        !self.hidden.contains(item)
    }
}

/// Which events a report reads: the filters, resolved; who reads is the
/// [`Viewer`] passed to [`Selection::visit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The time range.
    pub range: TimeRange,
    /// Devices at this node or below (checked visible).
    pub node: Option<NodeId>,
    /// This device.
    pub device: Option<DeviceId>,
    /// This item.
    pub item: Option<ItemId>,
    /// Licensed through one of these groups.
    pub groups: Option<BTreeSet<AccessGroupId>>,
    /// The items the reader may name (M1).
    pub sight: ItemSight,
    /// Played by this user in a browser, or by a screen (M6): a browser
    /// playback of another user does not match.
    pub user: Option<UserId>,
}

impl Selection {
    /// The events of `range` only.
    #[must_use]
    pub fn of(range: TimeRange) -> Self {
        Self {
            range,
            node: None,
            device: None,
            item: None,
            groups: None,
            sight: ItemSight::all(),
            user: None,
        }
    }

    /// Whether `viewer` sees `stored`, may name its item, and it matches
    /// the filters. An event stored without a node matches no node filter.
    #[must_use]
    pub fn matches(&self, viewer: &Viewer, stored: &StoredEvent) -> bool {
        let e = &stored.event;
        viewer.sees_event(stored)
            && self.sight.names(&e.item)
            && self.node.as_ref().is_none_or(|top| {
                stored
                    .node
                    .as_ref()
                    .is_some_and(|node| viewer.is_within(node, top))
            })
            && self.range.holds(e.start)
            && self.device.as_ref().is_none_or(|d| &e.device_id == d)
            && self.item.as_ref().is_none_or(|i| &e.item == i)
            && self.groups.as_ref().is_none_or(|groups| {
                e.access_group
                    .as_ref()
                    .is_some_and(|group| groups.contains(group))
            })
            && self
                .user
                .as_ref()
                .is_none_or(|user| stored.user.as_ref().is_none_or(|u| u == user))
    }

    /// Visits matching events after the key `after`, in time order, until
    /// `visit` says stop or `max_read` events were read; answers whether it
    /// stopped at `max_read`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn visit(
        &self,
        store: &Store,
        viewer: &Viewer,
        after: Option<&str>,
        max_read: usize,
        mut visit: impl FnMut(&str, &StoredEvent) -> bool,
    ) -> Result<bool, FleetError> {
        let mut read = 0;
        for hour in hours_between(store, self.range.from, self.range.to)? {
            if after.is_some_and(|a| a.get(..13).is_some_and(|h| h > hour.as_str())) {
                continue;
            }
            for (key, stored) in events_in_hour(store, &hour)? {
                if after.is_some_and(|a| key.as_str() <= a) {
                    continue;
                }
                read += 1;
                if read > max_read {
                    return Ok(true);
                }
                if self.matches(viewer, &stored) && !visit(&key, &stored) {
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }
}

/// A group `viewer` may see, or [`FleetError::NotFound`].
fn visible_group(store: &Store, viewer: &Viewer, id: &str) -> Result<AccessGroup, FleetError> {
    store
        .get::<AccessGroup>(GROUPS, id)?
        .filter(|group| viewer.sees_group(group))
        .ok_or(FleetError::NotFound("access group"))
}

/// The selection of `query`: the node and item checked visible, the
/// access-group and user filters resolved to the groups they allow.
fn select(
    store: &Store,
    (viewer, sight): (&Viewer, &ItemSight),
    query: &UsageQuery,
) -> Result<Selection, FleetError> {
    if query.node.as_ref().is_some_and(|n| !viewer.sees_node(n)) {
        return Err(FleetError::NotFound("node"));
    }
    if query.item.as_ref().is_some_and(|i| !sight.names(i)) {
        return Err(FleetError::NotFound("content item"));
    }
    let mut groups: Option<BTreeSet<AccessGroupId>> = None;
    if let Some(id) = &query.access_group {
        groups = Some(BTreeSet::from([visible_group(store, viewer, id)?.id]));
    }
    if let Some(id) = &query.user {
        let user = store
            .get::<User>(USERS, id)?
            .filter(|u| viewer.sees_user(u))
            .ok_or(FleetError::NotFound("user"))?;
        let theirs: BTreeSet<AccessGroupId> =
            access_groups::memberships_of(store, &MemberRef::user(&user.id))?
                .into_iter()
                .map(|(group, _)| group.id)
                .collect();
        groups = Some(match groups {
            Some(only) => only.intersection(&theirs).cloned().collect(),
            None => theirs,
        });
    }
    Ok(Selection {
        node: query.node.clone(),
        device: query.device.clone(),
        item: query.item.clone(),
        groups,
        sight: sight.clone(),
        user: query.user.as_deref().map(UserId::from),
        ..Selection::of(query.range)
    })
}

/// Proof-of-play events (U1, U3) `viewer` sees, of items `sight` names,
/// that match `query`: a JSON page, or the whole range as CSV (refused
/// over [`MAX_CSV_ROWS`] rows).
///
/// # Errors
/// 404 for a node, group, user or item the viewer cannot see;
/// [`FleetError::ReportTooLarge`]; the store.
pub fn usage_report(
    hub: &Hub,
    (viewer, sight): (&Viewer, &ItemSight),
    query: &UsageQuery,
) -> Result<UsageReport, FleetError> {
    let store = &hub.store;
    let selection = select(store, (viewer, sight), query)?;
    if let Some(report) =
        super::event_query::usage_report(store, viewer, &selection, &query.output)?
    {
        return Ok(report);
    }
    match &query.output {
        UsageOutput::Page { after, limit } => {
            let mut rows: Vec<(String, UsageRow)> = Vec::new();
            let mut more = false;
            selection.visit(
                store,
                viewer,
                after.as_deref(),
                usize::MAX,
                |key, stored| {
                    if rows.len() == *limit {
                        more = true;
                        return false;
                    }
                    rows.push((key.to_owned(), UsageRow::from(stored)));
                    true
                },
            )?;
            let next = more.then(|| rows.last().map(|(key, _)| key.clone()));
            Ok(UsageReport::Page(UsagePage {
                events: rows.into_iter().map(|(_, row)| row).collect(),
                next: next.flatten(),
            }))
        }
        UsageOutput::Csv => {
            let mut rows = Vec::new();
            let mut over = false;
            selection.visit(store, viewer, None, usize::MAX, |_, stored| {
                over = rows.len() == MAX_CSV_ROWS;
                if !over {
                    rows.push(UsageRow::from(stored));
                }
                !over
            })?;
            if over {
                return Err(FleetError::ReportTooLarge);
            }
            Ok(UsageReport::Csv {
                bytes: csv_bytes(&rows)?,
                filename: csv_filename(query.range),
            })
        }
    }
}

/// `rows` as CSV with the header row ([`CSV_HEADER`]); fields holding
/// commas, quotes or line breaks are quoted (RFC 4180).
///
/// # Errors
/// [`FleetError::Csv`] when a row cannot be encoded.
pub fn csv_bytes(rows: &[UsageRow]) -> Result<Vec<u8>, FleetError> {
    let csv_error = |e: &dyn std::fmt::Display| FleetError::Csv(e.to_string());
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.write_record(CSV_HEADER).map_err(|e| csv_error(&e))?;
    for row in rows {
        writer.serialize(row).map_err(|e| csv_error(&e))?;
    }
    writer.into_inner().map_err(|e| csv_error(&e))
}

/// The file name of the CSV download of `range`.
#[must_use]
pub fn csv_filename(range: TimeRange) -> String {
    format!(
        "signet-usage-{}-{}.csv",
        range.from.format("%Y%m%dT%H%M%SZ"),
        range.to.format("%Y%m%dT%H%M%SZ")
    )
}

/// Summary range, as the query string says it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
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

/// Plays, skips and time played per item (L8), as events are counted.
#[derive(Debug, Default)]
pub struct Tally {
    /// Per item id.
    items: BTreeMap<String, ItemUsage>,
}

impl Tally {
    /// Counts `event`: a play adds its duration, a skip none.
    pub fn add(&mut self, event: &PlayEvent) {
        let usage = self.items.entry(event.item.to_string()).or_default();
        match event.outcome {
            Outcome::Played => {
                usage.played += 1;
                usage.played_ms = usage.played_ms.saturating_add(event.duration_ms);
            }
            Outcome::Skipped => usage.skipped += 1,
        }
    }

    /// The summary of the group `(id, name)` over `range` from what was
    /// counted.
    #[must_use]
    pub fn summary(
        self,
        (id, name): (&AccessGroupId, String),
        range: TimeRange,
        truncated: bool,
    ) -> GroupUsage {
        let items: Vec<ItemUsage> = self
            .items
            .into_iter()
            .map(|(item, usage)| ItemUsage { item, ..usage })
            .collect();
        GroupUsage {
            access_group: id.to_string(),
            name,
            from: range.from,
            to: range.to,
            played: items.iter().map(|i| i.played).sum(),
            skipped: items.iter().map(|i| i.skipped).sum(),
            played_ms: items.iter().fold(0, |t, i| t.saturating_add(i.played_ms)),
            items,
            truncated,
        }
    }
}

/// Usage of the access group `id` (L8) over `range`: plays, skips and time
/// played per item, over the events `viewer` sees of items `sight` names,
/// reading at most [`MAX_SUMMARY_EVENTS`] events.
///
/// # Errors
/// [`FleetError::NotFound`] for a group the viewer cannot see (before the
/// range is checked); 400 for the range; the store.
pub fn group_usage(
    hub: &Hub,
    (viewer, sight): (&Viewer, &ItemSight),
    id: &str,
    range: &SummaryRange,
) -> Result<GroupUsage, FleetError> {
    if id.is_empty() || id.len() > MAX_FILTER_LEN {
        return Err(FleetError::NotFound("access group"));
    }
    let store = &hub.store;
    let group = visible_group(store, viewer, id)?;
    let range = TimeRange::parse(range.from, range.to, hub.now())?;
    let selection = Selection {
        groups: Some(BTreeSet::from([group.id.clone()])),
        sight: sight.clone(),
        ..Selection::of(range)
    };
    if let Some(items) = super::event_query::item_usage(store, viewer, &selection)? {
        let group = (group.id.to_string(), group.name);
        return Ok(super::event_query::summary(items, group, &selection));
    }
    let mut tally = Tally::default();
    let truncated = selection.visit(store, viewer, None, MAX_SUMMARY_EVENTS, |_, stored| {
        tally.add(&stored.event);
        true
    })?;
    Ok(tally.summary((&group.id, group.name), range, truncated))
}

#[cfg(test)]
#[path = "reports_tests.rs"]
pub(crate) mod tests;
