//! Live fleet changes for the console (C3, U4): what `GET
//! /api/v1/fleet/stream` sends as server-sent events.
//!
//! Owns: the [`FleetFeed`] — a broadcast of which device's fleet view may
//! have changed ([`FleetChange`]), published after a device state is stored
//! ([`super::record_state`]) and when a device's heartbeat deadline passes
//! (it turns offline by the clock, with no message: [`Deadlines`]) — and
//! each subscriber's stream ([`FleetStream`]): the changed devices' views
//! inside the subscriber's domain, the domain's totals kept up to date
//! from them, and `resync` when the subscriber fell behind the broadcast
//! (its bounded buffer overflowed) or a device left its domain. Must not:
//! decide what a device's view is ([`super::device_view`] does) or what a
//! user may see (the user's domain, read fresh, does — T3, T4); hold a
//! lock across an await.
//!
//! # Bounds
//! The broadcast holds [`CHANNEL_CAPACITY`] changes; a subscriber further
//! behind loses the oldest, notices, rebuilds its totals and sends
//! `resync` (the console refetches). At most [`FleetFeed::max_streams`]
//! streams at once. Totals are sent at most every [`SUMMARY_EVERY`] while
//! changes keep coming, and at once when they stop. Every
//! [`REVALIDATE_EVERY`] a stream re-reads its session and user: a revoked or
//! expired session, or a disabled user, ends it; a changed domain rebuilds
//! it (`resync`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::permissions::{Domain, NodeTree};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    DEVICE_STATES, DeviceStatus, FleetCounts, FleetDevice, Liveness, attached_devices, device_view,
};
use crate::app::Hub;
use crate::devices::{DEVICES, Device};
use crate::identity::{SESSIONS, Session, USERS, User};
use crate::store::{Store, StoreError};
use crate::tenancy::load_tree;

/// How many changes the broadcast holds for a subscriber that is behind.
pub const CHANNEL_CAPACITY: usize = 1024;
/// The shortest time between two totals of one stream while changes keep
/// coming.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// How often a stream re-reads its session, user and tree.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(15);
/// How often the deadline watcher looks at the hub's clock.
pub const DEADLINE_TICK: Duration = Duration::from_secs(1);

/// The fleet view of `device` may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetChange {
    /// The device.
    pub device: DeviceId,
    /// The node it is attached at now; `None` when it is not (unpaired).
    pub node: Option<NodeId>,
}

/// What a stream sends.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetEvent {
    /// A device's view, as `GET /api/v1/fleet/{device}` answers it.
    Device(Box<FleetDevice>),
    /// The totals of the subscriber's domain, as `GET /api/v1/fleet/summary`.
    Summary(FleetCounts),
    /// The subscriber missed changes: refetch.
    Resync,
}

/// Why a stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Every stream slot is taken.
    #[error("too many live fleet streams are open; retry later")]
    Busy,
    /// The session ended (revoked, expired) before the stream opened.
    #[error("the session ended")]
    SessionEnded,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

/// The deadline of a device with `status`, under `heartbeat_timeout`.
fn deadline_of(
    status: &DeviceStatus,
    heartbeat_timeout: chrono::TimeDelta,
) -> Option<DateTime<Utc>> {
    status
        .online
        .then_some(status.last_heartbeat)
        .flatten()
        .and_then(|beat| beat.checked_add_signed(heartbeat_timeout))
}

