//! The content-addressed cache (D2, D9, D10, A8).
//!
//! Owns: the files under `{data_dir}/cache/` — `blobs/{sha256}`, `partial/{sha256}`
//! (downloads in progress, kept for resuming) and
//! `quarantine/{sha256}.{unix millis}` (files that stopped matching their
//! hash, bounded by [`QUARANTINE_KEEP`] and [`QUARANTINE_MAX_BYTES`]) —
//! and their index, the sled tree `cache` (key: the hex digest; value:
//! `{size, mtime_ns, last_needed}` recorded when a file is admitted).
//!
//! A blob is *verified* only once its bytes on disk hashed to its name in
//! this run of the agent: after a download ([`download`]), or after
//! [`Cache::open`] found it on disk and [`Cache::verify_next`] hashed it
//! again — nothing on disk is trusted across a stop, since anyone may have
//! replaced a file and restored its size and mtime while the agent was down
//! (A8). Only verified blobs are in [`Cache::contains`], and the player reads
//! one only through [`Cache::open_verified`], which hands out an open file
//! whose inode, size, mtime and ctime are still those that were hashed; any
//! other state sends the blob back to verification. Must not: decide what is
//! needed — callers pass the needed set (from the current manifests) to
//! [`Cache::make_room`] and [`Cache::purge_unneeded`]; must not touch the
//! network ([`download`] does). Every method blocks (file I/O, hashing, sled
//! flush): async callers use `spawn_blocking`.

pub mod download;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
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
/// The most bytes the quarantine keeps: the newest files that fit stay; a
/// file larger than this on its own is deleted rather than kept (D10).
pub const QUARANTINE_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// How often [`Cache::reverify`] hashes a file again when it changed while
/// it was being hashed, before it gives up on it and quarantines it.
const REVERIFY_TRIES: usize = 3;
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

/// One index record, stored as JSON under the hex digest. The file's
/// identity ([`Stamp`]) is what it was when last hashed; only the
/// in-memory copy of a blob verified in this run is trusted (A8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct IndexRecord {
    /// The file's size when admitted.
    size: u64,
    /// The file's modification time when admitted, in ns since the epoch.
    mtime_ns: u64,
    /// The file's status change time when hashed, in ns since the epoch
    /// (not settable by `touch`).
    #[serde(default)]
    ctime_ns: u64,
    /// The file's inode when hashed.
    #[serde(default)]
    ino: u64,
    /// The file system's device number when hashed.
    #[serde(default)]
    dev: u64,
    /// When a manifest last needed it.
    last_needed: Option<DateTime<Utc>>,
}

impl IndexRecord {
    /// A record of a file with `stamp`, needed last at `last_needed`.
    fn new(stamp: Stamp, last_needed: Option<DateTime<Utc>>) -> Self {
        Self {
            size: stamp.size,
            mtime_ns: stamp.mtime_ns,
            ctime_ns: stamp.ctime_ns,
            ino: stamp.ino,
            dev: stamp.dev,
            last_needed,
        }
    }

    /// The file identity recorded.
    fn stamp(&self) -> Stamp {
        Stamp {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
            dev: self.dev,
        }
    }
}

/// A regular file's identity: any write, replacement (rename, copy over,
/// hard link) or metadata change gives another stamp, even when the size
/// and mtime are restored (`touch -r`), since the ctime then moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// Its size in bytes.
    size: u64,
    /// Its modification time in ns since the epoch.
    mtime_ns: u64,
    /// Its status change time in ns since the epoch.
    ctime_ns: u64,
    /// Its inode.
    ino: u64,
    /// Its file system's device number.
    dev: u64,
}

