//! Batched fleet ingest (U2, U4, S9; issue 17 point 3): device states and
//! proof-of-play batches are stored many to a commit.
//!
//! Owns: [`FleetIngest`] — one queue per hub and the one task that drains
//! it. Callers ([`super::record_state`], [`super::ingest_events`]) put a
//! report on the bounded queue and wait for its outcome; the task takes
//! whatever has arrived (at most [`MAX_BATCH`] reports; a report waiting
//! alone is committed at once), decides each one in order inside ONE
//! [`Store::transact`] and commits them with one flush. Every caller hears
//! its outcome only after that commit, so nothing is acknowledged before
//! it is durable (S9). While a commit flushes, the next reports queue up,
//! so the busier the fleet the larger the batches.
//!
//! Must not: take any lock but the engine's short commit lock (operator
//! writes never make ingest wait, nor the other way round); hold the hub or
//! its store while idle (each report brings the store and its receive time,
//! so a dropped hub closes its store at once, and its task ends); do
//! after-commit effects (the caller does, with the outcome it got).
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
use std::sync::{Mutex, PoisonError};

use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::{DeviceState, EventBatch, MAX_EVENTS_PER_BATCH};
use tokio::sync::{mpsc, oneshot};

use super::events::{
    Ingested, PLAY_EVENT_HOURS, PLAY_EVENT_IDS, PLAY_EVENTS, StoredEvent, check_event, event_key,
    hour_of,
};
use super::{DEVICE_STATES, DeviceStatus, Liveness, next_status};
use crate::app::Hub;
use crate::content::renditions::readers::READERS;
use crate::publish::publications::PUBLICATION_OPEN;
use crate::store::{Store, StoreError, Tx};

/// The most reports one commit takes.
pub const MAX_BATCH: usize = 512;
/// Reports waiting for the ingest task at most; further callers wait.
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
    Events(Ingested),
}

/// A report and who waits for it.
struct Job {
    /// The hub's store.
    store: Store,
    /// When it arrived, and the heartbeat timeout it is judged by.
    liveness: Liveness,
    /// The device whose topic or credentials it came with.
    device: DeviceId,
    /// The report.
    report: Report,
    /// Hears the outcome after the commit.
    done: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// The hub's fleet ingest queue (see the module doc). Started by its first
/// report.
#[derive(Debug, Default)]
pub struct FleetIngest {
    /// The queue to the ingest task, once started (again, if the runtime
    /// it ran on is gone).
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

impl FleetIngest {
    /// Stores `report` from `device` in the next batch and returns its
    /// outcome once that batch is durable.
    ///
    /// # Errors
    /// When the store fails (then this report changed nothing) or the
    /// ingest task is gone.
    pub async fn submit(
        &self,
        state: &Hub,
        device: &DeviceId,
        report: Report,
    ) -> Result<Outcome, StoreError> {
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
            device: device.clone(),
            report,
            done,
        };
        let stopped = || StoreError::Storage("the fleet ingest task stopped".into());
        queue.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// The ingest task: drains the queue batch by batch until every sender is
/// gone.
async fn run(mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        commit(std::mem::take(&mut jobs)).await;
    }
}

/// Commits `jobs` (of one hub) in one transaction and tells each caller;
/// when that fails, commits them one by one.
async fn commit(jobs: Vec<Job>) {
    let Some(store) = jobs.first().map(|j| j.store.clone()) else {
        return;
    };
    tracing::debug!(reports = jobs.len(), "committing a fleet ingest batch");
    let together = store
        .transact(|tx| {
            prefetch(tx, &jobs)?;
            jobs.iter()
                .map(|j| decide(tx, &j.device, &j.report, j.liveness))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await;
    match together {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                // A caller that stopped waiting is no error: it is stored.
                let _ = job.done.send(Ok(outcome));
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.done.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, reports = jobs.len(), "a fleet ingest batch failed; storing its reports one by one");
            for job in jobs {
                let alone = store
                    .transact(|tx| decide(tx, &job.device, &job.report, job.liveness))
                    .await;
                let _ = job.done.send(alone);
            }
        }
    }
}

/// Reads what deciding `jobs` will read, one engine call per tree.
fn prefetch(tx: &mut Tx, jobs: &[Job]) -> Result<(), StoreError> {
    let mut ids = BTreeSet::new();
    let mut hours = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for job in jobs {
        match &job.report {
            Report::State(_) => {
                devices.insert(job.device.as_str());
            }
            Report::Events { batch, .. } => {
                let events = batch.events.iter().take(MAX_EVENTS_PER_BATCH);
                for event in events.clone() {
                    ids.insert(event.id.as_str());
                    hours.insert(hour_of(event.start));
                }
                crate::access_groups::first_use::prefetch(tx, &job.device, events)?;
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
            events_into(tx, device, batch, node.as_ref(), liveness).map(Outcome::Events)
        }
    }
}

/// Stores each event of `batch` exactly once by id (U2); refuses events
/// naming another device, out of bounds, or beyond the batch limit.
fn events_into(
    tx: &mut Tx,
    device: &DeviceId,
    batch: &EventBatch,
    node: Option<&NodeId>,
    liveness: Liveness,
) -> Result<Ingested, StoreError> {
    let mut report = Ingested::default();
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
        crate::access_groups::first_use::note_play(tx, device, event, liveness.now)?;
        report.stored += 1;
    }
    for (hour, added) in hours {
        let count = tx.get::<u64>(PLAY_EVENT_HOURS, &hour)?.unwrap_or(0);
        tx.put(PLAY_EVENT_HOURS, &hour, &count.saturating_add(added))?;
    }
    Ok(report)
}
