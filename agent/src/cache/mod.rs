//! The content-addressed cache (D2, D9, D10).
//!
//! Owns: the files under `{data_dir}/cache/` — `blobs/{sha256}` (verified
//! files only), `partial/{sha256}` (downloads in progress, kept for resuming)
//! and `quarantine/{sha256}.{unix millis}` (files that stopped matching their
//! hash) — and their index, the sled tree `cache` (key: the hex digest;
//! value: `{size, mtime_ns, last_needed}` recorded when a file is admitted).
//! A blob is admitted only after its bytes on disk hash to its name; the
//! in-memory set behind [`Cache::contains`] holds only admitted blobs.
//! [`Cache::open`] makes the cache trustworthy again after a crash or after
//! tampering while the agent was down. Must not: decide what is needed —
//! callers pass the needed set (from the current manifests) to
//! [`Cache::make_room`] and [`Cache::purge_unneeded`]; must not touch the
//! network ([`download`] does). Every method blocks (file I/O, hashing, sled
//! flush): async callers use `spawn_blocking`.

pub mod download;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;

use crate::killpoint;
use crate::state::{StateError, Store};

/// A partial download is fsync'd every `CHUNK_BYTES`; a kill loses at most
/// this much.
pub const CHUNK_BYTES: u64 = 256 * 1024;

/// The cache's directory inside the data dir.
const CACHE_DIR: &str = "cache";
/// Verified blobs, named by their digest.
const BLOBS_DIR: &str = "blobs";
/// Downloads in progress, named by the digest they must reach.
const PARTIAL_DIR: &str = "partial";
/// Files that stopped matching their digest, kept for the operator.
const QUARANTINE_DIR: &str = "quarantine";
/// The sled tree of the index.
const INDEX_TREE: &str = "cache";

/// The verified files' directory of the cache in `data_dir` (for readers
/// that do not open the cache, such as `signet-agent status`).
#[must_use]
pub fn blobs_dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join(CACHE_DIR).join(BLOBS_DIR)
}

/// How many quarantined files are kept (the newest); older ones are
/// deleted so quarantine cannot fill the disk (D10).
pub const QUARANTINE_KEEP: usize = 4;
/// The read buffer for hashing a file.
const HASH_BUFFER_BYTES: usize = 64 * 1024;

/// One verified blob in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBlob {
    /// Its content digest (and file name).
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// When a manifest last needed it (D10 eviction order); `None` if never
    /// recorded.
    pub last_needed: Option<DateTime<Utc>>,
}

/// What re-verifying a blob found (D9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reverified {
    /// The file still hashes to its name; it stays (or is now) admitted.
    Intact,
    /// The file no longer matched: it was moved to quarantine and dropped.
    Quarantined,
    /// There is no such file; any index record of it was dropped.
    Absent,
}

/// The needed content does not fit the cache limit (D10): nothing was
/// evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the needed content is {} MiB ({needed_bytes} bytes), more than the cache limit of {} MiB ({limit_bytes} bytes)",
    mib(*needed_bytes),
    mib(*limit_bytes)
)]
pub struct CacheFull {
    /// The total size of everything needed.
    pub needed_bytes: u64,
    /// The configured cache limit.
    pub limit_bytes: u64,
}

/// Bytes as MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    // Precision loss is irrelevant for a message.
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64 / (1024.0 * 1024.0);
    format!("{value:.1}")
}

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file or directory operation failed.
    #[error("cache: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The state store failed (opening the index tree, flushing).
    #[error("cache: {0}")]
    State(#[from] StateError),
    /// The index tree failed.
    #[error("cache index: {0}")]
    Index(#[from] sled::Error),
}

/// One index record, stored as JSON under the hex digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct IndexRecord {
    /// The file's size when admitted.
    size: u64,
    /// The file's modification time when admitted, in ns since the epoch.
    mtime_ns: u64,
    /// When a manifest last needed it.
    last_needed: Option<DateTime<Utc>>,
}

/// What admitting a finished partial download found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The bytes matched: the blob is in `blobs/` and indexed.
    Admitted,
    /// The bytes did not match (or had the wrong length): the partial was
    /// deleted.
    Mismatch {
        /// The digest of what was on disk.
        actual: Sha256,
        /// How many bytes were on disk.
        len: u64,
    },
}

/// The in-memory view, guarded together.
#[derive(Debug, Default)]
struct Contents {
    /// Admitted blobs and their index records.
    blobs: BTreeMap<Sha256, IndexRecord>,
    /// `last_needed` marks of needed blobs not yet present, applied when
    /// they are admitted.
    pending_marks: BTreeMap<Sha256, DateTime<Utc>>,
}