/// The hub's broadcast of fleet changes (see the module doc). One per hub,
/// in [`Hub`].
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

    fn deadlines(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `device`'s heartbeat deadline from its stored `status` (U4):
    /// call after a state report is stored.
    pub fn heartbeat(&self, state: &Hub, device: &DeviceId, status: &DeviceStatus) {
        let deadline = deadline_of(status, state.config.heartbeat_timeout());
        self.deadlines().set(device, deadline);
    }

    /// Tells subscribers that `device`'s fleet view may have changed (a
    /// report, a heartbeat deadline, pairing, a move, an unpair): call after
    /// the change is stored. Its node is read from the device record.
    pub fn device_changed(&self, state: &Hub, device: &DeviceId) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        let node = match state.store.get::<Device>(DEVICES, device.as_str()) {
            Ok(record) => record.map(|d| d.node),
            Err(e) => {
                tracing::warn!(%device, error = %e, "fleet change not sent: the store failed");
                return;
            }
        };
        self.send(FleetChange {
            device: device.clone(),
            node,
        });
    }

    fn send(&self, change: FleetChange) {
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Opens a stream for the session `session_key` of `user` (T4: only
    /// devices attached inside the user's domain, read fresh), starting
    /// with the domain's totals. Starts the deadline watcher on first use.
    ///
    /// # Errors
    /// [`StreamError::Busy`] when every slot is taken; the store's error.
    pub async fn subscribe(
        self: &Arc<Self>,
        state: &Hub,
        session_key: String,
        user: UserId,
    ) -> Result<FleetStream, StreamError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| StreamError::Busy)?;
        if !self.watching.swap(true, Ordering::SeqCst) {
            self.spawn_watcher(state.clone());
        }
        let receiver = self.changes.subscribe();
        let scope = read_scope(&state.store, &session_key, state.clock.now())?
            .ok_or(StreamError::SessionEnded)?;
        let mut stream = FleetStream {
            state: state.clone(),
            feed: self.clone(),
            session_key,
            user,
            scope,
            receiver,
            views: HashMap::new(),
            counts: FleetCounts::default(),
            queue: std::collections::VecDeque::new(),
            summary_due: false,
            last_summary: Instant::now(),
            revalidate: tokio::time::interval_at(
                Instant::now() + REVALIDATE_EVERY,
                REVALIDATE_EVERY,
            ),
            _permit: permit,
        };
        stream.rebuild().await?;
        stream.queue.push_back(FleetEvent::Summary(stream.counts));
        Ok(stream)
    }

    /// Watches the heartbeat deadlines on the hub's clock: a device whose
    /// deadline passed is offline now (U4), which its subscribers hear as a
    /// change. Seeded from every stored status.
    fn spawn_watcher(self: &Arc<Self>, state: Hub) {
        let feed = self.clone();
        tokio::spawn(async move {
            let store = state.store.clone();
            let timeout = state.config.heartbeat_timeout();
            let seeded = tokio::task::spawn_blocking(move || {
                store.scan_keyed::<DeviceStatus>(DEVICE_STATES, "")
            })
            .await;
            match seeded {
                Ok(Ok(statuses)) => {
                    let mut deadlines = feed.deadlines();
                    for (device, status) in statuses {
                        let device = DeviceId::from(device.as_str());
                        if !deadlines.by_device.contains_key(&device) {
                            let deadline = deadline_of(&status, timeout);
                            deadlines.set(&device, deadline);
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat deadlines not read"),
                Err(e) => tracing::warn!(error = %e, "heartbeat deadlines not read"),
            }
            let mut tick = tokio::time::interval(DEADLINE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = feed.closed.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let passed = feed.deadlines().passed(state.clock.now());
                for device in passed {
                    feed.device_changed(&state, &device);
                }
            }
        });
    }
}

/// What a subscriber may see now.
struct Scope {
    /// The user's domain.
    domain: Domain,
    /// The tenancy tree.
    tree: NodeTree,
    /// The user's domain as stored (to notice a change).
    nodes: Vec<NodeId>,
}

impl Scope {
    fn holds(&self, node: &NodeId) -> bool {
        self.domain.contains(&self.tree, node)
    }
}

/// The scope of the session `session_key` at `now`; `None` when it is no
/// longer valid (revoked, expired, the user gone or disabled).
fn read_scope(
    store: &Store,
    session_key: &str,
    now: DateTime<Utc>,
) -> Result<Option<Scope>, StoreError> {
    let Some(session) = store.get::<Session>(SESSIONS, session_key)? else {
        return Ok(None);
    };
    if now >= session.expires_at {
        return Ok(None);
    }
    let Some(user) = store.get::<User>(USERS, session.user_id.as_str())? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    let (tree, _) = load_tree(store)?;
    Ok(Some(Scope {
        domain: Domain::new(user.domain.iter().cloned()),
        tree,
        nodes: user.domain,
    }))
}

/// One subscriber's stream (see the module doc): [`FleetStream::next`]
/// until it answers `None`.
pub struct FleetStream {
    /// The hub.
    state: Hub,
    /// The feed it listens to.
    feed: Arc<FleetFeed>,
    /// The session it runs under (re-read every [`REVALIDATE_EVERY`]).
    session_key: String,
    /// The session's user.
    user: UserId,
    /// What it may see.
    scope: Scope,
    /// Its place in the broadcast.
    receiver: broadcast::Receiver<FleetChange>,
    /// Each visible device's totals (one device's [`FleetCounts`]).
    views: HashMap<DeviceId, FleetCounts>,
    /// The sum of `views`.
    counts: FleetCounts,
    /// Events ready to send.
    queue: std::collections::VecDeque<FleetEvent>,
    /// The totals changed since they were last sent.
    summary_due: bool,
    /// When the totals were last sent.
    last_summary: Instant,
    /// When to re-read the session.
    revalidate: tokio::time::Interval,
    /// Its stream slot, released when dropped.
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for FleetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStream")
            .field("user", &self.user)
            .field("devices", &self.views.len())
            .finish_non_exhaustive()
    }
}

impl FleetStream {
    /// The next event; `None` when the stream ends (the hub stops, the
    /// session ended, the store failed).
    pub async fn next(&mut self) -> Option<FleetEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.summary_due
                && (self.receiver.is_empty() || self.last_summary.elapsed() >= SUMMARY_EVERY)
            {
                self.summary_due = false;
                self.last_summary = Instant::now();
                return Some(FleetEvent::Summary(self.counts));
            }
            let summary_at = self.last_summary + SUMMARY_EVERY;
            let step = tokio::select! {
                () = self.feed.closed.cancelled() => return None,
                _ = self.revalidate.tick() => self.revalidate().await,
                () = tokio::time::sleep_until(summary_at), if self.summary_due => Ok(true),
                received = self.receiver.recv() => self.receive(received).await,
            };
            match step {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "a live fleet stream ended: the store failed");
                    return None;
                }
            }
        }
    }

    /// Handles what the broadcast gave; `Ok(false)` ends the stream.
    async fn receive(
        &mut self,
        received: Result<FleetChange, broadcast::error::RecvError>,
    ) -> Result<bool, StoreError> {
        match received {
            Ok(change) => {
                self.apply(change)?;
                Ok(true)
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "a live fleet stream fell behind: resync");
                // Everything is read afresh: the backlog is moot. Listen
                // from now on first, so nothing during the rebuild is lost.
                self.receiver = self.receiver.resubscribe();
                self.rebuild().await?;
                self.queue.clear();
                self.queue.push_back(FleetEvent::Resync);
                self.summary_due = true;
                Ok(true)
            }
            Err(broadcast::error::RecvError::Closed) => Ok(false),
        }
    }

    /// One device's change: its view when it is visible, `resync` when it
    /// left the subscriber's domain.
    fn apply(&mut self, change: FleetChange) -> Result<(), StoreError> {
        let store = &self.state.store;
        let visible = match &change.node {
            Some(node) => {
                if !self.scope.tree.contains(node) {
                    // A node made after the stream opened.
                    self.scope.tree = load_tree(store)?.0;
                }
                self.scope.holds(node)
            }
            None => false,
        };
        let Some(node) = change.node.filter(|_| visible) else {
            if let Some(old) = self.views.remove(&change.device) {
                self.counts.remove(&old);
                self.summary_due = true;
                self.queue.push_back(FleetEvent::Resync);
            }
            return Ok(());
        };
        let view = device_view(store, &change.device, &node, Liveness::of(&self.state))?;
        let one = FleetCounts::of(&view);
        match self.views.insert(change.device, one) {
            Some(old) if old == one => {}
            Some(old) => {
                self.counts.remove(&old);
                self.counts.merge(&one);
                self.summary_due = true;
            }
            None => {
                self.counts.merge(&one);
                self.summary_due = true;
            }
        }
        self.queue.push_back(FleetEvent::Device(Box::new(view)));
        Ok(())
    }

    /// Re-reads the session and the user's domain; `Ok(false)` when the
    /// session is no longer valid. A changed domain rebuilds the stream.
    async fn revalidate(&mut self) -> Result<bool, StoreError> {
        let Some(scope) = read_scope(&self.state.store, &self.session_key, self.state.clock.now())?
        else {
            return Ok(false);
        };
        let domain_changed = scope.nodes != self.scope.nodes;
        self.scope = scope;
        if domain_changed {
            self.rebuild().await?;
            self.queue.push_back(FleetEvent::Resync);
            self.summary_due = true;
        }
        Ok(true)
    }

    /// Every visible device's totals, afresh (off the async runtime: it
    /// reads every attached device).
    async fn rebuild(&mut self) -> Result<(), StoreError> {
        let store = self.state.store.clone();
        let liveness = Liveness::of(&self.state);
        let domain = self.scope.domain.clone();
        let tree = self.scope.tree.clone();
        let views = tokio::task::spawn_blocking(move || {
            let mut views = HashMap::new();
            for (device, node) in attached_devices(&store)? {
                if domain.contains(&tree, &node) {
                    let view = device_view(&store, &device, &node, liveness)?;
                    views.insert(device, FleetCounts::of(&view));
                }
            }
            Ok::<_, StoreError>(views)
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            tree: DEVICE_STATES,
            key: String::new(),
            reason: format!("the fleet read failed: {e}"),
        })??;
        let mut counts = FleetCounts::default();
        for one in views.values() {
            counts.merge(one);
        }
        self.views = views;
        self.counts = counts;
        Ok(())
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
