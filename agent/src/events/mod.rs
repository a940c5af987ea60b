//! The durable proof-of-play queue (U1, U2, S9).
//!
//! Owns: the sled trees `events` (the queue: key = a `u64` big-endian
//! sequence number, value = one [`PlayEvent`] as JSON), `events_refused`
//! (events the hub refused one by one, kept for an operator, never
//! re-sent) and `events_meta` (the next sequence number, so numbers keep
//! increasing across restarts even after the queue ran empty). Every
//! [`EventLog::record`] is one sled batch followed by a flush, so an event
//! is durable before the player is told it was recorded (S9); the queue is
//! bounded by [`MAX_QUEUED`], beyond which the oldest events are dropped
//! with an error log and a counter. [`upload`] drains it to the hub. Must
//! not: decide what an event says (the player writes it) nor talk to the
//! hub itself (the uploader does).
//!
//! Every method blocks on sled: call them from `spawn_blocking` in async
//! code.

pub mod upload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use signet_common::sync::{Checked, PlayEvent, WireError};

use crate::state::{StateError, Store};

/// The most events the queue holds; beyond it the oldest are dropped with an
/// error log and counted in [`EventLog::dropped`].
pub const MAX_QUEUED: u64 = 1_000_000;

/// The queue's sled tree.
const QUEUE_TREE: &str = "events";
/// The sled tree of events the hub refused.
pub const REFUSED_TREE: &str = "events_refused";
/// The sled tree of the queue's own bookkeeping.
const META_TREE: &str = "events_meta";
/// The key of the next sequence number in [`META_TREE`].
const NEXT_SEQ_KEY: &[u8] = b"next_seq";
/// The longest part of a bad record or id quoted in a log line or error.
const MAX_QUOTED: usize = 64;

/// Why the event queue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Opening the queue's trees failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// sled failed reading, writing or flushing the queue.
    #[error("event queue: {0}")]
    Db(#[from] sled::Error),
    /// An event is out of its bounds; nothing of the call was stored.
    #[error("event {id} refused: {reason}")]
    Invalid {
        /// The event's id (at most 64 characters of it).
        id: String,
        /// What is wrong with it.
        reason: WireError,
    },
    /// An event could not be encoded as JSON.
    #[error("event {id} does not encode: {source}")]
    Encode {
        /// The event's id (at most 64 characters of it).
        id: String,
        /// serde's error.
        source: serde_json::Error,
    },
}

/// An event the hub refused on its own, as kept in `events_refused`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedEvent {
    /// The event as it was queued.
    pub event: PlayEvent,
    /// The HTTP status the hub answered (400 or 413).
    pub status: u16,
    /// The hub's answer body (its reason), at most 4 KiB of it.
    pub reason: String,
}

/// The durable, bounded proof-of-play queue. Cheap to clone; every clone
/// is the same queue.
#[derive(Debug, Clone)]
pub struct EventLog {
    /// The shared queue.
    inner: Arc<Inner>,
}

/// What every clone of an [`EventLog`] shares.
#[derive(Debug)]
struct Inner {
    /// The queue: sequence number → event JSON.
    queue: sled::Tree,
    /// Refused events: sequence number → [`RefusedEvent`] JSON.
    refused: sled::Tree,
    /// The next sequence number, persisted.
    meta: sled::Tree,
    /// The most events the queue holds.
    bound: u64,
    /// Events dropped by the bound since open.
    dropped: AtomicU64,
    /// The next sequence number and the queue's length, changed together
    /// with the tree under this lock.
    counters: Mutex<Counters>,
}

/// The queue's counters, kept in memory (sled's `len` walks the tree).
#[derive(Debug)]
struct Counters {
    /// The sequence number the next recorded event gets.
    next: u64,
    /// Events in the queue.
    len: u64,
}

impl EventLog {
    /// Opens the queue in `store`, bounded by [`MAX_QUEUED`].
    ///
    /// # Errors
    /// On a database failure.
    pub fn open(store: &Store) -> Result<Self, EventError> {
        Self::open_bounded(store, MAX_QUEUED)
    }

