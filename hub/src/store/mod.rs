//! The hub's durable store (S9): sled (the one-box default) or PostgreSQL
//! (X4, [`PgStorage`]) behind the [`Storage`] trait; [`open`] picks the
//! engine the configuration's `store` names.
//!
//! Owns: named trees of JSON records, atomic multi-tree commits, and
//! durability — [`Storage::commit`] returns only after the writes are
//! flushed to disk, so a service that answers success after it has made the
//! write durable (S9). Must not: know what the records mean; the domain
//! modules decide that and call it through [`Store`].
//!
//! Every check-then-write is a transaction ([`Store::transact`], see
//! [`tx`]): the reads a decision rests on are checked again when its writes
//! commit, so no lock is held while a decision is made, and none can be
//! held across network I/O. The seam a second engine implements is the
//! three calls of [`Storage`].

pub mod events;
pub mod migrate;
mod pg_counts;
mod pg_events;
mod pg_feed;
mod pg_rates;
mod postgres;
mod sled_storage;
mod tx;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use events::{EVENTS_TREE, EventPrune, EventQuery, ItemTally};
pub use pg_counts::PRUNE_EVERY as SHARED_COUNTS_PRUNE_EVERY;
pub use postgres::{PgStorage, successor};
pub use sled_storage::SledStorage;
pub use tx::{Check, Digest, Tx, digest_range, digest_record, holds};

/// The store directory inside a data directory.
#[must_use]
pub fn store_dir(data: &std::path::Path) -> std::path::PathBuf {
    data.join("store")
}

/// Whether `store` (the configuration's `store` key) names a PostgreSQL
/// database rather than sled.
#[must_use]
pub fn is_postgres(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// Opens the engine `store` names: a `postgres://` URL, or (anything else,
/// `"sled"` by default) sled in [`store_dir`] of `data`.
///
/// # Errors
/// When the engine cannot be opened or reached.
pub fn open(store: &str, data: &std::path::Path) -> Result<Arc<dyn Storage>, StoreError> {
    Ok(if is_postgres(store) {
        Arc::new(PgStorage::connect(store)?)
    } else {
        Arc::new(SledStorage::open(&store_dir(data))?)
    })
}

/// Why the store failed. Callers answer 500 and change nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (disk full, I/O error, corruption).
    #[error("storage: {0}")]
    Storage(String),
    /// A stored record does not decode as its type.
    #[error("record {tree}/{key} is corrupt: {reason}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// The key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// What a transaction read changed before it could commit (see
    /// [`Store::transact`], which runs it again).
    #[error("the records a write rested on kept changing; try again")]
    Conflict,
}

/// Failures counted in one window ([`Storage::count_failures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// How many.
    pub count: u32,
    /// When the window started.
    pub since: DateTime<Utc>,
}

/// What an engine without shared counts answers their calls with.
fn no_shared_counts() -> StoreError {
    StoreError::Storage("this engine keeps no shared counts".into())
}

/// Hears of the commits other processes sharing the engine make
/// ([`Storage::feed_commits`]; PostgreSQL's change feed, X5).
pub trait CommitFeed: Send + Sync + 'static {
    /// These writes were committed (by any process; values are not
    /// carried: each [`Write::Put`] holds an empty value).
    fn heard(&self, writes: &[Write]);

    /// Commits may have been missed from now until [`CommitFeed::hearing`]
    /// (the feed's connection dropped, or it is not up yet).
    fn deaf(&self);

    /// Every commit from now on is heard; some before may have been
    /// missed (treat everything as changed).
    fn hearing(&self);

    /// Some commits' writes could not be told (a notification lost or
    /// too old to read): treat everything as changed.
    fn lost(&self);
}

/// A stored (key, value) pair, as [`Storage::scan`] returns them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One change inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store `value` under `key` in `tree`.
    Put {
        /// The tree.
        tree: &'static str,
        /// The key.
        key: Vec<u8>,
        /// The encoded record.
        value: Vec<u8>,
    },
    /// Remove `key` from `tree`.
    Delete {
        /// The tree.
        tree: &'static str,
        /// The key.
        key: Vec<u8>,
    },
}

/// Changes applied all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The changes, in order.
    pub writes: Vec<Write>,
}

impl WriteBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record, encoded as JSON.
    ///
    /// # Errors
    /// When `value` cannot be encoded (never for the hub's record types).
    pub fn put<T: Serialize>(
        &mut self,
        tree: &'static str,
        key: &str,
        value: &T,
    ) -> Result<&mut Self, StoreError> {
        let value = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            tree,
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.writes.push(Write::Put {
            tree,
            key: key.as_bytes().to_vec(),
            value,
        });
        Ok(self)
    }

    /// Removes a record.
    pub fn delete(&mut self, tree: &'static str, key: &str) -> &mut Self {
        self.writes.push(Write::Delete {
            tree,
            key: key.as_bytes().to_vec(),
        });
        self
    }

    /// Whether the batch changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A key-value engine with named trees, atomic batches and durable writes.
