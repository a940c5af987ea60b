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
//! Everything is in memory and bounded ([`MAX_TRACKED`] entries per table;
//! a restart forgets the counts). Must not: check passwords (the session
//! route does, through [`super::PasswordHashing`]); write the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::values::ordered_id;

/// The most names, name–source pairs or audited sources tracked at once;
/// beyond it the oldest are dropped.
pub const MAX_TRACKED: usize = 10_000;
/// The first delay once a name is past its failures.
pub const NAME_DELAY_BASE: Duration = Duration::from_millis(125);
/// The longest delay of an attempt at a name under attack.
pub const MAX_NAME_DELAY: Duration = Duration::from_secs(4);
/// The most distinct names one aggregated audit entry lists.
pub const MAX_AUDITED_NAMES: usize = 16;

/// Failures in the current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// How many.
    count: u32,
    /// When the window started.
    since: DateTime<Utc>,
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
    /// Per (name, source).
    pairs: Mutex<HashMap<(String, String), Failures>>,
    /// Per name, from every source.
    names: Mutex<HashMap<String, Failures>>,
    /// Per source, this minute's aggregated audit entry; the async lock
    /// also orders the entry's writes, so a later count never loses to an
    /// earlier one.
    audit: tokio::sync::Mutex<HashMap<String, AuditBucket>>,
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

impl LoginThrottle {
    /// A throttle allowing `max_failures` failures per name and source per
    /// `window`.
    #[must_use]
    pub fn new(max_failures: u32, window: TimeDelta) -> Self {
        Self {
            max_failures,
            window,
            pairs: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            audit: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `Some(until)` when `source` is locked out of `name` at `now`.
    #[must_use]
    pub fn locked_until(
        &self,
        name: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let key = (name.to_owned(), source.to_owned());
        current(&self.pairs, &key, now, self.window)
            .filter(|f| f.count >= self.max_failures)
            .map(|f| f.since + self.window)
    }

    /// How long an attempt at `name` waits at `now`: nothing until the name
    /// has failed `max_failures` times in the window (from any sources),
    /// then [`NAME_DELAY_BASE`] doubling per further failure, at most
    /// [`MAX_NAME_DELAY`].
    #[must_use]
    pub fn delay(&self, name: &str, now: DateTime<Utc>) -> Duration {
        let failures =
            current(&self.names, &name.to_owned(), now, self.window).map_or(0, |f| f.count);
        match failures.checked_sub(self.max_failures) {
            None => Duration::ZERO,
            Some(excess) => NAME_DELAY_BASE
                .saturating_mul(1 << excess.min(16))
                .min(MAX_NAME_DELAY),
        }
    }

    /// Records a failed login for `name` from `source` at `now`.
    pub fn record_failure(&self, name: &str, source: &str, now: DateTime<Utc>) {
        let pair = (name.to_owned(), source.to_owned());
        count(&self.pairs, &pair, now, self.window);
        count(&self.names, &name.to_owned(), now, self.window);
    }

    /// Forgets `name`'s failures (from `source`, and the name's delay)
    /// after a successful login.
    pub fn record_success(&self, name: &str, source: &str) {
        self.pairs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(name.to_owned(), source.to_owned()));
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
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
                throttle.locked_until("alice", "203.0.113.1", t0),
                None,
                "after {i} failures"
            );
            assert_eq!(throttle.delay("alice", t0), Duration::ZERO);
            throttle.record_failure("alice", "203.0.113.1", t0);
        }
        assert_eq!(
            throttle.locked_until("alice", "203.0.113.1", t0),
            Some(t0 + TimeDelta::minutes(15))
        );
        assert_eq!(throttle.locked_until("alice", "198.51.100.7", t0), None);
        assert_eq!(throttle.locked_until("bob", "203.0.113.1", t0), None);
        assert_eq!(throttle.delay("alice", t0), NAME_DELAY_BASE);
        for _ in 0..20 {
            throttle.record_failure("alice", "198.51.100.7", t0);
        }
        assert_eq!(throttle.delay("alice", t0), MAX_NAME_DELAY);
        let later = t0 + TimeDelta::minutes(15);
        assert_eq!(throttle.locked_until("alice", "203.0.113.1", later), None);
        assert_eq!(throttle.delay("alice", later), Duration::ZERO);
        throttle.record_success("alice", "203.0.113.1");
        assert_eq!(throttle.locked_until("alice", "203.0.113.1", t0), None);
        assert_eq!(throttle.delay("alice", t0), Duration::ZERO);
    }
}
