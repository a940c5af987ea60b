//! The media actions (M3, M2, P5): share links and their public playback,
//! ratings, favorites, feedback and custom attributes. Extraction, views
//! and the mapping of [`ActionError`]; the rules are
//! [`crate::content::actions`]'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery, AppState, Caller};
use crate::content::BlobStore;
use crate::content::actions::view::{
    AttributeDef, AttributeView, DefineAttribute, FavoriteView, Feedback, FeedbackQuery,
    FeedbackRequest, ItemActions, RateRequest, ResolveRequest, SetAttributes, ShareRequest,
    ShareView,
};
use crate::content::actions::{ActionError, attributes, feedback, service, share};

/// The media-action routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(content_actions))
        .routes(routes!(share_content))
        .routes(routes!(play_shared))
        .routes(routes!(rate_content, unrate_content))
        .routes(routes!(favorite_content, unfavorite_content))
        .routes(routes!(my_favorites))
        .routes(routes!(report_content))
        .routes(routes!(feedback_queue))
        .routes(routes!(resolve_feedback))
        .routes(routes!(node_attributes))
        .routes(routes!(define_attribute, remove_attribute))
        .routes(routes!(content_attributes, set_content_attributes))
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let message = e.to_string();
        match e {
            ActionError::Content(e) => e.into(),
            ActionError::NotFound(what) => Self::not_found(what),
            ActionError::RoleTooLow(_) => Self::forbidden(message),
            ActionError::Invalid { code, .. } => Self::bad_request(code, message),
            ActionError::Conflict { code, .. } => Self::conflict(code, message),
            ActionError::Gone { code, .. } => Self::new(StatusCode::GONE, code, message),
            ActionError::Store(e) => e.into(),
        }
    }
}

/// What the caller sees of the actions on an item (M3): likes and
/// dislikes, the caller's own rating and favorite, and the actions the
/// caller may take on it now (P5).
#[utoipa::path(get, path = "/api/v1/content/{id}/actions", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Counts, the caller's own, what the caller may do", body = ItemActions),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn content_actions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ItemActions>, ApiError> {
    Ok(Json(service::detail(&state, &caller.actor(), &id).await?.1))
}

/// Makes a signed playback link to a media item (`share` and the item's
/// `allow_share`, M2), optionally mailed to the given addresses.
#[utoipa::path(post, path = "/api/v1/content/{id}/share", tag = "content", request_body = ShareRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "The link", body = ShareView),
        (status = 400, description = "Bad expiry, address or message", body = super::ErrorBody),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "not_playable (a template), or public_url_unset (mail asked for)", body = super::ErrorBody)))]
pub async fn share_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ShareRequest>,
) -> Result<(StatusCode, Json<ShareView>), ApiError> {
    let view = share::share(&state, &caller.actor(), &id, &request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Plays a shared media item without a login, whole or one `Range`, until
/// the link expires or its item's sharing is turned off.
#[utoipa::path(get, path = "/api/v1/shared/{token}", tag = "content",
    params(("token" = String, Path, description = "The token of a share link")),
    responses((status = 200, description = "The media", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 404, description = "Unknown, forged or revoked link", body = super::ErrorBody),
        (status = 410, description = "share_expired, or share_revoked", body = super::ErrorBody),
        (status = 416, description = "Range outside the bytes", body = super::ErrorBody)))]
pub async fn play_shared(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shared = share::play(&state, &token).await?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let blobs = BlobStore::new(state.config.shared_dir());
    let mut response = super::blob_response(&blobs, &shared.sha256, range).await?;
    if response.status().is_success()
        && let Ok(media_type) = HeaderValue::from_str(&shared.media_type)
    {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, media_type);
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    Ok(response)
}

/// Likes or dislikes an item (`rate` and `allow_rating`); one rating per
/// user, a new one replaces it.
#[utoipa::path(put, path = "/api/v1/content/{id}/rating", tag = "content", request_body = RateRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The counts after", body = ItemActions),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn rate_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RateRequest>,
) -> Result<Json<ItemActions>, ApiError> {
    Ok(Json(
        service::rate(&state, &caller.actor(), &id, request.value).await?,
    ))
}

/// Clears the caller's rating of an item (`rate` and `allow_rating`).
#[utoipa::path(delete, path = "/api/v1/content/{id}/rating", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The counts after", body = ItemActions),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn unrate_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ItemActions>, ApiError> {
    Ok(Json(service::unrate(&state, &caller.actor(), &id).await?))
}

/// Adds an item to the caller's favorites (`favorite`).
#[utoipa::path(put, path = "/api/v1/content/{id}/favorite", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Added (or already there)", body = ItemActions),
        (status = 403, description = "permission_not_held", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn favorite_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ItemActions>, ApiError> {
    Ok(Json(
        service::favorite(&state, &caller.actor(), &id, true).await?,
    ))
}

/// Removes an item from the caller's favorites (`favorite`).
#[utoipa::path(delete, path = "/api/v1/content/{id}/favorite", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Removed (or not there)", body = ItemActions),
        (status = 403, description = "permission_not_held", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn unfavorite_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ItemActions>, ApiError> {
    Ok(Json(
        service::favorite(&state, &caller.actor(), &id, false).await?,
    ))
}

/// The caller's favorites that they can still view (M1), newest first.
#[utoipa::path(get, path = "/api/v1/me/favorites", tag = "content", security(("bearer" = [])),
    responses((status = 200, description = "Favorites", body = Vec<FavoriteView>)))]
