//! What devices report over MQTT (U2, U4, S9): the retained state on
//! `signet/v1/devices/{id}/state` and proof-of-play batches on
//! `signet/v1/devices/{id}/events`.
//!
//! Owns: checking a message against its topic — it must be a report signed
//! by the key registered at pairing for the device the topic names (S11,
//! [`signet_common::sync::signed`]), about that device alone — and handing
//! it to a [`DeviceReports`] sink — [`FleetReports`] in `serve`, which
//! calls [`crate::fleet`]; and the [`inbox`] that does so for every message
//! the hub's link receives. The inbox acknowledges a message only after
//! [`handle`] says [`Verdict::Stored`], [`Verdict::Refused`] or
//! [`Verdict::Ignored`] (S9), and counts each refusal. Must not: store
//! anything itself.
//!
//! # Many messages in flight
//! The inbox hands up to [`IN_FLIGHT`] messages to the sink at once, so the
//! fleet's ingest stores them many to a commit ([`crate::fleet::ingest`]),
//! and acknowledges them in the order they arrived, each once its own
//! effect is stored. The checks ([`check`]: signature, decoding — most of
//! a message's CPU) run on the blocking pool, one per core at once, and
//! their results reach the sink in arrival order ([`inbox`]).
//!
//! So a report reaches the fleet view or the usage reports only when the
//! device its topic names signed it, on any broker, whatever the broker's
//! access rules let others publish.

use std::sync::Arc;
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
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::fleet::Ingested;
use crate::metrics::Metrics;
use crate::store::StoreError;

/// The filters the hub subscribes to (QoS 1), under `signet/v1/`.
pub const SUBSCRIPTIONS: [&str; 2] = ["devices/+/state", "devices/+/events"];
/// The most device messages the inbox has in the sink's hands at once.
pub const IN_FLIGHT: usize = 1024;
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
pub async fn store(reports: &dyn DeviceReports, checked: &Checked) -> Verdict {
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

/// Hands each device message from `messages` to `reports` — up to
/// [`IN_FLIGHT`] at once — and acknowledges each, in arrival order, once
/// its effect is stored or it was refused (S9); a message whose store call
/// keeps failing is left unacknowledged for redelivery.
///
/// Two stages: the checks (signature, decoding) run on the blocking pool,
/// as many at once as there are cores; their results are handed to the
/// store in arrival order, so the fleet's ingest still sees a device's
/// reports in the order the broker delivered them.
pub async fn inbox(
    client: AsyncClient,
    reports: Arc<dyn DeviceReports>,
    metrics: Arc<Metrics>,
    mut messages: mpsc::Receiver<Publish>,
    cancel: CancellationToken,
) {
    let checkers = Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
    ));
    let mut checks = FuturesOrdered::new();
    let mut pending = FuturesOrdered::new();
    let mut open = true;
    while open || !checks.is_empty() || !pending.is_empty() {
        tokio::select! {
            () = cancel.cancelled() => break,
            next = messages.recv(), if open && checks.len() + pending.len() < IN_FLIGHT => match next {
                Some(publish) => checks.push_back(checked(
                    Arc::clone(&reports),
                    Arc::clone(&checkers),
                    publish,
                )),
                None => open = false,
            },
            Some((publish, checked)) = checks.next(), if !checks.is_empty() => {
                pending.push_back(settle(
                    Arc::clone(&reports),
                    Arc::clone(&metrics),
                    publish,
                    checked,
                    cancel.clone(),
                ));
            }
            Some((publish, acknowledge)) = pending.next(), if !pending.is_empty() => {
                if !acknowledge {
                    continue;
                }
                let acked = tokio::select! {
                    () = cancel.cancelled() => break,
                    r = client.ack(&publish) => r,
                };
                if let Err(e) = acked {
                    tracing::error!(error = %e, topic = %publish.topic, "acknowledging failed");
                }
            }
        }
    }
}

/// [`check`]s `publish` on the blocking pool once one of `checkers` is free.
async fn checked(
    reports: Arc<dyn DeviceReports>,
    checkers: Arc<Semaphore>,
    publish: Publish,
) -> (Publish, Checked) {
    let (topic, payload) = (publish.topic.clone(), publish.payload.clone());
    let run = async move {
        let _slot = checkers.acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || check(reports.as_ref(), &topic, &payload)).await
    };
    let checked = run
        .await
        .unwrap_or_else(|e| Checked::Done(Verdict::Failed(format!("the check failed: {e}"))));
    (publish, checked)
}

/// Hands one checked message to `reports`, trying a failing store call
/// [`STORE_ATTEMPTS`] times; returns it with whether to acknowledge it.
async fn settle(
    reports: Arc<dyn DeviceReports>,
    metrics: Arc<Metrics>,
    publish: Publish,
    checked: Checked,
    cancel: CancellationToken,
) -> (Publish, bool) {
    let topic = publish.topic.clone();
    let mut attempt = 0;
    let acknowledge = loop {
        attempt += 1;
        match store(reports.as_ref(), &checked).await {
            Verdict::Stored => break true,
            Verdict::Refused { reason, detail } => {
                metrics.count_refused_report(reason, "mqtt", &topic, &detail);
                break true;
            }
            Verdict::Ignored(detail) => {
                tracing::debug!(%topic, %detail, "device message ignored");
                break true;
            }
            Verdict::Failed(reason) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(%topic, %reason, attempt, "storing a device message failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => break false,
                    () = tokio::time::sleep(Duration::from_millis(200 << attempt)) => {}
                }
            }
            Verdict::Failed(reason) => {
                tracing::error!(%topic, %reason, "storing a device message failed; left unacknowledged for redelivery");
                break false;
            }
        }
    };
    (publish, acknowledge)
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
