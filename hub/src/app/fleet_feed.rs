//! The broadcast behind the console's live fleet stream (C3, U4).
//!
//! Owns: [`FleetFeed`] — one per hub, in [`super::Hub`]: the broadcast of
//! which device's fleet view may have changed ([`FleetChange`]), the
//! heartbeat deadlines of the devices that said online ([`Deadlines`]), the
//! stream slots and the signal that ends every stream when the hub stops.
//! Must not: read the store or decide what a subscriber may see — the
//! fleet does both (`fleet::stream`: what changed, each subscriber's
//! domain and views); callers pass what they read.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use signet_common::ids::{DeviceId, NodeId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// How many changes the broadcast holds for a subscriber that is behind.
pub const CHANNEL_CAPACITY: usize = 1024;

/// The fleet view of `device` may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetChange {
    /// The device.
    pub device: DeviceId,
    /// The node it is attached at now; `None` when it is not (unpaired).
    pub node: Option<NodeId>,
}

/// What one hub replica tells the others about the fleet (X5), so a
/// console streaming from any replica hears what another stored: a change
/// and a heartbeat deadline ([`FleetFeed::relay_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// [`FleetFeed::changed`] on another replica.
    Changed(FleetChange),
    /// [`FleetFeed::set_deadline`] on another replica.
    Deadline {
        /// The device.
        device: DeviceId,
        /// Its deadline; `None`: cleared.
        deadline: Option<DateTime<Utc>>,
    },
}

/// How many relayed notes wait for the replicas' connection at most; more
/// are dropped (streams revalidate on their own every few minutes).
pub const RELAY_CAPACITY: usize = 4096;

/// Every stream slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every live fleet stream slot is taken")]
pub struct NoSlot;

/// When each device that said online turns offline unless it reports
/// again: its last heartbeat plus the heartbeat timeout (U4).
#[derive(Debug, Default)]
pub struct Deadlines {
    /// Deadlines in time order.
    by_time: BTreeSet<(DateTime<Utc>, DeviceId)>,
    /// Each device's deadline.
    by_device: HashMap<DeviceId, DateTime<Utc>>,
}

impl Deadlines {
    /// Sets (or, with `None`, clears) `device`'s deadline.
    fn set(&mut self, device: &DeviceId, deadline: Option<DateTime<Utc>>) {
        if let Some(old) = self.by_device.remove(device) {
            self.by_time.remove(&(old, device.clone()));
        }
        if let Some(deadline) = deadline {
            self.by_device.insert(device.clone(), deadline);
            self.by_time.insert((deadline, device.clone()));
        }
    }

    /// Removes and returns the devices whose deadline is before `now`.
    fn passed(&mut self, now: DateTime<Utc>) -> Vec<DeviceId> {
        let mut passed = Vec::new();
        while let Some((deadline, _)) = self.by_time.first() {
            if *deadline >= now {
                break;
            }
            if let Some((_, device)) = self.by_time.pop_first() {
                self.by_device.remove(&device);
                passed.push(device);
            }
        }
        passed
    }
}

/// The hub's broadcast of fleet changes (see the module doc).
pub struct FleetFeed {
    /// Changes, to every subscriber.
    changes: broadcast::Sender<FleetChange>,
    /// Heartbeat deadlines of the devices that said online.
    deadlines: Mutex<Deadlines>,
    /// Whether the deadline watcher runs (started by the first subscriber).
    watching: AtomicBool,
    /// Stream slots.
    slots: Arc<Semaphore>,
    /// How many slots there are.
    max_streams: usize,
    /// Cancelled when the hub stops: every stream ends.
    closed: CancellationToken,
    /// Where changes go for the other replicas (X5), once installed.
    relay: std::sync::OnceLock<mpsc::Sender<Relayed>>,
}

impl std::fmt::Debug for FleetFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetFeed")
            .field("max_streams", &self.max_streams)
            .finish_non_exhaustive()
    }
}

impl FleetFeed {
    /// A feed allowing `max_streams` streams at once (at least one).
    #[must_use]
    pub fn new(max_streams: usize) -> Self {
        let max_streams = max_streams.max(1);
        Self {
            changes: broadcast::channel(CHANNEL_CAPACITY).0,
            deadlines: Mutex::new(Deadlines::default()),
            watching: AtomicBool::new(false),
            slots: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            closed: CancellationToken::new(),
            relay: std::sync::OnceLock::new(),
        }
    }

