//! `/metrics` (Prometheus text format 0.0.4) and the middleware that counts
//! every HTTP request by method, matched route template and status.
//!
//! Owns: the route and the counting layer. Must not: keep counters
//! ([`crate::metrics`] does) or compute fleet status ([`crate::fleet`]).
//!
//! # No token
//! `/metrics` needs no authentication, like `/healthz`: Prometheus scrapes
//! without credentials, and the text holds only counts, the hub's version
//! and the API's route templates (which the OpenAPI document publishes
//! anyway) — never an id, a name or content. The hub listens on
//! `127.0.0.1:8080` by default; an operator who opens `http_listen` to the
//! network (devices need it) and does not want the counts seen there
//! blocks `/metrics` at the reverse proxy or firewall and scrapes from the
//! host.

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::prelude::*;
use crate::metrics::{CONTENT_TYPE, FleetGauges, ReplicaGauge};

/// The hub's metrics: the fleet gauges, publish latency, MQTT messages and
/// HTTP requests (see [`crate::metrics`] for every name).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 500, description = "The store failed", body = ErrorBody)))]
pub async fn metrics(State(state): Ctx) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let liveness = crate::fleet::Liveness::of(&state);
    let fleet = tokio::task::spawn_blocking(move || crate::fleet::counts(&store, liveness))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let text = state.metrics.render(&FleetGauges {
        attached: fleet.attached,
        online: fleet.online,
        in_sync: fleet.in_sync,
        playing: fleet.playing,
        replica: Some(ReplicaGauge {
            id: state.replica.id().to_owned(),
            leader: state.replica.is_leader(),
        }),
    });
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Counts each answered request. Applied with `Router::layer`, it runs
/// inside every route (where axum has put the [`MatchedPath`]) and inside
/// the fallback (no match: [`crate::metrics::UNMATCHED_ROUTE`]).
pub async fn count_requests(State(state): Ctx, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .count_http(&method, route.as_deref(), response.status());
    response
}