/// The seam where tests inject storage faults.
pub trait Storage: Send + Sync + 'static {
    /// The value under `key` in `tree`.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the engine fails.
    fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every (key, value) in `tree` whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the engine fails.
    fn scan(&self, tree: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;

    /// The values under `keys` in `tree` (`None`: absent), in the order of
    /// `keys`: one call per key unless the engine reads many at once
    /// (PostgreSQL: one query), which batched ingest relies on.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the engine fails.
    fn get_many(
        &self,
        tree: &'static str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.get(tree, key)).collect()
    }

    /// If every check of `checks` still holds ([`holds`]), applies every
    /// write of `batch`; both atomically, as one step no other commit
    /// interleaves with. Makes the writes durable before returning.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a check no longer holds, and
    /// [`StoreError::Storage`] when the engine fails; then nothing changed.
    fn commit(&self, checks: &[Check], batch: &WriteBatch) -> Result<(), StoreError>;

    /// Applies every write of `batch` atomically and makes it durable before
    /// returning.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the engine fails; then nothing changed.
    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.commit(&[], batch)
    }

    /// The events of [`EVENTS_TREE`] matching `query` after the key `after`,
    /// at most `limit`, in key (time) order; `None` when the engine does not
    /// query events (then the caller scans). See [`events`].
    ///
    /// # Errors
    /// When the engine fails.
    fn event_page(
        &self,
        _query: &EventQuery,
        _after: Option<&[u8]>,
        _limit: usize,
    ) -> Result<Option<Vec<Entry>>, StoreError> {
        Ok(None)
    }

    /// Plays, skips and time played per item over the events matching
    /// `query`, by item id; `None` when the engine does not aggregate.
    ///
    /// # Errors
    /// When the engine fails.
    fn event_tally(&self, _query: &EventQuery) -> Result<Option<Vec<ItemTally>>, StoreError> {
        Ok(None)
    }

    /// Removes what `prune` names, durably; how many events it removed, or
    /// `None` when the engine leaves retention to the caller's scan.
    ///
    /// # Errors
    /// When the engine fails.
    fn prune_events(&self, _prune: &EventPrune) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Whether the engine keeps windowed counts every process sharing it
    /// sees ([`Storage::count_failures`]; PostgreSQL, X5). `false` (sled,
    /// one process's engine): the caller counts in its memory.
    fn shares_counts(&self) -> bool {
        false
    }

    /// Counts one failure for each of `keys` at `now` in the shared counts;
    /// a key whose window (`window` from its first failure) has passed
    /// starts a new one. Keeps at most about `cap` keys, dropping those
    /// whose window has passed, then the oldest.
    ///
    /// # Errors
    /// When the engine fails or keeps no shared counts.
    fn count_failures(
        &self,
        _keys: &[String],
        _now: DateTime<Utc>,
        _window: TimeDelta,
        _cap: usize,
    ) -> Result<(), StoreError> {
        Err(no_shared_counts())
    }

    /// The shared counts of `keys` whose window is open at `now`, in the
    /// order of `keys`.
    ///
    /// # Errors
    /// When the engine fails or keeps no shared counts.
    fn failure_counts(
        &self,
        _keys: &[String],
        _now: DateTime<Utc>,
        _window: TimeDelta,
    ) -> Result<Vec<Option<WindowCount>>, StoreError> {
        Err(no_shared_counts())
    }

    /// Forgets the shared counts of `keys`.
    ///
    /// # Errors
    /// When the engine fails or keeps no shared counts.
    fn forget_failures(&self, _keys: &[String]) -> Result<(), StoreError> {
        Err(no_shared_counts())
    }

    /// Makes the engine ready to store events from the day before `now`
    /// to `days_ahead` days after it (PostgreSQL: one partition per day).
    ///
    /// # Errors
    /// When the engine fails.
    fn prepare_events(&self, _now: DateTime<Utc>, _days_ahead: u32) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes one request from `key`'s rate bucket in the shared counts (a
    /// request every `interval`, at most `burst` at once, GCRA): `None`
    /// when it may be made, else how long until it may.
    ///
    /// # Errors
    /// When the engine fails or keeps no shared counts.
    fn take_rate(
        &self,
        _key: &str,
        _interval: TimeDelta,
        _burst: u32,
    ) -> Result<Option<TimeDelta>, StoreError> {
        Err(no_shared_counts())
    }

    /// Tells `feed` of the commits other processes make to this engine,
    /// from now on (the feed is told it is [`CommitFeed::deaf`] first,
    /// until it hears); `false` when no other process writes it (sled: the
    /// engine is one process's) and `feed` is never called.
    fn feed_commits(&self, _feed: Arc<dyn CommitFeed>) -> bool {
        false
    }
}

