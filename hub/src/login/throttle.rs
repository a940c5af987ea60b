//! The failed-login throttle (S8, S12).
//!
//! - After `max_failures` failures for one login name *from one source*
//!   within the window, that source is refused for that name until the
//!   window passes, whether or not the password is right. Other sources
//!   are not: no stranger can lock an account out.
//! - Past `max_failures` failures for a name from anywhere, every attempt
//!   at the name is *delayed* (not refused), doubling per failure up to
//!   [`MAX_NAME_DELAY`], which slows a spray spread over many sources.
//! - Failed logins are audited as one entry per source per minute, updated
//!   as failures come (count and the names tried), not one per attempt:
//!   [`LoginThrottle::failed_logins`] aggregates them, identity writes the
//!   entry.
//!
//! Where the failures are counted is a [`FailureCounts`]: this process's
//! memory ([`MemoryCounts`], bounded: [`MAX_TRACKED`] entries per table; a
//! restart forgets the counts) on one hub, or a table every replica shares
//! (X5: on PostgreSQL, installed by `app`, bounded to [`SHARED_CAP`] rows
//! and pruned), so N replicas allow the same attempts as one. The audit
//! aggregates stay in each process's memory. Must not: check passwords
//! (the session route does, through [`super::PasswordHashing`]); write the
//! store itself (the shared counts are the store's, behind the trait).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::values::ordered_id;

/// The most names, name–source pairs or audited sources tracked at once;
/// beyond it the oldest are dropped.
pub const MAX_TRACKED: usize = 10_000;
/// The most counted keys (names and name–source pairs together) the shared
/// counts keep; beyond it the oldest windows are dropped.
pub const SHARED_CAP: usize = 2 * MAX_TRACKED;
/// The first delay once a name is past its failures.
pub const NAME_DELAY_BASE: Duration = Duration::from_millis(125);
/// The longest delay of an attempt at a name under attack.
pub const MAX_NAME_DELAY: Duration = Duration::from_secs(4);
/// The most distinct names one aggregated audit entry lists.
pub const MAX_AUDITED_NAMES: usize = 16;

/// Failures in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// How many.
    pub count: u32,
    /// When the window started.
    pub since: DateTime<Utc>,
}

/// What one count is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted<'a> {
    /// A login name from one source.
    Pair {
        /// The login name.
        name: &'a str,
        /// The client address.
        source: &'a str,
    },
    /// A login name, from every source.
    Name(&'a str),
}

impl Counted<'_> {
    /// The key a shared table keeps it under (unit separators between the
    /// parts: a name cannot hold a control character).
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Pair { name, source } => format!("p\u{1f}{source}\u{1f}{name}"),
            Self::Name(name) => format!("n\u{1f}{name}"),
        }
    }
}

/// Why the counts could not be read or written (the shared store failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed-login counts: {0}")]
pub struct CountError(pub String);

