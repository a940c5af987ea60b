//! Batched fleet ingest (U2, U4, S9, X2; issues 17 point 3 and 20):
//! device states and proof-of-play batches are stored many to a commit.
//!
//! Owns: [`FleetIngest`] — one queue per hub and the one task that drains
//! it — and the hub's [`ReportIngest`] over it. Callers hand over a batch
//! of reports at once ([`ReportIngest::batch`]: the MQTT inbox, a checked
//! batch of device messages) or one ([`super::record_state`],
//! [`super::ingest_events`]: the HTTP upload), as one job on the bounded
//! queue, and wait for its outcomes; the task takes whole jobs as they have
//! arrived (until [`MAX_BATCH`] reports; a job waiting alone is committed at
//! once), decides each report in order inside ONE [`Store::transact`] and
//! commits them with one flush. Every caller hears its outcomes only after
//! that commit, so nothing is acknowledged before it is durable (S9). While
//! a commit flushes, the next jobs queue up, so the busier the fleet the
//! larger the batches. After the commit, [`ReportIngest::batch`] tells the
//! fleet feed of each new state and signs again what a first use changed.
//!
//! Must not: take any lock but the engine's short commit lock (operator
//! writes never make ingest wait, nor the other way round); hold the hub or
//! its store while idle (each report brings the store and its receive time,
//! so a dropped hub closes its store at once, and its task ends); do
//! after-commit effects in the task (the caller does, with the outcomes it
//! got).
//!
//! Exactly once (U2): an event id is looked up inside the transaction, and
//! the reports of one batch see each other's writes, so an event is stored
//! once however its copies are spread over batches. The look-ups of a batch
//! (event ids, hour counts, device states, first-use members) are read
//! first, one engine call per tree ([`Tx::prefetch`]: one query each on
//! PostgreSQL, not one round trip per event), and checked at commit like
//! any read. A batch that fails as a
//! whole (a corrupt record, say) is retried report by report, so one bad
//! report fails alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::{Checked as _, DeviceState, EventBatch, MAX_EVENTS_PER_BATCH};
use tokio::sync::{mpsc, oneshot};

use super::events::{
    Ingested, PLAY_EVENT_HOURS, PLAY_EVENT_IDS, PLAY_EVENTS, StoredEvent, check_event, event_key,
    hour_of,
};
use super::{DEVICE_STATES, DeviceStatus, Liveness, next_status};
use crate::app::Hub;
use crate::app::ingest::{Incoming, ReportIngest, Settled};
use crate::content::renditions::readers::READERS;
use crate::publish::publications::PUBLICATION_OPEN;
use crate::store::{Store, StoreError, Tx};

/// The most reports one commit takes.
pub const MAX_BATCH: usize = 512;
/// Jobs (hand-offs of one or more reports) waiting for the ingest task at
/// most; further callers wait (each caller bounds its own hand-offs).
pub const QUEUE_CAPACITY: usize = 4096;

/// One report for the ingest task.
#[derive(Debug, Clone)]
pub enum Report {
    /// A state the device reported (already checked to be about it).
    State(Box<DeviceState>),
    /// A batch of proof-of-play events, with where the device was attached
    /// when it arrived.
    Events {
        /// The batch.
        batch: EventBatch,
        /// The device's node then.
        node: Option<NodeId>,
    },
}

/// What became of one report once committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The device's status as stored now.
    State(Box<DeviceStatus>),
    /// What became of the batch's events.
    Events {
        /// The events stored, duplicate or refused.
        ingested: Ingested,
        /// Whether the batch recorded a member's first use (L2: its group
        /// may have to be signed again).
        first_use: bool,
    },
}

/// Reports handed over together and who waits for them.
struct Job {
    /// The hub's store.
    store: Store,
    /// When they arrived, and the heartbeat timeout they are judged by.
    liveness: Liveness,
    /// Each report with the device whose topic or credentials it came
    /// with, in the order they are to be stored.
    reports: Vec<(DeviceId, Report)>,
    /// Hears each report's outcome, in order, after the commit.
    done: oneshot::Sender<Vec<Result<Outcome, StoreError>>>,
}