/// The shared state behind [`Cache`].
#[derive(Debug)]
struct Inner {
    /// `{data_dir}/cache`, absolute.
    root: PathBuf,
    /// The state store, for flushing.
    store: Store,
    /// The index tree.
    index: sled::Tree,
    /// The size limit in bytes.
    limit: AtomicU64,
    /// The admitted blobs.
    contents: RwLock<Contents>,
    /// Serializes every change to the files (admission, re-verification,
    /// eviction), so a re-hash never races a rename of the same name.
    files: Mutex<()>,
}

/// The content cache; cheap to clone, thread-safe, blocking.
#[derive(Debug, Clone)]
pub struct Cache {
    /// The shared state.
    inner: Arc<Inner>,
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl Cache {
    /// Opens the cache in `data_dir`, repairing it after a crash or tampering
    /// while the agent was down (D2, D9): a blob whose size or mtime differs
    /// from its index record is re-hashed and quarantined if wrong; a blob
    /// without a record is admitted only if it hashes to its name (else
    /// removed); records without a file are dropped; anything in `blobs/` or
    /// `partial/` not named by a digest is removed, as is a partial of a
    /// blob already present.
    ///
    /// # Errors
    /// On a file, index or flush failure.
    pub fn open(data_dir: &Path, store: &Store, limit_bytes: u64) -> Result<Cache, CacheError> {
        let root = data_dir.join(CACHE_DIR);
        for dir in [
            root.clone(),
            root.join(BLOBS_DIR),
            root.join(PARTIAL_DIR),
            root.join(QUARANTINE_DIR),
        ] {
            fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
        }
        let root = fs::canonicalize(&root).map_err(io_error("resolving", &root))?;
        let index = store.tree(INDEX_TREE)?;
        let cache = Cache {
            inner: Arc::new(Inner {
                root,
                store: store.clone(),
                index,
                limit: AtomicU64::new(limit_bytes),
                contents: RwLock::new(Contents::default()),
                files: Mutex::new(()),
            }),
        };
        cache.recover()?;
        Ok(cache)
    }

    /// The startup repair pass of [`Self::open`].
    fn recover(&self) -> Result<(), CacheError> {
        let _files = self.lock_files();
        let mut records = BTreeMap::new();
        for entry in self.inner.index.iter() {
            let (key, value) = entry?;
            let parsed = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.parse::<Sha256>().ok())
                .zip(serde_json::from_slice::<IndexRecord>(&value).ok());
            match parsed {
                Some((sha, record)) => {
                    records.insert(sha, record);
                }
                None => {
                    tracing::warn!(
                        key = %String::from_utf8_lossy(&key),
                        "dropping an unreadable cache index record"
                    );
                    self.inner.index.remove(key)?;
                }
            }
        }

        let mut admitted = BTreeMap::new();
        let blobs_dir = self.blobs_dir();
        for (name, path, is_file) in list_dir(&blobs_dir)? {
            let sha = name.parse::<Sha256>().ok().filter(|_| is_file);
            let Some(sha) = sha else {
                tracing::warn!(path = %path.display(), "removing a stray file from the cache");
                remove_any(&path)?;
                continue;
            };
            let (size, mtime_ns) = file_stamp(&path)?;
            let record = records.remove(&sha);
            if let Some(record) = record
                && record.size == size
                && record.mtime_ns == mtime_ns
            {
                admitted.insert(sha, record);
                continue;
            }
            let (actual, len) = hash_file(&path)?;
            if actual == sha {
                let record = IndexRecord {
                    size: len,
                    mtime_ns,
                    last_needed: record.and_then(|r| r.last_needed),
                };
                self.inner
                    .index
                    .insert(sha.to_string(), encode_record(&record))?;
                tracing::info!(%sha, size = len, "cache: admitted a verified blob found on disk");
                admitted.insert(sha, record);
            } else if record.is_some() {
                tracing::warn!(%sha, %actual, "cache: a blob changed while the agent was down");
                self.quarantine_file(&sha, &path)?;
                self.inner.index.remove(sha.to_string())?;
            } else {
                tracing::warn!(%sha, %actual, "cache: removing an unindexed file that does not match its name");
                remove_any(&path)?;
            }
        }
        for sha in records.keys() {
            tracing::warn!(%sha, "cache: dropping the index record of a missing blob");
            self.inner.index.remove(sha.to_string())?;
        }

        let partial_dir = self.partial_dir();
        for (name, path, is_file) in list_dir(&partial_dir)? {
            let keep = is_file
                && name
                    .parse::<Sha256>()
                    .is_ok_and(|sha| !admitted.contains_key(&sha));
            if !keep {
                tracing::info!(path = %path.display(), "cache: removing a leftover partial file");
                remove_any(&path)?;
            }
        }

        sync_dir(&blobs_dir)?;
        self.inner.store.flush()?;
        self.write_contents().blobs = admitted;
        Ok(())
    }

