//! `/api/v1/nodes` (T1–T4): the tenancy tree. The rules are
//! [`crate::nodes`]'s; this file extracts, calls and maps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, ApiJson, AppState, Caller};
use crate::nodes::{self as service, NodeError};
use crate::tenancy::{CreateNode, NodeView, UpdateNode};

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NotFound => ApiError::not_found("node"),
            NodeError::RoleTooLow(e) => e.into(),
            NodeError::InvalidName(e) => e.into(),
            NodeError::Invalid { code, message } => ApiError::bad_request(code, message),
            NodeError::Forbidden(message) => ApiError::forbidden(message),
            NodeError::Conflict { code, message } => ApiError::conflict(code, message),
            NodeError::Store(e) => e.into(),
        }
    }
}

/// Nodes inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, description = "Visible nodes", body = Vec<NodeView>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    Ok(Json(service::list_nodes(&state, &caller.actor())?))
}

/// Creates a node under a parent inside the caller's domain (Manager+).
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = CreateNode, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = NodeView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Parent absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Parent holds devices (T1)", body = super::ErrorBody)))]
pub async fn create_node(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateNode>,
) -> Result<(StatusCode, Json<NodeView>), ApiError> {
    let node = service::create_node(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(node)))
}

/// One node inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "Node id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The node", body = NodeView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    Ok(Json(service::get_node(&state, &caller.actor(), &id)?))
}

/// Renames a node or changes its approval address, strict mode, time zone
/// or location (Manager+).
#[utoipa::path(patch, path = "/api/v1/nodes/{id}", tag = "nodes", request_body = UpdateNode,
    params(("id" = String, Path, description = "Node id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = NodeView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn update_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateNode>,
) -> Result<Json<NodeView>, ApiError> {
    let node = service::update_node(&state, &caller.actor(), &id, request).await?;
    Ok(Json(node))
}

/// Deletes a leaf node with no devices and no users (Manager+, from above).
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "Node id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not allowed", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Not empty", body = super::ErrorBody)))]
pub async fn delete_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete_node(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
