//! [`Storage`] on PostgreSQL (X4, DESIGN §10): the hub's named trees as
//! rows of one table, `store_records (tree, key, value)`, keyed by
//! `(tree, key)`; `bytea` orders byte by byte, as sled does, so a prefix
//! scan is a key range in index order.
//!
//! Owns: the connection pool, the schema's migrations (run at start,
//! [`MIGRATION_LOCK`] keeps two starting hubs from running them at once)
//! and the commit: one transaction that takes a transaction-scoped
//! advisory lock per tree it touches (exclusive for the trees it writes,
//! shared for those it only read), re-reads what the hub's transaction
//! read ([`Check`]s, compared by digest), applies its writes and commits
//! with `synchronous_commit = on`, so it is durable before
//! [`Storage::commit`] returns. A check that no longer holds is
//! [`StoreError::Conflict`], and [`super::Store::transact`] runs the
//! closure again. (SERIALIZABLE alone was tried first: its page-level
//! predicate locks failed most concurrent commits on unrelated keys of one
//! index — 2,033 rollbacks for 800 commits in the bench — and could run
//! out of re-runs.) A serialization failure or deadlock reported anyway is
//! a conflict too, and a commit without checks is re-tried here.
//!
//! Each commit also announces the keys it wrote on the store's change
//! feed ([`pg_feed`]), which [`Storage::feed_commits`] listens to: every
//! replica hears of every commit (X5, issue 21).
//!
//! Must not: know what the records mean (as every engine), or block the
//! hub's runtime more than it must: the seam is synchronous, so each call
//! runs on this store's own runtime (rust-postgres is async) and the
//! caller waits for it off its runtime's workers
//! (`tokio::task::block_in_place` on a multi-threaded runtime).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls};

