//! Limits on what a client may make the hub do before it has proved who it
//! is (S12): who the source of a request is, per-source rate limits on the
//! routes that need no login, and the guard that drops a request body that
//! stalls or crawls.
//!
//! Owns: [`Source`], [`RateLimits`] and the middleware that apply them.
//! Must not: decide who may do what once authenticated (the extractors and
//! handlers do), or count failed logins (that is [`crate::identity`]'s
//! throttle).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures_util::StreamExt as _;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{ApiError, AppState};
use crate::config::Config;

/// Where a request comes from, as far as limits and the audit log are
/// concerned: the peer address, or, behind a trusted proxy, the address
/// that proxy reports (a request extension set by [`resolve_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source(pub IpAddr);

/// The routes that check a credential, or send mail, without a login: the
/// strict per-source limit applies (method, route template).
pub const CREDENTIAL_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/session"),
    ("POST", "/api/v1/access-groups/{id}/signup"),
    ("POST", "/api/v1/access-groups/signup/confirm"),
    ("POST", "/api/v1/access-groups/invites/accept"),
    ("POST", "/api/v1/device/pairings"),
];

/// Every other route that needs no login (device routes need the device's
/// credential and are not here): ten times the strict limit.
pub const OPEN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/device/pairings/{ticket}"),
    ("POST", "/api/v1/access-groups/{id}/members/shop"),
];

/// How many keys a limiter holds before it forgets the idle ones.
const MAX_KEYS: usize = 10_000;

/// The slowest average a request body may arrive at once it has taken longer
/// than the idle timeout, in bytes per second.
pub const MIN_BODY_BYTES_PER_SEC: u64 = 1024;

type KeyedLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// Per-source token buckets (GCRA, governor) for the routes without a login.
pub struct RateLimits {
    /// [`CREDENTIAL_ROUTES`]: `rate_limit_per_minute`, `rate_limit_burst`.
    credential: KeyedLimiter,
    /// [`OPEN_ROUTES`]: ten times as many.
    open: KeyedLimiter,
    /// The clock both limiters read.
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

/// Which limit a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// [`CREDENTIAL_ROUTES`].
    Credential,
    /// [`OPEN_ROUTES`].
    Open,
    /// Needs a login or a device credential: not limited here.
    Authenticated,
}

/// The class of `method` on the route template `route`.
#[must_use]
pub fn route_class(method: &Method, route: &str) -> RouteClass {
    let listed = |routes: &[(&str, &str)]| {
        routes
            .iter()
            .any(|(m, r)| *r == route && method.as_str() == *m)
    };
    if listed(CREDENTIAL_ROUTES) {
        RouteClass::Credential
    } else if listed(OPEN_ROUTES) {
        RouteClass::Open
    } else {
        RouteClass::Authenticated
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl RateLimits {
    /// The limits `config` sets.
    #[must_use]
    pub fn new(config: &Config) -> Self {
        let quota = |per_minute: u32, burst: u32| {
            Quota::per_minute(nonzero(per_minute)).allow_burst(nonzero(burst))
        };
        let (rate, burst) = (config.rate_limit_per_minute, config.rate_limit_burst);
        Self {
            credential: RateLimiter::keyed(quota(rate, burst)),
            open: RateLimiter::keyed(quota(rate.saturating_mul(10), burst.saturating_mul(10))),
            clock: DefaultClock::default(),
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
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The key a source is limited under: an IPv4 address, or the /64 network
/// of an IPv6 address (one host usually holds a whole /64).
#[must_use]
pub fn bucket(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::from([
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ])
        }
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
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this address; slow down",
        );
        error.retry_after = Some(wait.as_secs().max(1));
        return error.into_response();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s12_forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.9".parse().unwrap(),
        );
        assert_eq!(source_of(client, &headers, &[]), client, "off by default");
        assert_eq!(
            source_of(client, &headers, &[proxy]),
            client,
            "untrusted peer"
        );
        assert_eq!(
            source_of(proxy, &headers, &[proxy]),
            client,
            "the nearest hop"
        );
        assert_eq!(source_of(proxy, &HeaderMap::new(), &[proxy]), proxy);
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(bucket(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn s12_every_route_without_a_login_is_limited() {
        // An operation without `security` needs no login: it must be in one
        // of the two lists, unless a device credential guards it.
        let document = serde_json::to_value(super::super::openapi()).unwrap();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation.get("security").is_some() || path.starts_with("/api/v1/device/") {
                    continue;
                }
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                assert_ne!(
                    route_class(&method, path),
                    RouteClass::Authenticated,
                    "{method} {path} needs no login but is not rate-limited"
                );
            }
        }
        assert_eq!(
            route_class(&Method::POST, "/api/v1/device/pairings"),
            RouteClass::Credential
        );
    }
}
