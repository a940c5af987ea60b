//! The only writer of rendition jobs, the queue and the renditions' entries
//! in the hash index ([`super`]'s storage table). Every function works in
//! the caller's transaction, so a job changes with the reads it rests on.

use chrono::{DateTime, Utc};
use signet_common::digest::Sha256;
use signet_common::ids::ItemId;

use super::{JobState, MAX_QUEUED, RENDITION_JOBS, RENDITION_QUEUE, RenditionFile, RenditionJob};
use crate::content::{CONTENT_BY_HASH, hash_key};
use crate::store::{Store, StoreError, Tx};
use crate::values::ordered_id;

/// The queue is full: [`MAX_QUEUED`] jobs wait already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// `item`'s jobs, in profile order, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn jobs_of_in(tx: &mut Tx, item: &ItemId) -> Result<Vec<RenditionJob>, StoreError> {
    tx.scan(RENDITION_JOBS, &format!("{item}/"))
}

/// Stores `job` (replacing the job of its item and profile) as queued at
/// `now`, at the end of the queue; answers the blob of the rendition it
/// replaces, if any, for removal once unused.
///
/// # Errors
/// `Ok(Err(QueueFull))` when [`MAX_QUEUED`] jobs wait; store failures.
pub fn enqueue_in(
    tx: &mut Tx,
    mut job: RenditionJob,
    now: DateTime<Utc>,
) -> Result<Result<Option<Sha256>, QueueFull>, StoreError> {
    let key = super::job_key(&job.item, &job.profile);
    let old: Option<RenditionJob> = tx.get(RENDITION_JOBS, &key)?;
    let waiting = tx.scan_keys(RENDITION_QUEUE, "")?;
    let already_queued = old.as_ref().and_then(|o| o.queue_key.as_ref());
    if already_queued.is_none() && waiting.len() >= MAX_QUEUED {
        return Ok(Err(QueueFull));
    }
    if let Some(queued) = already_queued {
        tx.delete(RENDITION_QUEUE, queued);
    }
    let replaced = old.and_then(|o| o.rendition).map(|file| {
        tx.delete(CONTENT_BY_HASH, &hash_key(&file.sha256, &job.item));
        file.sha256
    });
    let queue_key = ordered_id(now);
    tx.put(RENDITION_QUEUE, &queue_key, &key)?;
    job.state = JobState::Queued;
    job.percent = 0;
    job.reason = None;
    job.rendition = None;
    job.requested_at = now;
    job.started_at = None;
    job.finished_at = None;
    job.queue_key = Some(queue_key);
    tx.put(RENDITION_JOBS, &key, &job)?;
    Ok(Ok(replaced))
}

/// The first queued job's key, if any.
///
/// # Errors
/// When the store fails.
pub fn next_queued(store: &Store) -> Result<Option<String>, StoreError> {
    Ok(store
        .scan_keyed::<String>(RENDITION_QUEUE, "")?
        .into_iter()
        .next()
        .map(|(_, key)| key))
}

/// Takes the job `key` off the queue and marks it running from `now`;
/// `None` when it is no longer queued (deleted, or taken).
///
/// # Errors
/// When the store fails.
pub fn start_in(
    tx: &mut Tx,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<RenditionJob>, StoreError> {
    let Some(mut job) = tx.get::<RenditionJob>(RENDITION_JOBS, key)? else {
        return Ok(None);
    };
    let Some(queued) = job.queue_key.take() else {
        return Ok(None);
    };
    tx.delete(RENDITION_QUEUE, &queued);
    job.state = JobState::Running;
    job.percent = 0;
    job.started_at = Some(now);
    tx.put(RENDITION_JOBS, key, &job)?;
    Ok(Some(job))
}

/// Stores `percent` of the running job `key` (started at `started`); a
/// job that was replaced or removed meanwhile is left alone.
///
/// # Errors
/// When the store fails.
pub fn progress_in(
    tx: &mut Tx,
    key: &str,
    started: Option<DateTime<Utc>>,
    percent: u8,
) -> Result<(), StoreError> {
    if let Some(mut job) = running_in(tx, key, started)? {
        job.percent = percent.min(99);
        tx.put(RENDITION_JOBS, key, &job)?;
    }
    Ok(())
}

/// The job `key` if it is still the run that started at `started`.
fn running_in(
    tx: &mut Tx,
    key: &str,
    started: Option<DateTime<Utc>>,
) -> Result<Option<RenditionJob>, StoreError> {
    Ok(tx
        .get::<RenditionJob>(RENDITION_JOBS, key)?
        .filter(|job| job.state == JobState::Running && job.started_at == started))
}

/// Ends the running job `key` (started at `started`) at `now`: done with
/// `file`, whose blob the hash index then names as the item's; or failed
/// with `reason`. `false` when the job was replaced or removed meanwhile
/// (nothing written).
///
/// # Errors
/// When the store fails.
pub fn finish_in(
    tx: &mut Tx,
    key: &str,
    started: Option<DateTime<Utc>>,
    outcome: Result<RenditionFile, String>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(mut job) = running_in(tx, key, started)? else {
        return Ok(false);
    };
    job.finished_at = Some(now);
    match outcome {
        Ok(file) => {
            tx.put(
                CONTENT_BY_HASH,
                &hash_key(&file.sha256, &job.item),
                &job.item,
            )?;
            job.state = JobState::Done;
            job.percent = 100;
            job.rendition = Some(file);
        }
        Err(reason) => {
            job.state = JobState::Failed;
            job.reason = Some(reason);
        }
    }
    tx.put(RENDITION_JOBS, key, &job)?;
    Ok(true)
}

/// Queues again every job left running (the hub stopped during it).
///
/// # Errors
/// When the store fails.
pub fn requeue_running_in(tx: &mut Tx, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let running: Vec<RenditionJob> = tx
        .scan::<RenditionJob>(RENDITION_JOBS, "")?
        .into_iter()
        .filter(|job| job.state == JobState::Running)
        .collect();
    for job in &running {
        let key = super::job_key(&job.item, &job.profile);
        let queue_key = ordered_id(now);
        tx.put(RENDITION_QUEUE, &queue_key, &key)?;
        let requeued = RenditionJob {
            state: JobState::Queued,
            percent: 0,
            queue_key: Some(queue_key),
            ..job.clone()
        };
        tx.put(RENDITION_JOBS, &key, &requeued)?;
    }
    Ok(running.len())
}

/// Removes every job of `item` (deleted), its queue entries and its
/// renditions' hash-index entries; answers the renditions' blobs, for
/// removal once unused.
///
/// # Errors
/// When the store fails.
pub fn remove_of_item_in(tx: &mut Tx, item: &ItemId) -> Result<Vec<Sha256>, StoreError> {
    let mut blobs = Vec::new();
    for job in jobs_of_in(tx, item)? {
        if let Some(queued) = &job.queue_key {
            tx.delete(RENDITION_QUEUE, queued);
        }
        if let Some(file) = &job.rendition {
            tx.delete(CONTENT_BY_HASH, &hash_key(&file.sha256, item));
            blobs.push(file.sha256);
        }
        tx.delete(RENDITION_JOBS, &super::job_key(item, &job.profile));
    }
    Ok(blobs)
}
