//! What devices report over MQTT (U2, U4, S9): the retained state on
//! `signet/v1/devices/{id}/state` and proof-of-play batches on
//! `signet/v1/devices/{id}/events`.
//!
//! Owns: checking a message against its topic — it must be a report signed
//! by the key registered at pairing for the device the topic names (S11,
//! [`signet_common::sync::signed`]), about that device alone — and handing
//! it to a [`DeviceReports`] sink — [`FleetReports`] in `serve`, which
//! calls [`crate::fleet`]; and the [`inbox`] that does so for every message
//! the hub's link receives. The inbox acknowledges a message only once its
//! verdict is [`Verdict::Stored`] (durably), [`Verdict::Refused`] or
//! [`Verdict::Ignored`] (S9), and counts each refusal. Must not: store
//! anything itself.
//!
//! # Batches
//! The inbox checks and stores messages in batches, so a busy fleet costs
//! a few thread hand-offs per batch instead of several per message:
//! - it takes what the link has received (at most [`CHECK_BATCH`] at once,
//!   at most [`IN_FLIGHT`] not yet acknowledged) and puts it as one batch
//!   on a bounded queue ([`checkers`] batches long) that a fixed number of
//!   blocking workers drain — [`checkers`], one per core; each [`check`]s
//!   a whole batch (signature, decoding: most of a message's CPU);
//! - when the queue is full, or [`IN_FLIGHT`] messages are unacknowledged,
//!   the inbox waits and takes no more from the link's queue (back-pressure:
//!   the inbox drops nothing and its memory stays bounded; the broker's QoS
//!   1 in-flight window holds back what the link's queue cannot take);
//! - checked batches come back in the order they were taken, and each goes
//!   to the sink in one hand-off ([`DeviceReports::store_batch`]: the fleet
//!   stores it in its ingest's next commit, [`crate::fleet::ingest`]), so
//!   the fleet sees a device's reports in the order the broker delivered
//!   them;
//! - every message is acknowledged in arrival order once its verdict is
//!   known: stored durably, refused or ignored. A message whose store call
//!   failed is tried again alone, after the rest of its batch.
//!
//! So a report reaches the fleet view or the usage reports only when the
//! device its topic names signed it, on any broker, whatever the broker's
//! access rules let others publish.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use rumqttc::{AsyncClient, Publish};
use signet_common::envelope::PublicKey;
use signet_common::ids::{DeviceId, MAX_ID_LEN};
use signet_common::sync::signed::{Report, verify_report};
use signet_common::sync::{DeviceState, EventBatch, TOPIC_PREFIX};

use crate::app::Hub;
use crate::app::ingest::{Incoming, Settled};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::fleet::Ingested;
use crate::metrics::Metrics;
use crate::store::StoreError;

/// The filters the hub subscribes to (QoS 1), under `signet/v1/`.
pub const SUBSCRIPTIONS: [&str; 2] = ["devices/+/state", "devices/+/events"];
/// The most device messages the inbox holds unacknowledged at once
/// (taken from the link, being checked or stored).
pub const IN_FLIGHT: usize = 1024;
/// The most messages one batch takes.
pub const CHECK_BATCH: usize = 256;
/// How many times a failing store call is tried before the message is left
/// unacknowledged (the broker redelivers it when the session resumes).
const STORE_ATTEMPTS: u32 = 3;

/// Where checked device reports go, and the device keys they are checked
/// against.
pub trait DeviceReports: Send + Sync + 'static {
    /// The public key registered for `device` at pairing (S11); `None`
    /// when no such device is paired.
    ///
    /// # Errors
    /// When the store fails.
    fn registered_key(&self, device: &DeviceId) -> Result<Option<PublicKey>, StoreError>;

    /// Stores the state `device` reported, durably, before returning.
    ///
    /// # Errors
    /// When the store fails.
    fn state(
        &self,
        device: DeviceId,
        reported: DeviceState,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Stores each event of `batch` exactly once by id, durably, before
    /// returning.
    ///
    /// # Errors
    /// When the store fails.
    fn events(
        &self,
        device: DeviceId,
        batch: EventBatch,
    ) -> BoxFuture<'_, Result<Ingested, StoreError>>;

    /// Stores the reports of `batch` durably and gives each message its
    /// verdict, in order ([`Checked::Done`] keeps its own). This one hands
    /// them to [`Self::state`] and [`Self::events`] one by one; the fleet's
    /// sink hands the whole batch over at once.
    fn store_batch<'a>(&'a self, batch: &'a [Checked]) -> BoxFuture<'a, Vec<Verdict>> {
        Box::pin(async move {
            let mut verdicts = Vec::with_capacity(batch.len());
            for checked in batch {
                verdicts.push(store(self, checked).await);
            }
            verdicts
        })
    }
}