impl Stamp {
    /// The stamp of `meta`.
    fn of(meta: &fs::Metadata) -> Self {
        let ns = |secs: i64, nsec: i64| {
            u64::try_from(secs)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::try_from(nsec).unwrap_or(0))
        };
        Self {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// What is at a blob's path (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDisk {
    /// Nothing.
    Missing,
    /// Something other than a regular file (a directory, a symlink).
    NotAFile,
    /// A regular file.
    File(Stamp),
}

/// A blob found on disk and not yet hashed in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unverified {
    /// Its record (from the index, with the size on disk).
    record: IndexRecord,
    /// Whether the index listed it: a listed file that does not match is
    /// quarantined; an unlisted one (a crash between the rename and the
    /// index write, or a stranger's file) is deleted.
    indexed: bool,
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
    /// Blobs verified in this run and their records (with the stamp they
    /// had when hashed).
    blobs: BTreeMap<Sha256, IndexRecord>,
    /// Blobs on disk waiting to be hashed before they may play.
    unverified: BTreeMap<Sha256, Unverified>,
    /// Unverified blobs the player is waiting for: hashed first.
    urgent: BTreeSet<Sha256>,
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
    /// Notified when a blob is sent (back) to verification.
    unverified_added: tokio::sync::Notify,
    /// The blobs being hashed now, so one file is never hashed twice at
    /// once (the verification task and a download may both want it).
    hashing: Mutex<BTreeSet<Sha256>>,
    /// Notified when a blob leaves `hashing`.
    hashed: Condvar,
}

/// The claim on hashing one blob; released when dropped.
struct HashClaim<'a> {
    /// The cache.
    inner: &'a Inner,
    /// The blob claimed.
    sha256: Sha256,
}

