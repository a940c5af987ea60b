//! The watch over the hub's own retained topics (S4, DESIGN §1): any client
//! the broker lets publish there could replace or clear a manifest, an
//! assignment, `trust` or `hub_time`, and every device that subscribes
//! afterwards would get garbage or nothing. The hub subscribes to
//! [`WATCHED`] and puts its own latest signed document back.
//!
//! Owns: the [`WATCHED`] filters, [`owned_topic`], [`expected`] (what the
//! hub wants retained on a topic: its latest signed envelope byte for byte,
//! or nothing) and the watch task ([`run`]). For every message on a watched
//! topic it compares the bytes with [`expected`]: the hub's own echo and
//! any message equal to it change nothing; anything else (garbage, an empty
//! message, a foreign or older document, junk on a group or device the hub
//! has no document for) schedules a restore of that topic after
//! [`DEBOUNCE`], which publishes the expected bytes retained (or an empty
//! retained message, which clears the topic). May call: the store through
//! [`crate::publish::envelope_of`] and [`super::hub_time::latest_envelope`],
//! a [`Publisher`], [`crate::publish::republish_all`]. Must not: sign
//! anything, or wait on the MQTT event loop.
//!
//! # Fights and storms
//! - One pending restore per topic: a burst of messages on a topic ends in
//!   one restore, [`DEBOUNCE`] after the first of them.
//! - Repeated restores of one topic (another party fighting the hub) are,
//!   after [`FREE_RESTORES`] of them, spaced exponentially from
//!   [`DEBOUNCE`] up to [`MAX_SPACING`]; a topic left alone for
//!   [`FIGHT_MEMORY`] starts afresh.
//! - At most [`MAX_PENDING`] topics wait at once and at most
//!   [`RESTORES_PER_PASS`] are restored per wake-up. When messages had to be
//!   dropped (the inbox or the pending set was full), everything the hub
//!   owns is republished once ([`crate::publish::republish_all`]), at most
//!   every [`OVERFLOW_SPACING`].
//! - Subscriptions are QoS 0: nothing to acknowledge, nothing queued for
//!   the hub while it is away (it republishes everything on every connect).
//!
//! # Who can poison
//! On the brokers Signet manages (the managed mosquitto, an external one
//! with `mqtt.dynsec`) no device may publish on these topics (S10); the
//! watch guards against anything else with publish rights there (another
//! hub, a stale or compromised operator account, a broker without ACLs).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Publish, QoS};
use signet_common::envelope::DocumentKind;
use signet_common::ids::MAX_ID_LEN;
use signet_common::sync::{HUB_TIME_TOPIC, TOPIC_PREFIX, TRUST_TOPIC};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::Hub;
use crate::publish::{Publisher, RetainedMessage};
use crate::store::StoreError;

/// The retained topics the hub owns, under `signet/v1/`.
pub const WATCHED: [&str; 4] = [
    "groups/+/manifest",
    "devices/+/assignment",
    "trust",
    "hub/time",
];
/// How long after the first foreign message on a topic the hub restores it.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// Restores of one topic in a row made after [`DEBOUNCE`] before they are
/// spaced out.
pub const FREE_RESTORES: u32 = 3;
/// The longest spacing of repeated restores of one topic.
pub const MAX_SPACING: Duration = Duration::from_secs(60);
/// How long a topic must be left alone before its restores are spaced
/// from [`DEBOUNCE`] again.
pub const FIGHT_MEMORY: Duration = Duration::from_secs(300);
/// The most topics waiting for a restore at once.
pub const MAX_PENDING: usize = 10_000;
/// The most restores made per wake-up.
pub const RESTORES_PER_PASS: usize = 256;
/// The shortest time between two republish-everything passes after
/// messages were dropped.
pub const OVERFLOW_SPACING: Duration = Duration::from_secs(30);
/// Messages on watched topics waiting for the watch task.
pub const INBOX_CAPACITY: usize = 16_384;

/// A retained topic the hub owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedTopic {
    /// `signet/v1/groups/{id}/manifest`.
    Manifest(String),
    /// `signet/v1/devices/{id}/assignment`.
    Assignment(String),
    /// `signet/v1/trust`.
    Trust,
    /// `signet/v1/hub/time`.
    HubTime,
}

