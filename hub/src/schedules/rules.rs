//! The rules a playlist or schedule write must satisfy (D5, T2, A1, A7):
//! shapes that need no store, and the checks that read inside the write's
//! transaction. See [`super::service`] for who may do what.
//!
//! Owns: the checks. Must not: write.

use std::collections::BTreeMap;

use crate::content::{CONTENT, ContentItem};

use signet_common::ids::{ItemId, MAX_ID_LEN, NodeId};
use signet_common::permissions::NodeTree;
use signet_common::schedule::{MAX_ENTRIES, MAX_ITEMS_PER_ENTRY, ScheduleError};

use super::service::SchedulesError;
use super::{
    GroupSchedule, MAX_ITEM_DURATION_MS, MAX_SCHEDULED_ITEMS, PLAYLISTS, PlannedItem, Playlist,
    PlaylistId, SCHEDULES, ScheduledPlaylist, resolve, scheduled_item_count,
    schedules_using_playlist,
};
use crate::access_groups::is_valid_id;
use crate::content::Items;
use crate::content::visibility::{Holders, Viewer};
use crate::identity::Actor;
use crate::store::{StoreError, Tx};
use crate::tenancy::restricted::{ItemChange, check_item_change};
use crate::tenancy::{NODES, Node};

pub(super) fn invalid(code: &'static str, message: String) -> SchedulesError {
    SchedulesError::Invalid { code, message }
}

pub(super) fn not_found(what: &str) -> SchedulesError {
    SchedulesError::NotFound(what.to_owned())
}

