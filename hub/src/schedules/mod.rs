//! Playlists and schedules (D5, T2): the data side of what plays where.
//!
//! Interface for publishing: [`group_schedule`].

use signet_common::schedule::Schedule;

use crate::groups::GroupRef;
use crate::store::{Store, StoreError};

/// The schedule attached to `group`, with its playlists resolved into the
/// entries a signed manifest carries; `None` when the group has none.
///
/// # Errors
/// When the store fails.
pub fn group_schedule(store: &Store, group: &GroupRef) -> Result<Option<Schedule>, StoreError> {
    let _ = (store, group);
    Ok(None)
}