/// Sends the acknowledgement of a device message (QoS 1) to the broker:
/// the hub's link, [`AsyncClient`], in `serve`.
pub trait Acknowledge: Send + Sync + 'static {
    /// Acknowledges `publish`.
    ///
    /// # Errors
    /// When it cannot be queued for the broker.
    fn ack<'a>(&'a self, publish: &'a Publish) -> BoxFuture<'a, Result<(), String>>;
}

impl Acknowledge for AsyncClient {
    fn ack<'a>(&'a self, publish: &'a Publish) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            AsyncClient::ack(self, publish)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The sink `serve` uses: [`crate::fleet::record_state`] and
/// [`crate::fleet::ingest_events`].
pub struct FleetReports {
    /// The hub's state.
    pub state: Hub,
}

impl DeviceReports for FleetReports {
    fn registered_key(&self, device: &DeviceId) -> Result<Option<PublicKey>, StoreError> {
        crate::devices::registered_key(&self.state.store, device)
    }

    fn state(
        &self,
        device: DeviceId,
        reported: DeviceState,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { crate::fleet::record_state(&self.state, &device, reported).await })
    }

    fn events(
        &self,
        device: DeviceId,
        batch: EventBatch,
    ) -> BoxFuture<'_, Result<Ingested, StoreError>> {
        Box::pin(async move { crate::fleet::ingest_events(&self.state, &device, batch).await })
    }

    fn store_batch<'a>(&'a self, batch: &'a [Checked]) -> BoxFuture<'a, Vec<Verdict>> {
        Box::pin(async move {
            let reports = batch.iter().filter_map(|checked| match checked {
                Checked::State(device, reported) => {
                    Some((device.clone(), Incoming::State(reported.clone())))
                }
                Checked::Events(device, events) => {
                    Some((device.clone(), Incoming::Events(events.clone())))
                }
                Checked::Done(_) => None,
            });
            let hub = &self.state;
            let mut stored = hub
                .fleet_ingest
                .batch(hub, reports.collect())
                .await
                .into_iter();
            batch
                .iter()
                .map(|checked| {
                    if let Checked::Done(verdict) = checked {
                        return verdict.clone();
                    }
                    match stored.next() {
                        Some(Ok(Settled::State | Settled::Events(_))) => Verdict::Stored,
                        Some(Err(e)) => Verdict::Failed(e.to_string()),
                        None => Verdict::Failed("the fleet ingest gave no answer".into()),
                    }
                })
                .collect()
        })
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its effect is stored: acknowledge it.
    Stored,
    /// It is bad and never will be good — unsigned, signed by another key,
    /// about another device, malformed: acknowledge (drop) it without
    /// effect; the caller counts and logs it.
    Refused {
        /// A bounded label for the metric (`unsigned`, `wrong_key`, …).
        reason: &'static str,
        /// What was wrong, for the log.
        detail: String,
    },
    /// Nothing to do (a retained state cleared with an empty message, as
    /// the hub does when a device is removed): acknowledge it.
    Ignored(String),
    /// The store failed: do not acknowledge it, so it comes again.
    Failed(String),
}

/// Which report a topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTopic {
    /// `signet/v1/devices/{id}/state`.
    State(DeviceId),
    /// `signet/v1/devices/{id}/events`.
    Events(DeviceId),
}

/// Parses a device report topic.
///
/// # Errors
/// Why it is not one.
pub fn report_topic(topic: &str) -> Result<ReportTopic, String> {
    let rest = topic
        .strip_prefix(TOPIC_PREFIX)
        .and_then(|t| t.strip_prefix("/devices/"))
        .ok_or_else(|| format!("{topic:?} is not a device report topic"))?;
    let (device, kind) = rest
        .split_once('/')
        .ok_or_else(|| format!("{topic:?} is not a device report topic"))?;
    if device.is_empty() || device.len() > MAX_ID_LEN || device.contains(['+', '#']) {
        return Err(format!("{topic:?} names no valid device id"));
    }
    let device = DeviceId::new(device);
    match kind {
        "state" => Ok(ReportTopic::State(device)),
        "events" => Ok(ReportTopic::Events(device)),
        _ => Err(format!("{topic:?} is not a device report topic")),
    }
}

/// A message once checked: the report to store, or already its verdict.
#[derive(Debug)]
pub enum Checked {
    /// A verified state report about `0`.
    State(DeviceId, Box<DeviceState>),
    /// A verified event batch from `0`.
    Events(DeviceId, EventBatch),
    /// Nothing to store: the verdict.
    Done(Verdict),
}

