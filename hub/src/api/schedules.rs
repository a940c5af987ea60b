//! `/api/v1/playlists` and `/api/v1/schedules` (D5, T2, T4, A1, A7): what
//! plays where, as operators write it.
//!
//! Who may do what:
//! - a playlist belongs to a node; callers see playlists inside their domain
//!   and at the nodes above it, where they are usable in the domain (T2);
//!   anything else is 404 (T4). Contributor and above create, change and
//!   delete playlists at nodes inside their domain; a playlist above it is
//!   changed only from there (403). Restricted nodes follow A1
//!   ([`check_item_change`], 403);
//! - every item of a playlist must exist, be visible to the caller and be
//!   usable at the playlist's node (its node is that node or above, T2).
//!   Inactive and pending items are allowed (A7: the device skips them);
//! - a schedule is attached to one group (a node or an access group), at
//!   most one per group (409). Its playlists and default item must be
//!   usable at the group's node (T2). It is seen like a playlist, by its
//!   group's node, and written by Contributor and above inside their domain;
//! - every schedule write is checked by resolving it and calling
//!   [`Schedule::validate`](signet_common::schedule::Schedule::validate)
//!   (400 `invalid_schedule` with its reason);
//! - a playlist a schedule uses is not deleted (409 naming the schedule).
//!
//! Updates: `PATCH /playlists/{id}` changes the fields it carries;
//! `PUT /schedules/{id}` replaces the whole schedule but its target.
//! Every change is one [`WriteBatch`] with its audit record, applied
//! durably before the answer (S8, S9).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use signet_common::ids::{ItemId, MAX_ID_LEN, NodeId};
use signet_common::permissions::Role;
use signet_common::schedule::{
    Evaluation, MAX_ENTRIES, MAX_ITEMS_PER_ENTRY, MergeMode, ScheduleError, evaluate,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery, AppState, Caller};
use crate::access_groups::is_valid_id;
use crate::content::{CONTENT, ContentItem};
use crate::groups::GroupRef;
use crate::identity::new_id;
use crate::schedules::{
    GROUP_SCHEDULES, GroupSchedule, MAX_ITEM_DURATION_MS, MAX_PLAYLIST_NAME_LEN,
    MAX_SCHEDULED_ITEMS, PLAYLISTS, PlannedItem, Playlist, PlaylistId, SCHEDULES, ScheduleId,
    ScheduledPlaylist, node_of_group, put_playlist, put_schedule, resolve, scheduled_item_count,
    schedules_using_playlist,
};
use crate::store::WriteBatch;
use crate::tenancy::restricted::{ItemChange, check_item_change};
use crate::tenancy::{NODES, Node};

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_playlists, create_playlist))
        .routes(routes!(get_playlist, update_playlist, delete_playlist))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, replace_schedule, delete_schedule))
        .routes(routes!(preview_schedule))
}

// ------------------------------------------------------------- requests

/// A new playlist.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaylist {
    /// The node it belongs to (inside the caller's domain).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 128 bytes).
    pub name: String,
    /// The items in play order (at most 10 000); `duration_ms` may be left
    /// out for items with a media duration.
    #[serde(default)]
    pub items: Vec<PlannedItem>,
}

/// Changes to a playlist; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlaylist {
    /// New name.
    pub name: Option<String>,
    /// New items (replace the old list whole).
    pub items: Option<Vec<PlannedItem>>,
}

/// A new schedule.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// The group: `{"kind": "node" | "access_group", "id": …}`, whose node
    /// is inside the caller's domain.
    #[schema(value_type = Object)]
    pub target: GroupRef,
    /// The entries (at most 1 000), in schedule order.
    #[serde(default)]
    pub entries: Vec<ScheduledPlaylist>,
    /// `{"mode": "sequence"}` (default) or `{"mode": "interleave", "n": N}` with N ≥ 1.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub merge: MergeMode,
    /// Shown when no entry has anything playable.
    #[serde(default)]
    pub default_item: Option<PlannedItem>,
}

/// A schedule's new content; its target stays.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceSchedule {
    /// The entries (at most 1 000), in schedule order.
    #[serde(default)]
    pub entries: Vec<ScheduledPlaylist>,
    /// `{"mode": "sequence"}` (default) or `{"mode": "interleave", "n": N}` with N ≥ 1.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub merge: MergeMode,
    /// Shown when no entry has anything playable; absent clears it.
    #[serde(default)]
    pub default_item: Option<PlannedItem>,
}