/// The hub's fleet ingest queue (see the module doc). Started by its first
/// report.
#[derive(Debug, Default)]
pub struct FleetIngest {
    /// The queue to the ingest task, once started (again, if the runtime
    /// it ran on is gone).
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// Whether no first-use mark is known to be left unpublished (L2):
    /// false at start (a mark may survive a crash) and after a pass that
    /// left marks (a failed publication), so the next batch of events
    /// calls [`crate::publish::after_first_use`] again; a batch that
    /// records no first use while it is true calls nothing (issue 20).
    marks_settled: Arc<AtomicBool>,
}

impl FleetIngest {
    /// Stores `reports` (each from its device, in this order) in the next
    /// batch and returns each one's outcome, in order, once that batch is
    /// durable.
    ///
    /// # Errors
    /// When the ingest task is gone (then nothing was stored); a report the
    /// store failed has its own error in the answer.
    pub async fn submit(
        &self,
        state: &Hub,
        reports: Vec<(DeviceId, Report)>,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let queue = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            match queue.as_ref() {
                Some(sender) if !sender.is_closed() => sender.clone(),
                _ => {
                    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
                    tokio::spawn(run(receiver));
                    queue.insert(sender).clone()
                }
            }
        };
        let (done, outcome) = oneshot::channel();
        let job = Job {
            store: state.store.clone(),
            liveness: Liveness::of(state),
            reports,
            done,
        };
        queue.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())
    }
}

/// The error of a report the ingest task did not answer.
fn stopped() -> StoreError {
    StoreError::Storage("the fleet ingest task stopped".into())
}

/// The ingest task: drains the queue batch by batch (whole hand-offs, until
/// [`MAX_BATCH`] reports or the queue is empty) until every sender is gone.
async fn run(mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut reports = first.reports.len();
        let mut jobs = vec![first];
        while reports < MAX_BATCH {
            let Ok(job) = queue.try_recv() else {
                break;
            };
            reports += job.reports.len();
            jobs.push(job);
        }
        commit(jobs).await;
    }
}

/// Commits `jobs` (of one hub) in one transaction and tells each caller;
/// when that fails, commits their reports one by one.
async fn commit(jobs: Vec<Job>) {
    let Some(store) = jobs.first().map(|j| j.store.clone()) else {
        return;
    };
    let total: usize = jobs.iter().map(|j| j.reports.len()).sum();
    tracing::debug!(reports = total, "committing a fleet ingest batch");
    let together = store
        .transact(|tx| {
            prefetch(tx, &jobs)?;
            let mut outcomes = Vec::with_capacity(total);
            for job in &jobs {
                for (device, report) in &job.reports {
                    outcomes.push(decide(tx, device, report, job.liveness)?);
                }
            }
            Ok::<_, StoreError>(outcomes)
        })
        .await;
    match together {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for job in jobs {
                let mine = outcomes.by_ref().take(job.reports.len()).map(Ok);
                // A caller that stopped waiting is no error: it is stored.
                let _ = job.done.send(mine.collect());
            }
        }
        Err(e) if total == 1 => {
            let mut e = Some(e);
            for job in jobs {
                let answers = job
                    .reports
                    .iter()
                    .map(|_| Err(e.take().unwrap_or_else(stopped)));
                let _ = job.done.send(answers.collect());
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, reports = total, "a fleet ingest batch failed; storing its reports one by one");
            for job in jobs {
                let mut answers = Vec::with_capacity(job.reports.len());
                for (device, report) in &job.reports {
                    let alone = store
                        .transact(|tx| decide(tx, device, report, job.liveness))
                        .await;
                    answers.push(alone);
                }
                let _ = job.done.send(answers);
            }
        }
    }
}

