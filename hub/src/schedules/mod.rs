//! Playlists and schedules (D5, T2, A7): the data side of what plays where.
//!
//! Owns: playlist and schedule records, their stored indexes and bounds, and
//! resolving a group's stored schedule (entries naming playlists) into the
//! [`Schedule`] a signed manifest carries ([`group_schedule`]). Must not:
//! decide what plays at an instant (that is
//! [`signet_common::schedule::evaluate`]), judge approval (A7: inactive and
//! pending items stay in playlists; the device skips them). Who may change
//! a playlist or schedule, and the rules of a write, are [`service`]'s
//! (with the checks of `rules`); [`Read`] lets resolution read from the store
//! or inside a write's transaction.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`PLAYLISTS`] | playlist id | [`Playlist`] |
//! | [`crate::content::refs`] (`playlist_item_index`) | `{item}/{playlist}` | playlist id (reverse index, content's) |
//! | [`SCHEDULES`] | schedule id | [`GroupSchedule`] |
//! | [`GROUP_SCHEDULES`] | group id | schedule id (one schedule per group) |
//! | [`PLAYLIST_SCHEDULES`] | `{playlist}/{schedule}` | schedule id (reverse index) |
//! | [`crate::content::refs`] (`schedule_item_index`) | `{item}/{schedule}` | schedule id (default items, content's) |
//!
//! Node and access-group ids never collide (`n-…`, `ag-…`), so
//! [`GROUP_SCHEDULES`] is keyed by [`GroupRef::id`] alone.
//!
//! # Resolution
//! Each entry's playlist becomes the entry's items, in order. An item
//! without an explicit duration plays for its media duration; one whose
//! duration is unknown gets 0, which evaluation never plays. Items deleted
//! since the playlist was saved are left out (a manifest cannot list them);
//! an entry whose playlist is gone has no items and never plays.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, EntryId, ItemId, NodeId, PermissionGroupId, UserId};
use signet_common::schedule::{
    DateRange, Daypart, Layer, MergeMode, PlaylistItem, Schedule, ScheduleEntry,
};

use crate::access_groups::{self, AccessGroup};
use crate::content::refs::{self, Referrer};
use crate::content::subjects::{Subject, Subjects};
use crate::content::visibility::{Settings, Viewable};
use crate::content::{CONTENT, ContentItem};
use crate::groups::GroupRef;
use crate::store::{Store, StoreError, Tx, WriteBatch};
use crate::tenancy::{NODES, Node};

mod read;
mod rules;
pub mod service;
#[cfg(test)]
mod tests;

pub use read::Read;
pub use service::{
    CreatePlaylist, CreateSchedule, Preview, PreviewQuery, ReplaceSchedule, SchedulesError,
    UpdatePlaylist,
};

/// Tree of playlists by id.
pub const PLAYLISTS: &str = "playlists";
/// Tree of schedules by id.
pub const SCHEDULES: &str = "schedules";
/// The schedule of each group, keyed by group id (at most one per group).
pub const GROUP_SCHEDULES: &str = "group_schedules";
/// Reverse index of the playlists schedules use, keyed `{playlist}/{schedule}`.
pub const PLAYLIST_SCHEDULES: &str = "schedule_playlist_index";

/// The longest playlist name, in bytes.
pub const MAX_PLAYLIST_NAME_LEN: usize = 128;
/// The longest time one item may stay on screen per pass, in milliseconds (24 hours).
pub const MAX_ITEM_DURATION_MS: u64 = 24 * 3600 * 1000;
/// The most playlist items one resolved schedule may hold, over all its
/// entries and its default item: a manifest is at most 1 MiB (S1), and an
/// item costs about 60 bytes in it.
pub const MAX_SCHEDULED_ITEMS: usize = 10_000;

macro_rules! record_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps a string as this kind of id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

record_id!(
    /// A playlist (`pl-…`).
    PlaylistId
);
record_id!(
    /// A group's schedule (`sc-…`).
    ScheduleId
);

