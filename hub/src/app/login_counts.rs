//! The login throttle's counts in the shared store (S12, X5; issue 21):
//! with replicas on PostgreSQL each replica's [`crate::login::LoginThrottle`]
//! counts failures in the store's shared table, so failed logins spread
//! over N replicas are refused at the same count as on one hub.
//!
//! Owns: the adapter from the throttle's [`FailureCounts`] to the store's
//! shared counts. Must not: decide anything (the throttle does).

use chrono::{DateTime, TimeDelta, Utc};

use crate::login::throttle::{CountError, Counted, FailureCounts, Failures, SHARED_CAP};
use crate::store::{Store, StoreError};

/// Failure counts kept in a store that [`Store::shares_counts`].
#[derive(Clone)]
pub struct StoreCounts {
    store: Store,
}

impl StoreCounts {
    /// Counts in `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl std::fmt::Debug for StoreCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCounts")
    }
}

fn keys(counted: &[Counted<'_>]) -> Vec<String> {
    counted.iter().map(Counted::key).collect()
}

fn count_error(e: &StoreError) -> CountError {
    CountError(e.to_string())
}

impl FailureCounts for StoreCounts {
    fn add(
        &self,
        counted: &[Counted<'_>],
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<(), CountError> {
        self.store
            .count_failures(&keys(counted), now, window, SHARED_CAP)
            .map_err(|e| count_error(&e))
    }

    fn current(
        &self,
        counted: Counted<'_>,
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Option<Failures>, CountError> {
        let counts = self
            .store
            .failure_counts(&[counted.key()], now, window)
            .map_err(|e| count_error(&e))?;
        Ok(counts.into_iter().next().flatten().map(|c| Failures {
            count: c.count,
            since: c.since,
        }))
    }

    fn forget(&self, counted: &[Counted<'_>]) -> Result<(), CountError> {
        self.store
            .forget_failures(&keys(counted))
            .map_err(|e| count_error(&e))
    }
}
