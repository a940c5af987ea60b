//! The playlists and schedules service (D5, T2, T4, A1, A7, S8, S9): what
//! plays where, as operators write it.
//!
//! Owns: the rules of a playlist or schedule write, each one transaction
//! whose decision reads (the tenancy tree, the records, the playlists and
//! items named, the schedules using a playlist) happen inside it, with its
//! audit entry; the request and preview types of the API.
//! Must not: know HTTP (handlers map [`SchedulesError`]), nor publish
//! (a changed schedule reaches devices with the next publication, U5).
//!
//! Who may do what:
//! - a playlist belongs to a node; actors see playlists inside their domain
//!   and at the nodes above it, where they are usable in the domain (T2);
//!   anything else is not found (T4). Contributor and above create, change
//!   and delete playlists at nodes inside their domain; a playlist above it
//!   is changed only from there (forbidden). Restricted nodes follow A1
//!   ([`check_item_change`], forbidden);
//! - every item of a playlist must exist, be one the actor may view (M1:
//!   else not found, naming it) and be usable at the playlist's node (its
//!   node is that node or above, T2). Inactive and pending items are
//!   allowed (A7: the device skips them);
//! - a schedule is attached to one group (a node or an access group), at
//!   most one per group (conflict). Its playlists and default item must be
//!   ones the actor may view (M1, else not found) and usable at the
//!   group's node (T2). It is seen like a playlist, by its
//!   group's node, and written by Contributor and above inside their domain;
//! - every schedule write is checked by resolving it and calling
//!   [`Schedule::validate`](signet_common::schedule::Schedule::validate)
//!   (`invalid_schedule` with its reason);
//! - a playlist a schedule uses is not deleted (conflict naming the schedule).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use signet_common::ids::{ItemId, NodeId, PermissionGroupId};
use signet_common::permissions::{NodeTree, Role};
use signet_common::schedule::{Evaluation, MergeMode, Slot, evaluate};

pub use super::rules::HIDDEN_ITEM;
use super::rules::{
    check_item_shapes, check_items, check_restricted, check_schedule, check_schedule_shape,
    check_users_fit, invalid, not_found, redacted_in, require_inside,
};
use super::{
    GROUP_SCHEDULES, GroupSchedule, MAX_PLAYLIST_NAME_LEN, PLAYLISTS, PlannedItem, Playlist,
    PlaylistId, SCHEDULES, ScheduleId, ScheduledPlaylist, delete_playlist as remove_playlist,
    delete_schedule as remove_schedule, node_of_group, put_playlist, put_schedule, resolve,
    schedules_using_playlist,
};
use crate::access_groups::is_valid_id;
use crate::app::Hub;
use crate::audit::AuditEntry;
use crate::content::visibility::{
    GroupsRefused, Holders, Settings, SettingsChange, Viewer, check_groups_in,
};
use crate::content::{CONTENT, ContentItem, actions, comments};
use crate::groups::GroupRef;
use crate::identity::{Actor, RoleTooLow, new_id};
use crate::store::{StoreError, Tx, WriteBatch};
use crate::tenancy::restricted::ItemChange;
use crate::tenancy::{load_tree, load_tree_in};
use crate::values::{InvalidName, Name};

/// Why a playlist or schedule request was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum SchedulesError {
    /// Absent, or outside what the actor sees (T4); names what.
    #[error("{0} not found")]
    NotFound(String),
    /// Visible, but the actor may not change it (T2, A1).
    #[error("{0}")]
    Forbidden(String),
    /// The actor's role is below Contributor.
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// The playlist name is not a name.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The request breaks a rule of its own.
    #[error("{message}")]
    Invalid {
        /// The API error code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The request conflicts with what is stored.
    #[error("{message}")]
    Conflict {
        /// The API error code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

// ------------------------------------------------------------- requests

/// A new playlist.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    /// The permission groups it is restricted to (M1); absent or empty: open.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub allowed_groups: Vec<PermissionGroupId>,
    /// Its publish settings (M2); absent fields take the defaults.
    #[serde(default)]
    pub settings: Settings,
}

/// Changes to a playlist; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlaylist {
    /// New name.
    pub name: Option<String>,
    /// New items (replace the old list whole).
    pub items: Option<Vec<PlannedItem>>,
    /// New permission groups it is restricted to (M1), replacing the old
    /// list; `[]` opens it to everyone at its node.
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_groups: Option<Vec<PermissionGroupId>>,
    /// Publish-settings changes (M2); absent fields stay.
    pub settings: Option<SettingsChange>,
}