    /// The size limit in bytes (D10).
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.inner.limit.load(Ordering::Relaxed)
    }

    /// Changes the size limit (config reload); takes effect at the next
    /// [`Self::make_room`].
    pub fn set_limit(&self, bytes: u64) {
        self.inner.limit.store(bytes, Ordering::Relaxed);
    }

    /// The directory of verified blobs (for the file watcher).
    #[must_use]
    pub fn blobs_dir(&self) -> PathBuf {
        self.inner.root.join(BLOBS_DIR)
    }

    fn partial_dir(&self) -> PathBuf {
        self.inner.root.join(PARTIAL_DIR)
    }

    fn quarantine_dir(&self) -> PathBuf {
        self.inner.root.join(QUARANTINE_DIR)
    }

    /// Where the verified blob of `sha256` lives (whether or not present).
    #[must_use]
    pub fn blob_path(&self, sha256: &Sha256) -> PathBuf {
        self.blobs_dir().join(sha256.to_string())
    }

    /// Where the partial download of `sha256` lives.
    pub(crate) fn partial_path(&self, sha256: &Sha256) -> PathBuf {
        self.partial_dir().join(sha256.to_string())
    }

    /// Whether the blob is present and verified (in memory, no disk I/O).
    #[must_use]
    pub fn contains(&self, sha256: &Sha256) -> bool {
        self.read_contents().blobs.contains_key(sha256)
    }

    /// The bytes used: verified blobs plus partial downloads.
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        let blobs: u64 = self.read_contents().blobs.values().map(|r| r.size).sum();
        blobs.saturating_add(self.partials().values().sum())
    }

    /// How many bytes of `sha256` a partial download holds (0 if none).
    #[must_use]
    pub fn partial_len(&self, sha256: &Sha256) -> u64 {
        fs::metadata(self.partial_path(sha256)).map_or(0, |m| m.len())
    }

    /// Every verified blob.
    #[must_use]
    pub fn entries(&self) -> Vec<CachedBlob> {
        self.read_contents()
            .blobs
            .iter()
            .map(|(sha, record)| CachedBlob {
                sha256: *sha,
                size: record.size,
                last_needed: record.last_needed,
            })
            .collect()
    }

    /// Re-hashes the blob of `sha256` (D9). Matching: it stays (or becomes)
    /// admitted. Not matching: it is moved to quarantine and dropped from
    /// the index and the set, durably, so it is fetched again. Missing: its
    /// record is dropped.
    ///
    /// # Errors
    /// On a file, index or flush failure.
    pub fn reverify(&self, sha256: &Sha256) -> Result<Reverified, CacheError> {
        let _files = self.lock_files();
        let path = self.blob_path(sha256);
        let stamp = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => file_stamp(&path)?,
            Ok(_) => {
                tracing::warn!(path = %path.display(), "cache: removing a non-file in place of a blob");
                remove_any(&path)?;
                self.forget(sha256)?;
                return Ok(Reverified::Absent);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(sha256)?;
                return Ok(Reverified::Absent);
            }
            Err(source) => {
                return Err(CacheError::Io {
                    what: "reading",
                    path,
                    source,
                });
            }
        };
        let (actual, len) = match hash_file(&path) {
            Ok(hashed) => hashed,
            Err(CacheError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                self.forget(sha256)?;
                return Ok(Reverified::Absent);
            }
            Err(e) => return Err(e),
        };
        if actual == *sha256 {
            let last_needed = self
                .read_contents()
                .blobs
                .get(sha256)
                .and_then(|r| r.last_needed);
            let record = IndexRecord {
                size: len,
                mtime_ns: stamp.1,
                last_needed,
            };
            self.record(sha256, record)?;
            return Ok(Reverified::Intact);
        }
        tracing::warn!(%sha256, %actual, "cache: a blob no longer matches its hash; quarantined (D9)");
        self.quarantine_file(sha256, &path)?;
        self.forget(sha256)?;
        Ok(Reverified::Quarantined)
    }

    /// Handles a file-watcher event on `path` (D9): a blob's path is
    /// re-verified (`Some`); anything else directly in `blobs/` (a stray
    /// file, an editor's temp file) is removed (`None`); paths elsewhere are
    /// ignored (`None`).
    ///
    /// # Errors
    /// As [`Self::reverify`], or when removing a stray file fails.
    pub fn reverify_path(&self, path: &Path) -> Result<Option<(Sha256, Reverified)>, CacheError> {
        let blobs_dir = self.blobs_dir();
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let in_blobs =
            parent == blobs_dir || fs::canonicalize(parent).is_ok_and(|p| p == blobs_dir);
        if !in_blobs {
            return Ok(None);
        }
        if let Some(sha) = name.to_str().and_then(|n| n.parse::<Sha256>().ok()) {
            return self.reverify(&sha).map(|r| Some((sha, r)));
        }
        let _files = self.lock_files();
        if fs::symlink_metadata(path).is_ok() {
            tracing::warn!(path = %path.display(), "cache: removing a stray file from the blobs");
            remove_any(path)?;
        }
        Ok(None)
    }

    /// Makes room for the needed content (D10). Marks the needed blobs'
    /// `last_needed = now`. If the needed total (present or not) exceeds the
    /// limit: [`CacheFull`], nothing evicted. Otherwise removes partial
    /// downloads not needed, then evicts blobs not needed, least recently
    /// needed first, until the used bytes plus the needed bytes still
    /// missing fit the limit. Returns what was evicted. A failure to delete
    /// or record is logged (and the blob stays counted), never hidden as
    /// success of the space computation.
    ///
    /// # Errors
    /// [`CacheFull`] when the needed content alone exceeds the limit.
    pub fn make_room(
        &self,
        needed: &BTreeMap<Sha256, u64>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Sha256>, CacheFull> {
        let _files = self.lock_files();
        let limit = self.limit();
        let needed_bytes = needed.values().fold(0u64, |sum, s| sum.saturating_add(*s));

        let mut marked = Vec::new();
        {
            let mut contents = self.write_contents();
            contents.pending_marks.clear();
            for sha in needed.keys() {
                if let Some(record) = contents.blobs.get_mut(sha) {
                    record.last_needed = Some(now);
                    marked.push((*sha, *record));
                } else {
                    contents.pending_marks.insert(*sha, now);
                }
            }
        }
        for (sha, record) in &marked {
            if let Err(e) = self
                .inner
                .index
                .insert(sha.to_string(), encode_record(record))
            {
                tracing::warn!(%sha, "cache: recording last_needed failed: {e}");
            }
        }
        if needed_bytes > limit {
            self.flush_logged();
            return Err(CacheFull {
                needed_bytes,
                limit_bytes: limit,
            });
        }

        let mut partials = self.partials();
        partials.retain(|sha, _| {
            if needed.contains_key(sha) {
                return true;
            }
            let path = self.partial_path(sha);
            match remove_any(&path) {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!("cache: removing an unneeded partial: {e}");
                    true
                }
            }
        });
        let (mut used, mut candidates) = {
            let contents = self.read_contents();
            let used: u64 = contents.blobs.values().map(|r| r.size).sum();
            let candidates: Vec<(Option<DateTime<Utc>>, Sha256, u64)> = contents
                .blobs
                .iter()
                .filter(|(sha, _)| !needed.contains_key(sha))
                .map(|(sha, r)| (r.last_needed, *sha, r.size))
                .collect();
            (used, candidates)
        };
        used = used.saturating_add(partials.values().sum());
        let missing: u64 = needed
            .iter()
            .filter(|(sha, _)| !self.contains(sha))
            .map(|(sha, size)| size.saturating_sub(partials.get(sha).copied().unwrap_or(0)))
            .fold(0, u64::saturating_add);
        // Never-needed (None) sorts first, then the oldest mark.
        candidates.sort();

        let mut evicted = Vec::new();
        for (_, sha, size) in candidates {
            if used.saturating_add(missing) <= limit {
                break;
            }
            match self.remove_blob(&sha) {
                Ok(()) => {
                    used = used.saturating_sub(size);
                    evicted.push(sha);
                }
                Err(e) => tracing::warn!(%sha, "cache: evicting failed: {e}"),
            }
        }
        self.flush_logged();
        if !evicted.is_empty() {
            tracing::info!(
                count = evicted.len(),
                used,
                limit,
                "cache: evicted unneeded blobs (D10)"
            );
        }
        Ok(evicted)
    }

    /// Removes every blob and partial download not in `needed`, and the
    /// quarantine (the `purge_cache` command; L3 when licenses end).
    /// Returns the blobs removed.
    ///
    /// # Errors
    /// On a file, index or flush failure (what was removed before it stays
    /// removed).
    pub fn purge_unneeded(&self, needed: &BTreeSet<Sha256>) -> Result<Vec<Sha256>, CacheError> {
        let _files = self.lock_files();
        let unneeded: Vec<Sha256> = self
            .read_contents()
            .blobs
            .keys()
            .filter(|sha| !needed.contains(sha))
            .copied()
            .collect();
        let mut removed = Vec::new();
        for sha in unneeded {
            self.remove_blob(&sha)?;
            removed.push(sha);
        }
        for sha in self.partials().keys() {
            if !needed.contains(sha) {
                remove_any(&self.partial_path(sha))?;
            }
        }
        for (_, path, _) in list_dir(&self.quarantine_dir())? {
            remove_any(&path)?;
        }
        self.inner.store.flush()?;
        tracing::info!(count = removed.len(), "cache: purged unneeded blobs");
        Ok(removed)
    }

    /// Admits the finished partial download of `sha256` (D2): fsyncs it,
    /// hashes its bytes on disk, and only if they are `size` bytes hashing
    /// to `sha256` renames it into `blobs/`, fsyncs the directory, records
    /// it in the index (flushed) and the set. Otherwise deletes it.
    pub(crate) fn admit_partial(
        &self,
        sha256: &Sha256,
        size: u64,
    ) -> Result<Admission, CacheError> {
        let partial = self.partial_path(sha256);
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io_error("syncing", &partial))?;
        let (actual, len) = hash_file(&partial)?;
        if actual != *sha256 || len != size {
            remove_any(&partial)?;
            return Ok(Admission::Mismatch { actual, len });
        }
        killpoint::reach("download.before_rename");
        let _files = self.lock_files();
        let blob = self.blob_path(sha256);
        fs::rename(&partial, &blob).map_err(io_error("renaming into place", &partial))?;
        killpoint::reach("download.after_rename");
        sync_dir(&self.blobs_dir())?;
        let (_, mtime_ns) = file_stamp(&blob)?;
        let last_needed = self.write_contents().pending_marks.remove(sha256);
        self.record(
            sha256,
            IndexRecord {
                size: len,
                mtime_ns,
                last_needed,
            },
        )?;
        Ok(Admission::Admitted)
    }

    /// Writes `record` to the index (flushed), then the set.
    fn record(&self, sha256: &Sha256, record: IndexRecord) -> Result<(), CacheError> {
        self.inner
            .index
            .insert(sha256.to_string(), encode_record(&record))?;
        self.inner.store.flush()?;
        self.write_contents().blobs.insert(*sha256, record);
        Ok(())
    }

    /// Drops `sha256` from the set and the index (flushed).
    fn forget(&self, sha256: &Sha256) -> Result<(), CacheError> {
        self.write_contents().blobs.remove(sha256);
        if self.inner.index.remove(sha256.to_string())?.is_some() {
            self.inner.store.flush()?;
        }
        Ok(())
    }

    /// Deletes a blob: out of the set first (so nobody starts using it),
    /// then the file, then the index record (unflushed: a record without a
    /// file is dropped at the next open).
    fn remove_blob(&self, sha256: &Sha256) -> Result<(), CacheError> {
        self.write_contents().blobs.remove(sha256);
        remove_any(&self.blob_path(sha256))?;
        self.inner.index.remove(sha256.to_string())?;
        Ok(())
    }

    /// Moves `path` to `quarantine/{sha}.{unix millis}` (durably) and keeps
    /// only the newest [`QUARANTINE_KEEP`] quarantined files.
    fn quarantine_file(&self, sha256: &Sha256, path: &Path) -> Result<(), CacheError> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let dir = self.quarantine_dir();
        let target = dir.join(format!("{sha256}.{millis}"));
        fs::rename(path, &target).map_err(io_error("quarantining", path))?;
        sync_dir(&dir)?;
        sync_dir(&self.blobs_dir())?;
        let mut kept = list_dir(&dir)?
            .into_iter()
            .map(|(name, path, _)| {
                let millis = name
                    .rsplit_once('.')
                    .and_then(|(_, m)| m.parse::<u128>().ok())
                    .unwrap_or(0);
                (millis, path)
            })
            .collect::<Vec<_>>();
        kept.sort();
        let excess = kept.len().saturating_sub(QUARANTINE_KEEP);
        for (_, old) in kept.into_iter().take(excess) {
            remove_any(&old)?;
        }
        Ok(())
    }

    /// The partial downloads and their lengths.
    fn partials(&self) -> BTreeMap<Sha256, u64> {
        let Ok(entries) = fs::read_dir(self.partial_dir()) else {
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let sha = entry.file_name().to_str()?.parse::<Sha256>().ok()?;
                Some((sha, entry.metadata().ok()?.len()))
            })
            .collect()
    }

    fn flush_logged(&self) {
        if let Err(e) = self.inner.store.flush() {
            tracing::warn!("cache: flushing the index failed: {e}");
        }
    }

    fn lock_files(&self) -> MutexGuard<'_, ()> {
        self.inner
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_contents(&self) -> std::sync::RwLockReadGuard<'_, Contents> {
        self.inner
            .contents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_contents(&self) -> std::sync::RwLockWriteGuard<'_, Contents> {
        self.inner
            .contents
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn encode_record(record: &IndexRecord) -> Vec<u8> {
    // A struct of integers and an optional timestamp always serializes.
    serde_json::to_vec(record).unwrap_or_default()
}