pub async fn my_favorites(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<FavoriteView>>, ApiError> {
    Ok(Json(service::favorites(&state, &caller.actor()).await?))
}

/// Reports an item with a reason into the moderators' queue (`feedback`);
/// one open report per user and item.
#[utoipa::path(post, path = "/api/v1/content/{id}/feedback", tag = "content", request_body = FeedbackRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "Filed", body = Feedback),
        (status = 400, description = "Blank or overlong comment", body = super::ErrorBody),
        (status = 403, description = "permission_not_held", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "feedback_open: the caller's report on it is still open", body = super::ErrorBody)))]
pub async fn report_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> Result<(StatusCode, Json<Feedback>), ApiError> {
    let filed = feedback::report(&state, &caller.actor(), &id, &request).await?;
    Ok((StatusCode::CREATED, Json(filed)))
}

/// The moderators' queue (Moderator+): reports on items inside the
/// caller's domain, newest first.
#[utoipa::path(get, path = "/api/v1/feedback", tag = "content", params(FeedbackQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Reports", body = Vec<Feedback>),
        (status = 403, description = "Below Moderator", body = super::ErrorBody)))]
pub async fn feedback_queue(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<FeedbackQuery>,
) -> Result<Json<Vec<Feedback>>, ApiError> {
    Ok(Json(
        feedback::queue(&state, &caller.actor(), &query).await?,
    ))
}

/// Resolves a report with a note (Moderator+, inside the caller's domain).
#[utoipa::path(post, path = "/api/v1/feedback/{id}/resolve", tag = "content", request_body = ResolveRequest,
    params(("id" = String, Path, description = "Report id")), security(("bearer" = [])),
    responses((status = 200, description = "Resolved", body = Feedback),
        (status = 403, description = "Below Moderator", body = super::ErrorBody),
        (status = 404, description = "Absent or outside the caller's domain", body = super::ErrorBody),
        (status = 409, description = "feedback_resolved: already resolved", body = super::ErrorBody)))]
pub async fn resolve_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> Result<Json<Feedback>, ApiError> {
    let resolved = feedback::resolve(&state, &caller.actor(), &id, &request.note).await?;
    Ok(Json(resolved))
}

/// The custom attributes that apply at a node: its own and inherited.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/attributes", tag = "nodes",
    params(("id" = String, Path, description = "Node id")), security(("bearer" = [])),
    responses((status = 200, description = "Definitions, by key", body = Vec<AttributeDef>),
        (status = 404, description = "Node absent or not visible", body = super::ErrorBody)))]
pub async fn node_attributes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<AttributeDef>>, ApiError> {
    Ok(Json(
        attributes::at_node(&state, &caller.actor(), &id).await?,
    ))
}

/// Defines (or redefines) a custom attribute at a node, for the items
/// there and below (Manager+, inside the caller's domain).
#[utoipa::path(put, path = "/api/v1/nodes/{id}/attributes/{key}", tag = "nodes", request_body = DefineAttribute,
    params(("id" = String, Path, description = "Node id"), ("key" = String, Path, description = "Attribute key")),
    security(("bearer" = [])),
    responses((status = 200, description = "Redefined", body = AttributeDef),
        (status = 201, description = "Defined", body = AttributeDef),
        (status = 400, description = "Bad key, label or type", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Node absent or outside the caller's domain", body = super::ErrorBody),
        (status = 409, description = "attribute_defined_elsewhere, attribute_in_use or too_many_attributes", body = super::ErrorBody)))]
pub async fn define_attribute(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    ApiJson(request): ApiJson<DefineAttribute>,
) -> Result<(StatusCode, Json<AttributeDef>), ApiError> {
    let (def, new) = attributes::define(&state, &caller.actor(), (&id, &key), &request).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(def)))
}

/// Removes a custom attribute from a node, with its values on items there
/// and below (Manager+).
#[utoipa::path(delete, path = "/api/v1/nodes/{id}/attributes/{key}", tag = "nodes",
    params(("id" = String, Path, description = "Node id"), ("key" = String, Path, description = "Attribute key")),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Node or attribute absent, or outside the caller's domain", body = super::ErrorBody)))]
pub async fn remove_attribute(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    attributes::remove(&state, &caller.actor(), (&id, &key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The custom attributes of an item the caller views: each definition that
/// applies at its node, with the item's value (`null` when unset).
#[utoipa::path(get, path = "/api/v1/content/{id}/attributes", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Attributes, by key", body = Vec<AttributeView>),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn content_attributes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<AttributeView>>, ApiError> {
    Ok(Json(
        attributes::of_item(&state, &caller.actor(), &id).await?,
    ))
}

/// Sets or clears (`null`) custom attribute values of an item
/// (`update_custom_attributes`); every value is checked against its type
/// first, and a refusal changes nothing.
#[utoipa::path(patch, path = "/api/v1/content/{id}/attributes", tag = "content", request_body = SetAttributes,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Attributes after", body = Vec<AttributeView>),
        (status = 400, description = "unknown_attribute, or invalid_attribute_value", body = super::ErrorBody),
        (status = 403, description = "permission_not_held", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn set_content_attributes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SetAttributes>,
) -> Result<Json<Vec<AttributeView>>, ApiError> {
    Ok(Json(
        attributes::set(&state, &caller.actor(), &id, &request).await?,
    ))
}