/// A new schedule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// The instant (RFC 3339); default now.
    pub at: Option<DateTime<Utc>>,
    /// The device's IANA time zone, e.g. `Europe/Berlin`; default `UTC`.
    pub tz: Option<String>,
}

/// What a schedule plays at an instant, every item treated as playable.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The instant asked about.
    pub at: DateTime<Utc>,
    /// The time zone it was evaluated in.
    pub tz: String,
    /// The main layer: `{item, entry, started_at, ends_at}` or `null`
    /// (`entry` is `null` for the default item).
    #[schema(value_type = Option<Object>)]
    pub main: Option<Slot>,
    /// One slot per active overlay entry, highest priority first.
    #[schema(value_type = Vec<Object>)]
    pub overlays: Vec<Slot>,
    /// The earliest later instant at which the answer may differ.
    pub next_change: DateTime<Utc>,
}

// ---------------------------------------------------------------- views

/// Playlists the actor may view: inside its domain and above it (T2), as
/// [`crate::content::visibility`] allows (M1); each item the actor may not
/// view shows as [`HIDDEN_ITEM`] (its id is never shown).
///
/// # Errors
/// When the store fails.
pub async fn playlists(hub: &Hub, actor: &Actor) -> Result<Vec<Playlist>, SchedulesError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let holders = viewer.holders_in(tx)?;
            let all: Vec<Playlist> = tx.scan(PLAYLISTS, "")?;
            all.into_iter()
                .filter(|playlist| {
                    actor.sees_at_or_above(&tree, &playlist.node)
                        && viewer.may_view(&tree, playlist, &Holders::new())
                })
                .map(|playlist| redacted_in(tx, &tree, &viewer, &holders, playlist))
                .collect::<Result<Vec<_>, StoreError>>()
                .map_err(SchedulesError::from)
        })
        .await
}

/// One playlist the actor may view (M1), its hidden items redacted as in
/// [`playlists`].
///
/// # Errors
/// [`SchedulesError::NotFound`]; store failures.
pub async fn playlist(hub: &Hub, actor: &Actor, id: &str) -> Result<Playlist, SchedulesError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let playlist: Playlist = visible(tx, &tree, actor, id)?;
            let playlist = viewable(&viewer, &tree, playlist)?;
            let holders = viewer.holders_in(tx)?;
            Ok(redacted_in(tx, &tree, &viewer, &holders, playlist)?)
        })
        .await
}

/// `playlist` if `viewer` may view it (M1); not found otherwise (T4).
fn viewable(
    viewer: &Viewer,
    tree: &NodeTree,
    playlist: Playlist,
) -> Result<Playlist, SchedulesError> {
    if viewer.may_view(tree, &playlist, &Holders::new()) {
        Ok(playlist)
    } else {
        Err(not_found("playlist"))
    }
}

impl From<GroupsRefused> for SchedulesError {
    fn from(e: GroupsRefused) -> Self {
        let message = e.to_string();
        match e {
            GroupsRefused::NotFound(id) => Self::NotFound(format!("permission group {id}")),
            GroupsRefused::NotUsable { .. } => invalid("group_not_usable", message),
            GroupsRefused::TooMany => invalid("too_many_groups", message),
            GroupsRefused::WouldHide => invalid("would_hide_item", message),
            GroupsRefused::Store(e) => Self::Store(e),
        }
    }
}

/// Schedules the actor sees: their group's node is inside its domain or
/// above it (T2).
///
/// # Errors
/// When the store fails.
pub fn schedules(hub: &Hub, actor: &Actor) -> Result<Vec<GroupSchedule>, SchedulesError> {
    all_visible(hub, actor)
}

/// One schedule the actor sees, as written (entries name playlists).
///
/// # Errors
/// [`SchedulesError::NotFound`]; store failures.
pub fn schedule(hub: &Hub, actor: &Actor, id: &str) -> Result<GroupSchedule, SchedulesError> {
    one_visible(hub, actor, id)
}

