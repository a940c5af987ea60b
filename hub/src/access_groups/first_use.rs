//! A member's first use of a group's content (L2: "duration from first
//! use"): the first play of an item under the group's license sets the
//! member's `first_used_at`, once, and the window that follows from it ends
//! at the earliest of the existing limits and first use + the duration.
//!
//! Owns: [`note_play`] — the rule of which play is a first use, and the
//! durable mark that the group's documents must be signed again
//! ([`REPUBLISH`]), written in the same transaction as the membership;
//! [`pending`] and [`clear`] for whoever publishes after the commit. Must
//! not: publish or reach the network (the caller does, after its commit:
//! [`crate::publish::after_first_use`]), or decide the window itself
//! ([`signet_common::license::access_window`] does).
//!
//! A device's first use is the first proof-of-play event, arriving through
//! fleet ingest, that says it played under the group's license
//! (`access_group` set, outcome played). A user's first playback goes
//! through [`note_use`] with the user as member, from the route that plays
//! to users.

use chrono::{DateTime, Utc};
use signet_common::ids::{AccessGroupId, DeviceId};
use signet_common::license::record_first_use;
use signet_common::sync::{Outcome, PlayEvent};

use super::{AccessGroup, GROUPS, MEMBERS, Member, MemberRef, member_key, repo};
use crate::store::{Store, StoreError, Tx};

/// Groups whose member documents must be signed again because a member's
/// first use shortened its window, keyed by group id; the value is when the
/// latest first use was noted (so a mark set again while an earlier one is
/// being published is not lost).
pub const REPUBLISH: &str = "access_group_first_use_republish";

/// Notes `event`, reported by `device`, as the device's first use of the
/// group it played under (see the module doc). Returns the group when this
/// set the member's first use. `now` is the hub's time: a first use is
/// never later than it, nor earlier than the member joined.
///
/// # Errors
/// When the store fails.
pub fn note_play(
    tx: &mut Tx,
    device: &DeviceId,
    event: &PlayEvent,
    now: DateTime<Utc>,
) -> Result<Option<AccessGroupId>, StoreError> {
    let Some(group) = &event.access_group else {
        return Ok(None);
    };
    if event.outcome != Outcome::Played || &event.device_id != device {
        return Ok(None);
    }
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    note_use(tx, group, &member, event.start, now)
}

/// Reads, in one call to the engine, the member records [`note_play`]
/// would read for `events` reported by `device` (fleet ingest batches
/// their look-ups, issue 21).
///
/// # Errors
/// When the store fails.
pub fn prefetch<'e>(
    tx: &mut Tx,
    device: &DeviceId,
    events: impl IntoIterator<Item = &'e PlayEvent>,
) -> Result<(), StoreError> {
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let keys: Vec<String> = events
        .into_iter()
        .filter(|e| e.outcome == Outcome::Played && &e.device_id == device)
        .filter_map(|e| e.access_group.as_ref())
        .map(|group| member_key(group, &member))
        .collect();
    tx.prefetch(MEMBERS, keys.iter().map(String::as_str))
}

/// Records `member`'s first use of `group`'s content at `at` (clamped to
/// the member's join and `now`), unless one is recorded or the member is
/// removed. When the group's license counts a duration from first use, the
/// group is marked for [`REPUBLISH`] in the same transaction. Returns the
/// group when the first use was set.
///
/// # Errors
/// When the store fails.
pub fn note_use(
    tx: &mut Tx,
    group: &AccessGroupId,
    member: &MemberRef,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<AccessGroupId>, StoreError> {
    let Some(mut record) = tx.get::<Member>(MEMBERS, &member_key(group, member))? else {
        return Ok(None);
    };
    if !record.is_current() || record.membership.first_used_at.is_some() {
        return Ok(None);
    }
    let at = at.min(now).max(record.membership.joined_at);
    if !record_first_use(&mut record.membership, at) {
        return Ok(None);
    }
    repo::put_member(tx, &record)?;
    let counts = tx
        .get::<AccessGroup>(GROUPS, group.as_str())?
        .is_some_and(|g| g.license.duration_from_first_use_secs.is_some());
    if counts {
        tx.put(REPUBLISH, group.as_str(), &now)?;
    }
    tracing::info!(%group, member = %member.key(), first_used_at = %at, "first use recorded (L2)");
    Ok(Some(group.clone()))
}

/// The groups marked for [`REPUBLISH`], with their marks.
///
/// # Errors
/// When the store fails.
pub fn pending(store: &Store) -> Result<Vec<(AccessGroupId, DateTime<Utc>)>, StoreError> {
    let keys = store.scan_keys(REPUBLISH, "")?;
    let mut marks = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(at) = store.get::<DateTime<Utc>>(REPUBLISH, &key)? {
            marks.push((AccessGroupId::from(key.as_str()), at));
        }
    }
    Ok(marks)
}

/// Removes `group`'s mark if it is still `mark` (a newer first use keeps
/// it for the next publication).
///
/// # Errors
/// When the store fails.
pub fn clear(tx: &mut Tx, group: &AccessGroupId, mark: DateTime<Utc>) -> Result<(), StoreError> {
    if tx.get::<DateTime<Utc>>(REPUBLISH, group.as_str())? == Some(mark) {
        tx.delete(REPUBLISH, group.as_str());
    }
    Ok(())
}
