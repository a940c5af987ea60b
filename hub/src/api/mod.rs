//! The operator HTTP API (DESIGN §6): axum under `/api/v1`, JSON, bearer
//! tokens, an OpenAPI document generated from the handlers, and
//! interactive docs of it at `/api/docs`.
//!
//! Owns: routing, request extraction, error mapping and the authorization
//! checks of each route. Must not: hold business rules that belong to
//! `signet-common` (permissions, licenses) — handlers call them.

/// A concern's `routes()`: one `routes!` per path, its handlers separated
/// by commas and the paths by semicolons.
macro_rules! concern_routes {
    ($($($handler:ident),+);+) => {
        /// This concern's routes.
        pub fn routes() -> OpenApiRouter<AppState> {
            OpenApiRouter::new()$(.routes(routes!($($handler),+)))+
        }
    };
}

mod access_groups;
mod alert_settings;
mod approval;
mod audit_log;
mod broker_hook;
pub mod console;
mod content;
mod content_actions;
mod device_documents;
mod devices;
mod error;
mod extract;
mod fleet;
mod health;
mod item_actions;
pub mod limits;
mod mail_outbox;
mod member;
mod metrics;
mod nodes;
mod permission_groups;
mod publish;
mod renditions;
mod reports;
mod schedules;
mod schemas;
mod screenshots;
mod session;
mod templates;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi as _;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use content::{ContentView, DeviceAuth, blob_response, typed_blob_response};
pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiQuery, Caller, ClientAddress};

use crate::{app::Hub, mqtt::hook::BrokerTokenScheme};

/// What every route module imports: axum's extractors and answers, the
/// OpenAPI router, this module's extractors and the handlers' shapes.
mod prelude {
    pub(super) use axum::Json;
    pub(super) use axum::extract::{Path, State};
    pub(super) use axum::http::StatusCode;
    pub(super) use utoipa_axum::router::OpenApiRouter;
    pub(super) use utoipa_axum::routes;

    pub(super) use super::{
        Answer, ApiError, ApiJson, ApiQuery, AppState, Caller, ClientAddress, Ctx, Done, ErrorBody,
        Id, WithStatus,
    };
}

/// The handlers' shared shapes: the state, a path's id, and their answers
/// (JSON with 200, JSON with a status of their choosing, a bare status).
type Ctx = axum::extract::State<AppState>;
type Id = axum::extract::Path<String>;
type Answer<T> = Result<axum::Json<T>, ApiError>;
type WithStatus<T> = Result<(axum::http::StatusCode, axum::Json<T>), ApiError>;
type Done = Result<axum::http::StatusCode, ApiError>;

/// 201 when the answer's thing is new, else 200.
fn created_if(new: bool) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// What every handler shares: the application core, which the services,
/// the loops and the demo use too.
#[derive(Clone)]
pub struct AppState {
    hub: Hub,
}

impl AppState {
    /// The state of a router over `hub`.
    #[must_use]
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }

    /// The application core.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl From<Hub> for AppState {
    fn from(hub: Hub) -> Self {
        Self::new(hub)
    }
}

impl std::ops::Deref for AppState {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        &self.hub
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Signet hub API", description = "Operator and device API of signet-hub."),
    modifiers(&BearerAuth, &BrokerTokenScheme)
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
        components.add_security_scheme(
            SESSION_COOKIE_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                extract::SESSION_COOKIE,
                "The session cookie a login sets (the console's credential, C2). A request \
                 it authenticates with a method other than GET, HEAD or OPTIONS must send \
                 the session's CSRF token (the signet_csrf cookie, also in the login and \
                 session answers) as X-CSRF-Token, else 403 csrf_failed.",
            ))),
        );
    }
}

/// The OpenAPI name of the session-cookie security scheme.
const SESSION_COOKIE_SCHEME: &str = "session_cookie";

/// Every route with its OpenAPI description.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(health::openapi_document))
        .routes(routes!(session::login, session::logout, session::whoami))
        .routes(routes!(session::own_sessions))
        .routes(routes!(session::revoke_own_session))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(users::revoke_sessions))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::set_password))
        .routes(routes!(users::describe_password_token))
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
        .merge(alert_settings::routes())
        .merge(content::routes())
        .merge(item_actions::routes())
        .merge(content_actions::routes())
        .merge(approval::routes())
        .merge(renditions::routes())
        .merge(templates::routes())
        .merge(schedules::routes())
        .merge(publish::routes())
        .merge(fleet::routes())
        .merge(reports::routes())
        .merge(devices::routes())
        .merge(device_documents::routes())
        .merge(screenshots::routes())
        .merge(member::routes())
        .merge(broker_hook::routes())
}

/// The OpenAPI document of every route the hub serves.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = documented_routes().into_openapi();
    finish_document(&mut document);
    document
}