    /// Opens the queue with a bound of `bound` events (at least 1).
    pub(crate) fn open_bounded(store: &Store, bound: u64) -> Result<Self, EventError> {
        let queue = store.tree(QUEUE_TREE)?;
        let refused = store.tree(REFUSED_TREE)?;
        let meta = store.tree(META_TREE)?;
        let after = |tree: &sled::Tree| -> Result<u64, EventError> {
            Ok(tree
                .last()?
                .and_then(|(key, _)| seq_of(&key))
                .map_or(0, |seq| seq.saturating_add(1)))
        };
        let stored_next = meta
            .get(NEXT_SEQ_KEY)?
            .and_then(|value| seq_of(&value))
            .unwrap_or(0);
        let next = stored_next.max(after(&queue)?).max(after(&refused)?);
        let len = u64::try_from(queue.len()).unwrap_or(u64::MAX);
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                refused,
                meta,
                bound: bound.max(1),
                dropped: AtomicU64::new(0),
                counters: Mutex::new(Counters { next, len }),
            }),
        })
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `events` durably (S9): each is checked first (a bad one
    /// refuses the whole call, nothing stored), then all are inserted in one
    /// sled batch and flushed before this returns. When the queue would
    /// grow past its bound, the oldest events are dropped (error log,
    /// [`Self::dropped`]).
    ///
    /// # Errors
    /// [`EventError::Invalid`] for an event out of bounds; a database
    /// failure (then nothing is durable).
    pub fn record(&self, events: &[PlayEvent]) -> Result<(), EventError> {
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            event.check().map_err(|reason| EventError::Invalid {
                id: quoted(&event.id),
                reason,
            })?;
            encoded.push(
                serde_json::to_vec(event).map_err(|source| EventError::Encode {
                    id: quoted(&event.id),
                    source,
                })?,
            );
        }
        if encoded.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut counters = self.counters();
        let new = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
        let excess = counters.len.saturating_add(new).saturating_sub(inner.bound);
        let drop_queued = excess.min(counters.len);
        let drop_new = excess - drop_queued;
        let mut batch = sled::Batch::default();
        let mut removed = 0u64;
        for key in inner.queue.iter().keys().take(usize_of(drop_queued)) {
            batch.remove(key?);
            removed += 1;
        }
        let mut next = counters.next;
        let mut added = 0u64;
        for bytes in encoded.into_iter().skip(usize_of(drop_new)) {
            batch.insert(&next.to_be_bytes(), bytes);
            next = next.saturating_add(1);
            added += 1;
        }
        inner.queue.apply_batch(batch)?;
        counters.next = next;
        counters.len = counters.len - removed + added;
        inner.meta.insert(NEXT_SEQ_KEY, &next.to_be_bytes())?;
        inner.queue.flush()?;
        drop(counters);
        let dropped = removed + drop_new;
        if dropped > 0 {
            inner.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::error!(
                dropped,
                bound = inner.bound,
                "event queue full: dropped the {dropped} oldest proof-of-play events"
            );
        }
        Ok(())
    }

    /// Events in the queue.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.counters().len
    }

    /// Whether the queue is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped by the bound since open.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Up to `max` of the oldest events, in sequence order. A stored record
    /// that no longer parses is removed with an error log, so it never
    /// blocks the queue.
    ///
    /// # Errors
    /// On a database failure.
    pub fn oldest(&self, max: usize) -> Result<Vec<(u64, PlayEvent)>, EventError> {
        let inner = &self.inner;
        let mut counters = self.counters();
        let mut out = Vec::with_capacity(max.min(1024));
        let mut corrupt = Vec::new();
        for entry in inner.queue.iter() {
            if out.len() >= max {
                break;
            }
            let (key, value) = entry?;
            let parsed = seq_of(&key).ok_or_else(|| "key is not 8 bytes".to_owned());
            match parsed.and_then(|seq| {
                serde_json::from_slice::<PlayEvent>(&value)
                    .map(|event| (seq, event))
                    .map_err(|e| e.to_string())
            }) {
                Ok(pair) => out.push(pair),
                Err(reason) => {
                    tracing::error!(
                        key = %hex(&key),
                        record = %String::from_utf8_lossy(&value[..value.len().min(MAX_QUOTED)]),
                        "removing a queued proof-of-play record that does not parse: {reason}"
                    );
                    corrupt.push(key);
                }
            }
        }
        if !corrupt.is_empty() {
            let mut batch = sled::Batch::default();
            let removed = u64::try_from(corrupt.len()).unwrap_or(u64::MAX);
            for key in corrupt {
                batch.remove(key);
            }
            inner.queue.apply_batch(batch)?;
            counters.len = counters.len.saturating_sub(removed);
            inner.queue.flush()?;
        }
        Ok(out)
    }

    /// Removes the events `seqs` (those the hub confirmed), in one batch,
    /// flushed. Numbers not in the queue are ignored.
    ///
    /// # Errors
    /// On a database failure.
    pub fn remove(&self, seqs: &[u64]) -> Result<(), EventError> {
        let inner = &self.inner;
        let mut counters = self.counters();
        let mut batch = sled::Batch::default();
        let mut removed = 0u64;
        for seq in seqs {
            let key = seq.to_be_bytes();
            if inner.queue.contains_key(key)? {
                batch.remove(&key);
                removed += 1;
            }
        }
        if removed == 0 {
            return Ok(());
        }
        inner.queue.apply_batch(batch)?;
        counters.len = counters.len.saturating_sub(removed);
        inner.queue.flush()?;
        Ok(())
    }

    /// Moves event `seq` out of the queue into `events_refused` with the
    /// hub's answer, durably: it is kept for an operator and never sent
    /// again. The refused record is flushed before the event leaves the
    /// queue, so a crash in between keeps it in both (and the next refusal
    /// overwrites the same key).
    ///
    /// # Errors
    /// On a database failure.
    pub fn refuse(
        &self,
        seq: u64,
        event: &PlayEvent,
        status: u16,
        reason: &str,
    ) -> Result<(), EventError> {
        let record = RefusedEvent {
            event: event.clone(),
            status,
            reason: reason.to_owned(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|source| EventError::Encode {
            id: quoted(&event.id),
            source,
        })?;
        self.inner.refused.insert(seq.to_be_bytes(), bytes)?;
        self.inner.refused.flush()?;
        self.remove(&[seq])
    }

    /// Every event the hub refused, by sequence number. Records that do not
    /// parse are skipped with an error log.
    ///
    /// # Errors
    /// On a database failure.
    pub fn refused(&self) -> Result<Vec<(u64, RefusedEvent)>, EventError> {
        let mut out = Vec::new();
        for entry in self.inner.refused.iter() {
            let (key, value) = entry?;
            match (seq_of(&key), serde_json::from_slice(&value)) {
                (Some(seq), Ok(record)) => out.push((seq, record)),
                _ => tracing::error!(key = %hex(&key), "a refused-event record does not parse"),
            }
        }
        Ok(out)
    }
}