/// What a schedule plays at an instant in a time zone, by common's
/// `evaluate` on its resolved form, every item treated as playable (the
/// device also skips unapproved, unlicensed or uncached items, A7, D4).
///
/// # Errors
/// `invalid_tz` for a zone that is not an IANA name; not found; store
/// failures.
pub async fn preview(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    query: PreviewQuery,
) -> Result<Preview, SchedulesError> {
    let tz_name = query.tz.unwrap_or_else(|| "UTC".to_owned());
    let tz: Tz = tz_name.parse().map_err(|_| {
        invalid(
            "invalid_tz",
            format!(
                "{:?} is not an IANA time zone such as Europe/Berlin",
                tz_name.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let at = query.at.unwrap_or_else(|| hub.now());
    let schedule = schedule(hub, actor, id)?;
    let Evaluation {
        mut main,
        mut overlays,
        next_change,
    } = evaluate(&resolve(&hub.store, &schedule)?, tz, at, &|_| true);
    // M1: an item the caller may not view shows as hidden, as in playlists.
    let viewer = Viewer::load(hub, actor)?;
    let hidden: Vec<bool> = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let holders = viewer.holders_in(tx)?;
            main.iter()
                .chain(overlays.iter())
                .map(|slot| {
                    Ok(!tx
                        .get::<ContentItem>(CONTENT, slot.item.as_str())?
                        .is_some_and(|item| viewer.may_view(&tree, &item, &holders)))
                })
                .collect::<Result<Vec<bool>, StoreError>>()
        })
        .await?;
    for (slot, hidden) in main.iter_mut().chain(overlays.iter_mut()).zip(hidden) {
        if hidden {
            slot.item = ItemId::from(HIDDEN_ITEM);
        }
    }
    Ok(Preview {
        at,
        tz: tz.name().to_owned(),
        main,
        overlays,
        next_change,
    })
}

// ------------------------------------------------------------ playlists

/// Creates a playlist at a node inside the actor's domain (Contributor+).
///
/// # Errors
/// See the module doc; store failures.
pub async fn create_playlist(
    hub: &Hub,
    actor: &Actor,
    request: CreatePlaylist,
) -> Result<Playlist, SchedulesError> {
    actor.require(Role::Contributor)?;
    let name = Name::parse(&request.name, MAX_PLAYLIST_NAME_LEN)?;
    check_item_shapes(&request.items)?;
    let id = PlaylistId::new(new_id("pl-"));
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            if !actor.sees(&tree, &request.node) {
                return Err(not_found("node"));
            }
            check_restricted(tx, &tree, actor, &request.node, ItemChange::Add)?;
            check_items(tx, &tree, &viewer, &request.node, &request.items)?;
            let groups = &request.allowed_groups;
            let allowed_groups = check_groups_in(tx, &tree, actor, &request.node, groups)?;
            let playlist = Playlist {
                id: id.clone(),
                node: request.node.clone(),
                name: name.as_str().trim().to_owned(),
                items: request.items.clone(),
                created_at: now,
                created_by: actor.user.id.clone(),
                updated_at: now,
                updated_by: actor.user.id.clone(),
                allowed_groups,
                settings: request.settings,
            };
            viewer.keeps_sight(&tree, &playlist, &Holders::new())?;
            let detail = serde_json::json!({"name": playlist.name, "items": playlist.items.len(),
                "allowed_groups": playlist.allowed_groups});
            let audit = actor.audit(
                now,
                "playlist.create",
                id.as_str(),
                Some(playlist.node.clone()),
                detail,
            );
            save_playlist(tx, &playlist, None, audit)?;
            Ok(playlist)
        })
        .await
}

/// Changes a playlist's name or items (Contributor+, inside the actor's
/// domain). Schedules using it keep using it; the new items must satisfy
/// the playlist's own rules, and every schedule using it must stay within
/// its size bound (conflict otherwise).
///
/// # Errors
/// See the module doc; store failures.
pub async fn update_playlist(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: UpdatePlaylist,
) -> Result<Playlist, SchedulesError> {
    actor.require(Role::Contributor)?;
    let name = request
        .name
        .as_deref()
        .map(|name| Name::parse(name, MAX_PLAYLIST_NAME_LEN))
        .transpose()?;
    if let Some(items) = &request.items {
        check_item_shapes(items)?;
    }
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    change(hub, actor, id, |tx, tree, old: Playlist| {
        let old = viewable(&viewer, tree, old)?;
        check_restricted(tx, tree, actor, &old.node, ItemChange::Edit)?;
        let mut playlist = old.clone();
        if let Some(groups) = &request.allowed_groups {
            playlist.allowed_groups = check_groups_in(tx, tree, actor, &old.node, groups)?;
            viewer.keeps_sight(tree, &playlist, &Holders::new())?;
        }
        if let Some(change) = &request.settings {
            playlist.settings = playlist.settings.with(change);
        }
        if let Some(name) = &name {
            playlist.name = name.as_str().trim().to_owned();
        }
        if let Some(items) = &request.items {
            check_items(tx, tree, &viewer, &playlist.node, items)?;
            playlist.items.clone_from(items);
            check_users_fit(tx, &playlist)?;
        }
        playlist.updated_at = now;
        playlist.updated_by = actor.user.id.clone();
        let detail = serde_json::json!({"name": playlist.name, "items": playlist.items.len(),
            "allowed_groups": playlist.allowed_groups, "settings": playlist.settings});
        let audit = actor.audit(
            now,
            "playlist.update",
            id,
            Some(playlist.node.clone()),
            detail,
        );
        save_playlist(tx, &playlist, Some(&old), audit)?;
        Ok(playlist)
    })
    .await
}