/// The hub's [`ReportIngest`] is the fleet's queue: [`FleetIngest`] stores
/// the reports, then the feed hears of each new state.
impl ReportIngest for FleetIngest {
    fn state<'a>(
        &'a self,
        hub: &'a Hub,
        device: &'a DeviceId,
        reported: DeviceState,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let report = Incoming::State(Box::new(reported));
            alone(self.batch(hub, vec![(device.clone(), report)]).await).map(|_| ())
        })
    }

    fn events<'a>(
        &'a self,
        hub: &'a Hub,
        device: &'a DeviceId,
        batch: EventBatch,
    ) -> BoxFuture<'a, Result<Ingested, StoreError>> {
        Box::pin(async move {
            let report = Incoming::Events(batch);
            match alone(self.batch(hub, vec![(device.clone(), report)]).await)? {
                Settled::Events(ingested) => Ok(ingested),
                Settled::State => Ok(Ingested::default()),
            }
        })
    }

    fn batch<'a>(
        &'a self,
        hub: &'a Hub,
        reports: Vec<(DeviceId, Incoming)>,
    ) -> BoxFuture<'a, Vec<Result<Settled, StoreError>>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(reports.len());
            let mut queued = Vec::with_capacity(reports.len());
            for (device, report) in reports {
                match admitted(hub, &device, report) {
                    Ok(Some(report)) => {
                        answers.push(None);
                        queued.push((device, report));
                    }
                    Ok(None) => answers.push(Some(Ok(Settled::State))),
                    Err(e) => answers.push(Some(Err(e))),
                }
            }
            let devices: Vec<DeviceId> = queued.iter().map(|(d, _)| d.clone()).collect();
            let mut outcomes = match self.submit(hub, queued).await {
                Ok(outcomes) => outcomes.into_iter(),
                Err(e) => devices
                    .iter()
                    .map(|_| Err(StoreError::Storage(e.to_string())))
                    .collect::<Vec<_>>()
                    .into_iter(),
            };
            let mut devices = devices.iter();
            let mut events = false;
            let mut first_use = false;
            let answers = answers.into_iter().map(|answer| {
                if let Some(answer) = answer {
                    return answer;
                }
                let (Some(device), Some(outcome)) = (devices.next(), outcomes.next()) else {
                    return Err(stopped());
                };
                match outcome? {
                    Outcome::State(status) => {
                        super::stream::heartbeat(hub, device, &status);
                        super::stream::device_changed(hub, device);
                        Ok(Settled::State)
                    }
                    Outcome::Events {
                        ingested,
                        first_use: used,
                    } => {
                        events = true;
                        first_use |= used;
                        Ok(Settled::Events(ingested))
                    }
                }
            });
            let answers = answers.collect();
            if events && self.republish_due(first_use) {
                // L2: a first use the batch recorded shortened a window: sign
                // it again, off the ingest path (the answer and the MQTT ack
                // never wait for a publish run or the broker).
                let after = hub.clone();
                let settled = Arc::clone(&self.marks_settled);
                tokio::spawn(async move {
                    crate::publish::after_first_use(&after).await;
                    let left = crate::access_groups::first_use::pending(&after.store);
                    if !left.is_ok_and(|marks| marks.is_empty()) {
                        settled.store(false, Ordering::SeqCst);
                    }
                });
            }
            answers
        })
    }
}

impl FleetIngest {
    /// Whether a batch of events that recorded a first use (`first_use`),
    /// or not, calls [`crate::publish::after_first_use`]: when it did, or
    /// when a mark may be left from before (see `marks_settled`).
    fn republish_due(&self, first_use: bool) -> bool {
        let unsettled = !self.marks_settled.swap(true, Ordering::SeqCst);
        first_use || unsettled
    }
}

/// The one answer of a batch of one.
fn alone(answers: Vec<Result<Settled, StoreError>>) -> Result<Settled, StoreError> {
    answers.into_iter().next().unwrap_or_else(|| Err(stopped()))
}

/// `report` from `device` as the ingest task stores it: an event batch with
/// the node the device is attached at now; `None` for a state naming
/// another device or out of its bounds (refused: logged, nothing stored).
///
/// # Errors
/// When the store fails to say where the device is attached.
fn admitted(hub: &Hub, device: &DeviceId, report: Incoming) -> Result<Option<Report>, StoreError> {
    match report {
        Incoming::State(reported) => {
            if &reported.device_id != device {
                tracing::warn!(%device, named = %reported.device_id,
                    "refused a device state naming another device");
                return Ok(None);
            }
            if let Err(e) = reported.check() {
                tracing::warn!(%device, error = %e, "refused a device state out of bounds");
                return Ok(None);
            }
            Ok(Some(Report::State(reported)))
        }
        Incoming::Events(batch) => Ok(Some(Report::Events {
            node: super::node_of(&hub.store, device)?,
            batch,
        })),
    }
}