/// When and where to preview a schedule.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// The instant (RFC 3339); default now.
    pub at: Option<DateTime<Utc>>,
    /// The device's IANA time zone, e.g. `Europe/Berlin`; default `UTC`.
    pub tz: Option<String>,
}

/// What a schedule plays at an instant, every item treated as playable.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The instant asked about.
    pub at: DateTime<Utc>,
    /// The time zone it was evaluated in.
    pub tz: String,
    /// The main layer: `{item, entry, started_at, ends_at}` or `null`
    /// (`entry` is `null` for the default item).
    #[schema(value_type = Option<Object>)]
    pub main: Option<signet_common::schedule::Slot>,
    /// One slot per active overlay entry, highest priority first.
    #[schema(value_type = Vec<Object>)]
    pub overlays: Vec<signet_common::schedule::Slot>,
    /// The earliest later instant at which the answer may differ.
    pub next_change: DateTime<Utc>,
}

// --------------------------------------------------------------- checks

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.len() > MAX_PLAYLIST_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_PLAYLIST_NAME_LEN} bytes of text"),
        ));
    }
    Ok(())
}

/// The checks that need no store: item count, ids and explicit durations.
fn check_item_shapes(items: &[PlannedItem]) -> Result<(), ApiError> {
    if items.len() > MAX_ITEMS_PER_ENTRY {
        return Err(ApiError::bad_request(
            "too_many_items",
            format!(
                "a playlist holds at most {MAX_ITEMS_PER_ENTRY} items, not {}",
                items.len()
            ),
        ));
    }
    for planned in items {
        if !is_valid_id(planned.item.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_item_id",
                format!("item ids are 1 to {MAX_ID_LEN} bytes of letters, digits and -_.:"),
            ));
        }
        if let Some(ms) = planned.duration_ms
            && !(1..=MAX_ITEM_DURATION_MS).contains(&ms)
        {
            return Err(ApiError::bad_request(
                "invalid_duration",
                format!(
                    "item {}: duration_ms must be 1 to {MAX_ITEM_DURATION_MS}",
                    planned.item
                ),
            ));
        }
    }
    Ok(())
}

/// The checks of a schedule that need no store: entry count and ids.
fn check_schedule_shape(
    entries: &[ScheduledPlaylist],
    default_item: Option<&PlannedItem>,
) -> Result<(), ApiError> {
    if entries.len() > MAX_ENTRIES {
        return Err(invalid_schedule(&ScheduleError::TooManyEntries {
            count: entries.len(),
            max: MAX_ENTRIES,
        }));
    }
    for entry in entries {
        if !is_valid_id(entry.id.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_entry_id",
                format!("entry ids are 1 to {MAX_ID_LEN} bytes of letters, digits and -_.:"),
            ));
        }
        if !is_valid_id(entry.playlist.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_playlist_id",
                format!(
                    "entry {}: playlist ids are 1 to {MAX_ID_LEN} bytes of letters, digits and -_.:",
                    entry.id
                ),
            ));
        }
    }
    check_item_shapes(default_item.map(std::slice::from_ref).unwrap_or_default())
}

fn invalid_schedule(e: &ScheduleError) -> ApiError {
    ApiError::bad_request("invalid_schedule", e.to_string())
}

/// Every planned item exists, is visible to the caller, is usable at `node`
/// (T2) and has a duration: its own or its media's. Inactive and pending
/// items pass (A7).
fn check_items(
    state: &AppState,
    caller: &Caller,
    node: &NodeId,
    items: &[PlannedItem],
) -> Result<(), ApiError> {
    let mut seen: BTreeMap<&ItemId, ContentItem> = BTreeMap::new();
    for planned in items {
        let item = match seen.get(&planned.item) {
            Some(item) => item,
            None => {
                let item = state
                    .store
                    .get::<ContentItem>(CONTENT, planned.item.as_str())?
                    .filter(|item| caller.sees_at_or_above(&item.node))
                    .ok_or_else(|| {
                        ApiError::not_found(&format!("content item {}", planned.item))
                    })?;
                seen.entry(&planned.item).or_insert(item)
            }
        };
        if !caller.tree.is_within(node, &item.node) {
            return Err(ApiError::bad_request(
                "item_not_usable",
                format!(
                    "content item {} belongs to node {}, which is neither {node} nor above it (T2)",
                    item.id, item.node
                ),
            ));
        }
        if planned.duration_ms.is_none() && item.duration_ms.is_none_or(|ms| ms == 0) {
            return Err(ApiError::bad_request(
                "duration_required",
                format!(
                    "content item {} has no media duration: give its duration_ms",
                    item.id
                ),
            ));
        }
    }
    Ok(())
}

