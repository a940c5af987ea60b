//! The item-references index (T2, A1): who refers to a content item —
//! the access groups that hold it, the playlists that play it and the
//! schedules whose default item it is.
//!
//! The modules above content (access groups, schedules) write their
//! references here, through [`add`] and [`remove`], in the same
//! transaction as the record that refers; content's in-use check
//! ([`super::repo::users_of_in`]) then reads only this index, and never
//! imports the modules that refer to an item.
//!
//! Owns: the three reverse-index trees, keyed `{item}/{referrer id}` with
//! the referrer's id as value. They keep the names the access-group and
//! schedule modules gave them before the index moved here, so an existing
//! store needs no migration: the same records, now written and read only
//! through this module. Must not: judge whether a reference is allowed
//! (the referring module's service does).

use serde::de::DeserializeOwned;
use signet_common::ids::ItemId;

use crate::store::{Store, StoreError, Tx, WriteBatch};

/// What refers to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Referrer {
    /// An access group holds the item (L1).
    AccessGroup,
    /// A playlist plays the item (D5).
    Playlist,
    /// A schedule plays the item when nothing else does (D5).
    ScheduleDefault,
}

impl Referrer {
    /// Every kind, in the order the in-use check lists them.
    pub const ALL: [Referrer; 3] = [
        Referrer::AccessGroup,
        Referrer::Playlist,
        Referrer::ScheduleDefault,
    ];

    /// The tree of this kind's references (the pre-existing names).
    #[must_use]
    pub fn tree(self) -> &'static str {
        match self {
            Referrer::AccessGroup => "access_group_item_index",
            Referrer::Playlist => "playlist_item_index",
            Referrer::ScheduleDefault => "schedule_item_index",
        }
    }

    /// How the in-use check names a referrer `id` of this kind.
    #[must_use]
    pub fn describe(self, id: &str) -> String {
        match self {
            Referrer::AccessGroup => format!("access group {id}"),
            Referrer::Playlist => format!("playlist {id}"),
            Referrer::ScheduleDefault => format!("schedule {id} (default item)"),
        }
    }
}

/// The key of the reference from `id` to `item`.
fn key(item: &ItemId, id: &str) -> String {
    format!("{item}/{id}")
}

/// Records that `id` (a `referrer`) refers to `item`.
///
/// # Errors
/// Never in practice (an id always encodes).
pub fn add(
    batch: &mut WriteBatch,
    referrer: Referrer,
    item: &ItemId,
    id: &str,
) -> Result<(), StoreError> {
    batch.put(referrer.tree(), &key(item, id), &id)?;
    Ok(())
}

/// Forgets that `id` (a `referrer`) refers to `item`.
pub fn remove(batch: &mut WriteBatch, referrer: Referrer, item: &ItemId, id: &str) {
    batch.delete(referrer.tree(), &key(item, id));
}

/// The ids of the `referrer`s that refer to `item`.
///
/// # Errors
/// When the store fails.
pub fn referrers<T: DeserializeOwned>(
    store: &Store,
    referrer: Referrer,
    item: &ItemId,
) -> Result<Vec<T>, StoreError> {
    store.scan(referrer.tree(), &format!("{item}/"))
}

/// [`referrers`] read in `tx`: a decision on them commits only if none
/// was added or removed meanwhile.
///
/// # Errors
/// When the store fails.
pub fn referrers_in<T: DeserializeOwned>(
    tx: &mut Tx,
    referrer: Referrer,
    item: &ItemId,
) -> Result<Vec<T>, StoreError> {
    tx.scan(referrer.tree(), &format!("{item}/"))
}

/// Every reference of `referrer`'s kind, as (`{item}/{id}` key, id),
/// read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn all_in<T: DeserializeOwned>(
    tx: &mut Tx,
    referrer: Referrer,
) -> Result<Vec<(String, T)>, StoreError> {
    tx.scan_keyed(referrer.tree(), "")
}

#[cfg(test)]
pub(crate) mod tests;