use super::events::{EVENTS_TREE, EventPrune, EventQuery, ItemTally};
use super::{
    Check, CommitFeed, Entry, Storage, StoreError, WindowCount, Write, WriteBatch, digest_range,
    digest_record, pg_counts, pg_events, pg_feed, pg_rates,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The advisory lock held while the schema's migrations run.
pub const MIGRATION_LOCK: i64 = 0x5349_474e_4554_0001;
/// Connections one hub keeps at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection (or to make one).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// Every this many commits whose keys went to `store_changes` also
/// delete its old rows.
const PRUNE_CHANGES_EVERY: u32 = 64;
/// How many times a blind batch is re-tried when PostgreSQL could not
/// serialize it with concurrent commits.
const BLIND_ATTEMPTS: u32 = 16;

const GET: &str = "SELECT value FROM store_records WHERE tree = $1 AND key = $2";
const SCAN_RANGE: &str = "SELECT key, value FROM store_records \
     WHERE tree = $1 AND key >= $2 AND key < $3 ORDER BY key";
const SCAN_FROM: &str =
    "SELECT key, value FROM store_records WHERE tree = $1 AND key >= $2 ORDER BY key";
const CHECK_RECORDS: &str = "SELECT c.i, r.value \
     FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS c(tree, key, i) \
     LEFT JOIN store_records r ON r.tree = c.tree AND r.key = c.key";
const GET_MANY: &str = "SELECT c.i, r.value \
     FROM unnest($2::bytea[]) WITH ORDINALITY AS c(key, i) \
     LEFT JOIN store_records r ON r.tree = $1 AND r.key = c.key";
const UPSERT: &str = "INSERT INTO store_records (tree, key, value) \
     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value";
const DELETE: &str = "DELETE FROM store_records r \
     USING unnest($1::text[], $2::bytea[]) AS d(tree, key) \
     WHERE r.tree = d.tree AND r.key = d.key";
const LOCK_TREE: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
const LOCK_TREE_SHARED: &str = "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))";
const COUNT: &str = "SELECT count(*) FROM store_records WHERE tree = $1";

/// The PostgreSQL-backed engine.
pub struct PgStorage {
    /// The connections.
    pool: Pool,
    /// Runs every call (`None` only while dropping).
    runtime: Option<tokio::runtime::Runtime>,
    /// Failures counted by this process (every
    /// [`pg_counts::PRUNE_EVERY`]th prunes the shared counts).
    counted: AtomicU32,
    /// Rate-limited requests of this process (every
    /// [`pg_rates::PRUNE_EVERY`]th prunes the shared buckets).
    rated: AtomicU32,
    /// Commits made by this process (every [`PRUNE_CHANGES_EVERY`]th
    /// prunes the change feed's stored keys).
    commits: AtomicU32,
    /// How to connect, for the change feed's own connection.
    config: tokio_postgres::Config,
}

/// Why one commit attempt did not commit.
enum Refused {
    /// A check no longer holds.
    Changed,
    /// PostgreSQL refused or failed.
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Refused {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl PgStorage {
    /// Connects to the database at `url` (`postgres://user:pass@host/db`)
    /// and brings its schema up to date.
    ///
    /// # Errors
    /// When the URL does not parse, the server cannot be reached within
    /// 10 s, or a migration fails. The message never repeats the URL (it
    /// may hold a password).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Storage(format!("the PostgreSQL store URL: {e}")))?;
        // Durable before acknowledged (S9), whatever the server's default.
        let options = match config.get_options() {
            Some(options) => format!("{options} -c synchronous_commit=on"),
            None => "-c synchronous_commit=on".to_owned(),
        };
        config.options(&options);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_WAIT);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("signet-store-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Storage(format!("starting the store's runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| StoreError::Storage(format!("the PostgreSQL pool: {e}")))?;
        let storage = Self {
            pool,
            runtime: Some(runtime),
            counted: AtomicU32::new(0),
            rated: AtomicU32::new(0),
            commits: AtomicU32::new(0),
            config,
        };
        let pool = storage.pool.clone();
        storage.run(async move { migrate(&pool).await })?;
        Ok(storage)
    }

    /// Runs `work` on this store's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Storage("the store is closing".into()));
        };
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = send.send(work.await);
        });
        let wait = move || {
            receive
                .recv()
                .unwrap_or_else(|_| Err(StoreError::Storage("a store task failed".into())))
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    /// Stores every entry of `entries` in `tree` (replacing what a key
    /// held), as one transaction: what `signet-hub migrate` copies with.
    ///
    /// # Errors
    /// When PostgreSQL fails; then nothing of `entries` was stored.
    pub fn put_all(&self, tree: &str, entries: Vec<Entry>) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let tree = tree.to_owned();
        self.run(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            let trees = vec![tree.as_str(); entries.len()];
            let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
            let values: Vec<&[u8]> = entries.iter().map(|(_, v)| v.as_slice()).collect();
            if tree == EVENTS_TREE {
                pg_events::upsert(&tx, &keys, &values)
                    .await
                    .map_err(db_error)?;
            } else {
                let upsert = tx.prepare_cached(UPSERT).await.map_err(db_error)?;
                tx.execute(&upsert, &[&trees, &keys, &values])
                    .await
                    .map_err(db_error)?;
            }
            pg_feed::announce_everything(&tx).await.map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
    }

    /// How many records `tree` holds.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub fn count(&self, tree: &str) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        let tree = tree.to_owned();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n: i64 = if tree == EVENTS_TREE {
                pg_events::count(&client).await.map_err(db_error)?
            } else {
                let count = client.prepare_cached(COUNT).await.map_err(db_error)?;
                let row = client.query_one(&count, &[&tree]).await.map_err(db_error)?;
                row.try_get(0).map_err(db_error)?
            };
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

