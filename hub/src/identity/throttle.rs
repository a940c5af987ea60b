//! The failed-login throttle (S8): after `max_failures` failures for one
//! login name within the lockout window, further attempts are refused until
//! the window passes — whether or not the password is right.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// The most login names tracked at once; beyond it the oldest are dropped.
const MAX_TRACKED: usize = 10_000;

/// Failure counts per login name, in memory (a restart forgets them).
#[derive(Debug)]
pub struct LoginThrottle {
    /// Failures before the lockout.
    max_failures: u32,
    /// How long failures count and the lockout lasts.
    window: TimeDelta,
    /// Per name: failures in the current window and when it started.
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl LoginThrottle {
    /// A throttle allowing `max_failures` failures per `window`.
    #[must_use]
    pub fn new(max_failures: u32, window: TimeDelta) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` when `name` is locked out at `now`.
    #[must_use]
    pub fn locked_until(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (count, since) = failures.get(name)?;
        let until = *since + self.window;
        (*count >= self.max_failures && now < until).then_some(until)
    }

    /// Records a failed login for `name` at `now`.
    pub fn record_failure(&self, name: &str, now: DateTime<Utc>) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(name) {
            let window = self.window;
            failures.retain(|_, (_, since)| now < *since + window);
            if failures.len() >= MAX_TRACKED
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(name.to_owned()).or_insert((0, now));
        if now >= entry.1 + self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Forgets `name`'s failures after a successful login.
    pub fn record_success(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s8_locks_after_max_failures_until_the_window_passes() {
        let t0 = Utc::now();
        let throttle = LoginThrottle::new(3, TimeDelta::minutes(15));
        for i in 0..3 {
            assert_eq!(
                throttle.locked_until("alice", t0),
                None,
                "after {i} failures"
            );
            throttle.record_failure("alice", t0);
        }
        assert_eq!(
            throttle.locked_until("alice", t0),
            Some(t0 + TimeDelta::minutes(15))
        );
        assert_eq!(throttle.locked_until("bob", t0), None, "per login name");
        assert_eq!(
            throttle.locked_until("alice", t0 + TimeDelta::minutes(15)),
            None
        );
        throttle.record_success("alice");
        assert_eq!(throttle.locked_until("alice", t0), None);
    }
}