/// Every playlist the entries name exists, is visible to the caller and is
/// usable at `node` (T2).
fn check_playlists(
    state: &AppState,
    caller: &Caller,
    node: &NodeId,
    entries: &[ScheduledPlaylist],
) -> Result<(), ApiError> {
    let mut checked: Vec<&PlaylistId> = Vec::new();
    for entry in entries {
        if checked.contains(&&entry.playlist) {
            continue;
        }
        let playlist = state
            .store
            .get::<Playlist>(PLAYLISTS, entry.playlist.as_str())?
            .filter(|p| caller.sees_at_or_above(&p.node))
            .ok_or_else(|| ApiError::not_found(&format!("playlist {}", entry.playlist)))?;
        if !caller.tree.is_within(node, &playlist.node) {
            return Err(ApiError::bad_request(
                "playlist_not_usable",
                format!(
                    "entry {}: playlist {} belongs to node {}, which is neither {node} nor above it (T2)",
                    entry.id, playlist.id, playlist.node
                ),
            ));
        }
        checked.push(&entry.playlist);
    }
    Ok(())
}

/// Checks a schedule about to be stored: its playlists and default item
/// (T2), its size, and common's rules on its resolved form.
fn check_schedule(
    state: &AppState,
    caller: &Caller,
    schedule: &GroupSchedule,
) -> Result<(), ApiError> {
    check_playlists(state, caller, &schedule.node, &schedule.entries)?;
    check_items(
        state,
        caller,
        &schedule.node,
        schedule.default_item.as_slice(),
    )?;
    check_size(
        scheduled_item_count(&state.store, schedule, None)?,
        schedule,
    )?;
    resolve(&state.store, schedule)?
        .validate()
        .map_err(|e| invalid_schedule(&e))
}

fn check_size(count: usize, schedule: &GroupSchedule) -> Result<(), ApiError> {
    if count > MAX_SCHEDULED_ITEMS {
        return Err(ApiError::bad_request(
            "schedule_too_large",
            format!(
                "schedule {} would hold {count} playlist items, at most {MAX_SCHEDULED_ITEMS} fit a manifest",
                schedule.id
            ),
        ));
    }
    Ok(())
}

/// A1: refuses (403) a change to a playlist at `node` the restriction rule forbids.
fn check_restricted(
    state: &AppState,
    caller: &Caller,
    node: &NodeId,
    change: ItemChange,
) -> Result<(), ApiError> {
    let node = state
        .store
        .get::<Node>(NODES, node.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))?;
    check_item_change(
        &caller.tree,
        &node,
        &caller.user.id,
        &caller.domain(),
        change,
    )
    .map_err(|e| ApiError::forbidden(e.to_string()))
}

// -------------------------------------------------------------- loading

fn load_playlist(state: &AppState, caller: &Caller, id: &str) -> Result<Playlist, ApiError> {
    state
        .store
        .get::<Playlist>(PLAYLISTS, id)?
        .filter(|p| caller.sees_at_or_above(&p.node))
        .ok_or_else(|| ApiError::not_found("playlist"))
}

fn load_schedule(state: &AppState, caller: &Caller, id: &str) -> Result<GroupSchedule, ApiError> {
    state
        .store
        .get::<GroupSchedule>(SCHEDULES, id)?
        .filter(|s| caller.sees_at_or_above(&s.node))
        .ok_or_else(|| ApiError::not_found("schedule"))
}

/// Refuses (403) a write to something above the caller's domain, which is
/// visible there but changed only from above (T2).
fn require_inside(caller: &Caller, node: &NodeId, what: &str) -> Result<(), ApiError> {
    if caller.sees(node) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "a {what} above the caller's domain can only be changed from there (T2)"
        )))
    }
}