/// An item as an operator places it: in a playlist, or as a schedule's
/// default item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedItem {
    /// The content item.
    #[schema(value_type = String)]
    pub item: ItemId,
    /// How long it shows per pass, in milliseconds; `None` means the item's
    /// media duration (only allowed for items that have one).
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// An ordered list of items at a node, usable there and below (T2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Playlist {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: PlaylistId,
    /// The node it belongs to; schedules there and below may use it (T2).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// The items, played in this order and looped.
    pub items: Vec<PlannedItem>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    #[schema(value_type = String)]
    pub updated_by: UserId,
    /// Empty: open to everyone at its node. Otherwise only these permission
    /// groups' members (transitively) below Moderator view it (M1, P6).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub allowed_groups: BTreeSet<PermissionGroupId>,
    /// Its publish settings (M2); defaults for playlists stored before.
    #[serde(default)]
    pub settings: Settings,
}

impl Viewable for Playlist {
    fn node(&self) -> &NodeId {
        &self.node
    }
    fn owner(&self) -> &UserId {
        &self.created_by
    }
    fn allowed_groups(&self) -> &BTreeSet<PermissionGroupId> {
        &self.allowed_groups
    }
    fn settings(&self) -> Settings {
        self.settings
    }
    fn held_as(&self) -> Option<&ItemId> {
        None
    }
}

/// Playlists as content's comments, ratings and favorites see them (M3,
/// M4): the look-up port [`crate::content::subjects::Lookup`] this module
/// fills, so content reads a playlist without importing schedules.
pub const PLAYLIST_SUBJECTS: Subjects = Subjects::Above {
    what: "playlist",
    lookup: playlist_subject_in,
};

/// Playlist `id` as a [`Subject`], if it exists, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn playlist_subject_in(tx: &mut Tx, id: &str) -> Result<Option<Subject>, StoreError> {
    Ok(tx.get::<Playlist>(PLAYLISTS, id)?.map(|p| Subject {
        id: ItemId::from(p.id.as_str()),
        name: p.name,
        node: p.node,
        owner: p.created_by,
        allowed_groups: p.allowed_groups,
        settings: p.settings,
        content: None,
    }))
}

/// One entry of a stored schedule: a playlist and when it may play. The
/// fields other than `playlist` are those of [`ScheduleEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledPlaylist {
    /// Names the entry, unique within its schedule.
    #[schema(value_type = String)]
    pub id: EntryId,
    /// The playlist it plays.
    #[schema(value_type = String)]
    pub playlist: PlaylistId,
    /// Local time windows `{"start": "08:00:00", "end": "12:00:00"}`; empty means all day.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub dayparts: Vec<Daypart>,
    /// Local weekdays (`"Mon"` … `"Sun"`); empty means every day.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub weekdays: Vec<Weekday>,
    /// Inclusive local dates `{"first": "2026-01-01", "last": "2026-01-31"}`; absent means no limit.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub dates: Option<DateRange>,
    /// Higher wins within a layer.
    pub priority: i32,
    /// `main`, `interrupt` or `overlay`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub layer: Layer,
}

/// A group's schedule as operators write it: entries name playlists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupSchedule {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: ScheduleId,
    /// The group it is attached to: `{"kind": "node" | "access_group", "id": …}`.
    #[schema(value_type = Object)]
    pub target: GroupRef,
    /// The target's node: the playlists and items it names must be usable there (T2).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// The entries, in schedule order (which orders merged playlists).
    pub entries: Vec<ScheduledPlaylist>,
    /// How equal-priority winners merge: `{"mode": "sequence"}` or `{"mode": "interleave", "n": 2}`.
    #[schema(value_type = Object)]
    pub merge: MergeMode,
    /// Shown when no entry has anything playable.
    pub default_item: Option<PlannedItem>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    #[schema(value_type = String)]
    pub updated_by: UserId,
}

