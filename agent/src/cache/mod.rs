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
mod room;
mod verify;

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
mod tests;