/// What every operation's annotations leave to the router: the
/// extractors' rejections ([`document_rejections`]) and the session cookie
/// beside the bearer token ([`document_cookie_session`]).
fn finish_document(document: &mut utoipa::openapi::OpenApi) {
    for (path, item) in &mut document.paths.paths {
        let operations = [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (operation, write) in operations {
            if let Some(operation) = operation {
                document_rejections(path, operation);
                if !path.starts_with("/api/v1/broker/") {
                    document_cookie_session(operation, write);
                }
            }
        }
    }
}

/// An operation that takes a bearer token also takes the session cookie
/// ([`Caller`] accepts either, C2); a write by cookie may answer 403
/// `csrf_failed`.
fn document_cookie_session(operation: &mut Operation, write: bool) {
    let Some(security) = operation.security.as_mut().filter(|s| !s.is_empty()) else {
        return;
    };
    security.push(SecurityRequirement::new(
        SESSION_COOKIE_SCHEME,
        Vec::<String>::new(),
    ));
    if write {
        let description = "Not allowed, or a session-cookie request without its X-CSRF-Token";
        (operation.responses.responses)
            .entry("403".to_owned())
            .or_insert_with(|| error_response(description).into());
    }
}

/// A documented error answer: `description`, the JSON error contract.
fn error_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Makes the document say what the extractors do on the operation at
/// `path`, so no handler annotation can get it wrong (issue 15): query
/// parameters are `in: query`; and the error answers the extractors give on
/// every route they guard: 401 where a bearer token is required
/// ([`Caller`]), 400 where a JSON body or a query string is decoded
/// ([`ApiJson`], [`ApiQuery`]), 413 where a body is read (the body limit),
/// 415 where a JSON body is expected. All are the JSON error contract
/// ([`ErrorBody`]); a status an annotation already names keeps its own
/// description.
fn document_rejections(path: &str, operation: &mut Operation) {
    use utoipa::openapi::path::ParameterIn;
    // An `IntoParams` struct without `#[into_params(parameter_in = Query)]`
    // comes out as path parameters; in this API every such struct is a
    // query string, so a parameter its path template does not name is a
    // query parameter (hub/tests/openapi.rs checks the result against the
    // templates).
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.parameter_in == ParameterIn::Path
            && !path.contains(&format!("{{{}}}", parameter.name))
        {
            parameter.parameter_in = ParameterIn::Query;
        }
    }
    let json_body = (operation.request_body.as_ref())
        .is_some_and(|b| b.content.contains_key("application/json"));
    let any_body = operation.request_body.is_some();
    let query =
        (operation.parameters.iter().flatten()).any(|p| p.parameter_in == ParameterIn::Query);
    let bearer = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        (operation.responses.responses)
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description).into());
    };
    if bearer {
        add("401", "No valid token");
    }
    if json_body || query {
        add("400", "Malformed JSON body or query string, or a bad value");
    }
    if any_body {
        add("413", "Body larger than the hub accepts");
    }
    if json_body {
        add("415", "Not sent as application/json");
    }
}

/// Interactive API docs (Swagger UI) at `/api/docs`, for anyone like
/// `/healthz`: the page and its assets are compiled into the binary (no
/// CDN) and read the document from `/api/v1/openapi.json`.
fn api_docs<S: Clone + Send + Sync + 'static>() -> Router<S> {
    utoipa_swagger_ui::SwaggerUi::new(API_DOCS_PATH)
        .config(utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"]))
        .into()
}

/// Where the interactive API docs are served.
pub const API_DOCS_PATH: &str = "/api/docs";

/// The API router with `state`, its body limit, the OpenAPI route, the
/// operator console at `/` for every other `GET` outside `/api/` (C1), the
/// request counting of `/metrics`, the per-source limits of the routes
/// without a login and the body guard (S12), and the JSON error contract
/// on every answer, unknown routes included (S13).
pub fn router(hub: Hub) -> Router {
    let state = AppState::new(hub);
    let limit = state.config.max_body_bytes;
    let rate_limits = Arc::new(limits::RateLimits::new(&state.config, &state.store));
    let (router, mut document) = documented_routes().split_for_parts();
    finish_document(&mut document);
    let document = Arc::new(document);
    router
        .route_layer(axum::middleware::from_fn_with_state(
            rate_limits,
            limits::limit_unauthenticated,
        ))
        .merge(api_docs())
        .fallback(console::serve_console)
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

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder};
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{HttpMethod, OpenApiBuilder, PathsBuilder};

    use super::finish_document;

    /// Issue 15: a filter struct that forgets `parameter_in = Query` still
    /// gives query parameters, and the extractors' 400 and 401 are named.
    #[test]
    fn i15_unnamed_path_parameters_become_query_parameters() {
        let operation = OperationBuilder::new()
            .parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path),
            )
            .parameter(
                ParameterBuilder::new()
                    .name("limit")
                    .parameter_in(ParameterIn::Path),
            )
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .build();
        let mut document = OpenApiBuilder::new()
            .paths(
                PathsBuilder::new().path(
                    "/api/v1/things/{id}",
                    PathItemBuilder::new()
                        .operation(HttpMethod::Get, operation)
                        .build(),
                ),
            )
            .build();
        finish_document(&mut document);
        let operation = document.paths.paths["/api/v1/things/{id}"]
            .get
            .as_ref()
            .expect("the operation stays");
        let in_query: Vec<(&str, bool)> = operation
            .parameters
            .iter()
            .flatten()
            .map(|p| (p.name.as_str(), p.parameter_in == ParameterIn::Query))
            .collect();
        assert_eq!(in_query, [("id", false), ("limit", true)]);
        let statuses: Vec<&str> = operation
            .responses
            .responses
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(statuses, ["400", "401"]);
    }
}
