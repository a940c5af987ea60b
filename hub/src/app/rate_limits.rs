//! Per-source rate limits on the routes without a login (S12), counted in
//! this process (sled, one hub) or in the store every replica shares
//! (PostgreSQL, X5; issue 21), so N replicas allow a source the limit of
//! one hub, not N times it.
//!
//! Owns: [`RateLimits`] — a GCRA token bucket per source and route class
//! (`governor` in memory; the store's `take_rate` on PostgreSQL: one
//! statement per request) — and [`bucket`], the key a source is limited
//! under. Must not: know routes (the API's `limits` module classes them
//! and applies the answer).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::TimeDelta;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;
use crate::store::Store;

/// How many keys a limiter holds before it forgets the idle ones.
const MAX_KEYS: usize = 10_000;

/// Which limit a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Checks a credential or sends mail without a login: the strict
    /// per-source limit (`rate_limit_per_minute`, `rate_limit_burst`).
    Credential,
    /// Any other route without a login: ten times the strict limit.
    Open,
    /// Needs a login or a device credential: not limited here.
    Authenticated,
}

/// One class's limit: a cell every `interval`, at most `burst` at once.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Requests per minute.
    per_minute: u32,
    /// The burst.
    burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let nonzero = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Quota::per_minute(nonzero(self.per_minute)).allow_burst(nonzero(self.burst))
    }

    /// The time between two cells.
    fn interval(self) -> TimeDelta {
        TimeDelta::microseconds(60_000_000 / i64::from(self.per_minute.max(1)))
    }
}

/// Per-source token buckets (GCRA) for the routes without a login.
pub struct RateLimits {
    /// [`RouteClass::Credential`].
    credential: DefaultKeyedRateLimiter<IpAddr>,
    /// [`RouteClass::Open`].
    open: DefaultKeyedRateLimiter<IpAddr>,
    /// The two classes' limits.
    rates: (Rate, Rate),
    /// The store the replicas count in, when it [`Store::shares_counts`].
    shared: Option<Store>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// The limits `config` sets, counted in `store` when it shares counts
    /// with other replicas, else in this process.
    #[must_use]
    pub fn new(config: &Config, store: &Store) -> Self {
        let (rate, burst) = (config.rate_limit_per_minute, config.rate_limit_burst);
        let credential = Rate {
            per_minute: rate,
            burst,
        };
        let open = Rate {
            per_minute: rate.saturating_mul(10),
            burst: burst.saturating_mul(10),
        };
        Self {
            credential: RateLimiter::keyed(credential.quota()),
            open: RateLimiter::keyed(open.quota()),
            rates: (credential, open),
            shared: store.shares_counts().then(|| store.clone()),
        }
    }

    /// `Ok` when `source` may make one more request of `class` now, else
    /// how long it must wait. Counted in the shared store when there is
    /// one; should it fail, in this process (limited per replica, never
    /// unlimited).
    ///
    /// # Errors
    /// The wait, when the source is over its limit.
    pub fn check(&self, class: RouteClass, source: IpAddr) -> Result<(), Duration> {
        let (limiter, rate, name) = match class {
            RouteClass::Credential => (&self.credential, self.rates.0, "credential"),
            RouteClass::Open => (&self.open, self.rates.1, "open"),
            RouteClass::Authenticated => return Ok(()),
        };
        if let Some(store) = &self.shared {
            let key = format!("{name}/{}", bucket(source));
            match store.take_rate(&key, rate.interval(), rate.burst.max(1)) {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(wait.to_std().unwrap_or(Duration::ZERO)),
                Err(e) => {
                    tracing::warn!(error = %e, "shared rate limit unavailable; counting here")
                }
            }
        }
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter
            .check_key(&bucket(source))
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// The key a source is limited under: an IPv4 address, or the /64 network
/// of an IPv6 address (one host usually holds a whole /64).
#[must_use]
pub fn bucket(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}
