//! `/healthz` and the OpenAPI document.

use std::sync::Arc;

use axum::{Extension, Json};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The hub is up", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The OpenAPI document describing every route.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = super::schemas::OpenApiDocument)))]
pub async fn openapi_document(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*document).clone())
}
