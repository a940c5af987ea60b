//! File-system notifications for the cache and the config file (D9).
//!
//! Owns: one notify watcher over the blobs dir (recursive) and over the
//! config file's directory (non-recursive, filtered by the file's name, so
//! a config replaced by rename — as editors and configuration management
//! do — is seen), and the small task that coalesces repeated events for the
//! same path within [`DEBOUNCE`] before handing a [`Change`] on. Must not:
//! decide what a change means — the cache re-verifies a blob, the config
//! loader validates and applies a config; this module only says what
//! changed. The notify callback never blocks: when the hand-over queue is
//! full it drops the event and later sends one [`Change::Overflow`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long repeated events for the same path are coalesced.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// The hand-over queue between the notify callback and the coalescing task.
const RAW_CAPACITY: usize = 1024;
/// The most distinct changes waiting in the coalescing task; beyond it they
/// collapse into one [`Change::Overflow`].
const MAX_PENDING: usize = 4096;

/// What changed on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Something under the blobs dir was created, written, renamed or
    /// removed: re-verify this path. It may be a directory just created or
    /// moved in; its own watch is added as it appears, so files written
    /// into it before that raise no event of their own: re-verify
    /// everything under it.
    Blob(PathBuf),
    /// The config file was created, written, replaced by a rename or
    /// removed: validate and apply it again.
    Config,
    /// Events were lost (the hand-over queue overflowed, the kernel's queue
    /// overflowed, the watch failed, or the blobs dir itself moved):
    /// re-verify every blob and reload the config.
    Overflow,
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A watched directory is missing or unreadable.
    #[error("watch {path}: {source}")]
    Path {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The notify backend failed.
    #[error("watch {path}: {source}")]
    Notify {
        /// The directory.
        path: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
    /// Not called from inside a tokio runtime (the coalescing task needs
    /// one).
    #[error("the file watcher must start inside a tokio runtime")]
    NoRuntime,
}

/// Watches the blobs dir and the config file while it lives; dropping it
/// stops watching (and ends its coalescing task).
#[derive(Debug)]
pub struct Watcher {
    /// The notify watcher; its callback holds the hand-over queue.
    _inner: notify::RecommendedWatcher,
}

/// Which paths mean what (all canonical).
#[derive(Debug, Clone)]
struct Targets {
    /// The blobs dir.
    blobs: PathBuf,
    /// The config file's directory and name.
    config: Option<(PathBuf, std::ffi::OsString)>,
}

impl Targets {
    fn classify(&self, path: &Path) -> Option<Change> {
        if let Some((dir, name)) = &self.config
            && path.parent() == Some(dir.as_path())
            && path.file_name() == Some(name.as_os_str())
        {
            return Some(Change::Config);
        }
        if path == self.blobs {
            return Some(Change::Overflow);
        }
        path.starts_with(&self.blobs)
            .then(|| Change::Blob(path.to_owned()))
    }
}

/// Whether an event kind may change what a file holds.
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Any | EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(modify) => !matches!(modify, ModifyKind::Metadata(_)),
        EventKind::Access(_) | EventKind::Other => false,
    }
}

fn canonical(path: &Path) -> Result<PathBuf, WatchError> {
    path.canonicalize().map_err(|source| WatchError::Path {
        path: path.to_owned(),
        source,
    })
}