impl Drop for HashClaim<'_> {
    fn drop(&mut self) {
        self.inner
            .hashing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.sha256);
        self.inner.hashed.notify_all();
    }
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
    /// while the agent was down (D2, D9, A8): every regular file in `blobs/`
    /// named by a digest waits for verification ([`Self::verify_next`]) —
    /// none is trusted because its size and mtime look unchanged; anything
    /// else in `blobs/` or `partial/` not named by a digest is removed, as
    /// is a partial of a blob present, and index records without a file are
    /// dropped.
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
                unverified_added: tokio::sync::Notify::new(),
                hashing: Mutex::new(BTreeSet::new()),
                hashed: Condvar::new(),
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

        let mut found = BTreeMap::new();
        let blobs_dir = self.blobs_dir();
        for (name, path, _) in list_dir(&blobs_dir)? {
            let sha = name.parse::<Sha256>().ok();
            let on_disk = on_disk(&path)?;
            let (Some(sha), OnDisk::File(stamp)) = (sha, on_disk) else {
                tracing::warn!(path = %path.display(), "removing a stray file from the cache");
                remove_any(&path)?;
                continue;
            };
            let record = records.remove(&sha);
            found.insert(
                sha,
                Unverified {
                    record: IndexRecord::new(stamp, record.and_then(|r| r.last_needed)),
                    indexed: record.is_some(),
                },
            );
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
                    .is_ok_and(|sha| !found.contains_key(&sha));
            if !keep {
                tracing::info!(path = %path.display(), "cache: removing a leftover partial file");
                remove_any(&path)?;
            }
        }

        sync_dir(&blobs_dir)?;
        self.inner.store.flush()?;
        if !found.is_empty() {
            let bytes: u64 = found.values().map(|u| u.record.size).sum();
            tracing::info!(
                count = found.len(),
                bytes,
                "cache: every cached file is hashed again before it may play (A8, D9)"
            );
        }
        self.write_contents().unverified = found;
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

    /// Whether the blob is present and verified in this run (in memory, no
    /// disk I/O).
    #[must_use]
    pub fn contains(&self, sha256: &Sha256) -> bool {
        self.read_contents().blobs.contains_key(sha256)
    }

    /// Whether the blob is on disk but waits to be hashed before it may
    /// play (after a start, or after it changed since it was hashed).
    #[must_use]
    pub fn awaits_verification(&self, sha256: &Sha256) -> bool {
        self.read_contents().unverified.contains_key(sha256)
    }

    /// How many blobs wait to be hashed.
    #[must_use]
    pub fn unverified_count(&self) -> usize {
        self.read_contents().unverified.len()
    }

    /// Waits until a blob waits to be hashed (returns at once if one does).
    pub async fn unverified_added(&self) {
        loop {
            let notified = self.inner.unverified_added.notified();
            if self.unverified_count() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Asks for `sha256` to be hashed before other waiting blobs (the
    /// player waits for it); nothing if it does not wait.
    pub fn prioritize(&self, sha256: &Sha256) {
        let mut contents = self.write_contents();
        if contents.unverified.contains_key(sha256) {
            contents.urgent.insert(*sha256);
        }
    }

    /// The bytes used: blobs (verified or waiting to be) plus partial
    /// downloads.
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        let blobs: u64 = {
            let contents = self.read_contents();
            contents.blobs.values().map(|r| r.size).sum::<u64>()
                + contents
                    .unverified
                    .values()
                    .map(|u| u.record.size)
                    .sum::<u64>()
        };
        blobs.saturating_add(self.partials().values().sum())
    }

    /// How many bytes of `sha256` a partial download holds (0 if none).
    #[must_use]
    pub fn partial_len(&self, sha256: &Sha256) -> u64 {
        fs::metadata(self.partial_path(sha256)).map_or(0, |m| m.len())
    }

    /// Every blob on disk: verified, or waiting to be.
    #[must_use]
    pub fn entries(&self) -> Vec<CachedBlob> {
        let contents = self.read_contents();
        let mut entries: Vec<CachedBlob> = contents
            .blobs
            .iter()
            .chain(contents.unverified.iter().map(|(sha, u)| (sha, &u.record)))
            .map(|(sha, record)| CachedBlob {
                sha256: *sha,
                size: record.size,
                last_needed: record.last_needed,
            })
            .collect();
        entries.sort_by_key(|e| e.sha256);
        entries
    }

    /// Opens the verified blob of `sha256` for playing (A8): `Some` only if
    /// it was verified in this run and the file at its path is still the
    /// one hashed (same inode, size, mtime and ctime). Reading through the
    /// returned handle reads that file even if the path is replaced later.
    /// A blob that changed since it was hashed goes back to verification
    /// (and is not played until it hashed to its name again).
    #[must_use]
    pub fn open_verified(&self, sha256: &Sha256) -> Option<File> {
        let record = *self.read_contents().blobs.get(sha256)?;
        let path = self.blob_path(sha256);
        if let Ok(file) = File::open(&path)
            && let Ok(meta) = file.metadata()
            && meta.is_file()
            && Stamp::of(&meta) == record.stamp()
        {
            return Some(file);
        }
        tracing::warn!(
            %sha256,
            "cache: the file changed since it was hashed; it is hashed again before it may play (A8, D9)"
        );
        let _files = self.lock_files();
        let mut contents = self.write_contents();
        if let Some(record) = contents.blobs.remove(sha256) {
            contents.unverified.insert(
                *sha256,
                Unverified {
                    record,
                    indexed: true,
                },
            );
            contents.urgent.insert(*sha256);
            self.inner.unverified_added.notify_one();
        }
        None
    }

    /// Hashes the next blob waiting for verification: first those the
    /// player waits for ([`Self::prioritize`]), then the most recently
    /// needed (the current manifests mark what they need, D10). `None`
    /// when none waits.
    ///
    /// # Errors
    /// As [`Self::reverify`]; the blob then stops waiting and is dropped
    /// from the index (it is not played, and fetched again when needed).
    pub fn verify_next(&self) -> Result<Option<(Sha256, Reverified)>, CacheError> {
        loop {
            let next = {
                let contents = self.read_contents();
                let hashing = self
                    .inner
                    .hashing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // One another thread hashes now is left to it, unless it
                // is the last one waiting.
                let free = |sha: &Sha256| !hashing.contains(sha);
                contents
                    .urgent
                    .iter()
                    .find(|sha| contents.unverified.contains_key(sha) && free(sha))
                    .or_else(|| {
                        contents
                            .unverified
                            .iter()
                            .filter(|(sha, _)| free(sha))
                            .max_by_key(|(sha, u)| (u.record.last_needed, std::cmp::Reverse(**sha)))
                            .map(|(sha, _)| sha)
                    })
                    .or_else(|| contents.unverified.keys().next())
                    .copied()
            };
            let Some(sha) = next else {
                return Ok(None);
            };
            match self.verify_waiting(&sha) {
                Ok(Some(outcome)) => return Ok(Some((sha, outcome))),
                // Another thread hashed it meanwhile.
                Ok(None) => {}
                Err(error) => {
                    let _files = self.lock_files();
                    if let Err(e) = self.forget(&sha) {
                        tracing::warn!(%sha, "cache: dropping an unverifiable blob: {e}");
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Hashes `sha256` if it waits for verification (waiting for another
    /// thread hashing it first); `None` when it no longer waits.
    ///
    /// # Errors
    /// As [`Self::reverify`].
    pub fn verify_waiting(&self, sha256: &Sha256) -> Result<Option<Reverified>, CacheError> {
        let _claim = self.claim(sha256);
        if !self.awaits_verification(sha256) {
            return Ok(None);
        }
        self.reverify_claimed(sha256).map(Some)
    }

    /// Claims the hashing of `sha256`, waiting while another thread holds
    /// the claim.
    fn claim(&self, sha256: &Sha256) -> HashClaim<'_> {
        let mut hashing = self
            .inner
            .hashing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while hashing.contains(sha256) {
            hashing = self
                .inner
                .hashed
                .wait(hashing)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        hashing.insert(*sha256);
        HashClaim {
            inner: &self.inner,
            sha256: *sha256,
        }
    }

    /// Re-hashes the blob of `sha256` (D9, A8). Matching: it is (or stays)
    /// verified, with the file's current stamp. Not matching: a file the
    /// index listed is moved to quarantine, an unlisted one is deleted, and
    /// it is dropped from the index and the sets, durably, so it is fetched
    /// again. Missing: its record is dropped. A file that changes while it
    /// is hashed is hashed again; one that keeps changing is quarantined.
    ///
    /// # Errors
    /// On a file, index or flush failure.
    pub fn reverify(&self, sha256: &Sha256) -> Result<Reverified, CacheError> {
        let _claim = self.claim(sha256);
        self.reverify_claimed(sha256)
    }

    /// [`Self::reverify`] under the claim on `sha256`.
    fn reverify_claimed(&self, sha256: &Sha256) -> Result<Reverified, CacheError> {
        let path = self.blob_path(sha256);
        for _ in 0..REVERIFY_TRIES {
            let before = on_disk(&path)?;
            let hashed = match before {
                OnDisk::File(_) => Some(hash_file(&path)),
                OnDisk::Missing | OnDisk::NotAFile => None,
            };
            let _files = self.lock_files();
            let now = on_disk(&path)?;
            if now != before {
                continue;
            }
            let stamp = match now {
                OnDisk::Missing => {
                    self.forget(sha256)?;
                    return Ok(Reverified::Absent);
                }
                OnDisk::NotAFile => {
                    tracing::warn!(path = %path.display(), "cache: removing a non-file in place of a blob");
                    remove_any(&path)?;
                    self.forget(sha256)?;
                    return Ok(Reverified::Absent);
                }
                OnDisk::File(stamp) => stamp,
            };
            let (actual, len) = match hashed {
                Some(Ok(hashed)) => hashed,
                Some(Err(CacheError::Io { source, .. }))
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Some(Err(e)) => return Err(e),
                None => continue,
            };
            if actual == *sha256 && len == stamp.size {
                let last_needed = {
                    let contents = self.read_contents();
                    contents
                        .blobs
                        .get(sha256)
                        .or_else(|| contents.unverified.get(sha256).map(|u| &u.record))
                        .and_then(|r| r.last_needed)
                };
                self.record(sha256, IndexRecord::new(stamp, last_needed))?;
                return Ok(Reverified::Intact);
            }
            self.reject(sha256, &path, &format!("it hashes to {actual}"))?;
            return Ok(Reverified::Quarantined);
        }
        let _files = self.lock_files();
        self.reject(sha256, &path, "it kept changing while it was hashed")?;
        Ok(Reverified::Quarantined)
    }

    /// Takes a blob that does not match out of play, under the files lock:
    /// quarantined if the index listed it, else deleted; forgotten.
    fn reject(&self, sha256: &Sha256, path: &Path, why: &str) -> Result<(), CacheError> {
        let listed = self
            .read_contents()
            .unverified
            .get(sha256)
            .is_none_or(|u| u.indexed);
        if listed {
            match self.quarantine_file(sha256, path)? {
                Some(kept) => tracing::warn!(
                    %sha256,
                    kept = %kept.display(),
                    "cache: a cached file no longer matches its hash ({why}); not played, kept in quarantine, fetched again (A8, D9)"
                ),
                None => tracing::warn!(
                    %sha256,
                    "cache: a cached file no longer matches its hash ({why}); not played, deleted (over the quarantine bound), fetched again (A8, D9)"
                ),
            }
        } else {
            tracing::warn!(%sha256, "cache: removing an unindexed file that does not match its name ({why})");
            remove_any(path)?;
        }
        self.forget(sha256)
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
            let contents = &mut *contents;
            for sha in needed.keys() {
                let record = contents
                    .blobs
                    .get_mut(sha)
                    .or_else(|| contents.unverified.get_mut(sha).map(|u| &mut u.record));
                if let Some(record) = record {
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
        let (mut used, mut candidates, on_disk) = {
            let contents = self.read_contents();
            let all = || {
                contents
                    .blobs
                    .iter()
                    .chain(contents.unverified.iter().map(|(sha, u)| (sha, &u.record)))
            };
            let used: u64 = all().map(|(_, r)| r.size).sum();
            let candidates: Vec<(Option<DateTime<Utc>>, Sha256, u64)> = all()
                .filter(|(sha, _)| !needed.contains_key(sha))
                .map(|(sha, r)| (r.last_needed, *sha, r.size))
                .collect();
            let on_disk: BTreeSet<Sha256> = all().map(|(sha, _)| *sha).collect();
            (used, candidates, on_disk)
        };
        used = used.saturating_add(partials.values().sum());
        let missing: u64 = needed
            .iter()
            .filter(|(sha, _)| !on_disk.contains(sha))
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

    /// Removes every blob, partial download and quarantined file not of an
    /// item in `needed` (the `purge_cache` command; L3 when licenses end).
    /// Returns the blobs removed.
    ///
    /// # Errors
    /// On a file, index or flush failure (what was removed before it stays
    /// removed).
    pub fn purge_unneeded(&self, needed: &BTreeSet<Sha256>) -> Result<Vec<Sha256>, CacheError> {
        let _files = self.lock_files();
        let unneeded: Vec<Sha256> = {
            let contents = self.read_contents();
            contents
                .blobs
                .keys()
                .chain(contents.unverified.keys())
                .filter(|sha| !needed.contains(sha))
                .copied()
                .collect()
        };
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
        // Quarantined copies of needed items stay for the operator (D9);
        // those of anything else go with it.
        for (name, path, _) in list_dir(&self.quarantine_dir())? {
            let of_needed = name
                .split_once('.')
                .and_then(|(sha, _)| sha.parse::<Sha256>().ok())
                .is_some_and(|sha| needed.contains(&sha));
            if !of_needed {
                remove_any(&path)?;
            }
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
        let OnDisk::File(stamp) = on_disk(&blob)? else {
            return Err(CacheError::Io {
                what: "admitting",
                path: blob,
                source: io::Error::new(io::ErrorKind::NotFound, "the renamed file is gone"),
            });
        };
        let last_needed = self.write_contents().pending_marks.remove(sha256);
        self.record(sha256, IndexRecord::new(stamp, last_needed))?;
        Ok(Admission::Admitted)
    }

    /// Writes `record` to the index (flushed), then makes the blob verified.
    fn record(&self, sha256: &Sha256, record: IndexRecord) -> Result<(), CacheError> {
        self.inner
            .index
            .insert(sha256.to_string(), encode_record(&record))?;
        self.inner.store.flush()?;
        let mut contents = self.write_contents();
        contents.unverified.remove(sha256);
        contents.urgent.remove(sha256);
        contents.blobs.insert(*sha256, record);
        Ok(())
    }

    /// Drops `sha256` from the sets, then the index (flushed).
    fn forget(&self, sha256: &Sha256) -> Result<(), CacheError> {
        self.drop_from_sets(sha256);
        if self.inner.index.remove(sha256.to_string())?.is_some() {
            self.inner.store.flush()?;
        }
        Ok(())
    }

    /// Deletes a blob: out of the set first (so nobody starts using it),
    /// then the file, then the index record (unflushed: a record without a
    /// file is dropped at the next open).
    fn remove_blob(&self, sha256: &Sha256) -> Result<(), CacheError> {
        self.drop_from_sets(sha256);
        remove_any(&self.blob_path(sha256))?;
        self.inner.index.remove(sha256.to_string())?;
        Ok(())
    }

    /// Drops `sha256` from the verified and the waiting sets.
    fn drop_from_sets(&self, sha256: &Sha256) {
        let mut contents = self.write_contents();
        contents.blobs.remove(sha256);
        contents.unverified.remove(sha256);
        contents.urgent.remove(sha256);
    }

    /// Moves `path` to `quarantine/{sha}.{unix millis}` (durably) and keeps
    /// only the newest quarantined files: at most [`QUARANTINE_KEEP`] of
    /// them and [`QUARANTINE_MAX_BYTES`] in all. Returns where the file is
    /// kept, or `None` when it was deleted for the bound.
    fn quarantine_file(&self, sha256: &Sha256, path: &Path) -> Result<Option<PathBuf>, CacheError> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let dir = self.quarantine_dir();
        let target = dir.join(format!("{sha256}.{millis}"));
        fs::rename(path, &target).map_err(io_error("quarantining", path))?;
        sync_dir(&dir)?;
        sync_dir(&self.blobs_dir())?;
        let mut files = list_dir(&dir)?
            .into_iter()
            .map(|(name, path, _)| {
                let millis = name
                    .rsplit_once('.')
                    .and_then(|(_, m)| m.parse::<u128>().ok())
                    .unwrap_or(0);
                let len = fs::symlink_metadata(&path).map_or(0, |m| m.len());
                (millis, path, len)
            })
            .collect::<Vec<_>>();
        // Newest first; the new file sorts first among equal millis.
        files.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| (b.1 == target).cmp(&(a.1 == target)))
        });
        let mut count = 0usize;
        let mut bytes = 0u64;
        let mut kept = None;
        for (_, file, len) in files {
            bytes = bytes.saturating_add(len);
            count += 1;
            if count > QUARANTINE_KEEP || bytes > QUARANTINE_MAX_BYTES {
                remove_any(&file)?;
                bytes = bytes.saturating_sub(len);
                count -= 1;
            } else if file == target {
                kept = Some(file);
            }
        }
        sync_dir(&dir)?;
        Ok(kept)
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

/// What is at `path`, without following a symlink.
fn on_disk(path: &Path) -> Result<OnDisk, CacheError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(OnDisk::File(Stamp::of(&meta))),
        Ok(_) => Ok(OnDisk::NotAFile),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(OnDisk::Missing),
        Err(source) => Err(CacheError::Io {
            what: "reading",
            path: path.to_owned(),
            source,
        }),
    }
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
        verify_all(&cache);
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

    /// Hashes every blob waiting for verification.
    fn verify_all(cache: &Cache) -> Vec<(Sha256, Reverified)> {
        let mut outcomes = Vec::new();
        while let Some(outcome) = cache.verify_next().unwrap() {
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Overwrites `path` with `bytes` in place and restores its mtime, as
    /// `cp other path && touch -r saved path` does.
    fn swap_keeping_mtime(path: &Path, bytes: &[u8]) {
        let mtime = fs::metadata(path).unwrap().modified().unwrap();
        let len = fs::metadata(path).unwrap().len();
        assert_eq!(bytes.len() as u64, len, "a substitute of the same size");
        fs::write(path, bytes).unwrap();
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);
    }

    /// A8, D9: a blob swapped for other bytes of the same size with its
    /// mtime restored while the agent was down is not trusted at `open`:
    /// it waits for verification, is hashed, quarantined with the
    /// substitute's bytes and dropped from the index; the intact one is
    /// verified. Nothing is present before it hashed.
    #[test]
    fn a8_d9_a_blob_swapped_while_stopped_with_its_mtime_restored_is_quarantined() {
        let (dir, store, cache) = setup(1 << 20);
        let intact = put(&cache, b"intact bytes");
        let swapped = put(&cache, b"the original");
        let path = cache.blob_path(&swapped);
        drop(cache);
        swap_keeping_mtime(&path, b"a substitute");

        let cache = Cache::open(dir.path(), &store, 1 << 20).unwrap();
        assert!(!cache.contains(&swapped) && !cache.contains(&intact));
        assert!(cache.awaits_verification(&swapped));
        assert!(cache.open_verified(&swapped).is_none());
        assert_eq!(cache.used_bytes(), 24, "waiting blobs still count");
        let outcomes: BTreeMap<Sha256, Reverified> = verify_all(&cache).into_iter().collect();
        assert_eq!(
            outcomes,
            BTreeMap::from([
                (intact, Reverified::Intact),
                (swapped, Reverified::Quarantined)
            ])
        );
        assert!(cache.contains(&intact) && !cache.contains(&swapped));
        assert!(!cache.awaits_verification(&swapped));
        assert!(!indexed(&store, &swapped));
        assert!(cache.open_verified(&intact).is_some());
        let names = quarantined(&cache);
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(&format!("{swapped}.")));
        assert_eq!(
            fs::read(cache.quarantine_dir().join(&names[0])).unwrap(),
            b"a substitute"
        );
    }

    /// A8, D9: a verified blob replaced in place after it was hashed (same
    /// size, mtime restored, no watcher running) is not handed to the
    /// player: `open_verified` sees the other stamp, sends it back to
    /// verification, and the next hash quarantines it. A handle opened
    /// before a replacement by rename keeps reading the verified file.
    #[test]
    fn a8_d9_a_blob_replaced_after_verification_is_not_opened_for_playing() {
        let (_dir, _store, cache) = setup(1 << 20);
        let sha = put(&cache, b"verified bytes");
        let path = cache.blob_path(&sha);
        let held = cache.open_verified(&sha).unwrap();
        // Replaced by a rename: the held handle still reads the original.
        let other = path.with_extension("tmp");
        fs::write(&other, b"renamed bytes!").unwrap();
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        fs::rename(&other, &path).unwrap();
        let mut read = Vec::new();
        (&held).read_to_end(&mut read).unwrap();
        assert_eq!(read, b"verified bytes");

        assert!(cache.open_verified(&sha).is_none());
        assert!(!cache.contains(&sha) && cache.awaits_verification(&sha));
        assert_eq!(verify_all(&cache), vec![(sha, Reverified::Quarantined)]);
        assert!(cache.open_verified(&sha).is_none());

        // In place, same size, mtime restored.
        let sha = put(&cache, b"second original");
        assert!(cache.open_verified(&sha).is_some());
        swap_keeping_mtime(&cache.blob_path(&sha), b"second imposter");
        assert!(cache.open_verified(&sha).is_none());
        assert_eq!(verify_all(&cache), vec![(sha, Reverified::Quarantined)]);
    }

    /// A8: waiting blobs are hashed in order — what the player waits for
    /// first, then the most recently needed, never-needed last.
    #[test]
    fn a8_verification_order_is_urgent_then_most_recently_needed() {
        let (dir, store, cache) = setup(1 << 20);
        let old = put(&cache, b"needed at 1");
        let new = put(&cache, b"needed at 3");
        let never = put(&cache, b"never needed");
        let urgent = put(&cache, b"the player waits");
        for (sha, hour) in [(old, 1), (new, 3), (urgent, 2)] {
            cache
                .make_room(&BTreeMap::from([(sha, 11)]), at(hour))
                .unwrap();
        }
        drop(cache);
        let cache = Cache::open(dir.path(), &store, 1 << 20).unwrap();
        cache.prioritize(&urgent);
        cache.prioritize(&Sha256::of(b"not waiting"));
        let order: Vec<Sha256> = verify_all(&cache).into_iter().map(|(s, _)| s).collect();
        assert_eq!(order, vec![urgent, new, old, never]);
    }

    /// D10: the quarantine keeps at most its byte bound; a file over it on
    /// its own is deleted, not kept.
    #[test]
    fn quarantine_is_bounded_in_bytes() {
        let (_dir, _store, cache) = setup(QUARANTINE_MAX_BYTES * 2);
        let sha = Sha256::of(b"big");
        let path = cache.blob_path(&sha);
        let file = fs::File::create(&path).unwrap();
        file.set_len(QUARANTINE_MAX_BYTES + 1).unwrap();
        drop(file);
        assert_eq!(cache.quarantine_file(&sha, &path).unwrap(), None);
        assert!(quarantined(&cache).is_empty());
        fs::write(&path, b"small").unwrap();
        let kept = cache.quarantine_file(&sha, &path).unwrap().unwrap();
        assert_eq!(fs::read(kept).unwrap(), b"small");
    }

    /// D9/D2: tampering while the agent was down — a modified blob, a stray
    /// file, an unindexed file with a wrong name, a deleted blob, a blob
    /// that landed before its index record, leftover partials — leaves only
    /// intact verified blobs after `open` and verification.
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
        assert!(cache.entries().iter().all(|e| !cache.contains(&e.sha256)));
        verify_all(&cache);
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

    /// The purge command: every blob, partial and quarantined file not of a
    /// needed item goes.
    #[test]
    fn purge_unneeded_removes_everything_not_needed() {
        let (_dir, store, cache) = setup(1 << 20);
        let keep = put(&cache, b"keep");
        let drop_me = put(&cache, b"drop");
        let keep_partial = Sha256::of(b"keep partial");
        let drop_partial = Sha256::of(b"drop partial");
        fs::write(cache.partial_path(&keep_partial), b"kee").unwrap();
        fs::write(cache.partial_path(&drop_partial), b"dro").unwrap();
        let quarantine = cache.quarantine_dir();
        fs::write(quarantine.join(format!("{keep}.1")), b"bad keep").unwrap();
        fs::write(quarantine.join(format!("{drop_me}.2")), b"bad drop").unwrap();
        fs::write(quarantine.join("junk"), b"junk").unwrap();
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
        // The quarantined copy of a needed item stays (D9); the rest go.
        assert_eq!(quarantined(&cache), vec![format!("{keep}.1")]);
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