/// Checks one message from `topic` (S11): pure work on the message and one
/// key look-up, so the inbox runs many at once off its own task.
pub fn check(reports: &dyn DeviceReports, topic: &str, payload: &[u8]) -> Checked {
    let kind = match report_topic(topic) {
        Ok(kind) => kind,
        Err(detail) => {
            return Checked::Done(Verdict::Refused {
                reason: "bad_topic",
                detail,
            });
        }
    };
    match kind {
        ReportTopic::State(device) => {
            if payload.is_empty() {
                // A cleared retained state (device removed): nothing to record.
                return Checked::Done(Verdict::Ignored(
                    "empty state message (retained state cleared)".into(),
                ));
            }
            match verified::<DeviceState>(reports, &device, payload) {
                Ok(reported) => Checked::State(device, Box::new(reported)),
                Err(verdict) => Checked::Done(verdict),
            }
        }
        ReportTopic::Events(device) => match verified::<EventBatch>(reports, &device, payload) {
            Ok(batch) => Checked::Events(device, batch),
            Err(verdict) => Checked::Done(verdict),
        },
    }
}

/// Hands a checked message to `reports`; its verdict once stored.
pub async fn store<R: DeviceReports + ?Sized>(reports: &R, checked: &Checked) -> Verdict {
    let stored = match checked {
        Checked::State(device, reported) => {
            reports
                .state(device.clone(), DeviceState::clone(reported))
                .await
        }
        Checked::Events(device, batch) => reports
            .events(device.clone(), batch.clone())
            .await
            .map(|_| ()),
        Checked::Done(verdict) => return verdict.clone(),
    };
    match stored {
        Ok(()) => Verdict::Stored,
        Err(e) => Verdict::Failed(e.to_string()),
    }
}

/// Checks one message from `topic` and hands it to `reports`.
pub async fn handle(reports: &dyn DeviceReports, topic: &str, payload: &[u8]) -> Verdict {
    store(reports, &check(reports, topic, payload)).await
}

/// How many blocking workers check batches: one per core, at most 4.
#[must_use]
pub fn checkers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

/// A batch of received messages for a checker, and where its checked
/// messages go.
struct CheckJob {
    /// The messages, in arrival order.
    publishes: Vec<Publish>,
    /// Hears them back with what [`check`] made of each.
    done: oneshot::Sender<(Vec<Publish>, Vec<Checked>)>,
}

/// Hands each device message from `messages` to `reports` in batches (see
/// the module doc) and acknowledges each, in arrival order, once its effect
/// is stored or it was refused (S9); a message whose store call keeps
/// failing is left unacknowledged for redelivery. Ends when `cancel` fires,
/// or when `messages` is closed and every message taken is settled.
pub async fn inbox(
    acks: impl Acknowledge,
    reports: Arc<dyn DeviceReports>,
    metrics: Arc<Metrics>,
    mut messages: mpsc::Receiver<Publish>,
    cancel: CancellationToken,
) {
    let workers = checkers();
    let (to_check, queue) = mpsc::channel::<CheckJob>(workers);
    let queue = Arc::new(Mutex::new(queue));
    for _ in 0..workers {
        let (reports, queue) = (Arc::clone(&reports), Arc::clone(&queue));
        tokio::task::spawn_blocking(move || check_batches(reports.as_ref(), &queue));
    }
    drop(queue);
    let mut received = Vec::with_capacity(CHECK_BATCH);
    let mut checks = FuturesOrdered::new();
    let mut pending = FuturesOrdered::new();
    let mut in_flight = 0_usize;
    let mut open = true;
    while open || in_flight > 0 {
        let room = IN_FLIGHT.saturating_sub(in_flight).min(CHECK_BATCH);
        tokio::select! {
            () = cancel.cancelled() => break,
            n = messages.recv_many(&mut received, room), if open && received.is_empty() && room > 0 => {
                if n == 0 {
                    open = false;
                }
                in_flight += n;
            }
            permit = to_check.reserve(), if !received.is_empty() => {
                let Ok(permit) = permit else {
                    tracing::error!("every device report checker stopped; device messages left for redelivery");
                    break;
                };
                let (done, checked) = oneshot::channel();
                let taken = received.len();
                permit.send(CheckJob { publishes: std::mem::take(&mut received), done });
                checks.push_back(async move { (taken, checked.await) });
            }
            Some((taken, checked)) = checks.next(), if !checks.is_empty() => match checked {
                Ok((publishes, checked)) => pending.push_back(settle(
                    Arc::clone(&reports),
                    Arc::clone(&metrics),
                    publishes,
                    checked,
                    cancel.clone(),
                )),
                Err(_) => {
                    tracing::error!(messages = taken, "a device report checker failed; its batch is left for redelivery");
                    in_flight -= taken;
                }
            },
            Some((publishes, acknowledge)) = pending.next(), if !pending.is_empty() => {
                in_flight -= publishes.len();
                for (publish, acknowledge) in publishes.iter().zip(acknowledge) {
                    if !acknowledge {
                        continue;
                    }
                    let acked = tokio::select! {
                        () = cancel.cancelled() => return,
                        r = acks.ack(publish) => r,
                    };
                    if let Err(error) = acked {
                        tracing::error!(%error, topic = %publish.topic, "acknowledging failed");
                    }
                }
            }
        }
    }
}