impl Drop for PgStorage {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which is refused inside
        // another runtime (where a hub is dropped): stop it without waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Storage for PgStorage {
    fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            if tree == EVENTS_TREE {
                return pg_events::get(&client, &key).await.map_err(db_error);
            }
            let get = client.prepare_cached(GET).await.map_err(db_error)?;
            let row = client
                .query_opt(&get, &[&tree, &key])
                .await
                .map_err(db_error)?;
            row.map(|row| row.try_get(0)).transpose().map_err(db_error)
        })
    }

    fn scan(&self, tree: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let pool = self.pool.clone();
        let prefix = prefix.to_vec();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            scan(&client, tree, &prefix).await.map_err(db_error)
        })
    }

    fn get_many(
        &self,
        tree: &'static str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.pool.clone();
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            if tree == EVENTS_TREE {
                return pg_events::values(&client, &keys).await.map_err(db_error);
            }
            let get_many = client.prepare_cached(GET_MANY).await.map_err(db_error)?;
            let mut out = vec![None; keys.len()];
            for row in client
                .query(&get_many, &[&tree, &keys])
                .await
                .map_err(db_error)?
            {
                let i: i64 = row.try_get(0).map_err(db_error)?;
                if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
                    *slot = row.try_get(1).map_err(db_error)?;
                }
            }
            Ok(out)
        })
    }

    fn commit(&self, checks: &[Check], batch: &WriteBatch) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let checks = checks.to_vec();
        let writes = final_writes(batch);
        let prune = self
            .commits
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_CHANGES_EVERY);
        self.run(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match try_commit(&mut client, &checks, &writes, prune).await {
                    Ok(()) => return Ok(()),
                    Err(Refused::Changed) => return Err(StoreError::Conflict),
                    Err(Refused::Db(e)) if is_serialization_failure(&e) => {
                        if !checks.is_empty() {
                            return Err(StoreError::Conflict);
                        }
                        if attempt >= BLIND_ATTEMPTS {
                            return Err(db_error(e));
                        }
                    }
                    Err(Refused::Db(e)) => return Err(db_error(e)),
                }
            }
        })
    }

    fn event_page(
        &self,
        query: &EventQuery,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Option<Vec<Entry>>, StoreError> {
        let pool = self.pool.clone();
        let query = query.clone();
        let after = after.map(<[u8]>::to_vec);
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            pg_events::page(&client, &query, after.as_deref(), limit)
                .await
                .map(Some)
                .map_err(db_error)
        })
    }

    fn event_tally(&self, query: &EventQuery) -> Result<Option<Vec<ItemTally>>, StoreError> {
        let pool = self.pool.clone();
        let query = query.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            pg_events::tally(&client, &query)
                .await
                .map(Some)
                .map_err(db_error)
        })
    }

    fn prune_events(&self, prune: &EventPrune) -> Result<Option<u64>, StoreError> {
        let pool = self.pool.clone();
        let prune = prune.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            pg_events::prune(&mut client, &prune)
                .await
                .map(Some)
                .map_err(db_error)
        })
    }

    fn shares_counts(&self) -> bool {
        true
    }

    fn count_failures(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: TimeDelta,
        cap: usize,
    ) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let keys = keys.to_vec();
        let prune = self
            .counted
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(pg_counts::PRUNE_EVERY);
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            pg_counts::add(&client, &keys, now, window, (cap, prune))
                .await
                .map_err(db_error)
        })
    }

    fn failure_counts(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Vec<Option<WindowCount>>, StoreError> {
        let pool = self.pool.clone();
        let keys = keys.to_vec();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            pg_counts::current(&client, &keys, now, window)
                .await
                .map_err(db_error)
        })
    }

    fn forget_failures(&self, keys: &[String]) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let keys = keys.to_vec();
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            pg_counts::forget(&client, &keys).await.map_err(db_error)
        })
    }

    fn take_rate(
        &self,
        key: &str,
        interval: TimeDelta,
        burst: u32,
    ) -> Result<Option<TimeDelta>, StoreError> {
        let pool = self.pool.clone();
        let key = key.to_owned();
        let prune = self
            .rated
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(pg_rates::PRUNE_EVERY);
        self.run(async move {
            let client = pool.get().await.map_err(pool_error)?;
            pg_rates::take_rate(&client, &key, interval, burst, prune)
                .await
                .map_err(db_error)
        })
    }

    fn feed_commits(&self, feed: std::sync::Arc<dyn CommitFeed>) -> bool {
        let Some(runtime) = &self.runtime else {
            return false;
        };
        feed.deaf();
        runtime.spawn(pg_feed::listen(self.config.clone(), feed));
        true
    }

    fn prepare_events(&self, now: DateTime<Utc>, days_ahead: u32) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let made = pg_events::prepare(&mut client, now, days_ahead)
                .await
                .map_err(db_error)?;
            if made > 0 {
                tracing::info!(partitions = made, "made the days' play event partitions");
            }
            Ok(())
        })
    }
}