/// Deletes a playlist no schedule uses (Contributor+, inside the actor's
/// domain).
///
/// # Errors
/// See the module doc; store failures.
pub async fn delete_playlist(hub: &Hub, actor: &Actor, id: &str) -> Result<(), SchedulesError> {
    actor.require(Role::Contributor)?;
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    change(hub, actor, id, |tx, tree, playlist: Playlist| {
        let playlist = viewable(&viewer, tree, playlist)?;
        check_restricted(tx, tree, actor, &playlist.node, ItemChange::Delete)?;
        let users = schedules_using_playlist(&mut *tx, &playlist.id)?;
        if !users.is_empty() {
            let names: Vec<&str> = users.iter().map(ScheduleId::as_str).collect();
            return Err(SchedulesError::Conflict {
                code: "playlist_in_use",
                message: format!(
                    "playlist {} is used by schedule {}",
                    playlist.id,
                    names.join(", ")
                ),
            });
        }
        let mut batch = WriteBatch::new();
        remove_playlist(&mut batch, &playlist);
        // Its comments, ratings and favorites go with it (M3, M4).
        let subject = ItemId::from(playlist.id.as_str());
        comments::repo::remove_all_in(tx, &subject)?;
        actions::repo::remove_of_item_in(tx, &subject)?;
        let detail = serde_json::json!({"name": playlist.name});
        let node = Some(playlist.node.clone());
        commit(
            tx,
            batch,
            actor.audit(now, "playlist.delete", id, node, detail),
        )?;
        Ok(())
    })
    .await
}

// ------------------------------------------------------------ schedules

/// Attaches a schedule to a group whose node is inside the actor's domain
/// (Contributor+); a group has at most one.
///
/// # Errors
/// See the module doc; store failures.
pub async fn create_schedule(
    hub: &Hub,
    actor: &Actor,
    request: CreateSchedule,
) -> Result<GroupSchedule, SchedulesError> {
    actor.require(Role::Contributor)?;
    check_schedule_shape(&request.entries, request.default_item.as_ref())?;
    if !is_valid_id(request.target.id()) {
        return Err(not_found("group"));
    }
    let id = ScheduleId::new(new_id("sc-"));
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let node = node_of_group(&mut *tx, &request.target)?
                .filter(|node| actor.sees(&tree, node))
                .ok_or_else(|| not_found("group"))?;
            if let Some(existing) = tx.get::<ScheduleId>(GROUP_SCHEDULES, request.target.id())? {
                return Err(SchedulesError::Conflict {
                    code: "schedule_exists",
                    message: format!(
                        "group {} already has schedule {existing}: change that one",
                        request.target
                    ),
                });
            }
            let schedule = GroupSchedule {
                id: id.clone(),
                target: request.target.clone(),
                node,
                entries: request.entries.clone(),
                merge: request.merge,
                default_item: request.default_item.clone(),
                created_at: now,
                created_by: actor.user.id.clone(),
                updated_at: now,
                updated_by: actor.user.id.clone(),
            };
            save_schedule(
                tx,
                &tree,
                (actor, &viewer),
                &schedule,
                None,
                "schedule.create",
            )?;
            Ok(schedule)
        })
        .await
}

/// Replaces a schedule's entries, merge mode and default item; its target
/// stays (Contributor+, inside the actor's domain).
///
/// # Errors
/// See the module doc; store failures.
pub async fn replace_schedule(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: ReplaceSchedule,
) -> Result<GroupSchedule, SchedulesError> {
    actor.require(Role::Contributor)?;
    check_schedule_shape(&request.entries, request.default_item.as_ref())?;
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    change(hub, actor, id, |tx, tree, old: GroupSchedule| {
        let schedule = GroupSchedule {
            entries: request.entries.clone(),
            merge: request.merge,
            default_item: request.default_item.clone(),
            updated_at: now,
            updated_by: actor.user.id.clone(),
            ..old.clone()
        };
        let who = (actor, &viewer);
        save_schedule(tx, tree, who, &schedule, Some(&old), "schedule.update")?;
        Ok(schedule)
    })
    .await
}

