//! Live fleet changes for the console (C3, U4): what `GET
//! /api/v1/fleet/stream` sends as server-sent events.
//!
//! Owns: what goes into the hub's [`FleetFeed`] (a leaf broadcast in the
//! application core) — which device's fleet view may have changed
//! ([`device_changed`]), after a device state is stored
//! ([`super::record_state`]) and when a device's heartbeat deadline passes
//! (it turns offline by the clock, with no message: [`heartbeat`] and the
//! deadline watcher) — and each subscriber's stream ([`subscribe`],
//! [`FleetStream`]): the changed devices' views
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

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::permissions::{Domain, NodeTree};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio::time::Instant;

use super::{
    DEVICE_STATES, DeviceStatus, FleetCounts, FleetDevice, Liveness, attached_devices, device_view,
};
use crate::app::Hub;
// The broadcast is the application core's; re-exported so
// `fleet::stream::{FleetFeed, FleetChange, CHANNEL_CAPACITY}` keep working.
pub use crate::app::fleet_feed::{CHANNEL_CAPACITY, FleetChange, FleetFeed};
use crate::devices::{DEVICES, Device};
use crate::identity::{SESSIONS, Session, USERS, User};
use crate::store::{Store, StoreError};
use crate::tenancy::load_tree;

/// The shortest time between two totals of one stream while changes keep
/// coming.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// How often a stream re-reads its session, user and tree.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(15);
/// How often the deadline watcher looks at the hub's clock.
pub const DEADLINE_TICK: Duration = Duration::from_secs(1);

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

/// Keeps `device`'s heartbeat deadline from its stored `status` (U4):
/// call after a state report is stored.
pub fn heartbeat(state: &Hub, device: &DeviceId, status: &DeviceStatus) {
    let deadline = deadline_of(status, state.config.heartbeat_timeout());
    state.fleet_feed.set_deadline(device, deadline);
}

/// Tells subscribers that `device`'s fleet view may have changed (a
/// report, a heartbeat deadline): call after the change is stored. Its
/// node is read from the device record.
pub fn device_changed(state: &Hub, device: &DeviceId) {
    if !state.fleet_feed.has_subscribers() {
        return;
    }
    match state.store.get::<Device>(DEVICES, device.as_str()) {
        Ok(record) => state
            .fleet_feed
            .changed(device, record.map(|d| d.node).as_ref()),
        Err(e) => tracing::warn!(%device, error = %e, "fleet change not sent: the store failed"),
    }
}

/// Opens a stream for the session `session_key` of `user` (T4: only
/// devices attached inside the user's domain, read fresh), starting
/// with the domain's totals. Starts the deadline watcher on first use.
///
/// # Errors
/// [`StreamError::Busy`] when every slot is taken; the store's error.
pub async fn subscribe(
    state: &Hub,
    session_key: String,
    user: UserId,
) -> Result<FleetStream, StreamError> {
    let (permit, receiver) = state.fleet_feed.open().map_err(|_| StreamError::Busy)?;
    if state.fleet_feed.start_watching() {
        spawn_watcher(state.clone());
    }
    let scope = read_scope(&state.store, &session_key, state.clock.now())?
        .ok_or(StreamError::SessionEnded)?;
    let mut stream = FleetStream {
        state: state.clone(),
        session_key,
        user,
        scope,
        receiver,
        views: HashMap::new(),
        counts: FleetCounts::default(),
        queue: std::collections::VecDeque::new(),
        summary_due: false,
        last_summary: Instant::now(),
        revalidate: tokio::time::interval_at(Instant::now() + REVALIDATE_EVERY, REVALIDATE_EVERY),
        _permit: permit,
    };
    stream.rebuild().await?;
    stream.queue.push_back(FleetEvent::Summary(stream.counts));
    Ok(stream)
}

/// Watches the heartbeat deadlines on the hub's clock: a device whose
/// deadline passed is offline now (U4), which its subscribers hear as a
/// change. Seeded from every stored status.
fn spawn_watcher(state: Hub) {
    tokio::spawn(async move {
        let store = state.store.clone();
        let timeout = state.config.heartbeat_timeout();
        let seeded = tokio::task::spawn_blocking(move || {
            store.scan_keyed::<DeviceStatus>(DEVICE_STATES, "")
        })
        .await;
        match seeded {
            Ok(Ok(statuses)) => {
                state
                    .fleet_feed
                    .seed_deadlines(statuses.into_iter().map(|(device, status)| {
                        (
                            DeviceId::from(device.as_str()),
                            deadline_of(&status, timeout),
                        )
                    }))
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat deadlines not read"),
            Err(e) => tracing::warn!(error = %e, "heartbeat deadlines not read"),
        }
        let mut tick = tokio::time::interval(DEADLINE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.fleet_feed.closed().cancelled() => return,
                _ = tick.tick() => {}
            }
            let passed = state.fleet_feed.passed_deadlines(state.clock.now());
            for device in passed {
                device_changed(&state, &device);
            }
        }
    });
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
    /// The hub (its feed is what the stream listens to).
    state: Hub,
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
                () = self.state.fleet_feed.closed().cancelled() => return None,
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
