//! Proof of play (U1, U2, U3, L8): each event stored exactly once by its
//! id, in time order, so reports read only the hours they cover.
//!
//! Owns: the [`PLAY_EVENTS`], [`PLAY_EVENT_IDS`] and [`PLAY_EVENT_HOURS`]
//! trees, their keys and their retention; what one event must be to be
//! stored ([`check_event`]). Events are written by [`super::ingest`], many
//! batches to a commit. Must not: decide who may read what (the API
//! filters by the node each event is stored with).
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`PLAY_EVENTS`] | `{start, RFC 3339 with microseconds}/{id}` | [`StoredEvent`] |
//! | [`PLAY_EVENT_IDS`] | event id | its [`PLAY_EVENTS`] key (dedupe, U2) |
//! | [`PLAY_EVENT_HOURS`] | `YYYY-MM-DDTHH` | events stored in that hour (u64) |
//!
//! The storage engine scans by prefix, so a time range is read hour by
//! hour: [`PLAY_EVENT_HOURS`] says which hours hold events, and each is one
//! prefix scan of [`PLAY_EVENTS`].

use chrono::{DateTime, Datelike as _, TimeDelta, Timelike as _, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::sync::{Checked as _, PlayEvent};

use crate::app::Hub;
use crate::store::{EventPrune, Store, StoreError, Tx};

/// Events by `{start}/{id}`.
/// On PostgreSQL, the partitioned table of the same name
/// ([`crate::store::events`]).
pub const PLAY_EVENTS: &str = crate::store::EVENTS_TREE;
/// Event id → its key in [`PLAY_EVENTS`].
pub const PLAY_EVENT_IDS: &str = "play_event_ids";
/// Hour bucket → how many events it holds.
pub const PLAY_EVENT_HOURS: &str = "play_event_hours";
/// The most events one retention pass deletes.
pub const PRUNE_EVENTS: usize = 5000;

// What an event batch came to is the ingest port's answer (the application
// core's); re-exported so `fleet::events::Ingested` keeps working.
pub use crate::app::ingest::Ingested;

/// One stored event, with where its device was attached when it arrived
/// (what tenant scoping and node filters read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event as the device sent it.
    pub event: PlayEvent,
    /// The device's node when the event arrived; `None` when it was not
    /// attached (then only root-level users see the event).
    pub node: Option<NodeId>,
    /// When the hub stored it.
    pub received_at: DateTime<Utc>,
    /// The user who played it in a browser (M6; the event's device is the
    /// browser); `None` for a screen's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
}

/// The hour bucket of `at`: `YYYY-MM-DDTHH`.
#[must_use]
pub fn hour_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// The key of an event: its start (sortable text) and its id.
#[must_use]
pub fn event_key(event: &PlayEvent) -> String {
    format!(
        "{}/{}",
        event.start.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        event.id
    )
}

/// Stores `stored` in `tx` unless an event with its id is stored (U2);
/// answers whether it was stored. For events that arrive one at a time (a
/// browser playback, M6); fleet ingest stores device batches itself.
///
/// # Errors
/// When the store fails.
pub fn insert_in(tx: &mut Tx, stored: &StoredEvent) -> Result<bool, StoreError> {
    let event = &stored.event;
    if tx.contains(PLAY_EVENT_IDS, &event.id)? {
        return Ok(false);
    }
    let key = event_key(event);
    tx.put(PLAY_EVENT_IDS, &event.id, &key)?;
    tx.put(PLAY_EVENTS, &key, stored)?;
    let hour = hour_of(event.start);
    let count = tx.get::<u64>(PLAY_EVENT_HOURS, &hour)?.unwrap_or(0);
    tx.put(PLAY_EVENT_HOURS, &hour, &count.saturating_add(1))?;
    Ok(true)
}

/// Sets how long the stored event `id` played (a browser playback reports
/// how far it got, M6); answers whether the event is stored.
///
/// # Errors
/// When the store fails.
pub fn set_duration_in(tx: &mut Tx, id: &str, duration_ms: u64) -> Result<bool, StoreError> {
    let Some(key) = tx.get::<String>(PLAY_EVENT_IDS, id)? else {
        return Ok(false);
    };
    let Some(mut stored) = tx.get::<StoredEvent>(PLAY_EVENTS, &key)? else {
        return Ok(false);
    };
    if stored.event.duration_ms != duration_ms {
        stored.event.duration_ms = duration_ms;
        tx.put(PLAY_EVENTS, &key, &stored)?;
    }
    Ok(true)
}

