//! Which records changed, for views kept in memory (issue 20: the fleet
//! view maintained incrementally).
//!
//! Owns: [`StoreWatch`] — one per hub, in [`super::Hub`]: the one
//! [`CommitObserver`] a domain above installs, told of every batch after it
//! is committed and durable, whoever wrote it (a service, the ingest queue,
//! a migration, a test) — and [`Watched`], the [`Storage`] wrapper
//! [`super::Hub::open`] puts around the engine so no commit escapes it.
//! Must not: read the store or know what the writes mean; the observer
//! decides that, quickly and without I/O (it runs on the commit's thread).

use std::any::Any;
use std::sync::{Arc, OnceLock};

use crate::store::{Check, Entry, Storage, StoreError, Write, WriteBatch};

/// Hears of every committed batch (see the module doc).
pub trait CommitObserver: Send + Sync + 'static {
    /// `writes` were committed, durably, just now. Called after the commit
    /// returned, so a read started after this call sees them.
    fn committed(&self, writes: &[Write]);

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
    wired: std::sync::atomic::AtomicBool,
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
        self.wired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Tells the observer, if any, of a committed batch.
    fn committed(&self, batch: &WriteBatch) {
        if let Some(observer) = self.observer.get() {
            observer.committed(&batch.writes);
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
        watch
            .wired
            .store(true, std::sync::atomic::Ordering::Release);
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
}