/// A new event id: 32 lowercase hex digits of 128 random bits from the
/// system's random source. Should that source fail (it does not on a
/// working system), the id is derived from the time, the process and a
/// counter instead, with an error log, so ids stay distinct on the device.
#[must_use]
pub fn new_event_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    if let Err(e) = ring::rand::SystemRandom::new().fill(&mut bytes) {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        tracing::error!("system random source failed ({e}); deriving an event id from time");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let low = u64::from(std::process::id()) << 32 | (count & 0xffff_ffff);
        // Truncated on purpose: the low 64 bits are the ones that vary.
        #[allow(clippy::cast_possible_truncation)]
        let nanos = nanos as u64;
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
    }
    hex(&bytes)
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The sequence number a key (or stored counter) holds.
fn seq_of(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// A count as `usize`, saturating.
fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// At most [`MAX_QUOTED`] characters of an untrusted string, for errors.
fn quoted(text: &str) -> String {
    text.chars().take(MAX_QUOTED).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use signet_common::ids::{DeviceId, ItemId};
    use signet_common::sync::Outcome;

    /// A valid played event for device `d-1`.
    pub(crate) fn event(id: &str) -> PlayEvent {
        PlayEvent {
            id: id.to_owned(),
            device_id: DeviceId::new("d-1"),
            item: ItemId::new("c-1"),
            access_group: None,
            license_version: None,
            start: "2026-11-23T10:00:00Z".parse().unwrap(),
            duration_ms: 10_000,
            outcome: Outcome::Played,
            skip_reason: None,
            country: Some("DE".into()),
            region: None,
            os: "Debian 12".into(),
            agent_version: "0.1.0".into(),
        }
    }

    /// `n` valid events with fresh ids.
    pub(crate) fn events(n: usize) -> Vec<PlayEvent> {
        (0..n).map(|_| event(&new_event_id())).collect()
    }

    fn ids(pairs: &[(u64, PlayEvent)]) -> Vec<String> {
        pairs.iter().map(|(_, e)| e.id.clone()).collect()
    }

    /// S9, U2: recorded events survive closing and reopening the database,
    /// in order.
    #[test]
    fn s9_records_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = events(25);
        {
            let store = Store::open(dir.path()).unwrap();
            let log = EventLog::open(&store).unwrap();
            log.record(&recorded[..10]).unwrap();
            log.record(&recorded[10..]).unwrap();
            assert_eq!(log.len(), 25);
        }
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open(&store).unwrap();
        assert_eq!(log.len(), 25);
        let oldest = log.oldest(100).unwrap();
        assert_eq!(
            ids(&oldest),
            recorded.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
        );
        assert_eq!(oldest[0].1, recorded[0], "stored unchanged");
    }

    /// U2: sequence numbers keep increasing across reopening, even after
    /// the queue ran empty (so a refused record is never overwritten).
    #[test]
    fn u2_sequence_numbers_increase_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let store = Store::open(dir.path()).unwrap();
            let log = EventLog::open(&store).unwrap();
            log.record(&events(3)).unwrap();
            let seqs: Vec<u64> = log.oldest(10).unwrap().iter().map(|(s, _)| *s).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            log.remove(&seqs).unwrap();
            assert!(log.is_empty());
            *seqs.last().unwrap()
        };
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open(&store).unwrap();
        log.record(&events(1)).unwrap();
        let (seq, _) = log.oldest(1).unwrap()[0].clone();
        assert!(seq > last, "{seq} after {last}");
    }

    /// U1, DESIGN §7: an event failing its checks refuses the whole call
    /// with the reason, and nothing is stored.
    #[test]
    fn u1_record_refuses_a_bad_event_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open(&store).unwrap();
        let mut batch = events(3);
        batch[1].outcome = Outcome::Skipped; // a skipped event must say why
        let err = log.record(&batch).unwrap_err();
        assert!(
            matches!(&err, EventError::Invalid { id, reason: WireError::Field { field: "skip_reason", .. } } if *id == batch[1].id),
            "{err}"
        );
        assert_eq!(log.len(), 0);
        assert!(log.oldest(10).unwrap().is_empty());
        let mut bad_id = event("not-hex");
        bad_id.id = "x".repeat(1000);
        let err = log.record(&[bad_id]).unwrap_err();
        assert!(err.to_string().len() < 300, "quoted, not echoed: {err}");
        assert!(log.is_empty());
    }

    /// Bounded queues (DESIGN §7): past the bound the oldest are dropped,
    /// counted, and the newest kept in order.
    #[test]
    fn u2_the_bound_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open_bounded(&store, 5).unwrap();
        let recorded = events(9);
        log.record(&recorded[..4]).unwrap();
        assert_eq!(log.dropped(), 0);
        log.record(&recorded[4..7]).unwrap();
        assert_eq!((log.len(), log.dropped()), (5, 2));
        // More at once than the bound: only the newest 5 stay.
        let more = events(7);
        log.record(&more).unwrap();
        assert_eq!((log.len(), log.dropped()), (5, 9));
        assert_eq!(
            ids(&log.oldest(10).unwrap()),
            more[2..].iter().map(|e| e.id.clone()).collect::<Vec<_>>()
        );
        // Reopening counts what is really stored.
        drop(log);
        let log = EventLog::open_bounded(&store, 5).unwrap();
        assert_eq!(log.len(), 5);
    }

    /// A record that no longer parses is removed and does not block the
    /// queue.
    #[test]
    fn a_corrupt_record_is_removed_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open(&store).unwrap();
        let recorded = events(2);
        log.record(&recorded[..1]).unwrap();
        let tree = store.tree(QUEUE_TREE).unwrap();
        let (first, _) = log.oldest(1).unwrap()[0].clone();
        tree.insert((first + 1).to_be_bytes(), b"{not json".as_slice())
            .unwrap();
        drop(log);
        let log = EventLog::open(&store).unwrap();
        log.record(&recorded[1..]).unwrap();
        assert_eq!(log.len(), 3);
        let oldest = log.oldest(10).unwrap();
        assert_eq!(
            ids(&oldest),
            vec![recorded[0].id.clone(), recorded[1].id.clone()]
        );
        assert_eq!(log.len(), 2);
        assert!(!tree.contains_key((first + 1).to_be_bytes()).unwrap());
    }

    /// U2: a refused event leaves the queue for `events_refused`, with the
    /// hub's reason, and survives reopening.
    #[test]
    fn u2_refused_events_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = events(2);
        {
            let store = Store::open(dir.path()).unwrap();
            let log = EventLog::open(&store).unwrap();
            log.record(&recorded).unwrap();
            let (seq, event) = log.oldest(1).unwrap()[0].clone();
            log.refuse(seq, &event, 400, "about another device")
                .unwrap();
            assert_eq!(log.len(), 1);
        }
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open(&store).unwrap();
        let refused = log.refused().unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].1.event, recorded[0]);
        assert_eq!(refused[0].1.reason, "about another device");
        assert_eq!(ids(&log.oldest(10).unwrap()), vec![recorded[1].id.clone()]);
    }

    /// U2: event ids are 32 lowercase hex digits and distinct.
    #[test]
    fn u2_new_event_ids_are_32_hex_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_event_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
        }
        assert!(event(&new_event_id()).check().is_ok());
    }
}
