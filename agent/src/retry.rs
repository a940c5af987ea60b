//! One retry policy for the whole agent: exponential backoff with full
//! jitter, used by the MQTT reconnect loop and the document fetcher (sync),
//! the content downloader (cache), the content task (activate) and the
//! event uploader (events). It depends on nothing but the clock's random
//! numbers, so every module may use it.
//!
//! Owns: the delay after the n-th consecutive failure. Must not: sleep,
//! count failures or decide what to retry — each caller keeps its own
//! failure count (they persist across events, not one call) and waits as
//! it must (`tokio::time::sleep`, a deadline in its own `select!`).

use std::time::Duration;

use crate::clock::random_u64;

/// Exponential backoff with full jitter: the n-th consecutive failure waits
/// a uniformly random time in `[0, min(cap, base · 2^(n-1))]`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first ceiling.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling of the delay after `failures` consecutive failures.
    #[must_use]
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// A random delay up to [`Self::ceiling`].
    #[must_use]
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(failures).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(random_u64() % ceiling.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S5: the delay ceiling doubles from the base and stops at the cap;
    /// the jittered delay never exceeds it.
    #[test]
    fn s5_backoff_doubles_up_to_the_cap_with_jitter_below() {
        let backoff = Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(10),
        };
        assert_eq!(backoff.ceiling(1), Duration::from_millis(500));
        assert_eq!(backoff.ceiling(2), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(5), Duration::from_secs(8));
        assert_eq!(backoff.ceiling(6), Duration::from_secs(10));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(10));
        for failures in 1..50 {
            assert!(backoff.delay(failures) <= backoff.ceiling(failures));
        }
    }
}
