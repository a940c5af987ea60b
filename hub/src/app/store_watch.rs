//! Which records changed, for views kept in memory (issue 20: the fleet
//! view maintained incrementally).
//!
//! Owns: [`StoreWatch`] — one per hub, in [`super::Hub`]: the one
//! [`CommitObserver`] a domain above installs, told of every batch after it
//! is committed and durable, whoever wrote it (a service, the ingest queue,
//! a migration, a test) — and [`Watched`], the [`Storage`] wrapper
//! [`super::Hub::open`] puts around the engine so no commit escapes it.
//! On a store other processes write too (PostgreSQL, X5) the watch is also
//! the engine's [`CommitFeed`]: it hears every replica's commits, and while
//! the feed is down ([`StoreWatch::hears_all`] is false) a view must read
//! the store; when it hears again, everything may have changed.
//! Must not: read the store or know what the writes mean; the observer
//! decides that, quickly and without I/O (it runs on the commit's thread).

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};

use crate::store::{
    Check, CommitFeed, Entry, EventPrune, EventQuery, ItemTally, Storage, StoreError, WindowCount,
    Write, WriteBatch,
};

/// Hears of every committed batch (see the module doc).
pub trait CommitObserver: Send + Sync + 'static {
    /// `writes` were committed, durably, just now. Called after the commit
    /// returned, so a read started after this call sees them.
    fn committed(&self, writes: &[Write]);

    /// Commits may have been missed (the store's change feed dropped):
    /// anything may have changed since the observer last looked.
    fn everything_changed(&self);

    /// The observer itself, for the domain that installed it.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// The hub's commit observer, installed once by the domain that keeps a
/// view (the first to ask installs it).
#[derive(Default)]
pub struct StoreWatch {
    /// The observer, once installed.
    observer: OnceLock<Arc<dyn CommitObserver>>,
    /// Whether a [`Watched`] storage reports to it (a hub assembled by
    /// hand around a bare storage has none: nothing is heard).
    wired: AtomicBool,
    /// Whether the engine's change feed is down: commits of other
    /// processes may go unheard.
    deaf: AtomicBool,
}

impl std::fmt::Debug for StoreWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWatch")
            .field("installed", &self.observer.get().is_some())
            .finish()
    }
}

impl StoreWatch {
    /// The installed observer, installing `make()` first when there is
    /// none. From the moment it returns, every commit reaches it.
    pub fn observer_or_install(
        &self,
        make: impl FnOnce() -> Arc<dyn CommitObserver>,
    ) -> Arc<dyn CommitObserver> {
        Arc::clone(self.observer.get_or_init(make))
    }

    /// Whether the hub's store reports its commits here ([`Watched`]):
    /// without that an observer hears nothing and must not be trusted.
    #[must_use]
    pub fn is_wired(&self) -> bool {
        self.wired.load(Ordering::Acquire)
    }

    /// Whether every commit, whoever made it, reaches the observer now:
    /// wired, and the engine's change feed (if any) listening.
    #[must_use]
    pub fn hears_all(&self) -> bool {
        self.is_wired() && !self.deaf.load(Ordering::Acquire)
    }

    /// Tells the observer, if any, of a committed batch.
    fn committed(&self, batch: &WriteBatch) {
        if let Some(observer) = self.observer.get() {
            observer.committed(&batch.writes);
        }
    }
}

impl CommitFeed for StoreWatch {
    fn heard(&self, writes: &[Write]) {
        if let Some(observer) = self.observer.get() {
            observer.committed(writes);
        }
    }

    fn deaf(&self) {
        self.deaf.store(true, Ordering::Release);
    }

    fn hearing(&self) {
        // Everything first: a view that sees the feed up has also seen
        // that what it held may be stale.
        self.lost();
        self.deaf.store(false, Ordering::Release);
    }

    fn lost(&self) {
        if let Some(observer) = self.observer.get() {
            observer.everything_changed();
        }
    }
}

/// A [`Storage`] that tells a [`StoreWatch`] of every commit.
pub struct Watched {
    /// The engine.
    inner: Arc<dyn Storage>,
    /// Who hears of commits.
    watch: Arc<StoreWatch>,
}

impl Watched {
    /// `inner`, watched by `watch`.
    #[must_use]
    pub fn new(inner: Arc<dyn Storage>, watch: Arc<StoreWatch>) -> Self {
        watch.wired.store(true, Ordering::Release);
        Self { inner, watch }
    }
}

impl Storage for Watched {
    fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }

    fn scan(&self, tree: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(tree, prefix)
    }

    fn commit(&self, checks: &[Check], batch: &WriteBatch) -> Result<(), StoreError> {
        self.inner.commit(checks, batch)?;
        self.watch.committed(batch);
        Ok(())
    }

    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.inner.apply(batch)?;
        self.watch.committed(batch);
        Ok(())
    }

    fn get_many(
        &self,
        tree: &'static str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.get_many(tree, keys)
    }

    fn event_page(
        &self,
        query: &EventQuery,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Option<Vec<Entry>>, StoreError> {
        self.inner.event_page(query, after, limit)
    }

    fn event_tally(&self, query: &EventQuery) -> Result<Option<Vec<ItemTally>>, StoreError> {
        self.inner.event_tally(query)
    }

    fn prune_events(&self, prune: &EventPrune) -> Result<Option<u64>, StoreError> {
        self.inner.prune_events(prune)
    }

    fn shares_counts(&self) -> bool {
        self.inner.shares_counts()
    }

    fn count_failures(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: TimeDelta,
        cap: usize,
    ) -> Result<(), StoreError> {
        self.inner.count_failures(keys, now, window, cap)
    }

    fn failure_counts(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Vec<Option<WindowCount>>, StoreError> {
        self.inner.failure_counts(keys, now, window)
    }

    fn forget_failures(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.forget_failures(keys)
    }

    fn prepare_events(&self, now: DateTime<Utc>, days_ahead: u32) -> Result<(), StoreError> {
        self.inner.prepare_events(now, days_ahead)
    }

    fn take_rate(
        &self,
        key: &str,
        interval: TimeDelta,
        burst: u32,
    ) -> Result<Option<TimeDelta>, StoreError> {
        self.inner.take_rate(key, interval, burst)
    }

    fn feed_commits(&self, feed: Arc<dyn CommitFeed>) -> bool {
        self.inner.feed_commits(feed)
    }
}