// ------------------------------------------------------------ playlists

/// Playlists the caller sees: inside its domain and above it (T2).
#[utoipa::path(get, path = "/api/v1/playlists", tag = "playlists", security(("bearer" = [])),
    responses((status = 200, description = "Visible playlists", body = Vec<Playlist>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_playlists(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Playlist>>, ApiError> {
    let playlists: Vec<Playlist> = state.store.scan(PLAYLISTS, "")?;
    Ok(Json(
        playlists
            .into_iter()
            .filter(|p| caller.sees_at_or_above(&p.node))
            .collect(),
    ))
}

/// Creates a playlist at a node inside the caller's domain (Contributor+).
#[utoipa::path(post, path = "/api/v1/playlists", tag = "playlists", request_body = CreatePlaylist,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Playlist),
        (status = 400, description = "Invalid name, item id or duration; too many items; an item not usable at the node (T2)", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Node or an item absent or not visible", body = super::ErrorBody)))]
pub async fn create_playlist(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePlaylist>,
) -> Result<(StatusCode, Json<Playlist>), ApiError> {
    caller.require(Role::Contributor)?;
    check_name(&request.name)?;
    check_item_shapes(&request.items)?;
    if !caller.sees(&request.node) {
        return Err(ApiError::not_found("node"));
    }
    let _write = state.store.write_lock().await;
    check_restricted(&state, &caller, &request.node, ItemChange::Add)?;
    check_items(&state, &caller, &request.node, &request.items)?;
    let now = state.clock.now();
    let playlist = Playlist {
        id: PlaylistId::new(new_id("pl-")),
        node: request.node,
        name: request.name.trim().to_owned(),
        items: request.items,
        created_at: now,
        created_by: caller.user.id.clone(),
        updated_at: now,
        updated_by: caller.user.id.clone(),
    };
    let mut batch = WriteBatch::new();
    put_playlist(&mut batch, &playlist, None)?;
    caller
        .audit(
            &state,
            "playlist.create",
            playlist.id.as_str(),
            Some(playlist.node.clone()),
            serde_json::json!({"name": playlist.name, "items": playlist.items.len()}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(playlist)))
}

/// One playlist the caller sees.
#[utoipa::path(get, path = "/api/v1/playlists/{id}", tag = "playlists",
    params(("id" = String, Path, description = "Playlist id")), security(("bearer" = [])),
    responses((status = 200, description = "The playlist", body = Playlist),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_playlist(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Playlist>, ApiError> {
    Ok(Json(load_playlist(&state, &caller, &id)?))
}

/// Changes a playlist's name or items (Contributor+, inside the caller's
/// domain). Schedules using it keep using it; the new items must satisfy
/// the playlist's own rules, and every schedule using it must stay within
/// its size bound (409 otherwise).
#[utoipa::path(patch, path = "/api/v1/playlists/{id}", tag = "playlists", request_body = UpdatePlaylist,
    params(("id" = String, Path, description = "Playlist id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = Playlist),
        (status = 400, description = "Invalid name, item id or duration; too many items; an item not usable at the node (T2)", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Playlist or an item absent or not visible", body = super::ErrorBody),
        (status = 409, description = "A schedule using it would outgrow its bound", body = super::ErrorBody)))]
pub async fn update_playlist(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdatePlaylist>,
) -> Result<Json<Playlist>, ApiError> {
    caller.require(Role::Contributor)?;
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    if let Some(items) = &request.items {
        check_item_shapes(items)?;
    }
    let _write = state.store.write_lock().await;
    let old = load_playlist(&state, &caller, &id)?;
    require_inside(&caller, &old.node, "playlist")?;
    check_restricted(&state, &caller, &old.node, ItemChange::Edit)?;
    let mut playlist = old.clone();
    if let Some(name) = request.name {
        playlist.name = name.trim().to_owned();
    }
    if let Some(items) = request.items {
        check_items(&state, &caller, &playlist.node, &items)?;
        playlist.items = items;
        for schedule_id in schedules_using_playlist(&state.store, &playlist.id)? {
            if let Some(schedule) = state
                .store
                .get::<GroupSchedule>(SCHEDULES, schedule_id.as_str())?
            {
                let count = scheduled_item_count(&state.store, &schedule, Some(&playlist))?;
                check_size(count, &schedule)
                    .map_err(|e| ApiError::conflict("schedule_too_large", e.message))?;
            }
        }
    }
    playlist.updated_at = state.clock.now();
    playlist.updated_by = caller.user.id.clone();
    let mut batch = WriteBatch::new();
    put_playlist(&mut batch, &playlist, Some(&old))?;
    caller
        .audit(
            &state,
            "playlist.update",
            playlist.id.as_str(),
            Some(playlist.node.clone()),
            serde_json::json!({"name": playlist.name, "items": playlist.items.len()}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(playlist))
}

/// Deletes a playlist no schedule uses (Contributor+, inside the caller's domain).
#[utoipa::path(delete, path = "/api/v1/playlists/{id}", tag = "playlists",
    params(("id" = String, Path, description = "Playlist id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "A schedule uses it", body = super::ErrorBody)))]
pub async fn delete_playlist(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Contributor)?;
    let _write = state.store.write_lock().await;
    let playlist = load_playlist(&state, &caller, &id)?;
    require_inside(&caller, &playlist.node, "playlist")?;
    check_restricted(&state, &caller, &playlist.node, ItemChange::Delete)?;
    let users = schedules_using_playlist(&state.store, &playlist.id)?;
    if !users.is_empty() {
        let names: Vec<&str> = users.iter().map(ScheduleId::as_str).collect();
        return Err(ApiError::conflict(
            "playlist_in_use",
            format!(
                "playlist {} is used by schedule {}",
                playlist.id,
                names.join(", ")
            ),
        ));
    }
    let mut batch = WriteBatch::new();
    crate::schedules::delete_playlist(&mut batch, &playlist);
    caller
        .audit(
            &state,
            "playlist.delete",
            playlist.id.as_str(),
            Some(playlist.node.clone()),
            serde_json::json!({"name": playlist.name}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ schedules

/// Schedules the caller sees: their group's node is inside its domain or
/// above it (T2).
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", security(("bearer" = [])),
    responses((status = 200, description = "Visible schedules", body = Vec<GroupSchedule>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GroupSchedule>>, ApiError> {
    let schedules: Vec<GroupSchedule> = state.store.scan(SCHEDULES, "")?;
    Ok(Json(
        schedules
            .into_iter()
            .filter(|s| caller.sees_at_or_above(&s.node))
            .collect(),
    ))
}

/// Attaches a schedule to a group whose node is inside the caller's domain
/// (Contributor+); a group has at most one.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = CreateSchedule,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = GroupSchedule),
        (status = 400, description = "Invalid schedule (common's rules), entry or item id, duration; a playlist or item not usable at the group's node (T2); too large", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor", body = super::ErrorBody),
        (status = 404, description = "Group, a playlist or the default item absent or not visible", body = super::ErrorBody),
        (status = 409, description = "The group already has a schedule", body = super::ErrorBody)))]
pub async fn create_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateSchedule>,
) -> Result<(StatusCode, Json<GroupSchedule>), ApiError> {
    caller.require(Role::Contributor)?;
    check_schedule_shape(&request.entries, request.default_item.as_ref())?;
    if !is_valid_id(request.target.id()) {
        return Err(ApiError::not_found("group"));
    }
    let _write = state.store.write_lock().await;
    let node = node_of_group(&state.store, &request.target)?
        .filter(|node| caller.sees(node))
        .ok_or_else(|| ApiError::not_found("group"))?;
    if let Some(existing) = state
        .store
        .get::<ScheduleId>(GROUP_SCHEDULES, request.target.id())?
    {
        return Err(ApiError::conflict(
            "schedule_exists",
            format!(
                "group {} already has schedule {existing}: change that one",
                request.target
            ),
        ));
    }
    let now = state.clock.now();
    let schedule = GroupSchedule {
        id: ScheduleId::new(new_id("sc-")),
        target: request.target,
        node,
        entries: request.entries,
        merge: request.merge,
        default_item: request.default_item,
        created_at: now,
        created_by: caller.user.id.clone(),
        updated_at: now,
        updated_by: caller.user.id.clone(),
    };
    check_schedule(&state, &caller, &schedule)?;
    let mut batch = WriteBatch::new();
    put_schedule(&mut batch, &schedule, None)?;
    caller
        .audit(
            &state,
            "schedule.create",
            schedule.id.as_str(),
            Some(schedule.node.clone()),
            schedule_detail(&schedule),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

fn schedule_detail(schedule: &GroupSchedule) -> serde_json::Value {
    serde_json::json!({"target": schedule.target, "entries": schedule.entries.len(),
        "playlists": schedule.playlists(), "merge": schedule.merge,
        "default_item": schedule.default_item})
}

/// One schedule the caller sees, as written (entries name playlists).
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")), security(("bearer" = [])),
    responses((status = 200, description = "The schedule", body = GroupSchedule),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GroupSchedule>, ApiError> {
    Ok(Json(load_schedule(&state, &caller, &id)?))
}

/// Replaces a schedule's entries, merge mode and default item; its target
/// stays (Contributor+, inside the caller's domain).
#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "schedules", request_body = ReplaceSchedule,
    params(("id" = String, Path, description = "Schedule id")), security(("bearer" = [])),
    responses((status = 200, description = "Replaced", body = GroupSchedule),
        (status = 400, description = "Invalid schedule (common's rules), entry or item id, duration; a playlist or item not usable at the group's node (T2); too large", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, or above the caller's domain", body = super::ErrorBody),
        (status = 404, description = "Schedule, a playlist or the default item absent or not visible", body = super::ErrorBody)))]
pub async fn replace_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReplaceSchedule>,
) -> Result<Json<GroupSchedule>, ApiError> {
    caller.require(Role::Contributor)?;
    check_schedule_shape(&request.entries, request.default_item.as_ref())?;
    let _write = state.store.write_lock().await;
    let old = load_schedule(&state, &caller, &id)?;
    require_inside(&caller, &old.node, "schedule")?;
    let schedule = GroupSchedule {
        entries: request.entries,
        merge: request.merge,
        default_item: request.default_item,
        updated_at: state.clock.now(),
        updated_by: caller.user.id.clone(),
        ..old.clone()
    };
    check_schedule(&state, &caller, &schedule)?;
    let mut batch = WriteBatch::new();
    put_schedule(&mut batch, &schedule, Some(&old))?;
    caller
        .audit(
            &state,
            "schedule.update",
            schedule.id.as_str(),
            Some(schedule.node.clone()),
            schedule_detail(&schedule),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(schedule))
}

/// Detaches and deletes a schedule (Contributor+, inside the caller's
/// domain); its playlists stay.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, or above the caller's domain", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Contributor)?;
    let _write = state.store.write_lock().await;
    let schedule = load_schedule(&state, &caller, &id)?;
    require_inside(&caller, &schedule.node, "schedule")?;
    let mut batch = WriteBatch::new();
    crate::schedules::delete_schedule(&mut batch, &schedule);
    caller
        .audit(
            &state,
            "schedule.delete",
            schedule.id.as_str(),
            Some(schedule.node.clone()),
            serde_json::json!({"target": schedule.target}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a schedule plays at an instant in a time zone, by common's
/// `evaluate` on its resolved form, every item treated as playable (the
/// device also skips unapproved, unlicensed or uncached items, A7, D4).
#[utoipa::path(get, path = "/api/v1/schedules/{id}/preview", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id"), PreviewQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "What plays and until when", body = Preview),
        (status = 400, description = "Unknown time zone or bad instant", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn preview_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PreviewQuery>,
) -> Result<Json<Preview>, ApiError> {
    let tz_name = query.tz.unwrap_or_else(|| "UTC".to_owned());
    let tz: Tz = tz_name.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_tz",
            format!(
                "{:?} is not an IANA time zone such as Europe/Berlin",
                tz_name.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let at = query.at.unwrap_or_else(|| state.clock.now());
    let schedule = load_schedule(&state, &caller, &id)?;
    let resolved = resolve(&state.store, &schedule)?;
    let Evaluation {
        main,
        overlays,
        next_change,
    } = evaluate(&resolved, tz, at, &|_| true);
    Ok(Json(Preview {
        at,
        tz: tz.name().to_owned(),
        main,
        overlays,
        next_change,
    }))
}
