//! The operator HTTP API (DESIGN §6): axum under `/api/v1`, JSON, bearer
//! tokens, an OpenAPI document generated from the handlers.
//!
//! Owns: routing, request extraction, error mapping and the authorization
//! checks of each route. Must not: hold business rules that belong to
//! `signet-common` (permissions, licenses) — handlers call them.

mod access_groups;
mod approval;
mod audit_log;
mod content;
mod devices;
mod error;
mod extract;
mod fleet;
mod health;
pub mod limits;
mod mail_outbox;
mod metrics;
mod nodes;
mod permission_groups;
mod publish;
mod reports;
mod schedules;
mod screenshots;
mod session;
mod templates;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use chrono::{DateTime, Utc};
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use content::{ContentView, DeviceAuth, blob_response};
pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiQuery, Caller, ClientAddress};

use crate::config::Config;
use crate::identity::LoginThrottle;
use crate::keys::HubKeys;
use crate::publish::Publisher;
use crate::store::Store;

/// Where the hub reads the time: the system clock, or a test's.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The durable store.
    pub store: Store,
    /// The configuration the hub started with.
    pub config: Arc<Config>,
    /// Failed-login counts.
    pub throttle: Arc<LoginThrottle>,
    /// Password hashing, bounded in concurrency and memory (S12).
    pub hashing: Arc<crate::identity::PasswordHashing>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Wakes the mail sender: call `notify_one` after a batch that enqueued
    /// mail is applied, so it goes out now rather than at the next poll.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// The pinned root, the signing key and its trust document: what
    /// publishing signs with and republishes (S1, S2).
    pub keys: Arc<HubKeys>,
    /// Where signed documents go as retained messages (S4): MQTT once the
    /// sync issue plugs it in; until then [`crate::publish::LogPublisher`].
    pub publisher: Arc<dyn Publisher>,
    /// Wakes the publishing loop: call `notify_one` after a job is stored
    /// or cancelled, so it is seen before the next poll.
    pub publish_wake: Arc<tokio::sync::Notify>,
    /// Device access on the broker (S7): [`crate::mqtt::admin::StoreAuthenticated`]
    /// for the embedded broker; mosquitto's dynamic security for an external one.
    pub broker_admin: Arc<dyn crate::mqtt::admin::BrokerAdmin>,
    /// The counters and histogram `/metrics` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Signet hub API", description = "Operator and device API of signet-hub."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route with its OpenAPI description.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(health::openapi_document))
        .routes(routes!(session::login, session::logout, session::whoami))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(users::revoke_sessions))
        .routes(routes!(nodes::list_nodes, nodes::create_node))
        .routes(routes!(
            nodes::get_node,
            nodes::update_node,
            nodes::delete_node
        ))
        .routes(routes!(audit_log::list_audit))
        .merge(permission_groups::routes())
        .merge(access_groups::routes())
        .merge(mail_outbox::routes())
        .merge(content::routes())
        .merge(templates::routes())
        .merge(schedules::routes())
        .merge(publish::routes())
        .merge(fleet::routes())
        .merge(reports::routes())
        .merge(devices::routes())
        .merge(screenshots::routes())
}

/// The OpenAPI document of every route the hub serves.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// The API router with `state`, its body limit, the OpenAPI route, the
/// request counting of `/metrics`, the per-source limits of the routes
/// without a login and the body guard (S12), and the JSON error contract
/// on every answer, unknown routes included (S13).
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let rate_limits = Arc::new(limits::RateLimits::new(&state.config));
    let (router, document) = documented_routes().split_for_parts();
    let document = Arc::new(document);
    router
        .route_layer(axum::middleware::from_fn_with_state(
            rate_limits,
            limits::limit_unauthenticated,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .layer(axum::Extension(document))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::resolve_source,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
