//! Limits on what a client may make the hub do before it has proved who it
//! is (S12): who the source of a request is, per-source rate limits on the
//! routes that need no login, and the guard that drops a request body that
//! stalls or crawls.
//!
//! Owns: [`Source`] and the middleware that apply [`RateLimits`].
//! Must not: decide who may do what once authenticated (the extractors and
//! handlers do), or count failed logins (that is [`crate::identity`]'s
//! throttle).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures_util::StreamExt as _;

use super::{ApiError, AppState};
pub use crate::app::rate_limits::{RateLimits, RouteClass, bucket};
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

/// The slowest average a request body may arrive at once it has taken longer
/// than the idle timeout, in bytes per second.
pub const MIN_BODY_BYTES_PER_SEC: u64 = 1024;

/// The class of `method` on the route template `route`
/// ([`UNAUTHENTICATED_ROUTES`]).
#[must_use]
pub fn route_class(method: &Method, route: &str) -> RouteClass {
    UNAUTHENTICATED_ROUTES
        .iter()
        .find(|(m, r, _)| *r == route && method.as_str() == *m)
        .map_or(RouteClass::Authenticated, |(_, _, class)| *class)
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