/// Detaches and deletes a schedule (Contributor+, inside the actor's
/// domain); its playlists stay.
///
/// # Errors
/// See the module doc; store failures.
pub async fn delete_schedule(hub: &Hub, actor: &Actor, id: &str) -> Result<(), SchedulesError> {
    actor.require(Role::Contributor)?;
    let now = hub.now();
    change(hub, actor, id, |tx, _, schedule: GroupSchedule| {
        let mut batch = WriteBatch::new();
        remove_schedule(&mut batch, &schedule);
        let detail = serde_json::json!({"target": schedule.target});
        let node = Some(schedule.node.clone());
        commit(
            tx,
            batch,
            actor.audit(now, "schedule.delete", id, node, detail),
        )?;
        Ok(())
    })
    .await
}

// -------------------------------------------------------------- writing

/// Writes `playlist` with its indexes ([`put_playlist`]) and `audit`.
fn save_playlist(
    tx: &mut Tx,
    playlist: &Playlist,
    old: Option<&Playlist>,
    audit: AuditEntry,
) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    put_playlist(&mut batch, playlist, old)?;
    commit(tx, batch, audit)
}

/// Checks `schedule` ([`check_schedule`]) and writes it with its group
/// record, its indexes ([`put_schedule`]) and its audit entry `action`.
fn save_schedule(
    tx: &mut Tx,
    tree: &NodeTree,
    (actor, viewer): (&Actor, &Viewer),
    schedule: &GroupSchedule,
    old: Option<&GroupSchedule>,
    action: &str,
) -> Result<(), SchedulesError> {
    check_schedule(tx, tree, viewer, schedule)?;
    let detail = serde_json::json!({"target": schedule.target, "entries": schedule.entries.len(),
        "playlists": schedule.playlists(), "merge": schedule.merge,
        "default_item": schedule.default_item});
    let mut batch = WriteBatch::new();
    put_schedule(&mut batch, schedule, old)?;
    let (at, node) = (schedule.updated_at, Some(schedule.node.clone()));
    let audit = actor.audit(at, action, schedule.id.as_str(), node, detail);
    Ok(commit(tx, batch, audit)?)
}

/// Adds `batch` and `audit` to `tx`.
fn commit(tx: &mut Tx, mut batch: WriteBatch, audit: AuditEntry) -> Result<(), StoreError> {
    audit.record(&mut batch)?;
    tx.include(batch);
    Ok(())
}

// -------------------------------------------------------------- loading

/// A record stored at a node: a playlist or a schedule.
trait Placed: serde::de::DeserializeOwned {
    /// Its tree.
    const TREE: &'static str;
    /// What it is called in errors.
    const WHAT: &'static str;
    /// The node it belongs to.
    fn node(&self) -> &NodeId;
}

impl Placed for Playlist {
    const TREE: &'static str = PLAYLISTS;
    const WHAT: &'static str = "playlist";
    fn node(&self) -> &NodeId {
        &self.node
    }
}

impl Placed for GroupSchedule {
    const TREE: &'static str = SCHEDULES;
    const WHAT: &'static str = "schedule";
    fn node(&self) -> &NodeId {
        &self.node
    }
}

/// Every record of `T` the actor sees (inside its domain or above, T2).
fn all_visible<T: Placed>(hub: &Hub, actor: &Actor) -> Result<Vec<T>, SchedulesError> {
    let (tree, _) = load_tree(&hub.store)?;
    let all: Vec<T> = hub.store.scan(T::TREE, "")?;
    Ok(all
        .into_iter()
        .filter(|record| actor.sees_at_or_above(&tree, record.node()))
        .collect())
}

/// Record `id` of `T` from the store, if the actor sees it.
fn one_visible<T: Placed>(hub: &Hub, actor: &Actor, id: &str) -> Result<T, SchedulesError> {
    let (tree, _) = load_tree(&hub.store)?;
    visible(&mut &hub.store, &tree, actor, id)
}

/// Record `id` if the actor sees it: inside its domain or above (T2).
fn visible<T: Placed>(
    store: &mut impl super::Read,
    tree: &NodeTree,
    actor: &Actor,
    id: &str,
) -> Result<T, SchedulesError> {
    store
        .get::<T>(T::TREE, id)?
        .filter(|record| actor.sees_at_or_above(tree, record.node()))
        .ok_or_else(|| not_found(T::WHAT))
}

/// Runs `write` in one transaction on record `id`, which the actor sees
/// and may change (inside its domain, T2), both read inside it with the
/// tree; `write` gets the tree and the stored record.
async fn change<T: Placed, R>(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    mut write: impl FnMut(&mut Tx, &NodeTree, T) -> Result<R, SchedulesError>,
) -> Result<R, SchedulesError> {
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let old: T = visible(tx, &tree, actor, id)?;
            require_inside(&tree, actor, old.node(), T::WHAT)?;
            write(tx, &tree, old)
        })
        .await
}
