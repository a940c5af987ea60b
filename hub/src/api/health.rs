//! `/healthz` and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::{Extension, Json};

/// Liveness: the process answers. The headers say which replica answered
/// and whether it leads (X5).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The hub is up", body = String, headers(
        ("x-signet-replica" = String, description = "This hub replica's id (`replica_id`)"),
        ("x-signet-leader" = String, description = "`true` when this replica leads (runs the once-only work), else `false`")))))]
pub async fn healthz(State(state): State<super::AppState>) -> impl IntoResponse {
    let replica = HeaderValue::from_str(state.replica.id())
        .unwrap_or_else(|_| HeaderValue::from_static("unnamed"));
    let leader = HeaderValue::from_static(if state.replica.is_leader() {
        "true"
    } else {
        "false"
    });
    (
        [("x-signet-replica", replica), ("x-signet-leader", leader)],
        "ok",
    )
}

/// The OpenAPI document describing every route.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = super::schemas::OpenApiDocument)))]
pub async fn openapi_document(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*document).clone())
}