/// What a commit leaves under one key: (tree, key, value; `None`: deleted).
type Final = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// What `batch` leaves under each key it touches (`None`: deleted), in
/// key order: one row per key, and every commit locks rows in the same
/// order.
fn final_writes(batch: &WriteBatch) -> Vec<Final> {
    let mut last: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>> = BTreeMap::new();
    for write in &batch.writes {
        match write {
            Write::Put { tree, key, value } => {
                last.insert((tree, key.clone()), Some(value.clone()))
            }
            Write::Delete { tree, key } => last.insert((tree, key.clone()), None),
        };
    }
    last.into_iter()
        .map(|((tree, key), value)| (tree, key, value))
        .collect()
}

/// One attempt: lock, check, write, announce the keys written
/// ([`pg_feed::announce`], `prune` its old stored keys) and commit in one
/// transaction.
async fn try_commit(
    client: &mut deadpool_postgres::Client,
    checks: &[Check],
    writes: &[Final],
    prune: bool,
) -> Result<(), Refused> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    // Each tree this commit writes is locked exclusively, each it only
    // reads shared, in name order (so commits never deadlock): no commit
    // can change a checked tree between the checks and this commit, and
    // each statement after the locks sees every commit before them.
    let mut trees: BTreeMap<&str, bool> = BTreeMap::new();
    for check in checks {
        let (Check::Record { tree, .. } | Check::Range { tree, .. }) = check;
        trees.entry(tree).or_insert(false);
    }
    for (tree, _, _) in writes {
        trees.insert(tree, true);
    }
    for (tree, exclusive) in trees {
        let lock = tx
            .prepare_cached(if exclusive {
                LOCK_TREE
            } else {
                LOCK_TREE_SHARED
            })
            .await?;
        tx.execute(&lock, &[&tree]).await?;
    }
    if !still_hold(&tx, checks).await? {
        tx.rollback().await?;
        return Err(Refused::Changed);
    }
    let announced: Vec<(&'static str, &[u8], bool)> = writes
        .iter()
        .map(|(tree, key, value)| (*tree, key.as_slice(), value.is_some()))
        .collect();
    let (events, writes): (Vec<&Final>, Vec<&Final>) =
        writes.iter().partition(|(tree, _, _)| *tree == EVENTS_TREE);
    let (puts, deletes): (Vec<&Final>, Vec<&Final>) =
        events.into_iter().partition(|(_, _, v)| v.is_some());
    if !puts.is_empty() {
        let keys: Vec<&[u8]> = puts.iter().map(|(_, k, _)| k.as_slice()).collect();
        let values: Vec<&[u8]> = puts
            .iter()
            .map(|(_, _, v)| v.as_deref().unwrap_or_default())
            .collect();
        pg_events::upsert(&tx, &keys, &values).await?;
    }
    if !deletes.is_empty() {
        let keys: Vec<&[u8]> = deletes.iter().map(|(_, k, _)| k.as_slice()).collect();
        pg_events::delete(&tx, &keys).await?;
    }
    let (puts, deletes): (Vec<&Final>, Vec<&Final>) =
        writes.into_iter().partition(|(_, _, v)| v.is_some());
    if !puts.is_empty() {
        let trees: Vec<&str> = puts.iter().map(|(t, _, _)| *t).collect();
        let keys: Vec<&[u8]> = puts.iter().map(|(_, k, _)| k.as_slice()).collect();
        let values: Vec<&[u8]> = puts
            .iter()
            .map(|(_, _, v)| v.as_deref().unwrap_or_default())
            .collect();
        let upsert = tx.prepare_cached(UPSERT).await?;
        tx.execute(&upsert, &[&trees, &keys, &values]).await?;
    }
    if !deletes.is_empty() {
        let trees: Vec<&str> = deletes.iter().map(|(t, _, _)| *t).collect();
        let keys: Vec<&[u8]> = deletes.iter().map(|(_, k, _)| k.as_slice()).collect();
        let delete = tx.prepare_cached(DELETE).await?;
        tx.execute(&delete, &[&trees, &keys]).await?;
    }
    if !announced.is_empty() {
        pg_feed::announce(&tx, &announced, prune).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether every check still holds, read inside `tx`.
async fn still_hold(
    tx: &deadpool_postgres::Transaction<'_>,
    checks: &[Check],
) -> Result<bool, tokio_postgres::Error> {
    let mut records = Vec::new();
    for check in checks {
        match check {
            Check::Record { tree, key, digest } => records.push((*tree, key.as_slice(), digest)),
            Check::Range {
                tree,
                prefix,
                digest,
            } => {
                if digest_range(&scan(tx, tree, prefix).await?) != *digest {
                    return Ok(false);
                }
            }
        }
    }
    let (events, records): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|(tree, _, _)| *tree == EVENTS_TREE);
    if !events.is_empty() {
        let keys: Vec<&[u8]> = events.iter().map(|(_, k, _)| *k).collect();
        let values = pg_events::values(tx, &keys).await?;
        for ((_, _, digest), value) in events.iter().zip(values) {
            if **digest != value.as_deref().map(digest_record) {
                return Ok(false);
            }
        }
    }
    if records.is_empty() {
        return Ok(true);
    }
    let trees: Vec<&str> = records.iter().map(|(t, _, _)| *t).collect();
    let keys: Vec<&[u8]> = records.iter().map(|(_, k, _)| *k).collect();
    let check = tx.prepare_cached(CHECK_RECORDS).await?;
    for row in tx.query(&check, &[&trees, &keys]).await? {
        let i: i64 = row.try_get(0)?;
        let value: Option<Vec<u8>> = row.try_get(1)?;
        let expected = usize::try_from(i - 1)
            .ok()
            .and_then(|i| records.get(i))
            .map(|(_, _, digest)| *digest);
        if expected != Some(&value.as_deref().map(digest_record)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every (key, value) of `tree` whose key starts with `prefix`, in key order.
async fn scan(
    client: &impl GenericClient,
    tree: &str,
    prefix: &[u8],
) -> Result<Vec<Entry>, tokio_postgres::Error> {
    if tree == EVENTS_TREE {
        return pg_events::scan(client, prefix).await;
    }
    let rows = match successor(prefix) {
        Some(end) => {
            let range = client.prepare_cached(SCAN_RANGE).await?;
            client.query(&range, &[&tree, &prefix, &end]).await?
        }
        None => {
            let from = client.prepare_cached(SCAN_FROM).await?;
            client.query(&from, &[&tree, &prefix]).await?
        }
    };
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The least key greater than every key starting with `prefix`, or `None`
/// when there is none (`prefix` empty or all `0xFF`).
#[must_use]
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Brings the schema up to date, one hub at a time.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    let result = embedded::migrations::runner()
        .run_async(&mut **client)
        .await
        .map_err(|e| StoreError::Storage(format!("migrating the PostgreSQL store: {e}")));
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    result.map(|_| ())
}

fn is_serialization_failure(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Storage(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => StoreError::Storage(format!("postgres: {e}")),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        e => StoreError::Storage(format!("postgres: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn x4_a_prefix_successor_carries_past_ff_bytes() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(successor(&[b'a', 0xFF, 0xFF]), Some(b"b".to_vec()));
        assert_eq!(successor(&[0xFF, 0xFF]), None);
        assert_eq!(successor(b""), None);
    }
}
