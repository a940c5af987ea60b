//! `/api/v1/nodes` (T1–T4): the tenancy tree. The rules are
//! [`crate::nodes`]'s; this file extracts, calls and maps.

use super::prelude::*;
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
    responses((status = 200, description = "Visible nodes", body = Vec<NodeView>)))]
pub async fn list_nodes(State(state): Ctx, caller: Caller) -> Answer<Vec<NodeView>> {
    Ok(Json(service::list_nodes(&state, &caller.actor())?))
}

/// Creates a node under a parent inside the caller's domain (Manager+).
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = CreateNode, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = NodeView),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Parent absent or not visible", body = ErrorBody),
        (status = 409, description = "Parent holds devices (T1)", body = ErrorBody)))]
pub async fn create_node(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreateNode>,
) -> WithStatus<NodeView> {
    let node = service::create_node(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(node)))
}

/// One node inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "Node id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The node", body = NodeView), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_node(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<NodeView> {
    Ok(Json(service::get_node(&state, &caller.actor(), &id)?))
}

/// Renames a node or changes its approval address, strict mode, time zone
/// or location (Manager+).
#[utoipa::path(patch, path = "/api/v1/nodes/{id}", tag = "nodes", request_body = UpdateNode,
    params(("id" = String, Path, description = "Node id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = NodeView),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn update_node(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<UpdateNode>,
) -> Answer<NodeView> {
    let node = service::update_node(&state, &caller.actor(), &id, request).await?;
    Ok(Json(node))
}

/// Deletes a leaf node with no devices and no users (Manager+, from above).
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "Node id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "Not empty", body = ErrorBody)))]
pub async fn delete_node(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::delete_node(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