/// The hub's store: typed access to a [`Storage`], and its transactions.
#[derive(Clone)]
pub struct Store {
    /// The engine.
    storage: Arc<dyn Storage>,
}

impl Store {
    /// A store over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// The record under `key` in `tree`.
    ///
    /// # Errors
    /// When the engine fails or the record does not decode.
    pub fn get<T: DeserializeOwned>(
        &self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.storage
            .get(tree, key.as_bytes())?
            .map(|bytes| decode(tree, key.as_bytes(), &bytes))
            .transpose()
    }

    /// Every record in `tree` whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// When the engine fails or a record does not decode.
    pub fn scan<T: DeserializeOwned>(
        &self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.storage
            .scan(tree, prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| decode(tree, &key, &bytes))
            .collect()
    }

    /// Every record in `tree` whose key starts with `prefix`, with its key,
    /// in key order.
    ///
    /// # Errors
    /// When the engine fails or a record does not decode.
    pub fn scan_keyed<T: DeserializeOwned>(
        &self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.storage
            .scan(tree, prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| {
                let value = decode(tree, &key, &bytes)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value))
            })
            .collect()
    }

    /// Every key in `tree` that starts with `prefix`, in key order (for
    /// index trees whose keys carry the facts, e.g. `{node}/{device}`).
    ///
    /// # Errors
    /// When the engine fails.
    pub fn scan_keys(&self, tree: &'static str, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .storage
            .scan(tree, prefix.as_bytes())?
            .into_iter()
            .map(|(key, _)| String::from_utf8_lossy(&key).into_owned())
            .collect())
    }

    /// See [`Storage::event_page`].
    ///
    /// # Errors
    /// When the engine fails.
    pub fn event_page(
        &self,
        query: &EventQuery,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Entry>>, StoreError> {
        self.storage
            .event_page(query, after.map(str::as_bytes), limit)
    }

    /// See [`Storage::event_tally`].
    ///
    /// # Errors
    /// When the engine fails.
    pub fn event_tally(&self, query: &EventQuery) -> Result<Option<Vec<ItemTally>>, StoreError> {
        self.storage.event_tally(query)
    }

    /// See [`Storage::shares_counts`].
    #[must_use]
    pub fn shares_counts(&self) -> bool {
        self.storage.shares_counts()
    }

    /// See [`Storage::take_rate`].
    ///
    /// # Errors
    /// When the engine fails or keeps no shared counts.
    pub fn take_rate(
        &self,
        key: &str,
        interval: TimeDelta,
        burst: u32,
    ) -> Result<Option<TimeDelta>, StoreError> {
        self.storage.take_rate(key, interval, burst)
    }

    /// See [`Storage::count_failures`].
    ///
    /// # Errors
    /// When the engine fails.
    pub fn count_failures(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: TimeDelta,
        cap: usize,
    ) -> Result<(), StoreError> {
        self.storage.count_failures(keys, now, window, cap)
    }

    /// See [`Storage::failure_counts`].
    ///
    /// # Errors
    /// When the engine fails.
    pub fn failure_counts(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Vec<Option<WindowCount>>, StoreError> {
        self.storage.failure_counts(keys, now, window)
    }

    /// See [`Storage::forget_failures`].
    ///
    /// # Errors
    /// When the engine fails.
    pub fn forget_failures(&self, keys: &[String]) -> Result<(), StoreError> {
        self.storage.forget_failures(keys)
    }

    /// See [`Storage::prune_events`], off the async runtime.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn prune_events(&self, prune: EventPrune) -> Result<Option<u64>, StoreError> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || storage.prune_events(&prune))
            .await
            .map_err(|e| StoreError::Storage(format!("retention task failed: {e}")))?
    }

    /// See [`Storage::prepare_events`], off the async runtime.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn prepare_events(
        &self,
        now: DateTime<Utc>,
        days_ahead: u32,
    ) -> Result<(), StoreError> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || storage.prepare_events(now, days_ahead))
            .await
            .map_err(|e| StoreError::Storage(format!("partition task failed: {e}")))?
    }

    /// Applies `batch` atomically and durably, off the async runtime.
    ///
    /// # Errors
    /// When the engine fails; then nothing changed.
    pub async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || storage.apply(&batch))
            .await
            .map_err(|e| StoreError::Storage(format!("write task failed: {e}")))?
    }
}

fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}