impl GroupSchedule {
    /// The distinct playlists its entries name, in id order.
    #[must_use]
    pub fn playlists(&self) -> Vec<&PlaylistId> {
        let mut ids: Vec<&PlaylistId> = self.entries.iter().map(|e| &e.playlist).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The key of a playlist's schedule-index record.
#[must_use]
pub fn playlist_schedule_key(playlist: &PlaylistId, schedule: &ScheduleId) -> String {
    format!("{playlist}/{schedule}")
}

/// Adds `playlist` and its item index to `batch`, replacing `old`'s index
/// records (pass the stored version when updating).
///
/// # Errors
/// When the record cannot be encoded (never for these types).
pub fn put_playlist(
    batch: &mut WriteBatch,
    playlist: &Playlist,
    old: Option<&Playlist>,
) -> Result<(), StoreError> {
    if let Some(old) = old {
        for planned in &old.items {
            if !playlist.items.iter().any(|p| p.item == planned.item) {
                refs::remove(batch, Referrer::Playlist, &planned.item, old.id.as_str());
            }
        }
    }
    for planned in &playlist.items {
        refs::add(
            batch,
            Referrer::Playlist,
            &planned.item,
            playlist.id.as_str(),
        )?;
    }
    batch.put(PLAYLISTS, playlist.id.as_str(), playlist)?;
    Ok(())
}

/// Adds the removal of `playlist` and its item index to `batch`.
pub fn delete_playlist(batch: &mut WriteBatch, playlist: &Playlist) {
    for planned in &playlist.items {
        refs::remove(
            batch,
            Referrer::Playlist,
            &planned.item,
            playlist.id.as_str(),
        );
    }
    batch.delete(PLAYLISTS, playlist.id.as_str());
}

/// Adds `schedule`, its group record and its indexes to `batch`, replacing
/// `old`'s index records (pass the stored version when updating).
///
/// # Errors
/// When the record cannot be encoded (never for these types).
pub fn put_schedule(
    batch: &mut WriteBatch,
    schedule: &GroupSchedule,
    old: Option<&GroupSchedule>,
) -> Result<(), StoreError> {
    if let Some(old) = old {
        delete_schedule_indexes(batch, old);
    }
    for playlist in schedule.playlists() {
        batch.put(
            PLAYLIST_SCHEDULES,
            &playlist_schedule_key(playlist, &schedule.id),
            &schedule.id,
        )?;
    }
    if let Some(default) = &schedule.default_item {
        refs::add(
            batch,
            Referrer::ScheduleDefault,
            &default.item,
            schedule.id.as_str(),
        )?;
    }
    batch.put(GROUP_SCHEDULES, schedule.target.id(), &schedule.id)?;
    batch.put(SCHEDULES, schedule.id.as_str(), schedule)?;
    Ok(())
}

/// Removes the schedule of the access group `group`, if it has one, in
/// `tx` (the group is being deleted: its schedule goes with it). Returns
/// the schedule's id. The access-group service calls it through its
/// [`crate::access_groups::service::Dependents`] port.
///
/// # Errors
/// When the store fails.
pub fn delete_group_schedule_in(
    tx: &mut Tx,
    group: &AccessGroupId,
) -> Result<Option<String>, StoreError> {
    let target = GroupRef::AccessGroup(group.clone());
    let Some(id) = tx.get::<ScheduleId>(GROUP_SCHEDULES, target.id())? else {
        return Ok(None);
    };
    let Some(schedule) = tx.get::<GroupSchedule>(SCHEDULES, id.as_str())? else {
        return Ok(None);
    };
    let mut batch = WriteBatch::new();
    delete_schedule(&mut batch, &schedule);
    tx.include(batch);
    Ok(Some(schedule.id.to_string()))
}

/// Adds the removal of `schedule`, its group record and its indexes to `batch`.
pub fn delete_schedule(batch: &mut WriteBatch, schedule: &GroupSchedule) {
    delete_schedule_indexes(batch, schedule);
    batch.delete(GROUP_SCHEDULES, schedule.target.id());
    batch.delete(SCHEDULES, schedule.id.as_str());
}

fn delete_schedule_indexes(batch: &mut WriteBatch, schedule: &GroupSchedule) {
    for playlist in schedule.playlists() {
        batch.delete(
            PLAYLIST_SCHEDULES,
            &playlist_schedule_key(playlist, &schedule.id),
        );
    }
    if let Some(default) = &schedule.default_item {
        refs::remove(
            batch,
            Referrer::ScheduleDefault,
            &default.item,
            schedule.id.as_str(),
        );
    }
}

/// The node a group belongs to: the node itself, or the access group's
/// node; `None` when the group does not exist.
///
/// # Errors
/// When the store fails.
pub fn node_of_group(mut store: impl Read, group: &GroupRef) -> Result<Option<NodeId>, StoreError> {
    Ok(match group {
        GroupRef::Node(id) => store.get::<Node>(NODES, id.as_str())?.map(|node| node.id),
        GroupRef::AccessGroup(id) => store
            .get::<AccessGroup>(access_groups::GROUPS, id.as_str())?
            .map(|group| group.node),
    })
}

/// Whether a node or an access group with id `group` exists (the ids of
/// the two kinds never collide, [`GroupRef`]): what a broker role or a
/// signed manifest may be kept for.
///
/// # Errors
/// When the store fails.
pub fn group_exists(mut store: impl Read, group: &str) -> Result<bool, StoreError> {
    Ok(
        node_of_group(&mut store, &GroupRef::Node(group.into()))?.is_some()
            || node_of_group(&mut store, &GroupRef::AccessGroup(group.into()))?.is_some(),
    )
}

/// The stored schedule attached to `group`, as operators wrote it.
///
/// # Errors
/// When the store fails.
pub fn schedule_of(
    mut store: impl Read,
    group: &GroupRef,
) -> Result<Option<GroupSchedule>, StoreError> {
    let Some(id) = store.get::<ScheduleId>(GROUP_SCHEDULES, group.id())? else {
        return Ok(None);
    };
    store.get(SCHEDULES, id.as_str())
}

/// The schedule attached to `group`, with its playlists resolved into the
/// entries a signed manifest carries; `None` when the group has none.
///
/// # Errors
/// When the store fails.
pub fn group_schedule(
    mut store: impl Read,
    group: &GroupRef,
) -> Result<Option<Schedule>, StoreError> {
    match schedule_of(&mut store, group)? {
        Some(schedule) => resolve(&mut store, &schedule).map(Some),
        None => Ok(None),
    }
}

/// `schedule` with each entry's playlist replaced by its items (see the
/// module doc for durations and deleted items).
///
/// # Errors
/// When the store fails.
pub fn resolve(mut store: impl Read, schedule: &GroupSchedule) -> Result<Schedule, StoreError> {
    let mut items = ItemDurations::default();
    let mut playlists: BTreeMap<&PlaylistId, Vec<PlaylistItem>> = BTreeMap::new();
    for id in schedule.playlists() {
        let resolved = match store.get::<Playlist>(PLAYLISTS, id.as_str())? {
            Some(playlist) => items.resolve_all(&mut store, &playlist.items)?,
            None => Vec::new(),
        };
        playlists.insert(id, resolved);
    }
    let entries = schedule
        .entries
        .iter()
        .map(|entry| ScheduleEntry {
            id: entry.id.clone(),
            items: playlists.get(&entry.playlist).cloned().unwrap_or_default(),
            dayparts: entry.dayparts.clone(),
            weekdays: entry.weekdays.clone(),
            dates: entry.dates,
            priority: entry.priority,
            layer: entry.layer,
        })
        .collect();
    let default_item = match &schedule.default_item {
        Some(planned) => items.resolve(&mut store, planned)?,
        None => None,
    };
    Ok(Schedule {
        entries,
        merge: schedule.merge,
        default_item,
    })
}

/// Resolves planned items against the content store, reading each item once.
#[derive(Default)]
struct ItemDurations {
    /// Each item's media duration, or `None` when the item is gone.
    known: BTreeMap<ItemId, Option<Option<u64>>>,
}

impl ItemDurations {
    /// The playlist item `planned` becomes; `None` when its item is gone.
    fn resolve(
        &mut self,
        store: &mut impl Read,
        planned: &PlannedItem,
    ) -> Result<Option<PlaylistItem>, StoreError> {
        let media = match self.known.get(&planned.item) {
            Some(media) => *media,
            None => {
                let media = store
                    .get::<ContentItem>(CONTENT, planned.item.as_str())?
                    .map(|item| item.duration_ms);
                self.known.insert(planned.item.clone(), media);
                media
            }
        };
        Ok(media.map(|media| PlaylistItem {
            item: planned.item.clone(),
            duration_ms: planned.duration_ms.or(media).unwrap_or(0),
        }))
    }

    fn resolve_all(
        &mut self,
        store: &mut impl Read,
        planned: &[PlannedItem],
    ) -> Result<Vec<PlaylistItem>, StoreError> {
        let mut items = Vec::with_capacity(planned.len());
        for planned in planned {
            if let Some(item) = self.resolve(store, planned)? {
                items.push(item);
            }
        }
        Ok(items)
    }
}

/// The playlists that hold `item` (content deletion refuses to delete an
/// item still in one).
///
/// # Errors
/// When the store fails.
pub fn playlists_using_item(store: &Store, item: &ItemId) -> Result<Vec<Playlist>, StoreError> {
    let ids: Vec<PlaylistId> = refs::referrers(store, Referrer::Playlist, item)?;
    let mut playlists = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(playlist) = store.get::<Playlist>(PLAYLISTS, id.as_str())? {
            playlists.push(playlist);
        }
    }
    Ok(playlists)
}

/// The schedules whose default item is `item` (content deletion refuses to
/// delete it while one does).
///
/// # Errors
/// When the store fails.
pub fn schedules_defaulting_to(
    store: &Store,
    item: &ItemId,
) -> Result<Vec<ScheduleId>, StoreError> {
    refs::referrers(store, Referrer::ScheduleDefault, item)
}

/// The schedules with an entry that plays `playlist`.
///
/// # Errors
/// When the store fails.
pub fn schedules_using_playlist(
    mut store: impl Read,
    playlist: &PlaylistId,
) -> Result<Vec<ScheduleId>, StoreError> {
    store.scan(PLAYLIST_SCHEDULES, &format!("{playlist}/"))
}

/// The playlists that belong to `node`, read in `tx` (a node holding any
/// must not be deleted: T2).
///
/// # Errors
/// When the store fails.
pub fn playlists_at_in(tx: &mut Tx, node: &NodeId) -> Result<Vec<PlaylistId>, StoreError> {
    let playlists: Vec<Playlist> = tx.scan(PLAYLISTS, "")?;
    Ok(playlists
        .into_iter()
        .filter(|p| &p.node == node)
        .map(|p| p.id)
        .collect())
}

/// The schedules whose target belongs to `node` (the node's own schedule
/// and those of its access groups), read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn schedules_at_in(tx: &mut Tx, node: &NodeId) -> Result<Vec<ScheduleId>, StoreError> {
    let schedules: Vec<GroupSchedule> = tx.scan(SCHEDULES, "")?;
    Ok(schedules
        .into_iter()
        .filter(|s| &s.node == node)
        .map(|s| s.id)
        .collect())
}

/// How many playlist items `schedule` resolves to, counting `playlists`
/// (the stored ones unless overridden) and its default item; bounded by
/// [`MAX_SCHEDULED_ITEMS`].
///
/// # Errors
/// When the store fails.
pub fn scheduled_item_count(
    mut store: impl Read,
    schedule: &GroupSchedule,
    replaced: Option<&Playlist>,
) -> Result<usize, StoreError> {
    let mut lengths: BTreeMap<&PlaylistId, usize> = BTreeMap::new();
    for id in schedule.playlists() {
        let len = match replaced.filter(|p| &p.id == id) {
            Some(playlist) => playlist.items.len(),
            None => store
                .get::<Playlist>(PLAYLISTS, id.as_str())?
                .map_or(0, |p| p.items.len()),
        };
        lengths.insert(id, len);
    }
    let entries: usize = schedule
        .entries
        .iter()
        .map(|e| lengths.get(&e.playlist).copied().unwrap_or(0))
        .fold(0, usize::saturating_add);
    Ok(entries.saturating_add(usize::from(schedule.default_item.is_some())))
}