/// Whether `device` may store `event`: it names `device`, passes its own
/// checks and starts within the years 2000–9999.
///
/// # Errors
/// Why not, for a human.
pub fn check_event(device: &DeviceId, event: &PlayEvent) -> Result<(), String> {
    if &event.device_id != device {
        return Err(format!(
            "event {} names device {}, not the sending device",
            event.id, event.device_id
        ));
    }
    event
        .check()
        .map_err(|e| format!("event {}: {e}", event.id))?;
    if !(2000..=9999).contains(&event.start.year()) {
        return Err(format!(
            "event {}: start is outside the years 2000 to 9999",
            event.id
        ));
    }
    Ok(())
}

/// The hour buckets holding events that may start in `[from, to)`, oldest
/// first.
///
/// # Errors
/// When the store fails.
pub fn hours_between(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let first = hour_of(from);
    let last = hour_of(to);
    Ok(store
        .scan_keys(PLAY_EVENT_HOURS, "")?
        .into_iter()
        .filter(|hour| hour.as_str() >= first.as_str() && hour.as_str() <= last.as_str())
        .collect())
}

/// The events of one hour bucket with their keys, in key (time) order.
///
/// # Errors
/// When the store fails or a record does not decode.
pub fn events_in_hour(store: &Store, hour: &str) -> Result<Vec<(String, StoredEvent)>, StoreError> {
    store.scan_keyed(PLAY_EVENTS, &format!("{hour}:"))
}

/// How many days ahead the engine prepares to store events
/// ([`crate::store::Storage::prepare_events`]).
pub const PREPARE_DAYS_AHEAD: u32 = 7;

/// Deletes events that started before the hour of `now - retention`
/// (U3): on PostgreSQL the engine drops the whole days' partitions and
/// deletes the rest in one step; otherwise at most [`PRUNE_EVENTS`] per
/// call, oldest hours first. Returns how many. The leader runs it (the
/// alert loop), after preparing the days ahead
/// ([`PREPARE_DAYS_AHEAD`]).
///
/// # Errors
/// When the store fails.
pub async fn prune(
    state: &Hub,
    now: DateTime<Utc>,
    retention: TimeDelta,
) -> Result<usize, StoreError> {
    let store = &state.store;
    store.prepare_events(now, PREPARE_DAYS_AHEAD).await?;
    let before = now - retention;
    let before = before
        .date_naive()
        .and_hms_opt(before.hour(), 0, 0)
        .map_or(before, |hour| hour.and_utc());
    let prune = EventPrune {
        before,
        ids_tree: PLAY_EVENT_IDS,
        hours_tree: PLAY_EVENT_HOURS,
    };
    if let Some(removed) = store.prune_events(prune).await? {
        return Ok(usize::try_from(removed).unwrap_or(usize::MAX));
    }
    let cutoff = hour_of(before);
    let old: Vec<String> = store
        .scan_keys(PLAY_EVENT_HOURS, "")?
        .into_iter()
        .take_while(|hour| hour.as_str() < cutoff.as_str())
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    // The old hours were listed outside; inside, each one's events and
    // count are read again, so an event arriving late into an old hour
    // makes the pass run again rather than leave a wrong count.
    store
        .transact(|tx| {
            let mut deleted = 0;
            for hour in &old {
                let events = tx.scan_keys(PLAY_EVENTS, &format!("{hour}:"))?;
                let room = PRUNE_EVENTS - deleted;
                for key in events.iter().take(room) {
                    tx.delete(PLAY_EVENTS, key);
                    if let Some((_, id)) = key.rsplit_once('/') {
                        tx.delete(PLAY_EVENT_IDS, id);
                    }
                }
                let taken = events.len().min(room);
                deleted += taken;
                if taken == events.len() {
                    tx.delete(PLAY_EVENT_HOURS, hour);
                } else {
                    let left = u64::try_from(events.len() - taken).unwrap_or(u64::MAX);
                    tx.put(PLAY_EVENT_HOURS, hour, &left)?;
                    break;
                }
            }
            Ok(deleted)
        })
        .await
}