    /// How many streams may be open at once.
    #[must_use]
    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Ends every stream and the deadline watcher (the hub is stopping).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Cancelled once the hub stops: what streams and the deadline watcher
    /// end on.
    #[must_use]
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Whether anyone listens (a change nobody hears need not be read):
    /// a stream here, or (with a relay) maybe one on another replica.
    #[must_use]
    pub fn has_subscribers(&self) -> bool {
        self.changes.receiver_count() > 0 || self.relay.get().is_some()
    }

    /// From now on, every change and deadline set here also goes to
    /// `relay` for the other replicas (X5; the first relay installed stays).
    pub fn relay_to(&self, relay: mpsc::Sender<Relayed>) {
        let _ = self.relay.set(relay);
    }

    /// Applies what another replica relayed: to this replica's streams and
    /// deadlines only (not relayed again).
    pub fn apply_relayed(&self, note: Relayed) {
        match note {
            Relayed::Changed(change) => {
                let _ = self.changes.send(change);
            }
            Relayed::Deadline { device, deadline } => self.deadlines().set(&device, deadline),
        }
    }

    fn relay(&self, note: Relayed) {
        if let Some(relay) = self.relay.get() {
            // Full or closed: dropped (see RELAY_CAPACITY).
            let _ = relay.try_send(note);
        }
    }

    /// Tells every subscriber that `device`'s fleet view may have changed
    /// (a report, a heartbeat deadline, pairing, a move, an unpair); `node`
    /// is where it is attached now (`None`: unpaired). Call after the change
    /// is stored.
    pub fn changed(&self, device: &DeviceId, node: Option<&NodeId>) {
        let change = FleetChange {
            device: device.clone(),
            node: node.cloned(),
        };
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(change.clone());
        self.relay(Relayed::Changed(change));
    }

    /// A stream slot and a place in the broadcast, from now on.
    ///
    /// # Errors
    /// [`NoSlot`] when every slot is taken.
    pub fn open(&self) -> Result<(OwnedSemaphorePermit, broadcast::Receiver<FleetChange>), NoSlot> {
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| NoSlot)?;
        Ok((permit, self.changes.subscribe()))
    }

    /// `true` for the first caller only: it starts the deadline watcher.
    pub fn start_watching(&self) -> bool {
        !self.watching.swap(true, Ordering::SeqCst)
    }

    fn deadlines(&self) -> MutexGuard<'_, Deadlines> {
        self.deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets (or, with `None`, clears) `device`'s heartbeat deadline.
    pub fn set_deadline(&self, device: &DeviceId, deadline: Option<DateTime<Utc>>) {
        self.deadlines().set(device, deadline);
        self.relay(Relayed::Deadline {
            device: device.clone(),
            deadline,
        });
    }

    /// Sets the deadlines of the devices that have none yet (a heartbeat
    /// that came meanwhile is newer than what was read).
    pub fn seed_deadlines(
        &self,
        deadlines: impl IntoIterator<Item = (DeviceId, Option<DateTime<Utc>>)>,
    ) {
        let mut held = self.deadlines();
        for (device, deadline) in deadlines {
            if !held.by_device.contains_key(&device) {
                held.set(&device, deadline);
            }
        }
    }

    /// Removes and returns the devices whose deadline is before `now`.
    pub fn passed_deadlines(&self, now: DateTime<Utc>) -> Vec<DeviceId> {
        self.deadlines().passed(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// U4, C3: deadlines come out in time order, only once passed, and a
    /// new heartbeat moves a device's deadline.
    #[test]
    fn u4_deadlines_pass_in_order_and_move_with_heartbeats() {
        let t0: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let s = chrono::TimeDelta::seconds;
        let (a, b) = (DeviceId::from("d-a"), DeviceId::from("d-b"));
        let mut deadlines = Deadlines::default();
        deadlines.set(&a, Some(t0 + s(10)));
        deadlines.set(&b, Some(t0 + s(5)));
        assert!(
            deadlines.passed(t0 + s(5)).is_empty(),
            "at the deadline: still online"
        );
        assert_eq!(deadlines.passed(t0 + s(6)), vec![b.clone()]);
        deadlines.set(&a, Some(t0 + s(20)));
        assert!(
            deadlines.passed(t0 + s(11)).is_empty(),
            "moved by a heartbeat"
        );
        deadlines.set(&b, Some(t0 + s(12)));
        deadlines.set(&b, None);
        assert_eq!(deadlines.passed(t0 + s(30)), vec![a]);
        assert!(deadlines.by_device.is_empty() && deadlines.by_time.is_empty());
    }
}