/// Which owned retained topic `topic` is, if any.
#[must_use]
pub fn owned_topic(topic: &str) -> Option<OwnedTopic> {
    if topic == TRUST_TOPIC {
        return Some(OwnedTopic::Trust);
    }
    if topic == HUB_TIME_TOPIC {
        return Some(OwnedTopic::HubTime);
    }
    let rest = topic.strip_prefix(TOPIC_PREFIX)?.strip_prefix('/')?;
    let id_ok = |id: &str| !id.is_empty() && id.len() <= MAX_ID_LEN;
    if let Some(group) = rest
        .strip_prefix("groups/")
        .and_then(|r| r.strip_suffix("/manifest"))
        .filter(|g| id_ok(g) && !g.contains('/'))
    {
        return Some(OwnedTopic::Manifest(group.to_owned()));
    }
    rest.strip_prefix("devices/")
        .and_then(|r| r.strip_suffix("/assignment"))
        .filter(|d| id_ok(d) && !d.contains('/'))
        .map(|device| OwnedTopic::Assignment(device.to_owned()))
}

/// What the hub wants retained on `topic`: its latest signed envelope, or
/// `None` when it has no document there (the topic should be empty).
///
/// # Errors
/// When the store fails.
pub fn expected(state: &Hub, topic: &OwnedTopic) -> Result<Option<Vec<u8>>, StoreError> {
    let store = &state.store;
    let stored = match topic {
        OwnedTopic::Trust => return Ok(Some(state.keys.current().trust.clone())),
        OwnedTopic::HubTime => super::hub_time::latest_envelope(store)?,
        OwnedTopic::Manifest(group) => {
            crate::publish::envelope_of(store, DocumentKind::GroupManifest, group)?
        }
        OwnedTopic::Assignment(device) => {
            crate::publish::envelope_of(store, DocumentKind::DeviceAssignment, device)?
        }
    };
    Ok(stored.map(String::into_bytes))
}

/// The sending side the event loop uses: never waits.
#[derive(Clone)]
pub struct WatchInbox {
    /// Messages for the watch task.
    sender: mpsc::Sender<Publish>,
    /// Set when a message had to be dropped.
    overflow: Arc<AtomicBool>,
}

impl WatchInbox {
    /// Hands `publish` to the watch task, or marks an overflow when its
    /// inbox is full.
    pub fn offer(&self, publish: Publish) {
        if self.sender.try_send(publish).is_err() {
            self.overflow.store(true, Ordering::Relaxed);
        }
    }
}

/// The watch task's receiving side, made with its [`WatchInbox`].
pub struct WatchQueue {
    /// Messages from the event loop.
    receiver: mpsc::Receiver<Publish>,
    /// Set when a message had to be dropped.
    overflow: Arc<AtomicBool>,
}

/// A connected inbox and queue.
#[must_use]
pub fn channel() -> (WatchInbox, WatchQueue) {
    let (sender, receiver) = mpsc::channel(INBOX_CAPACITY);
    let overflow = Arc::new(AtomicBool::new(false));
    (
        WatchInbox {
            sender,
            overflow: overflow.clone(),
        },
        WatchQueue { receiver, overflow },
    )
}

/// The restores made on one topic lately.
#[derive(Debug, Clone, Copy)]
struct History {
    /// Restores in a row, each within [`FIGHT_MEMORY`] of the previous one.
    restores: u32,
    /// When the last one was made.
    last: Instant,
}

/// When a topic that deviated at `now` is restored, given its `previous`
/// restores: [`DEBOUNCE`] later, or — after [`FREE_RESTORES`] restores in
/// a row, each within [`FIGHT_MEMORY`] of the previous — no sooner than an
/// exponentially growing spacing (up to [`MAX_SPACING`]) after the last.
fn restore_at(previous: Option<&History>, now: Instant) -> Instant {
    let earliest = now + DEBOUNCE;
    match previous {
        Some(h) if now.saturating_duration_since(h.last) < FIGHT_MEMORY => {
            let doublings = h.restores.saturating_sub(FREE_RESTORES - 1).min(6);
            let spacing = DEBOUNCE.saturating_mul(1_u32 << doublings).min(MAX_SPACING);
            earliest.max(h.last + spacing)
        }
        _ => earliest,
    }
}