/// Reads what deciding `jobs` will read, one engine call per tree.
fn prefetch(tx: &mut Tx, jobs: &[Job]) -> Result<(), StoreError> {
    let mut ids = BTreeSet::new();
    let mut hours = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for (device, report) in jobs.iter().flat_map(|j| &j.reports) {
        match report {
            Report::State(_) => {
                devices.insert(device.as_str());
            }
            Report::Events { batch, .. } => {
                let events = batch.events.iter().take(MAX_EVENTS_PER_BATCH);
                for event in events.clone() {
                    ids.insert(event.id.as_str());
                    hours.insert(hour_of(event.start));
                }
                crate::access_groups::first_use::prefetch(tx, device, events)?;
            }
        }
    }
    tx.prefetch(PLAY_EVENT_IDS, ids)?;
    tx.prefetch(PLAY_EVENT_HOURS, hours.iter().map(String::as_str))?;
    for tree in [DEVICE_STATES, PUBLICATION_OPEN, READERS] {
        tx.prefetch(tree, devices.iter().copied())?;
    }
    Ok(())
}

/// Writes one report into `tx`, reading what it rests on through `tx`.
fn decide(
    tx: &mut Tx,
    device: &DeviceId,
    report: &Report,
    liveness: Liveness,
) -> Result<Outcome, StoreError> {
    match report {
        Report::State(reported) => {
            let previous: Option<DeviceStatus> = tx.get(DEVICE_STATES, device.as_str())?;
            let status = next_status(previous, DeviceState::clone(reported), liveness);
            tx.put(DEVICE_STATES, device.as_str(), &status)?;
            crate::publish::publications::note_device_state_in(tx, device, reported)?;
            crate::content::renditions::readers::note_state_in(tx, device, reported, liveness.now)?;
            Ok(Outcome::State(Box::new(status)))
        }
        Report::Events { batch, node } => {
            let (ingested, first_use) = events_into(tx, device, batch, node.as_ref(), liveness)?;
            Ok(Outcome::Events {
                ingested,
                first_use,
            })
        }
    }
}

/// Stores each event of `batch` exactly once by id (U2); refuses events
/// naming another device, out of bounds, or beyond the batch limit. Says
/// too whether an event recorded a member's first use (L2).
fn events_into(
    tx: &mut Tx,
    device: &DeviceId,
    batch: &EventBatch,
    node: Option<&NodeId>,
    liveness: Liveness,
) -> Result<(Ingested, bool), StoreError> {
    let mut report = Ingested::default();
    let mut first_use = false;
    let mut seen = BTreeSet::new();
    let mut hours: BTreeMap<String, u64> = BTreeMap::new();
    for (index, event) in batch.events.iter().enumerate() {
        if index >= MAX_EVENTS_PER_BATCH {
            report.refused += 1;
            continue;
        }
        if let Err(reason) = check_event(device, event) {
            tracing::warn!(%device, id = %event.id, %reason, "refused a play event");
            report.refused += 1;
            continue;
        }
        if !seen.insert(event.id.as_str()) || tx.contains(PLAY_EVENT_IDS, &event.id)? {
            report.duplicates += 1;
            continue;
        }
        let key = event_key(event);
        *hours.entry(hour_of(event.start)).or_default() += 1;
        tx.put(PLAY_EVENT_IDS, &event.id, &key)?;
        let stored = StoredEvent {
            event: event.clone(),
            node: node.cloned(),
            received_at: liveness.now,
            user: None,
        };
        tx.put(PLAY_EVENTS, &key, &stored)?;
        first_use |=
            crate::access_groups::first_use::note_play(tx, device, event, liveness.now)?.is_some();
        report.stored += 1;
    }
    for (hour, added) in hours {
        let count = tx.get::<u64>(PLAY_EVENT_HOURS, &hour)?.unwrap_or(0);
        tx.put(PLAY_EVENT_HOURS, &hour, &count.saturating_add(added))?;
    }
    Ok((report, first_use))
}
