//! Limits on what a client may make the hub do before it has proved who it
//! is (S12): who the source of a request is, per-source rate limits on the
//! routes that need no login, and the guard that drops a request body that
//! stalls or crawls.
//!
//! Owns: [`Source`], [`RateLimits`] and the middleware that apply them.
//! Must not: decide who may do what once authenticated (the extractors and
//! handlers do), or count failed logins (that is [`crate::identity`]'s
//! throttle).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures_util::StreamExt as _;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{ApiError, AppState};
use crate::config::Config;
use RouteClass::{Credential, Open};

/// Where a request comes from, as far as limits and the audit log are
/// concerned: the peer address, or, behind a trusted proxy, the address
/// that proxy reports (a request extension set by [`resolve_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source(pub IpAddr);

/// Every route that needs no login, with its class (method, route
/// template, class): [`RouteClass::Credential`] for those that check a
/// credential or send mail, [`RouteClass::Open`] for the rest. Device routes
/// need the device's credential and are not here.
pub const UNAUTHENTICATED_ROUTES: &[(&str, &str, RouteClass)] = &[
    ("POST", "/api/v1/session", Credential),
    ("POST", "/api/v1/access-groups/{id}/signup", Credential),
    ("POST", "/api/v1/access-groups/signup/confirm", Credential),
    ("POST", "/api/v1/access-groups/invites/accept", Credential),
    ("POST", "/api/v1/password/set", Credential),
    ("GET", "/api/v1/password/tokens/{token}", Credential),
    ("GET", "/api/v1/access-groups/invites/{token}", Credential),
    ("GET", "/api/v1/access-groups/{id}/signup", Open),
    ("GET", "/api/v1/my/media/{play}", Open),
    ("GET", "/api/v1/my/thumbnails/{item}", Open),
    ("POST", "/api/v1/device/pairings", Credential),
    ("GET", "/healthz", Open),
    ("GET", "/metrics", Open),
    ("GET", "/api/v1/openapi.json", Open),
    ("GET", "/api/v1/device/pairings/{ticket}", Open),
    ("POST", "/api/v1/access-groups/{id}/members/shop", Open),
    ("GET", "/api/v1/shared/{token}", Open),
];

/// How many keys a limiter holds before it forgets the idle ones.
const MAX_KEYS: usize = 10_000;

/// The slowest average a request body may arrive at once it has taken longer
/// than the idle timeout, in bytes per second.
pub const MIN_BODY_BYTES_PER_SEC: u64 = 1024;

/// Per-source token buckets (GCRA, governor) for the routes without a login.
pub struct RateLimits {
    /// [`RouteClass::Credential`].
    credential: DefaultKeyedRateLimiter<IpAddr>,
    /// [`RouteClass::Open`].
    open: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

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

/// The class of `method` on the route template `route`
/// ([`UNAUTHENTICATED_ROUTES`]).
#[must_use]
pub fn route_class(method: &Method, route: &str) -> RouteClass {
    UNAUTHENTICATED_ROUTES
        .iter()
        .find(|(m, r, _)| *r == route && method.as_str() == *m)
        .map_or(RouteClass::Authenticated, |(_, _, class)| *class)
}

impl RateLimits {
    /// The limits `config` sets.
    #[must_use]
    pub fn new(config: &Config) -> Self {
        let nonzero = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota =
            |per_minute, burst| Quota::per_minute(nonzero(per_minute)).allow_burst(nonzero(burst));
        let (rate, burst) = (config.rate_limit_per_minute, config.rate_limit_burst);
        Self {
            credential: RateLimiter::keyed(quota(rate, burst)),
            open: RateLimiter::keyed(quota(rate.saturating_mul(10), burst.saturating_mul(10))),
        }
    }

    /// `Ok` when `source` may make one more request of `class` now, else
    /// how long it must wait.
    ///
    /// # Errors
    /// The wait, when the source is over its limit.
    pub fn check(&self, class: RouteClass, source: IpAddr) -> Result<(), Duration> {
        let limiter = match class {
            RouteClass::Credential => &self.credential,
            RouteClass::Open => &self.open,
            RouteClass::Authenticated => return Ok(()),
        };
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

/// The source of a request from `peer` with `headers`: `peer`, unless it is
/// one of `trusted` proxies, then the last `X-Forwarded-For` address that is
/// not itself a trusted proxy (the one the nearest untrusted hop added).
#[must_use]
pub fn source_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|hop| hop.parse::<IpAddr>().ok())
        .find(|hop| hop.is_none_or(|ip| !trusted.contains(&ip)))
        .flatten()
        .unwrap_or(peer)
}

/// Middleware (outermost after the error contract): records the request's
/// [`Source`] and guards its body ([`guard_body`]).
pub async fn resolve_source(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let source = source_of(peer, request.headers(), &state.config.trusted_proxies);
        request.extensions_mut().insert(Source(source));
    }
    let idle = Duration::from_secs(state.config.http_body_idle_secs);
    let request = request.map(|body| guard_body(body, idle));
    next.run(request).await
}

/// Route middleware: refuses (429 with `Retry-After`) a request to a route
/// without a login when its source is over the limit of the route's class.
pub async fn limit_unauthenticated(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let class = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(RouteClass::Authenticated, |route| {
            route_class(request.method(), route.as_str())
        });
    if let (RouteClass::Credential | RouteClass::Open, Some(Source(source))) =
        (class, request.extensions().get::<Source>().copied())
        && let Err(wait) = limits.check(class, source)
    {
        let message = "too many requests from this address; slow down";
        return ApiError::too_many("rate_limited", message, wait.as_secs().max(1)).into_response();
    }
    next.run(request).await
}

/// Why a guarded body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyGuardError {
    /// No bytes for the idle timeout.
    #[error("the request body stalled for {0:?}")]
    Stalled(Duration),
    /// Bytes kept coming, but slower than [`MIN_BODY_BYTES_PER_SEC`].
    #[error("the request body arrives slower than {MIN_BODY_BYTES_PER_SEC} bytes a second")]
    TooSlow,
    /// The client's body failed.
    #[error("{0}")]
    Body(axum::Error),
}

/// `body`, failing when no bytes arrive for `idle`, or when, past `idle`
/// since it started, fewer than [`MIN_BODY_BYTES_PER_SEC`] a second have
/// arrived on average (a trickle). The handler reading it then fails, its
/// answer is sent and the connection is closed (its body unread).
pub fn guard_body(body: Body, idle: Duration) -> Body {
    let started = Instant::now();
    let stream = body.into_data_stream();
    Body::from_stream(futures_util::stream::unfold(
        Some((stream, 0_u64)),
        move |state| async move {
            let (mut stream, received) = state?;
            match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => Some((Err(BodyGuardError::Stalled(idle)), None)),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(BodyGuardError::Body(e)), None)),
                Ok(Some(Ok(chunk))) => {
                    let received = received.saturating_add(chunk.len() as u64);
                    let elapsed = started.elapsed();
                    if elapsed > idle
                        && received < elapsed.as_secs().saturating_mul(MIN_BODY_BYTES_PER_SEC)
                    {
                        Some((Err(BodyGuardError::TooSlow), None))
                    } else {
                        Some((Ok(chunk), Some((stream, received))))
                    }
                }
            }
        },
    ))
}