/// The watch task's state.
struct Watch {
    /// The hub's state (store, keys, metrics).
    state: Hub,
    /// Where restores go (the link's own publisher: queues, never waits).
    publisher: Arc<dyn Publisher>,
    /// The topics waiting for a restore, with when it is due.
    due: BTreeSet<(Instant, String)>,
    /// The due time of each waiting topic (the key into `due`).
    pending: HashMap<String, Instant>,
    /// Recent restores per topic.
    history: HashMap<String, History>,
    /// Set when messages were dropped: republish everything.
    overflow: Arc<AtomicBool>,
    /// When everything was last republished after an overflow.
    last_overflow_pass: Option<Instant>,
}

/// Runs the watch until `cancel`: compares each message of `queue` with
/// what the hub holds and restores what differs (see the module doc).
/// `client` acknowledges a message that arrived with QoS 1 (the hub
/// subscribes with QoS 0; a broker may still send more).
pub async fn run(
    state: Hub,
    publisher: Arc<dyn Publisher>,
    client: AsyncClient,
    queue: WatchQueue,
    cancel: CancellationToken,
) {
    let WatchQueue {
        mut receiver,
        overflow,
    } = queue;
    let mut watch = Watch {
        state,
        publisher,
        due: BTreeSet::new(),
        pending: HashMap::new(),
        history: HashMap::new(),
        overflow,
        last_overflow_pass: None,
    };
    let mut overflow_tick = tokio::time::interval(OVERFLOW_SPACING / 3);
    overflow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = watch.due.first().map(|(at, _)| *at);
        tokio::select! {
            () = cancel.cancelled() => break,
            message = receiver.recv() => {
                let Some(publish) = message else { break };
                if publish.qos != QoS::AtMostOnce {
                    let _ = client.try_ack(&publish);
                }
                watch.observe(&publish.topic, &publish.payload, Instant::now());
            }
            () = sleep_until(next), if next.is_some() => watch.restore_due(Instant::now()).await,
            _ = overflow_tick.tick() => watch.after_overflow(Instant::now()).await,
        }
    }
    tracing::info!("retained-state watch stopped");
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Watch {
    /// One message on a watched topic, seen at `now`.
    fn observe(&mut self, topic: &str, payload: &[u8], now: Instant) {
        let Some(owned) = owned_topic(topic) else {
            return;
        };
        let wanted = match expected(&self.state, &owned) {
            Ok(wanted) => wanted,
            Err(e) => {
                tracing::error!(%topic, error = %e, "retained-state watch cannot read the store");
                return;
            }
        };
        let as_wanted = match &wanted {
            Some(bytes) => bytes.as_slice() == payload,
            None => payload.is_empty(),
        };
        if as_wanted {
            // The hub's own echo, or the broker holds what the hub wants.
            if let Some(at) = self.pending.remove(topic) {
                self.due.remove(&(at, topic.to_owned()));
            }
            return;
        }
        if self.pending.contains_key(topic) {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.overflow.store(true, Ordering::Relaxed);
            return;
        }
        let at = self.next_restore(topic, now);
        tracing::warn!(
            %topic,
            bytes = payload.len(),
            in_ms = at.saturating_duration_since(now).as_millis(),
            "a retained message on a hub topic is not the hub's document; restoring it"
        );
        self.pending.insert(topic.to_owned(), at);
        self.due.insert((at, topic.to_owned()));
    }

    /// When a restore of `topic` may happen, given its recent restores.
    fn next_restore(&self, topic: &str, now: Instant) -> Instant {
        restore_at(self.history.get(topic), now)
    }

    /// Restores every topic due at `now` (at most [`RESTORES_PER_PASS`]).
    async fn restore_due(&mut self, now: Instant) {
        for _ in 0..RESTORES_PER_PASS {
            let Some((at, topic)) = self.due.first().cloned() else {
                return;
            };
            if at > now {
                return;
            }
            self.due.remove(&(at, topic.clone()));
            self.pending.remove(&topic);
            self.restore(topic, now).await;
        }
    }

    async fn restore(&mut self, topic: String, now: Instant) {
        let Some(owned) = owned_topic(&topic) else {
            return;
        };
        let wanted = match expected(&self.state, &owned) {
            Ok(wanted) => wanted,
            Err(e) => {
                tracing::error!(%topic, error = %e, "retained-state watch cannot read the store");
                return;
            }
        };
        let clearing = wanted.is_none();
        let message = RetainedMessage {
            topic: topic.clone(),
            payload: wanted.unwrap_or_default(),
        };
        if let Err(e) = self.publisher.publish(message).await {
            tracing::warn!(%topic, error = %e, "restoring a retained message failed; trying again");
            if self.pending.len() < MAX_PENDING {
                let at = now + DEBOUNCE;
                self.pending.insert(topic.clone(), at);
                self.due.insert((at, topic));
            }
            return;
        }
        self.state.metrics.count_restored(&topic);
        let restores = match self.history.get(&topic) {
            Some(h) if now.saturating_duration_since(h.last) < FIGHT_MEMORY => {
                h.restores.saturating_add(1)
            }
            _ => 1,
        };
        if clearing {
            tracing::warn!(%topic, restores, "cleared a retained message on a topic the hub has no document for");
        } else {
            tracing::warn!(%topic, restores, "restored the hub's retained document");
        }
        if restores >= FREE_RESTORES {
            tracing::warn!(%topic, restores, "another client keeps changing this retained topic; restores are spaced out");
        }
        if self.history.len() >= MAX_PENDING {
            self.history
                .retain(|_, h| now.saturating_duration_since(h.last) < FIGHT_MEMORY);
        }
        if self.history.len() < MAX_PENDING || self.history.contains_key(&topic) {
            self.history.insert(
                topic,
                History {
                    restores,
                    last: now,
                },
            );
        }
    }

    /// Republishes everything the hub owns when messages were dropped,
    /// at most every [`OVERFLOW_SPACING`].
    async fn after_overflow(&mut self, now: Instant) {
        if self
            .last_overflow_pass
            .is_some_and(|last| now.saturating_duration_since(last) < OVERFLOW_SPACING)
            || !self.overflow.swap(false, Ordering::Relaxed)
        {
            return;
        }
        self.last_overflow_pass = Some(now);
        tracing::warn!(
            "retained-state watch dropped messages; republishing every retained document"
        );
        match crate::publish::republish_all(
            &self.state.store,
            &self.state.keys.current().trust,
            self.publisher.as_ref(),
        )
        .await
        {
            Ok(report) => tracing::info!(sent = report.sent, failed = report.failed, "republished"),
            Err(e) => tracing::error!(error = %e, "republishing after an overflow failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S4: a burst waits one debounce; a party that keeps changing a topic
    /// gets restores spaced ever wider up to the cap; a topic left alone
    /// for a while starts afresh.
    #[test]
    fn s4_restores_of_a_fought_topic_are_spaced_out() {
        let start = Instant::now();
        assert_eq!(restore_at(None, start), start + DEBOUNCE);
        let mut history = History {
            restores: 0,
            last: start,
        };
        let mut gaps = Vec::new();
        let mut now = start;
        for _ in 0..12 {
            // The other party changes the topic right after each restore.
            let at = restore_at(Some(&history).filter(|h| h.restores > 0), now);
            gaps.push(at.saturating_duration_since(history.last).as_secs());
            history = History {
                restores: history.restores + 1,
                last: at,
            };
            now = at;
        }
        assert_eq!(&gaps[..3], &[1, 1, 1], "{gaps:?}");
        assert_eq!(&gaps[3..7], &[2, 4, 8, 16], "{gaps:?}");
        assert!(gaps.iter().all(|g| *g <= MAX_SPACING.as_secs()), "{gaps:?}");
        assert_eq!(*gaps.last().unwrap(), MAX_SPACING.as_secs());
        let quiet = now + FIGHT_MEMORY;
        assert_eq!(restore_at(Some(&history), quiet), quiet + DEBOUNCE);
    }

    #[test]
    fn s4_owned_topics() {
        assert_eq!(owned_topic(TRUST_TOPIC), Some(OwnedTopic::Trust));
        assert_eq!(owned_topic(HUB_TIME_TOPIC), Some(OwnedTopic::HubTime));
        assert_eq!(
            owned_topic("signet/v1/groups/n-1/manifest"),
            Some(OwnedTopic::Manifest("n-1".into()))
        );
        assert_eq!(
            owned_topic("signet/v1/devices/d-1/assignment"),
            Some(OwnedTopic::Assignment("d-1".into()))
        );
        for other in [
            "signet/v1/devices/d-1/state",
            "signet/v1/devices/d-1/commands",
            "signet/v1/groups//manifest",
            "signet/v1/groups/a/b/manifest",
            "signet/v2/trust",
            "signet/v1/trust/x",
        ] {
            assert_eq!(owned_topic(other), None, "{other}");
        }
    }
}