/// The checks that need no store: item count, ids and explicit durations.
pub(super) fn check_item_shapes(items: &[PlannedItem]) -> Result<(), SchedulesError> {
    if items.len() > MAX_ITEMS_PER_ENTRY {
        return Err(invalid(
            "too_many_items",
            format!(
                "a playlist holds at most {MAX_ITEMS_PER_ENTRY} items, not {}",
                items.len()
            ),
        ));
    }
    for planned in items {
        if !is_valid_id(planned.item.as_str()) {
            return Err(invalid(
                "invalid_item_id",
                format!("item ids are 1 to {MAX_ID_LEN} bytes of letters, digits and -_.:"),
            ));
        }
        if let Some(ms) = planned.duration_ms
            && !(1..=MAX_ITEM_DURATION_MS).contains(&ms)
        {
            return Err(invalid(
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
pub(super) fn check_schedule_shape(
    entries: &[ScheduledPlaylist],
    default_item: Option<&PlannedItem>,
) -> Result<(), SchedulesError> {
    if entries.len() > MAX_ENTRIES {
        return Err(invalid_schedule(&ScheduleError::TooManyEntries {
            count: entries.len(),
            max: MAX_ENTRIES,
        }));
    }
    for entry in entries {
        if !is_valid_id(entry.id.as_str()) {
            return Err(invalid(
                "invalid_entry_id",
                format!("entry ids are 1 to {MAX_ID_LEN} bytes of letters, digits and -_.:"),
            ));
        }
        if !is_valid_id(entry.playlist.as_str()) {
            return Err(invalid(
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

pub(super) fn invalid_schedule(e: &ScheduleError) -> SchedulesError {
    invalid("invalid_schedule", e.to_string())
}

/// Every planned item exists, is one the actor may view (M1: else not
/// found, naming it), is usable at `node` (T2) and has a duration: its own
/// or its media's. Inactive and pending items pass (A7).
pub(super) fn check_items(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    node: &NodeId,
    items: &[PlannedItem],
) -> Result<(), SchedulesError> {
    let mut seen: BTreeMap<&ItemId, ContentItem> = BTreeMap::new();
    for planned in items {
        let item = match seen.get(&planned.item) {
            Some(item) => item,
            None => {
                let (item, _) = viewer
                    .item_in(tx, tree, planned.item.as_str(), Items::Any)?
                    .ok_or_else(|| not_found(&format!("content item {}", planned.item)))?;
                seen.entry(&planned.item).or_insert(item)
            }
        };
        if !tree.is_within(node, &item.node) {
            return Err(invalid(
                "item_not_usable",
                format!(
                    "content item {} belongs to node {}, which is neither {node} nor above it (T2)",
                    item.id, item.node
                ),
            ));
        }
        if planned.duration_ms.is_none() && item.duration_ms.is_none_or(|ms| ms == 0) {
            return Err(invalid(
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

/// Every playlist the entries name exists, is one the actor may view (M1:
/// else not found, naming it) and is usable at `node` (T2).
pub(super) fn check_playlists(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    node: &NodeId,
    entries: &[ScheduledPlaylist],
) -> Result<(), SchedulesError> {
    let mut checked: Vec<&PlaylistId> = Vec::new();
    for entry in entries {
        if checked.contains(&&entry.playlist) {
            continue;
        }
        let playlist = tx
            .get::<Playlist>(PLAYLISTS, entry.playlist.as_str())?
            .filter(|p| viewer.may_view(tree, p, &Holders::new()))
            .ok_or_else(|| not_found(&format!("playlist {}", entry.playlist)))?;
        if !tree.is_within(node, &playlist.node) {
            return Err(invalid(
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
/// (viewable by the actor, M1, and usable at its node, T2), its size, and
/// common's rules on its resolved form.
pub(super) fn check_schedule(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    schedule: &GroupSchedule,
) -> Result<(), SchedulesError> {
    check_playlists(tx, tree, viewer, &schedule.node, &schedule.entries)?;
    let default_item = schedule.default_item.as_slice();
    check_items(tx, tree, viewer, &schedule.node, default_item)?;
    let count = scheduled_item_count(&mut *tx, schedule, None)?;
    check_size(count, schedule).map_err(|message| invalid("schedule_too_large", message))?;
    resolve(&mut *tx, schedule)?
        .validate()
        .map_err(|e| invalid_schedule(&e))
}

/// Every schedule using `playlist` stays within its size bound with
/// `playlist`'s new items (conflict otherwise).
pub(super) fn check_users_fit(tx: &mut Tx, playlist: &Playlist) -> Result<(), SchedulesError> {
    for schedule_id in schedules_using_playlist(&mut *tx, &playlist.id)? {
        if let Some(schedule) = tx.get::<GroupSchedule>(SCHEDULES, schedule_id.as_str())? {
            let count = scheduled_item_count(&mut *tx, &schedule, Some(playlist))?;
            check_size(count, &schedule).map_err(|message| SchedulesError::Conflict {
                code: "schedule_too_large",
                message,
            })?;
        }
    }
    Ok(())
}

/// Refuses a schedule over [`MAX_SCHEDULED_ITEMS`], saying why.
pub(super) fn check_size(count: usize, schedule: &GroupSchedule) -> Result<(), String> {
    if count > MAX_SCHEDULED_ITEMS {
        return Err(format!(
            "schedule {} would hold {count} playlist items, at most {MAX_SCHEDULED_ITEMS} fit a manifest",
            schedule.id
        ));
    }
    Ok(())
}

/// A1: refuses a change to a playlist at `node` the restriction rule forbids.
pub(super) fn check_restricted(
    tx: &mut Tx,
    tree: &NodeTree,
    actor: &Actor,
    node: &NodeId,
    change: ItemChange,
) -> Result<(), SchedulesError> {
    let node = tx
        .get::<Node>(NODES, node.as_str())?
        .ok_or_else(|| not_found("node"))?;
    check_item_change(tree, &node, &actor.user.id, &actor.domain(), change)
        .map_err(|e| SchedulesError::Forbidden(e.to_string()))
}

/// Refuses a write to something above the actor's domain, which is
/// visible there but changed only from above (T2).
pub(super) fn require_inside(
    tree: &NodeTree,
    actor: &Actor,
    node: &NodeId,
    what: &str,
) -> Result<(), SchedulesError> {
    if actor.sees(tree, node) {
        Ok(())
    } else {
        Err(SchedulesError::Forbidden(format!(
            "a {what} above the caller's domain can only be changed from there (T2)"
        )))
    }
}

/// What a playlist shows, to a caller who may not view one of its items,
/// in that item's place (M1): the id is never revealed, the position and
/// duration are kept, and a save that sends it back is refused (not found)
/// like any item the caller cannot view, so nothing is dropped unseen.
pub const HIDDEN_ITEM: &str = "hidden";

/// `playlist` as `viewer` reads it: each item they may not view (or that is
/// gone) replaced by [`HIDDEN_ITEM`]; `holders` from
/// [`Viewer::holders_in`].
///
/// # Errors
/// When the store fails.
pub(super) fn redacted_in(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    holders: &Holders,
    mut playlist: Playlist,
) -> Result<Playlist, StoreError> {
    for planned in &mut playlist.items {
        let visible = tx
            .get::<ContentItem>(CONTENT, planned.item.as_str())?
            .is_some_and(|item| viewer.may_view(tree, &item, holders));
        if !visible {
            planned.item = ItemId::from(HIDDEN_ITEM);
        }
    }
    Ok(playlist)
}