/// A checker: takes batches from `queue` until it is closed, and [`check`]s
/// every message of each.
fn check_batches(reports: &dyn DeviceReports, queue: &Mutex<mpsc::Receiver<CheckJob>>) {
    loop {
        let next = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        let Some(job) = next else {
            return;
        };
        let checked = job
            .publishes
            .iter()
            .map(|publish| check(reports, &publish.topic, &publish.payload))
            .collect();
        // An inbox that stopped waiting leaves the batch unacknowledged.
        let _ = job.done.send((job.publishes, checked));
    }
}

/// Hands a checked batch to `reports` in one go, then each message whose
/// store call failed alone again, up to [`STORE_ATTEMPTS`] times in all;
/// counts and logs refusals; returns the batch with whether to acknowledge
/// each message.
async fn settle(
    reports: Arc<dyn DeviceReports>,
    metrics: Arc<Metrics>,
    publishes: Vec<Publish>,
    checked: Vec<Checked>,
    cancel: CancellationToken,
) -> (Vec<Publish>, Vec<bool>) {
    let mut verdicts = reports.store_batch(&checked).await;
    verdicts.resize_with(checked.len(), || {
        Verdict::Failed("the sink gave no verdict".into())
    });
    let mut attempt = 1;
    loop {
        let failed: Vec<usize> = (0..verdicts.len())
            .filter(|i| matches!(verdicts[*i], Verdict::Failed(_)))
            .collect();
        if failed.is_empty() || attempt >= STORE_ATTEMPTS {
            break;
        }
        for &i in &failed {
            if let Verdict::Failed(reason) = &verdicts[i] {
                let topic = &publishes[i].topic;
                tracing::warn!(%topic, %reason, attempt, "storing a device message failed; retrying");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(200 << attempt)) => {}
        }
        attempt += 1;
        for i in failed {
            verdicts[i] = store(reports.as_ref(), &checked[i]).await;
        }
    }
    let acknowledge = publishes
        .iter()
        .zip(verdicts)
        .map(|(publish, verdict)| {
            let topic = &publish.topic;
            match verdict {
                Verdict::Stored => true,
                Verdict::Refused { reason, detail } => {
                    metrics.count_refused_report(reason, "mqtt", topic, &detail);
                    true
                }
                Verdict::Ignored(detail) => {
                    tracing::debug!(%topic, %detail, "device message ignored");
                    true
                }
                Verdict::Failed(reason) => {
                    tracing::error!(%topic, %reason, "storing a device message failed; left unacknowledged for redelivery");
                    false
                }
            }
        })
        .collect();
    (publishes, acknowledge)
}

/// The report in `payload`, verified against the key registered for
/// `device` (S11); otherwise the verdict to give.
fn verified<R: Report>(
    reports: &dyn DeviceReports,
    device: &DeviceId,
    payload: &[u8],
) -> Result<R, Verdict> {
    let key = match reports.registered_key(device) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Err(Verdict::Refused {
                reason: "unknown_device",
                detail: format!("no device {device} is paired"),
            });
        }
        Err(e) => return Err(Verdict::Failed(e.to_string())),
    };
    verify_report(payload, device, &key).map_err(|e| Verdict::Refused {
        reason: e.reason(),
        detail: format!("{} report on {device}'s topic: {e}", R::KIND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u4_report_topics() {
        assert_eq!(
            report_topic("signet/v1/devices/d-1/state"),
            Ok(ReportTopic::State(DeviceId::new("d-1")))
        );
        assert_eq!(
            report_topic("signet/v1/devices/d-1/events"),
            Ok(ReportTopic::Events(DeviceId::new("d-1")))
        );
        for bad in [
            "signet/v1/devices//state",
            "signet/v1/devices/d-1/assignment",
            "signet/v1/devices/d-1/state/x",
            "signet/v1/groups/g/manifest",
            "signet/v2/devices/d-1/state",
        ] {
            assert!(report_topic(bad).is_err(), "{bad}");
        }
    }
}
