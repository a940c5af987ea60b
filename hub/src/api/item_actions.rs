//! Comments, rating, favorites and custom attribute values on an item (M3,
//! M4, P5, M1, M2): the
//! same routes for content items (`/api/v1/content/{id}/…`), templates
//! (`/api/v1/templates/{id}/…`, the same items: a template's comments are
//! those under its content id) and playlists (`/api/v1/playlists/{id}/…`),
//! one set of handlers made for each by
//! [`item_routes`], each calling [`crate::content::comments::service`] or
//! [`crate::content::actions::service`] with its [`Subjects`] and mapping
//! the typed error; who may do what is the services'.

use super::prelude::*;
use crate::content::actions::attributes;
use crate::content::actions::service as actions;
use crate::content::actions::view::{AttributeView, ItemActions, RateRequest, SetAttributes};
use crate::content::comments::{
    Comment, CommentBody, CommentError, CommentPage, CommentPageQuery, service,
};
use crate::content::subjects::Subjects;

/// This concern's routes, for both kinds of item.
pub fn routes() -> OpenApiRouter<AppState> {
    on_content::routes()
        .merge(on_templates::routes())
        .merge(on_playlists::routes())
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

/// The handlers of one kind of item: `$subjects` says which, `$tag` is its
/// OpenAPI tag; then its paths and the operation ids.
macro_rules! item_routes {
    ($module:ident, $subjects:expr, $tag:tt, [$actions:tt, $comments:tt, $comment:tt, $rating:tt, $favorite:tt, $attributes:tt],
     [$summary:ident, $list:ident, $add:ident, $edit:ident, $delete:ident, $rate:ident, $unrate:ident, $fav:ident, $unfav:ident,
      $attrs:ident, $set_attrs:ident]) => {
mod $module {
    use super::*;

    const SUBJECTS: Subjects = $subjects;

    concern_routes! { $summary; $list, $add; $edit, $delete; $rate, $unrate; $fav, $unfav; $attrs, $set_attrs }

    /// What the caller sees of the actions on an item (M3): likes and
    /// dislikes, the caller's own rating and favorite, and the actions the
    /// caller may take on it now (P5).
    #[utoipa::path(get, path = $actions, tag = $tag,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "Counts, the caller's own, what the caller may do", body = ItemActions),
            (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $summary(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<ItemActions> {
        Ok(Json(actions::summary(&state, &caller.actor(), (SUBJECTS, &id)).await?))
    }

    /// The comments of an item the caller views, newest first, paged
    /// (`comment.view`, and the item's `allow_comments`, M2).
    #[utoipa::path(get, path = $comments, tag = "comments",
        params(("id" = String, Path, description = "Item id"), CommentPageQuery),
        security(("bearer" = [])),
        responses((status = 200, description = "A page of comments, newest first", body = CommentPage),
            (status = 400, description = "Invalid before or limit", body = ErrorBody),
            (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
            (status = 404, description = "Item absent or not visible", body = ErrorBody)))]
    pub async fn $list(
        State(state): Ctx,
        caller: Caller,
        Path(id): Id,
        ApiQuery(query): ApiQuery<CommentPageQuery>,
    ) -> Answer<CommentPage> {
        let answer = service::list(&state, &caller.actor(), (SUBJECTS, &id), &query).await?;
        Ok(Json(answer))
    }

    /// Adds a comment to an item the caller views (`comment.add`, and the
    /// item's `allow_comments`); audited.
    #[utoipa::path(post, path = $comments, tag = "comments",
        request_body = CommentBody,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 201, description = "Added", body = Comment),
            (status = 400, description = "Empty, overlong or with control characters", body = ErrorBody),
            (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
            (status = 404, description = "Item absent or not visible", body = ErrorBody),
            (status = 409, description = "The item holds the most comments it may", body = ErrorBody)))]
    pub async fn $add(
        State(state): Ctx,
        caller: Caller,
        Path(id): Id,
        ApiJson(request): ApiJson<CommentBody>,
    ) -> WithStatus<Comment> {
        let which = (SUBJECTS, id.as_str());
        let comment = service::add(&state, &caller.actor(), which, &request.body).await?;
        Ok((StatusCode::CREATED, Json(comment)))
    }

    /// Edits the caller's own comment (`comment.edit_own`, and the item's
    /// `allow_comments`); nobody edits another's. Audited.
    #[utoipa::path(patch, path = $comment, tag = "comments",
        request_body = CommentBody,
        params(("id" = String, Path, description = "Item id"),
            ("comment" = String, Path, description = "Comment id")),
        security(("bearer" = [])),
        responses((status = 200, description = "Edited (or unchanged)", body = Comment),
            (status = 400, description = "Empty, overlong or with control characters", body = ErrorBody),
            (status = 403, description = "permission_not_held, disabled_by_publish_settings, or not_own_comment", body = ErrorBody),
            (status = 404, description = "Item absent or not visible, or no such comment", body = ErrorBody)))]
    pub async fn $edit(
        State(state): Ctx,
        caller: Caller,
        Path((id, comment)): Path<(String, String)>,
        ApiJson(request): ApiJson<CommentBody>,
    ) -> Answer<Comment> {
        let which = (SUBJECTS, id.as_str(), comment.as_str());
        let answer = service::edit(&state, &caller.actor(), which, &request.body).await?;
        Ok(Json(answer))
    }

    /// Deletes a comment: the caller's own (`comment.delete_own`) or another's
    /// (`comment.delete_others`), with the item's `allow_comments`. Audited.
    #[utoipa::path(delete, path = $comment, tag = "comments",
        params(("id" = String, Path, description = "Item id"),
            ("comment" = String, Path, description = "Comment id")),
        security(("bearer" = [])),
        responses((status = 204, description = "Deleted"), (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
            (status = 404, description = "Item absent or not visible, or no such comment", body = ErrorBody)))]
    pub async fn $delete(
        State(state): Ctx,
        caller: Caller,
        Path((id, comment)): Path<(String, String)>,
    ) -> Done {
        service::delete(&state, &caller.actor(), (SUBJECTS, &id, &comment)).await?;
        Ok(StatusCode::NO_CONTENT)
    }

    /// Likes or dislikes an item (`rate` and `allow_rating`); one rating per
    /// user, a new one replaces it.
    #[utoipa::path(put, path = $rating, tag = $tag, request_body = RateRequest,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "The counts after", body = ItemActions),
            (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
            (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $rate(
        State(state): Ctx,
        caller: Caller,
        Path(id): Id,
        ApiJson(request): ApiJson<RateRequest>,
    ) -> Answer<ItemActions> {
        let answer = actions::rate(&state, &caller.actor(), (SUBJECTS, &id), request.value).await?;
        Ok(Json(answer))
    }

    /// Clears the caller's rating of an item (`rate` and `allow_rating`).
    #[utoipa::path(delete, path = $rating, tag = $tag,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "The counts after", body = ItemActions),
            (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
            (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $unrate(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<ItemActions> {
        Ok(Json(actions::unrate(&state, &caller.actor(), (SUBJECTS, &id)).await?))
    }

    /// Adds an item to the caller's favorites (`favorite`).
    #[utoipa::path(put, path = $favorite, tag = $tag,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "Added (or already there)", body = ItemActions),
            (status = 403, description = "permission_not_held", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $fav(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<ItemActions> {
        let answer = actions::favorite(&state, &caller.actor(), (SUBJECTS, &id), true).await?;
        Ok(Json(answer))
    }

    /// Removes an item from the caller's favorites (`favorite`).
    #[utoipa::path(delete, path = $favorite, tag = $tag,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "Removed (or not there)", body = ItemActions),
            (status = 403, description = "permission_not_held", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $unfav(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<ItemActions> {
        let answer = actions::favorite(&state, &caller.actor(), (SUBJECTS, &id), false).await?;
        Ok(Json(answer))
    }

    /// The custom attributes of an item the caller views: each definition
    /// that applies at its node, with the item's value (`null` when unset).
    #[utoipa::path(get, path = $attributes, tag = $tag,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "Attributes, by key", body = Vec<AttributeView>),
            (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $attrs(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<Vec<AttributeView>> {
        Ok(Json(attributes::of_item(&state, &caller.actor(), (SUBJECTS, &id)).await?))
    }

    /// Sets or clears (`null`) custom attribute values of an item
    /// (`update_custom_attributes`); every value is checked against its
    /// type first, and a refusal changes nothing. Audited.
    #[utoipa::path(patch, path = $attributes, tag = $tag, request_body = SetAttributes,
        params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
        responses((status = 200, description = "Attributes after", body = Vec<AttributeView>),
            (status = 400, description = "unknown_attribute, or invalid_attribute_value", body = ErrorBody),
            (status = 403, description = "permission_not_held", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
    pub async fn $set_attrs(
        State(state): Ctx,
        caller: Caller,
        Path(id): Id,
        ApiJson(request): ApiJson<SetAttributes>,
    ) -> Answer<Vec<AttributeView>> {
        let answer = attributes::set(&state, &caller.actor(), (SUBJECTS, &id), &request).await?;
        Ok(Json(answer))
    }
}
    };
}

item_routes! { on_content, Subjects::Content, "content",
["/api/v1/content/{id}/actions", "/api/v1/content/{id}/comments",
 "/api/v1/content/{id}/comments/{comment}", "/api/v1/content/{id}/rating",
 "/api/v1/content/{id}/favorite", "/api/v1/content/{id}/attributes"],
[content_actions, list_comments, add_comment, edit_comment, delete_comment,
 rate_content, unrate_content, favorite_content, unfavorite_content,
 content_attributes, set_content_attributes] }

item_routes! { on_templates, Subjects::Templates, "templates",
["/api/v1/templates/{id}/actions", "/api/v1/templates/{id}/comments",
 "/api/v1/templates/{id}/comments/{comment}", "/api/v1/templates/{id}/rating",
 "/api/v1/templates/{id}/favorite", "/api/v1/templates/{id}/attributes"],
[template_actions, list_template_comments, add_template_comment, edit_template_comment,
 delete_template_comment, rate_template, unrate_template, favorite_template,
 unfavorite_template, template_attributes, set_template_attributes] }

item_routes! { on_playlists, crate::schedules::PLAYLIST_SUBJECTS, "playlists",
["/api/v1/playlists/{id}/actions", "/api/v1/playlists/{id}/comments",
 "/api/v1/playlists/{id}/comments/{comment}", "/api/v1/playlists/{id}/rating",
 "/api/v1/playlists/{id}/favorite", "/api/v1/playlists/{id}/attributes"],
[playlist_actions, list_playlist_comments, add_playlist_comment, edit_playlist_comment,
 delete_playlist_comment, rate_playlist, unrate_playlist, favorite_playlist,
 unfavorite_playlist, playlist_attributes, set_playlist_attributes] }
