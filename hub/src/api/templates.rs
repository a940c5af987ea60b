//! `/api/v1/templates` (D6, A1–A6, A8): template layouts, their copies and
//! their approval — extraction, views and the mapping of [`TemplateError`];
//! the rules are [`crate::content::template_service`]'s, and copy-down,
//! deletion and approval are the content and approval services' (as for
//! `/api/v1/content`).

use super::prelude::*;
use crate::content::approval::{self, Decision};
use crate::content::template_service::{self, TemplateError};
use crate::content::view::{
    ApproveRequest, ContentView, CopyRequest, CreateTemplate, RejectRequest, SaveTemplate,
    TemplateView,
};
use crate::content::{Items, copy, service};

concern_routes! { list_templates, create_template; get_template, save_template, delete_template;
copy_template; request_template_approval; approve_template; reject_template }

impl From<TemplateError> for ApiError {
    fn from(e: TemplateError) -> Self {
        match e {
            TemplateError::Invalid(message) => Self::bad_request("invalid_template", message),
            TemplateError::Content(e) => e.into(),
        }
    }
}

/// Templates the caller sees: inside its domain and above it (T2).
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, description = "Visible templates", body = Vec<TemplateView>)))]
pub async fn list_templates(State(state): Ctx, caller: Caller) -> Answer<Vec<TemplateView>> {
    Ok(Json(template_service::list(&state, &caller.actor()).await?))
}

/// Creates a template (Contributor+). Its approval state follows the
/// creator's profile (A3).
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = CreateTemplate,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = TemplateView), (status = 400, description = "Invalid name or template", body = ErrorBody),
        (status = 403, description = "Below Contributor, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Node absent or not visible", body = ErrorBody)))]
pub async fn create_template(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreateTemplate>,
) -> WithStatus<TemplateView> {
    let view = template_service::create(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One template the caller sees, with its current document.
#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "The template", body = TemplateView),
        (status = 404, description = "Absent, not a template, or not visible", body = ErrorBody)))]
pub async fn get_template(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<TemplateView> {
    let view = template_service::get(&state, &caller.actor(), &id).await?;
    Ok(Json(view))
}

/// Saves a new version of a template (Contributor+, inside the caller's
/// domain, A1). The approval state follows A3/A4 (see the module rules).
#[utoipa::path(put, path = "/api/v1/templates/{id}", tag = "templates", request_body = SaveTemplate,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Saved (or unchanged)", body = TemplateView),
        (status = 400, description = "Invalid name or template", body = ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = ErrorBody)))]
pub async fn save_template(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<SaveTemplate>,
) -> Answer<TemplateView> {
    let view = template_service::save(&state, &caller.actor(), &id, request).await?;
    Ok(Json(view))
}

/// Deletes a template inside the caller's domain (Contributor+, A1).
#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = ErrorBody),
        (status = 409, description = "Still used by a template, access group or playlist", body = ErrorBody)))]
pub async fn delete_template(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::delete(&state, &caller.actor(), &id, Items::Templates).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies a template of a restricted node into a non-restricted node below
/// it (A2); the copy is active and names its source and revision.
#[utoipa::path(post, path = "/api/v1/templates/{id}/copy", tag = "templates", request_body = CopyRequest,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 201, description = "Copied", body = ContentView),
        (status = 400, description = "Destination restricted or not below the source", body = ErrorBody),
        (status = 403, description = "Below Contributor", body = ErrorBody),
        (status = 404, description = "Template or destination absent or not visible", body = ErrorBody),
        (status = 409, description = "Source not in a restricted node, or not approved", body = ErrorBody)))]
pub async fn copy_template(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<CopyRequest>,
) -> WithStatus<ContentView> {
    let copy = copy::copy(&state, &caller.actor(), &id, Items::Templates, request).await?;
    Ok((StatusCode::CREATED, Json(copy.into())))
}

/// Requests approval of the template's current version (A5): one e-mail to
/// the node's content manager; asking again re-sends the same request.
#[utoipa::path(post, path = "/api/v1/templates/{id}/request-approval", tag = "templates",
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Pending", body = ContentView),
        (status = 403, description = "Below Contributor or above the caller's domain", body = ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = ErrorBody),
        (status = 409, description = "Already active, or no content-manager address", body = ErrorBody)))]
pub async fn request_template_approval(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<ContentView> {
    let item = approval::request_approval(&state, &caller.actor(), &id, Items::Templates).await?;
    Ok(Json(item.into()))
}

/// Approves the pending version (A6: `approve_content` on the node or above).
#[utoipa::path(post, path = "/api/v1/templates/{id}/approve", tag = "templates",
    request_body = ApproveRequest,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Active", body = ContentView), (status = 403, description = "Without approve_content here", body = ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = ErrorBody),
        (status = 409, description = "Not pending, or another version", body = ErrorBody)))]
pub async fn approve_template(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Answer<ContentView> {
    let (actor, decision) = (caller.actor(), Decision::from(request));
    let item = approval::decide(&state, &actor, &id, Items::Templates, decision).await?;
    Ok(Json(item.into()))
}

/// Rejects the pending version with a reason (A6).
#[utoipa::path(post, path = "/api/v1/templates/{id}/reject", tag = "templates",
    request_body = RejectRequest,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Inactive, with the reason", body = ContentView),
        (status = 400, description = "Blank or overlong reason", body = ErrorBody),
        (status = 403, description = "Without approve_content here", body = ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody)))]
pub async fn reject_template(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<RejectRequest>,
) -> Answer<ContentView> {
    let (actor, decision) = (caller.actor(), Decision::from(request));
    let item = approval::decide(&state, &actor, &id, Items::Templates, decision).await?;
    Ok(Json(item.into()))
}