/// Where failures are counted (see the module doc).
pub trait FailureCounts: Send + Sync + std::fmt::Debug {
    /// Counts one failure for each of `keys` at `now`; a key whose window
    /// (`window` from its first failure) has passed starts a new one.
    ///
    /// # Errors
    /// When the counts cannot be written.
    fn add(
        &self,
        keys: &[Counted<'_>],
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<(), CountError>;

    /// The failures of `key` whose window is still open at `now`.
    ///
    /// # Errors
    /// When the counts cannot be read.
    fn current(
        &self,
        key: Counted<'_>,
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Option<Failures>, CountError>;

    /// Forgets `keys`.
    ///
    /// # Errors
    /// When the counts cannot be written.
    fn forget(&self, keys: &[Counted<'_>]) -> Result<(), CountError>;
}

/// Counts in this process's memory: one table per kind of key, each
/// bounded to [`MAX_TRACKED`].
#[derive(Debug, Default)]
pub struct MemoryCounts {
    /// Per (name, source).
    pairs: Mutex<HashMap<(String, String), Failures>>,
    /// Per name, from every source.
    names: Mutex<HashMap<String, Failures>>,
}

/// Counts one failure for `key` at `now` in `table`, keeping it bounded.
fn count<K: std::hash::Hash + Eq + Clone>(
    table: &Mutex<HashMap<K, Failures>>,
    key: &K,
    now: DateTime<Utc>,
    window: TimeDelta,
) {
    let mut table = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if table.len() >= MAX_TRACKED && !table.contains_key(key) {
        table.retain(|_, f| now < f.since + window);
        if table.len() >= MAX_TRACKED
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, f)| f.since)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
    }
    let entry = table.entry(key.clone()).or_insert(Failures {
        count: 0,
        since: now,
    });
    if now >= entry.since + window {
        *entry = Failures {
            count: 0,
            since: now,
        };
    }
    entry.count = entry.count.saturating_add(1);
}

/// The failures for `key` still in the window at `now`.
fn current<K: std::hash::Hash + Eq>(
    table: &Mutex<HashMap<K, Failures>>,
    key: &K,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Option<Failures> {
    table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .copied()
        .filter(|f| now < f.since + window)
}

fn pair_of(name: &str, source: &str) -> (String, String) {
    (name.to_owned(), source.to_owned())
}

impl FailureCounts for MemoryCounts {
    fn add(
        &self,
        keys: &[Counted<'_>],
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<(), CountError> {
        for key in keys {
            match *key {
                Counted::Pair { name, source } => {
                    count(&self.pairs, &pair_of(name, source), now, window);
                }
                Counted::Name(name) => count(&self.names, &name.to_owned(), now, window),
            }
        }
        Ok(())
    }

    fn current(
        &self,
        key: Counted<'_>,
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Option<Failures>, CountError> {
        Ok(match key {
            Counted::Pair { name, source } => {
                current(&self.pairs, &pair_of(name, source), now, window)
            }
            Counted::Name(name) => current(&self.names, &name.to_owned(), now, window),
        })
    }

    fn forget(&self, keys: &[Counted<'_>]) -> Result<(), CountError> {
        for key in keys {
            match *key {
                Counted::Pair { name, source } => {
                    self.pairs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&pair_of(name, source));
                }
                Counted::Name(name) => {
                    self.names
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(name);
                }
            }
        }
        Ok(())
    }
}

/// One source's failed logins in one minute: one audit entry.
#[derive(Debug, Clone)]
struct AuditBucket {
    /// The minute (Unix seconds / 60).
    minute: i64,
    /// The entry's id (and key), kept so each update replaces it.
    id: String,
    /// When the first failure of the minute happened.
    first: DateTime<Utc>,
    /// Failures so far.
    count: u32,
    /// The distinct names tried, at most [`MAX_AUDITED_NAMES`].
    names: Vec<String>,
}

/// Failure counts per (name, source) and per name, and the audit buckets.
#[derive(Debug)]
pub struct LoginThrottle {
    /// Failures of one name from one source before that pair is refused.
    max_failures: u32,
    /// How long failures count and a refusal lasts.
    window: TimeDelta,
    /// Where the failures are counted.
    counts: Box<dyn FailureCounts>,
    /// Per source, this minute's aggregated audit entry; the async lock
    /// also orders the entry's writes, so a later count never loses to an
    /// earlier one.
    audit: tokio::sync::Mutex<HashMap<String, AuditBucket>>,
}

impl LoginThrottle {
    /// A throttle allowing `max_failures` failures per name and source per
    /// `window`, counting in memory.
    #[must_use]
    pub fn new(max_failures: u32, window: TimeDelta) -> Self {
        Self::counting_in(max_failures, window, Box::new(MemoryCounts::default()))
    }

    /// The same, counting in `counts` (the shared store's, X5).
    #[must_use]
    pub fn counting_in(
        max_failures: u32,
        window: TimeDelta,
        counts: Box<dyn FailureCounts>,
    ) -> Self {
        Self {
            max_failures,
            window,
            counts,
            audit: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `Some(until)` when `source` is locked out of `name` at `now`.
    ///
    /// # Errors
    /// When the counts cannot be read.
    pub fn locked_until(
        &self,
        name: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, CountError> {
        Ok(self
            .counts
            .current(Counted::Pair { name, source }, now, self.window)?
            .filter(|f| f.count >= self.max_failures)
            .map(|f| f.since + self.window))
    }

    /// How long an attempt at `name` waits at `now`: nothing until the name
    /// has failed `max_failures` times in the window (from any sources),
    /// then [`NAME_DELAY_BASE`] doubling per further failure, at most
    /// [`MAX_NAME_DELAY`].
    ///
    /// # Errors
    /// When the counts cannot be read.
    pub fn delay(&self, name: &str, now: DateTime<Utc>) -> Result<Duration, CountError> {
        let failures = self
            .counts
            .current(Counted::Name(name), now, self.window)?
            .map_or(0, |f| f.count);
        Ok(match failures.checked_sub(self.max_failures) {
            None => Duration::ZERO,
            Some(excess) => NAME_DELAY_BASE
                .saturating_mul(1 << excess.min(16))
                .min(MAX_NAME_DELAY),
        })
    }

    /// Records a failed login for `name` from `source` at `now`.
    ///
    /// # Errors
    /// When the counts cannot be written.
    pub fn record_failure(
        &self,
        name: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CountError> {
        self.counts.add(
            &[Counted::Pair { name, source }, Counted::Name(name)],
            now,
            self.window,
        )
    }

    /// Forgets `name`'s failures (from `source`, and the name's delay)
    /// after a successful login.
    ///
    /// # Errors
    /// When the counts cannot be written.
    pub fn record_success(&self, name: &str, source: &str) -> Result<(), CountError> {
        self.counts
            .forget(&[Counted::Pair { name, source }, Counted::Name(name)])
    }

    /// Counts a failed login for `name` from `source` at `now` into the
    /// source's aggregate of this minute, for its one audit entry: the
    /// first failure of a source in a minute starts an entry (a fresh id),
    /// later ones in the same minute update it with the new count and
    /// names. The aggregate holds the lock that orders these updates: write
    /// the entry before dropping it, so a later count never loses to an
    /// earlier one.
    pub async fn failed_logins(
        &self,
        name: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> FailedLogins<'_> {
        let minute = now.timestamp().div_euclid(60);
        let mut buckets = self.audit.lock().await;
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(source) {
            buckets.retain(|_, b| b.minute == minute);
            if buckets.len() >= MAX_TRACKED
                && let Some(oldest) = buckets
                    .iter()
                    .min_by_key(|(_, b)| b.first)
                    .map(|(k, _)| k.clone())
            {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets
            .entry(source.to_owned())
            .or_insert_with(|| AuditBucket {
                minute,
                id: ordered_id(now),
                first: now,
                count: 0,
                names: Vec::new(),
            });
        if bucket.minute != minute {
            *bucket = AuditBucket {
                minute,
                id: ordered_id(now),
                first: now,
                count: 0,
                names: Vec::new(),
            };
        }
        bucket.count = bucket.count.saturating_add(1);
        if bucket.names.len() < MAX_AUDITED_NAMES && !bucket.names.iter().any(|n| n == name) {
            bucket.names.push(name.to_owned());
        }
        let bucket = bucket.clone();
        FailedLogins {
            id: bucket.id,
            first: bucket.first,
            count: bucket.count,
            names: bucket.names,
            _order: buckets,
        }
    }
}

/// One source's failed logins in one minute, as its audit entry says them
/// ([`LoginThrottle::failed_logins`]). Holds the lock that orders the
/// entry's writes while it lives.
pub struct FailedLogins<'a> {
    /// The entry's id (and key): the same for every update of the minute.
    pub id: String,
    /// When the first failure of the minute happened.
    pub first: DateTime<Utc>,
    /// Failures so far.
    pub count: u32,
    /// The distinct names tried, at most [`MAX_AUDITED_NAMES`].
    pub names: Vec<String>,
    /// The aggregates' lock.
    _order: tokio::sync::MutexGuard<'a, HashMap<String, AuditBucket>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S8, S12: a name–source pair locks after max failures until the
    /// window passes; another source is not locked; the name alone only
    /// grows a delay.
    #[test]
    fn s12_locks_the_pair_not_the_name_and_delays_the_name() {
        let t0 = Utc::now();
        let throttle = LoginThrottle::new(3, TimeDelta::minutes(15));
        for i in 0..3 {
            assert_eq!(
                throttle.locked_until("alice", "203.0.113.1", t0).unwrap(),
                None,
                "after {i} failures"
            );
            assert_eq!(throttle.delay("alice", t0).unwrap(), Duration::ZERO);
            throttle.record_failure("alice", "203.0.113.1", t0).unwrap();
        }
        assert_eq!(
            throttle.locked_until("alice", "203.0.113.1", t0).unwrap(),
            Some(t0 + TimeDelta::minutes(15))
        );
        assert_eq!(
            throttle.locked_until("alice", "198.51.100.7", t0).unwrap(),
            None
        );
        assert_eq!(
            throttle.locked_until("bob", "203.0.113.1", t0).unwrap(),
            None
        );
        assert_eq!(throttle.delay("alice", t0).unwrap(), NAME_DELAY_BASE);
        for _ in 0..20 {
            throttle
                .record_failure("alice", "198.51.100.7", t0)
                .unwrap();
        }
        assert_eq!(throttle.delay("alice", t0).unwrap(), MAX_NAME_DELAY);
        let later = t0 + TimeDelta::minutes(15);
        assert_eq!(
            throttle
                .locked_until("alice", "203.0.113.1", later)
                .unwrap(),
            None
        );
        assert_eq!(throttle.delay("alice", later).unwrap(), Duration::ZERO);
        throttle.record_success("alice", "203.0.113.1").unwrap();
        assert_eq!(
            throttle.locked_until("alice", "203.0.113.1", t0).unwrap(),
            None
        );
        assert_eq!(throttle.delay("alice", t0).unwrap(), Duration::ZERO);
    }
}