/// The SHA-256 and length of a file, read in bounded buffers.
pub(crate) fn hash_file(path: &Path) -> Result<(Sha256, u64), CacheError> {
    let mut file = File::open(path).map_err(io_error("opening", path))?;
    let mut hasher = Sha256::hasher();
    let mut buffer = vec![0u8; HASH_BUFFER_BYTES];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(CacheError::Io {
                    what: "reading",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        hasher.update(&buffer[..n]);
        len += n as u64;
    }
    Ok((hasher.finish(), len))
}

/// A file's size and modification time (ns since the epoch).
fn file_stamp(path: &Path) -> Result<(u64, u64), CacheError> {
    let meta = fs::metadata(path).map_err(io_error("reading", path))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok((meta.len(), mtime_ns))
}

/// The entries of a directory: name (lossy), path, whether a regular file.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, CacheError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("listing", dir))? {
        let entry = entry.map_err(io_error("listing", dir))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
            is_file,
        ));
    }
    Ok(out)
}

/// Removes a file or directory tree; a missing path is fine.
fn remove_any(path: &Path) -> Result<(), CacheError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CacheError::Io {
            what: "removing",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Fsyncs a directory, making renames and removals in it durable.
fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing", dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone as _;

    /// A store and a cache in a fresh data dir.
    fn setup(limit: u64) -> (tempfile::TempDir, Store, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Cache::open(dir.path(), &store, limit).unwrap();
        (dir, store, cache)
    }

    /// Puts `bytes` into the cache through the download admission path.
    fn put(cache: &Cache, bytes: &[u8]) -> Sha256 {
        let sha = Sha256::of(bytes);
        fs::write(cache.partial_path(&sha), bytes).unwrap();
        assert_eq!(
            cache.admit_partial(&sha, bytes.len() as u64).unwrap(),
            Admission::Admitted
        );
        sha
    }

    fn indexed(store: &Store, sha: &Sha256) -> bool {
        store
            .tree(INDEX_TREE)
            .unwrap()
            .contains_key(sha.to_string())
            .unwrap()
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
    }

    fn quarantined(cache: &Cache) -> Vec<String> {
        list_dir(&cache.quarantine_dir())
            .unwrap()
            .into_iter()
            .map(|(name, _, _)| name)
            .collect()
    }

    /// D2: a partial whose bytes do not hash to its name is never admitted.
    #[test]
    fn d2_admission_refuses_wrong_bytes_and_deletes_the_partial() {
        let (_dir, store, cache) = setup(1 << 20);
        let sha = Sha256::of(b"the real bytes");
        fs::write(cache.partial_path(&sha), b"other bytes!!!").unwrap();
        let outcome = cache.admit_partial(&sha, 14).unwrap();
        assert_eq!(
            outcome,
            Admission::Mismatch {
                actual: Sha256::of(b"other bytes!!!"),
                len: 14
            }
        );
        assert!(!cache.contains(&sha));
        assert!(!cache.blob_path(&sha).exists());
        assert!(!cache.partial_path(&sha).exists());
        assert!(!indexed(&store, &sha));
    }

    /// D9: a blob changed on disk is quarantined, dropped from the set and
    /// the index; an intact one stays.
    #[test]
    fn d9_reverify_quarantines_a_modified_blob() {
        let (_dir, store, cache) = setup(1 << 20);
        let good = put(&cache, b"good bytes");
        let bad = put(&cache, b"soon tampered");
        assert!(indexed(&store, &bad));
        fs::write(cache.blob_path(&bad), b"tampered!!!!!").unwrap();

        assert_eq!(cache.reverify(&good).unwrap(), Reverified::Intact);
        assert_eq!(cache.reverify(&bad).unwrap(), Reverified::Quarantined);
        assert!(cache.contains(&good));
        assert!(!cache.contains(&bad));
        assert!(!cache.blob_path(&bad).exists());
        assert!(!indexed(&store, &bad));
        let names = quarantined(&cache);
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(&format!("{bad}.")));
        assert_eq!(
            fs::read(cache.quarantine_dir().join(&names[0])).unwrap(),
            b"tampered!!!!!"
        );
        assert_eq!(cache.reverify(&bad).unwrap(), Reverified::Absent);
        // The sled index survives a reopen without the quarantined blob.
        drop(cache);
        let cache = Cache::open(store.dir(), &store, 1 << 20).unwrap();
        assert!(cache.contains(&good));
        assert!(!cache.contains(&bad));
    }

    /// D9: watcher events — a blob path is re-verified, a stray file in
    /// `blobs/` is removed, paths elsewhere are ignored.
    #[test]
    fn d9_reverify_path_handles_blobs_and_strays() {
        let (dir, _store, cache) = setup(1 << 20);
        let sha = put(&cache, b"watched");
        fs::write(cache.blob_path(&sha), b"changed").unwrap();
        assert_eq!(
            cache.reverify_path(&cache.blob_path(&sha)).unwrap(),
            Some((sha, Reverified::Quarantined))
        );
        let stray = cache.blobs_dir().join(".swp123");
        fs::write(&stray, b"editor temp").unwrap();
        assert_eq!(cache.reverify_path(&stray).unwrap(), None);
        assert!(!stray.exists());
        let elsewhere = dir.path().join("agent.toml");
        fs::write(&elsewhere, b"x").unwrap();
        assert_eq!(cache.reverify_path(&elsewhere).unwrap(), None);
        assert!(elsewhere.exists());
    }

    /// D9/D2: tampering while the agent was down — a modified blob, a stray
    /// file, an unindexed file with a wrong name, a deleted blob, a blob
    /// that landed before its index record, leftover partials — leaves only
    /// intact verified blobs after `open`.
    #[test]
    fn d9_d2_open_after_tampering_keeps_only_intact_blobs() {
        let (dir, store, cache) = setup(1 << 20);
        let intact = put(&cache, b"intact");
        let modified = put(&cache, b"modified later");
        let deleted = put(&cache, b"deleted later");
        let blobs = cache.blobs_dir();
        drop(cache);

        // Same size, other bytes, and a different mtime.
        let file = fs::OpenOptions::new()
            .write(true)
            .open(blobs.join(modified.to_string()))
            .unwrap();
        std::io::Write::write_all(&mut &file, b"MODIFIED later").unwrap();
        file.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        drop(file);
        fs::remove_file(blobs.join(deleted.to_string())).unwrap();
        fs::write(blobs.join("stray.txt"), b"stray").unwrap();
        fs::create_dir(blobs.join("a-directory")).unwrap();
        let liar = Sha256::of(b"what the name claims");
        fs::write(blobs.join(liar.to_string()), b"something else").unwrap();
        // Killed after the rename, before the index record (D2).
        let renamed = Sha256::of(b"renamed before the crash");
        fs::write(blobs.join(renamed.to_string()), b"renamed before the crash").unwrap();
        let partial_dir = dir.path().join("cache").join("partial");
        let resumable = Sha256::of(b"half");
        fs::write(partial_dir.join(resumable.to_string()), b"ha").unwrap();
        fs::write(partial_dir.join(intact.to_string()), b"int").unwrap();
        fs::write(partial_dir.join("junk.tmp"), b"junk").unwrap();

        let cache = Cache::open(dir.path(), &store, 1 << 20).unwrap();
        let mut present: Vec<Sha256> = cache.entries().iter().map(|e| e.sha256).collect();
        present.sort();
        let mut expected = vec![intact, renamed];
        expected.sort();
        assert_eq!(present, expected);
        let mut on_disk: Vec<String> = list_dir(&blobs)
            .unwrap()
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        on_disk.sort();
        let mut expected_names = vec![intact.to_string(), renamed.to_string()];
        expected_names.sort();
        assert_eq!(on_disk, expected_names);
        assert!(cache.contains(&renamed) && indexed(&store, &renamed));
        assert!(!cache.contains(&modified) && !indexed(&store, &modified));
        assert!(!indexed(&store, &deleted));
        assert_eq!(quarantined(&cache).len(), 1);
        assert!(quarantined(&cache)[0].starts_with(&modified.to_string()));
        // The resumable partial stays; the one of a present blob and the
        // junk go.
        assert_eq!(cache.partial_len(&resumable), 2);
        assert_eq!(cache.partial_len(&intact), 0);
        assert!(!partial_dir.join("junk.tmp").exists());
        assert_eq!(cache.used_bytes(), 6 + 24 + 2);
    }

    /// D10: eviction removes what no manifest needs, least recently needed
    /// first, only as much as needed; the needed set is never evicted.
    #[test]
    fn d10_make_room_evicts_least_recently_needed_unneeded_first() {
        let (_dir, _store, cache) = setup(100);
        let a = put(&cache, &[b'a'; 30]);
        let b = put(&cache, &[b'b'; 30]);
        let c = put(&cache, &[b'c'; 30]);
        // a was needed at 1:00, b at 3:00, c at 2:00.
        for (sha, hour) in [(a, 1), (b, 3), (c, 2)] {
            cache
                .make_room(&BTreeMap::from([(sha, 30)]), at(hour))
                .unwrap();
        }
        let wanted = Sha256::of(b"new");
        // 90 used + 40 missing > 100: evict 30 (a, the oldest) → 60 + 40.
        let evicted = cache
            .make_room(&BTreeMap::from([(wanted, 40)]), at(4))
            .unwrap();
        assert_eq!(evicted, vec![a]);
        assert!(!cache.blob_path(&a).exists());
        assert!(cache.contains(&b) && cache.contains(&c));
        // Needing b and 60 more: c (unneeded) goes, b stays, marked at 5:00.
        let evicted = cache
            .make_room(&BTreeMap::from([(b, 30), (wanted, 60)]), at(5))
            .unwrap();
        assert_eq!(evicted, vec![c]);
        let b_entry = cache.entries().into_iter().find(|e| e.sha256 == b).unwrap();
        assert_eq!(b_entry.last_needed, Some(at(5)));
        // The mark of a missing blob is applied when it is admitted.
        let admitted = put(&cache, b"new");
        let entry = cache
            .entries()
            .into_iter()
            .find(|e| e.sha256 == admitted)
            .unwrap();
        assert_eq!(entry.last_needed, Some(at(5)));
    }

    /// D10: a needed set larger than the limit is refused and nothing is
    /// evicted.
    #[test]
    fn d10_make_room_refuses_when_the_needed_set_exceeds_the_limit() {
        let (_dir, _store, cache) = setup(100);
        let a = put(&cache, &[b'a'; 50]);
        let partial = Sha256::of(b"partial");
        fs::write(cache.partial_path(&partial), b"par").unwrap();
        let needed = BTreeMap::from([(Sha256::of(b"x"), 60), (Sha256::of(b"y"), 41)]);
        let full = cache.make_room(&needed, at(1)).unwrap_err();
        assert_eq!(
            full,
            CacheFull {
                needed_bytes: 101,
                limit_bytes: 100
            }
        );
        assert!(full.to_string().contains("101 bytes"));
        assert!(cache.contains(&a));
        assert_eq!(cache.partial_len(&partial), 3);
        // A raised limit (config reload) lets the same set in.
        cache.set_limit(200);
        assert_eq!(
            cache.make_room(&needed, at(1)).unwrap(),
            Vec::<Sha256>::new()
        );
        // Unneeded partials go even when no blob must.
        assert_eq!(cache.partial_len(&partial), 0);
    }

    /// The purge command: every blob and partial not needed goes.
    #[test]
    fn purge_unneeded_removes_everything_not_needed() {
        let (_dir, store, cache) = setup(1 << 20);
        let keep = put(&cache, b"keep");
        let drop_me = put(&cache, b"drop");
        let keep_partial = Sha256::of(b"keep partial");
        let drop_partial = Sha256::of(b"drop partial");
        fs::write(cache.partial_path(&keep_partial), b"kee").unwrap();
        fs::write(cache.partial_path(&drop_partial), b"dro").unwrap();
        let removed = cache
            .purge_unneeded(&BTreeSet::from([keep, keep_partial]))
            .unwrap();
        assert_eq!(removed, vec![drop_me]);
        assert!(cache.contains(&keep) && !cache.contains(&drop_me));
        assert!(!cache.blob_path(&drop_me).exists());
        assert!(!indexed(&store, &drop_me));
        assert_eq!(cache.partial_len(&keep_partial), 3);
        assert_eq!(cache.partial_len(&drop_partial), 0);
        assert_eq!(cache.used_bytes(), 4 + 3);
    }

    /// Quarantine is bounded: only the newest files stay (D10).
    #[test]
    fn quarantine_keeps_only_the_newest_files() {
        let (_dir, _store, cache) = setup(1 << 20);
        for i in 0..QUARANTINE_KEEP + 2 {
            let bytes = format!("blob {i}");
            let sha = put(&cache, bytes.as_bytes());
            fs::write(cache.blob_path(&sha), b"garbage").unwrap();
            assert_eq!(cache.reverify(&sha).unwrap(), Reverified::Quarantined);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(quarantined(&cache).len(), QUARANTINE_KEEP);
    }
}
