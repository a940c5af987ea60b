//! The rendition worker (M3): runs queued jobs one at a time, in queue
//! order, and stores each step before it shows (S9).
//!
//! At start it queues again the jobs a stopped hub left running. It wakes
//! when a job is queued ([`wake`]) and polls every [`POLL`] besides. A job
//! transcodes the original into the blob store's temporary directory
//! ([`super::transcode`], on the blocking pool, bounded by
//! [`super::transcode::time_limit`]), stores its percent at most once per
//! [`PROGRESS_EVERY`], then streams the output into the blob store (hashed
//! like an upload) and records the rendition in one transaction that
//! checks the job and the item are still what it started with. A hub that
//! stops mid-job leaves it running in the store, to be redone.
//!
//! Owns: the loop and the one-at-a-time bound ([`SLOT`], process-wide).
//! Must not: hold a transaction across the transcode or a blob write.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::transcode::{self, Made};
use super::{PI, RenditionFile, RenditionJob, repo};
use crate::app::Hub;
use crate::content::blobs::TempFile;
use crate::content::service::drop_unused_blob;
use crate::content::{BlobStore, CONTENT, ContentItem};
use crate::identity::new_id;
use crate::store::StoreError;

/// How often the worker looks at the queue without being woken.
pub const POLL: Duration = Duration::from_secs(30);
/// How often a running job's percent is stored, at most.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Wakes the worker after a job was queued.
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);
/// One transcode at a time in this process.
static SLOT: Semaphore = Semaphore::const_new(1);

/// Tells the worker a job was queued.
pub fn wake() {
    WAKE.notify_waiters();
}

/// Starts the worker on `hub` until `stop`.
pub fn spawn(hub: Hub, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { run(hub, stop).await })
}

async fn run(hub: Hub, stop: CancellationToken) {
    let now = hub.now();
    match hub
        .store
        .transact(|tx| repo::requeue_running_in(tx, now))
        .await
    {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "rendition jobs left running are queued again"),
        Err(error) => tracing::error!(%error, "rendition jobs left running were not queued again"),
    }
    loop {
        let woken = WAKE.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match repo::next_queued(&hub.store) {
            Ok(Some(key)) => {
                if let Err(error) = run_job(&hub, &key, &stop).await {
                    tracing::error!(%key, %error, "rendition job: the store failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                if stop.is_cancelled() {
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "rendition queue unreadable"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = &mut woken => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Runs the queued job `key` to its end (or to a stop).
async fn run_job(hub: &Hub, key: &str, stop: &CancellationToken) -> Result<(), StoreError> {
    let Ok(_slot) = SLOT.acquire().await else {
        return Ok(());
    };
    let now = hub.now();
    let Some(job) = hub
        .store
        .transact(|tx| repo::start_in(tx, key, now))
        .await?
    else {
        return Ok(());
    };
    tracing::info!(%key, source = %job.source, "rendition job started");
    let outcome = make(hub, &job, key, stop).await;
    if stop.is_cancelled() {
        return Ok(()); // still running in the store: redone after the restart
    }
    let (started, now) = (job.started_at, hub.now());
    match outcome {
        Ok((file, pin)) => {
            let sha256 = file.sha256;
            let item_unchanged = |tx: &mut crate::store::Tx| {
                let item = tx.get::<ContentItem>(CONTENT, job.item.as_str())?;
                if item.is_some_and(|i| i.sha256 == job.source) {
                    repo::finish_in(tx, key, started, Ok(file.clone()), now)
                } else {
                    let gone = Err("the item was deleted or its bytes replaced meanwhile".into());
                    repo::finish_in(tx, key, started, gone, now).map(|_| false)
                }
            };
            let recorded = hub.store.transact(item_unchanged).await;
            drop(pin); // the hash index names the blob now, or never will
            if !matches!(recorded, Ok(true)) {
                drop_unused_blob(hub, &sha256)
                    .await
                    .map_err(|e| StoreError::Storage(e.to_string()))?;
            }
            recorded.map(|_| tracing::info!(%key, %sha256, "rendition job done"))
        }
        Err(reason) => {
            tracing::warn!(%key, %reason, "rendition job failed");
            let failed = |tx: &mut crate::store::Tx| {
                repo::finish_in(tx, key, started, Err(reason.clone()), now)
            };
            hub.store.transact(failed).await.map(|_| ())
        }
    }
}

/// Transcodes `job`'s original and commits the output to the blob store:
/// the rendition and the pin that keeps its blob until it is recorded.
async fn make(
    hub: &Hub,
    job: &RenditionJob,
    key: &str,
    stop: &CancellationToken,
) -> Result<(RenditionFile, crate::content::blobs::Pin), String> {
    let item: Option<ContentItem> = hub
        .store
        .get(CONTENT, job.item.as_str())
        .map_err(|e| e.to_string())?;
    let item = item
        .filter(|i| i.sha256 == job.source)
        .ok_or("the item was deleted or its bytes replaced")?;
    let blobs = BlobStore::new(hub.config.shared_dir());
    let source = blobs.path_of(&job.source);
    let tmp = blobs.tmp_dir();
    tokio::fs::create_dir_all(&tmp)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let target: PathBuf = tmp.join(format!("{}.mp4", new_id("render-")));
    let _temp = TempFile(Some(target.clone()));
    let made = run_transcode(
        hub,
        key,
        job,
        source,
        target.clone(),
        item.duration_ms,
        stop,
    )
    .await?;
    let file = tokio::fs::File::open(&target)
        .await
        .map_err(|e| e.to_string())?;
    let limit = hub.config.max_upload_bytes;
    let staged = blobs
        .stage(tokio_util::io::ReaderStream::new(file), limit)
        .await
        .map_err(|e| format!("the rendition was not stored: {e}"))?;
    let rendition = RenditionFile {
        sha256: staged.sha256,
        size: staged.size,
        codec: PI.codec.to_owned(),
        width: made.width,
        height: made.height,
        fps: PI.fps,
    };
    let pin = blobs.pin(&staged.sha256);
    blobs.commit(staged).await.map_err(|e| e.to_string())?;
    Ok((rendition, pin))
}

/// Runs the blocking transcode, storing its progress as it goes.
async fn run_transcode(
    hub: &Hub,
    key: &str,
    job: &RenditionJob,
    source: PathBuf,
    target: PathBuf,
    duration_ms: Option<u64>,
    stop: &CancellationToken,
) -> Result<Made, String> {
    let stopped = Arc::new(AtomicBool::new(false));
    let (percent_tx, mut percent_rx) = tokio::sync::watch::channel(0_u8);
    let deadline = Instant::now() + transcode::time_limit(duration_ms);
    let flag = Arc::clone(&stopped);
    let mut task = tokio::task::spawn_blocking(move || {
        let mut report = |p: u8| {
            let _ = percent_tx.send(p);
        };
        transcode::transcode(&source, &target, PI, deadline, &flag, &mut report)
    });
    let started = job.started_at;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut stored = 0_u8;
    loop {
        tokio::select! {
            done = &mut task => return done.map_err(|e| format!("the transcode task failed: {e}"))?,
            () = stop.cancelled(), if !stopped.load(Ordering::Relaxed) => {
                stopped.store(true, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let percent = *percent_rx.borrow_and_update();
                if percent != stored {
                    stored = percent;
                    let write = |tx: &mut crate::store::Tx| repo::progress_in(tx, key, started, percent);
                    if let Err(error) = hub.store.transact(write).await {
                        tracing::warn!(%key, %error, "rendition progress not stored");
                    }
                }
            }
        }
    }
}
