//! `/api/v1/content/{id}/comments` (M4, P5, M1, M2): an item's comments,
//! newest first, and adding, editing and deleting them. Handlers extract,
//! call [`crate::content::comments::service`] and map its
//! [`CommentError`]; who may do what is the service's.

use super::prelude::*;
use crate::content::comments::{
    Comment, CommentBody, CommentError, CommentPage, CommentPageQuery, service,
};

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_comments, add_comment))
        .routes(routes!(edit_comment, delete_comment))
}

impl From<CommentError> for ApiError {
    fn from(e: CommentError) -> Self {
        use {CommentError as E, StatusCode as S};
        let message = e.to_string();
        match e {
            E::NotFound(what) => Self::not_found(what),
            E::PermissionNotHeld(_) => Self::new(S::FORBIDDEN, "permission_not_held", message),
            E::Disabled => Self::new(S::FORBIDDEN, "disabled_by_publish_settings", message),
            E::NotOwn => Self::new(S::FORBIDDEN, "not_own_comment", message),
            E::Invalid(_) => Self::bad_request("invalid_comment", message),
            E::InvalidQuery(_) => Self::bad_request("invalid_query", message),
            E::TooMany => Self::conflict("too_many_comments", message),
            E::Store(e) => e.into(),
        }
    }
}

/// The comments of an item the caller views, newest first, paged
/// (`comment.view`, and the item's `allow_comments`, M2).
#[utoipa::path(get, path = "/api/v1/content/{id}/comments", tag = "comments",
    params(("id" = String, Path, description = "Item id"), CommentPageQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of comments, newest first", body = CommentPage),
        (status = 400, description = "Invalid before or limit", body = ErrorBody),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
        (status = 404, description = "Item absent or not visible", body = ErrorBody)))]
pub async fn list_comments(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiQuery(query): ApiQuery<CommentPageQuery>,
) -> Answer<CommentPage> {
    let answer = service::list(&state, &caller.actor(), &id, &query).await?;
    Ok(Json(answer))
}

/// Adds a comment to an item the caller views (`comment.add`, and the
/// item's `allow_comments`); audited.
#[utoipa::path(post, path = "/api/v1/content/{id}/comments", tag = "comments",
    request_body = CommentBody,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "Added", body = Comment),
        (status = 400, description = "Empty, overlong or with control characters", body = ErrorBody),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
        (status = 404, description = "Item absent or not visible", body = ErrorBody),
        (status = 409, description = "The item holds the most comments it may", body = ErrorBody)))]
pub async fn add_comment(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<CommentBody>,
) -> WithStatus<Comment> {
    let comment = service::add(&state, &caller.actor(), &id, &request.body).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// Edits the caller's own comment (`comment.edit_own`, and the item's
/// `allow_comments`); nobody edits another's. Audited.
#[utoipa::path(patch, path = "/api/v1/content/{id}/comments/{comment}", tag = "comments",
    request_body = CommentBody,
    params(("id" = String, Path, description = "Item id"),
        ("comment" = String, Path, description = "Comment id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Edited (or unchanged)", body = Comment),
        (status = 400, description = "Empty, overlong or with control characters", body = ErrorBody),
        (status = 403, description = "permission_not_held, disabled_by_publish_settings, or not_own_comment", body = ErrorBody),
        (status = 404, description = "Item absent or not visible, or no such comment", body = ErrorBody)))]
pub async fn edit_comment(
    State(state): Ctx,
    caller: Caller,
    Path((id, comment)): Path<(String, String)>,
    ApiJson(request): ApiJson<CommentBody>,
) -> Answer<Comment> {
    let which = (id.as_str(), comment.as_str());
    let answer = service::edit(&state, &caller.actor(), which, &request.body).await?;
    Ok(Json(answer))
}

/// Deletes a comment: the caller's own (`comment.delete_own`) or another's
/// (`comment.delete_others`), with the item's `allow_comments`. Audited.
#[utoipa::path(delete, path = "/api/v1/content/{id}/comments/{comment}", tag = "comments",
    params(("id" = String, Path, description = "Item id"),
        ("comment" = String, Path, description = "Comment id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
        (status = 404, description = "Item absent or not visible, or no such comment", body = ErrorBody)))]
pub async fn delete_comment(
    State(state): Ctx,
    caller: Caller,
    Path((id, comment)): Path<(String, String)>,
) -> Done {
    service::delete(&state, &caller.actor(), (&id, &comment)).await?;
    Ok(StatusCode::NO_CONTENT)
}