impl Watcher {
    /// Starts watching `blobs_dir` (recursively) and, if given,
    /// `config_file` (through its directory, which must exist; the file
    /// need not). Changes arrive on `tx`, coalesced. Must be called inside
    /// a tokio runtime.
    ///
    /// # Errors
    /// [`WatchError`] when a directory is missing or the backend fails.
    pub fn start(
        blobs_dir: &Path,
        config_file: Option<&Path>,
        tx: mpsc::Sender<Change>,
    ) -> Result<Self, WatchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let blobs = canonical(blobs_dir)?;
        let config = match config_file {
            None => None,
            Some(file) => {
                let name = file.file_name().ok_or_else(|| WatchError::Path {
                    path: file.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "not a file name",
                    ),
                })?;
                let dir = match file.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                Some((canonical(dir)?, name.to_owned()))
            }
        };
        let targets = Targets { blobs, config };
        let (raw_tx, raw_rx) = mpsc::channel(RAW_CAPACITY);
        let overflowed = Arc::new(AtomicBool::new(false));
        let callback = {
            let targets = targets.clone();
            let overflowed = Arc::clone(&overflowed);
            move |result: notify::Result<notify::Event>| {
                let push = |change: Change| {
                    if let Err(mpsc::error::TrySendError::Full(_)) = raw_tx.try_send(change) {
                        overflowed.store(true, Ordering::SeqCst);
                    }
                };
                match result {
                    Ok(event) => {
                        if event.need_rescan() {
                            push(Change::Overflow);
                        }
                        if relevant(&event.kind) {
                            for path in &event.paths {
                                if let Some(change) = targets.classify(path) {
                                    push(change);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("file watcher: {e}; re-verifying everything");
                        push(Change::Overflow);
                    }
                }
            }
        };
        let notify_error = |path: &Path| {
            let path = path.to_owned();
            move |source| WatchError::Notify { path, source }
        };
        let mut inner =
            notify::recommended_watcher(callback).map_err(notify_error(&targets.blobs))?;
        inner
            .watch(&targets.blobs, RecursiveMode::Recursive)
            .map_err(notify_error(&targets.blobs))?;
        if let Some((dir, _)) = &targets.config {
            inner
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(notify_error(dir))?;
        }
        runtime.spawn(coalesce(raw_rx, tx, overflowed, DEBOUNCE));
        Ok(Self { _inner: inner })
    }
}

/// Hands each change on `window` after it was first seen, absorbing its
/// repeats in between; sends one [`Change::Overflow`] (replacing whatever
/// waits) when the callback dropped events. Ends when the watcher is
/// dropped or the receiver of `tx` is.
async fn coalesce(
    mut raw: mpsc::Receiver<Change>,
    tx: mpsc::Sender<Change>,
    overflowed: Arc<AtomicBool>,
    window: Duration,
) {
    let mut pending: HashMap<Change, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            got = raw.recv() => {
                let Some(change) = got else { return };
                if pending.len() >= MAX_PENDING {
                    overflowed.store(true, Ordering::SeqCst);
                } else {
                    pending.entry(change).or_insert_with(|| Instant::now() + window);
                }
            }
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
        }
        if overflowed.swap(false, Ordering::SeqCst) {
            tracing::warn!("file watcher fell behind; re-verifying everything");
            pending.clear();
            pending.insert(Change::Overflow, Instant::now());
        }
        let now = Instant::now();
        let mut due: Vec<(Instant, Change)> = Vec::new();
        pending.retain(|change, at| {
            if *at <= now {
                due.push((*at, change.clone()));
                false
            } else {
                true
            }
        });
        due.sort_by_key(|(at, _)| *at);
        for (_, change) in due {
            if tx.send(change).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write as _;

    use super::*;

    struct Dirs {
        _root: tempfile::TempDir,
        blobs: PathBuf,
        config: PathBuf,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let blobs = root.path().join("cache").join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let config = etc.join("agent.toml");
        std::fs::write(&config, "hub = 1\n").unwrap();
        Dirs {
            blobs: blobs.canonicalize().unwrap(),
            config: etc.canonicalize().unwrap().join("agent.toml"),
            _root: root,
        }
    }

    /// Receives until `want` matches or `within` passes.
    async fn wait_for(
        rx: &mut mpsc::Receiver<Change>,
        within: Duration,
        want: impl Fn(&Change) -> bool,
    ) -> bool {
        tokio::time::timeout(within, async {
            while let Some(change) = rx.recv().await {
                if want(&change) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    }

    /// Everything received until nothing arrives for `quiet`.
    async fn collect(rx: &mut mpsc::Receiver<Change>, quiet: Duration) -> Vec<Change> {
        let mut out = Vec::new();
        while let Ok(Some(change)) = tokio::time::timeout(quiet, rx.recv()).await {
            out.push(change);
        }
        out
    }

    /// D9: writing into a cached file yields `Change::Blob` for it within
    /// 2 s; a file written into a directory created just before is covered
    /// by a change for the file or for its new directory.
    #[tokio::test]
    async fn d9_a_written_blob_is_reported() {
        let d = dirs();
        let (tx, mut rx) = mpsc::channel(16);
        let _watcher = Watcher::start(&d.blobs, Some(&d.config), tx).unwrap();
        let blob = d.blobs.join("abcdef");
        std::fs::write(&blob, b"cached").unwrap();
        assert!(
            wait_for(&mut rx, Duration::from_secs(2), |c| *c
                == Change::Blob(blob.clone()))
            .await,
            "no Change::Blob({})",
            blob.display()
        );
        let _ = collect(&mut rx, DEBOUNCE * 2).await;
        // Tampering later with the same file is reported again.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&blob)
            .unwrap()
            .write_all(b"tampered")
            .unwrap();
        assert!(
            wait_for(&mut rx, Duration::from_secs(2), |c| *c
                == Change::Blob(blob.clone()))
            .await,
            "no second Change::Blob({})",
            blob.display()
        );

        let dir = d.blobs.join("ab");
        let nested = dir.join("abcdef");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&nested, b"cached").unwrap();
        assert!(
            wait_for(&mut rx, Duration::from_secs(2), |c| {
                *c == Change::Blob(nested.clone()) || *c == Change::Blob(dir.clone())
            })
            .await,
            "no change for {}",
            nested.display()
        );
        // Once the directory is watched, its files report themselves.
        let _ = collect(&mut rx, DEBOUNCE * 2).await;
        std::fs::write(&nested, b"tampered").unwrap();
        assert!(
            wait_for(&mut rx, Duration::from_secs(2), |c| *c
                == Change::Blob(nested.clone()))
            .await,
            "no Change::Blob({})",
            nested.display()
        );
    }

    /// D9: a config replaced by writing a temp file and renaming it over
    /// yields `Change::Config`; a change to another file next to it does
    /// not.
    #[tokio::test]
    async fn d9_a_config_replaced_by_rename_is_reported_and_its_neighbours_are_not() {
        let d = dirs();
        let (tx, mut rx) = mpsc::channel(16);
        let _watcher = Watcher::start(&d.blobs, Some(&d.config), tx).unwrap();

        std::fs::write(d.config.with_file_name("other.toml"), "x = 2\n").unwrap();
        let seen = collect(&mut rx, DEBOUNCE * 3).await;
        assert!(seen.is_empty(), "a neighbour is not the config: {seen:?}");

        let tmp = d.config.with_file_name(".agent.toml.tmp");
        std::fs::write(&tmp, "hub = 2\n").unwrap();
        std::fs::rename(&tmp, &d.config).unwrap();
        assert!(
            wait_for(&mut rx, Duration::from_secs(2), |c| *c == Change::Config).await,
            "no Change::Config"
        );
        let rest = collect(&mut rx, DEBOUNCE * 3).await;
        assert!(
            rest.iter().all(|c| *c == Change::Config),
            "only the config: {rest:?}"
        );
    }

    /// D9: many rapid writes to one file are coalesced into a few changes.
    #[tokio::test]
    async fn d9_rapid_writes_are_coalesced() {
        let d = dirs();
        let (tx, mut rx) = mpsc::channel(16);
        let _watcher = Watcher::start(&d.blobs, None, tx).unwrap();
        let blob = d.blobs.join("big.part");
        let mut file = std::fs::File::create(&blob).unwrap();
        let writes = 200;
        for _ in 0..writes {
            file.write_all(&[7u8; 512]).unwrap();
            file.flush().unwrap();
        }
        file.sync_all().unwrap();
        drop(file);
        let seen = collect(&mut rx, DEBOUNCE * 3).await;
        assert!(!seen.is_empty(), "the writes are reported");
        assert!(
            seen.iter().all(|c| *c == Change::Blob(blob.clone())),
            "{seen:?}"
        );
        assert!(
            seen.len() <= writes / 20,
            "{} changes for {writes} writes",
            seen.len()
        );
    }

    /// D9: when the receiver falls behind, lost events turn into one
    /// `Change::Overflow`, never a blocked callback.
    #[tokio::test]
    async fn d9_a_full_queue_turns_into_overflow() {
        let (raw_tx, raw_rx) = mpsc::channel(4);
        let (tx, mut rx) = mpsc::channel(4);
        let overflowed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(coalesce(
            raw_rx,
            tx,
            Arc::clone(&overflowed),
            Duration::from_secs(1),
        ));
        raw_tx.send(Change::Blob("/b/1".into())).await.unwrap();
        overflowed.store(true, Ordering::SeqCst);
        raw_tx.send(Change::Blob("/b/2".into())).await.unwrap();
        let seen = collect(&mut rx, Duration::from_millis(300)).await;
        assert_eq!(
            seen,
            vec![Change::Overflow],
            "at once, replacing what waited"
        );
        drop(raw_tx);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the task ends with the watcher")
            .unwrap();
    }

    /// Access and metadata events are ignored; data, names and removal
    /// count.
    #[test]
    fn only_content_events_are_relevant() {
        use notify::event::{
            AccessKind, CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode,
        };
        assert!(!relevant(&EventKind::Access(AccessKind::Read)));
        assert!(!relevant(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(relevant(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
        assert!(relevant(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(relevant(&EventKind::Create(CreateKind::File)));
        assert!(relevant(&EventKind::Remove(RemoveKind::File)));
    }

    /// Watching needs its directories.
    #[tokio::test]
    async fn a_missing_blobs_dir_is_an_error() {
        let (tx, _rx) = mpsc::channel(1);
        let err = Watcher::start(Path::new("/nonexistent/signet/blobs"), None, tx).unwrap_err();
        assert!(matches!(err, WatchError::Path { .. }), "{err}");
    }
}
