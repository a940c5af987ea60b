//! The media actions (M3, M2, P5): share links and their public playback,
//! the favorites lists, feedback and the custom attribute definitions
//! (ratings, favorites, comments and attribute values on an item are
//! [`super::item_actions`]). Extraction, views
//! and the mapping of [`ActionError`]; the rules are
//! [`crate::content::actions`]'s.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use super::prelude::*;
use crate::content::BlobStore;
use crate::content::actions::view::{
    AttributeDef, DefineAttribute, FavoriteSubjectView, FavoriteView, Feedback, FeedbackQuery,
    FeedbackRequest, ResolveRequest, ShareLink, ShareRequest, ShareView,
};
use crate::content::actions::{ActionError, attributes, feedback, service, share};

concern_routes! { share_content; content_shares; revoke_share; play_shared; my_favorites; my_favorite_playlists;
report_content; feedback_queue; resolve_feedback; node_attributes;
define_attribute, remove_attribute }

/// The kinds of item above content that hold attribute values too (M3):
/// redefining or removing a definition checks and clears theirs as well.
const ABOVE: &[crate::content::subjects::Subjects] = &[crate::schedules::PLAYLIST_SUBJECTS];

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let message = e.to_string();
        match e {
            ActionError::Content(e) => e.into(),
            ActionError::NotFound(what) => Self::not_found(what),
            ActionError::RoleTooLow(_) => Self::forbidden(message),
            ActionError::Invalid { code, .. } => Self::bad_request(code, message),
            ActionError::Conflict { code, .. } => Self::conflict(code, message),
            ActionError::Gone { code, .. } => Self::gone(code, message),
            ActionError::Store(e) => e.into(),
        }
    }
}

/// Makes a signed playback link to a media item (`share` and the item's
/// `allow_share`, M2), optionally mailed to the given addresses.
#[utoipa::path(post, path = "/api/v1/content/{id}/share", tag = "content", request_body = ShareRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "The link", body = ShareView), (status = 400, description = "Bad expiry, address or message", body = ErrorBody),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "not_playable (a template), or public_url_unset (mail asked for)", body = ErrorBody)))]
pub async fn share_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<ShareRequest>,
) -> WithStatus<ShareView> {
    let view = share::share(&state, &caller.actor(), &id, &request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The item's live share links the caller may revoke (M3, P2): all for a
/// Moderator+ whose domain holds its node, else the caller's own; never a token.
#[utoipa::path(get, path = "/api/v1/content/{id}/shares", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Live links, newest first", body = Vec<ShareLink>),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn content_shares(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<Vec<ShareLink>> {
    Ok(Json(share::links(&state, &caller.actor(), &id).await?))
}

/// Revokes a share link at once (its maker, or a Moderator+ whose domain
/// holds the item's node, P2); audited. The link then answers 410 `share_revoked`.
#[utoipa::path(delete, path = "/api/v1/shares/{share}", tag = "content",
    params(("share" = String, Path, description = "Share link id")), security(("bearer" = [])),
    responses((status = 204, description = "Revoked (or already)"), (status = 403, description = "not_own_share", body = ErrorBody),
        (status = 404, description = "Absent, or neither the caller's nor on an item the caller views", body = ErrorBody)))]
pub async fn revoke_share(State(state): Ctx, caller: Caller, Path(share): Id) -> Done {
    share::revoke(&state, &caller.actor(), &share).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Plays a shared media item without a login, whole or one `Range`, until
/// the link expires or is revoked (one by one, or by turning sharing off).
#[utoipa::path(get, path = "/api/v1/shared/{token}", tag = "content",
    params(("token" = String, Path, description = "The token of a share link")),
    responses((status = 200, description = "The media", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 404, description = "Unknown or forged link, or its item deleted", body = ErrorBody),
        (status = 410, description = "share_expired, or share_revoked", body = ErrorBody),
        (status = 416, description = "Range outside the bytes", body = ErrorBody)))]
pub async fn play_shared(
    State(state): Ctx,
    Path(token): Id,
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

/// The caller's favorites that they can still view (M1), newest first.
#[utoipa::path(get, path = "/api/v1/me/favorites", tag = "content", security(("bearer" = [])),
    responses((status = 200, description = "Favorites", body = Vec<FavoriteView>)))]
pub async fn my_favorites(State(state): Ctx, caller: Caller) -> Answer<Vec<FavoriteView>> {
    Ok(Json(service::favorites(&state, &caller.actor()).await?))
}

/// The playlists among the caller's favorites that they can still view
/// (M1, M3), newest first (content items: `/api/v1/me/favorites`).
#[utoipa::path(get, path = "/api/v1/me/favorites/playlists", tag = "playlists", security(("bearer" = [])),
    responses((status = 200, description = "Favorite playlists", body = Vec<FavoriteSubjectView>)))]
pub async fn my_favorite_playlists(
    State(state): Ctx,
    caller: Caller,
) -> Answer<Vec<FavoriteSubjectView>> {
    let playlists = crate::schedules::PLAYLIST_SUBJECTS;
    Ok(Json(
        service::favorites_of(&state, &caller.actor(), playlists).await?,
    ))
}

/// Reports an item with a reason into the moderators' queue (`feedback`);
/// one open report per user and item.
#[utoipa::path(post, path = "/api/v1/content/{id}/feedback", tag = "content", request_body = FeedbackRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "Filed", body = Feedback),
        (status = 400, description = "Blank or overlong comment", body = ErrorBody), (status = 403, description = "permission_not_held", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "feedback_open: the caller's report on it is still open", body = ErrorBody)))]
pub async fn report_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> WithStatus<Feedback> {
    let filed = feedback::report(&state, &caller.actor(), &id, &request).await?;
    Ok((StatusCode::CREATED, Json(filed)))
}

/// The moderators' queue (Moderator+): reports on items inside the
/// caller's domain, newest first.
#[utoipa::path(get, path = "/api/v1/feedback", tag = "content", params(FeedbackQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Reports", body = Vec<Feedback>), (status = 403, description = "Below Moderator", body = ErrorBody)))]
pub async fn feedback_queue(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(query): ApiQuery<FeedbackQuery>,
) -> Answer<Vec<Feedback>> {
    let answer = feedback::queue(&state, &caller.actor(), &query).await?;
    Ok(Json(answer))
}

/// Resolves a report with a note (Moderator+, inside the caller's domain).
#[utoipa::path(post, path = "/api/v1/feedback/{id}/resolve", tag = "content", request_body = ResolveRequest,
    params(("id" = String, Path, description = "Report id")), security(("bearer" = [])),
    responses((status = 200, description = "Resolved", body = Feedback), (status = 403, description = "Below Moderator", body = ErrorBody),
        (status = 404, description = "Absent or outside the caller's domain", body = ErrorBody),
        (status = 409, description = "feedback_resolved: already resolved", body = ErrorBody)))]
pub async fn resolve_feedback(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> Answer<Feedback> {
    let resolved = feedback::resolve(&state, &caller.actor(), &id, &request.note).await?;
    Ok(Json(resolved))
}

/// The custom attributes that apply at a node: its own and inherited.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/attributes", tag = "nodes",
    params(("id" = String, Path, description = "Node id")), security(("bearer" = [])),
    responses((status = 200, description = "Definitions, by key", body = Vec<AttributeDef>),
        (status = 404, description = "Node absent or not visible", body = ErrorBody)))]
pub async fn node_attributes(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<Vec<AttributeDef>> {
    let answer = attributes::at_node(&state, &caller.actor(), &id).await?;
    Ok(Json(answer))
}

/// Defines (or redefines) a custom attribute at a node, for the items
/// there and below (Manager+, inside the caller's domain).
#[utoipa::path(put, path = "/api/v1/nodes/{id}/attributes/{key}", tag = "nodes", request_body = DefineAttribute,
    params(("id" = String, Path, description = "Node id"), ("key" = String, Path, description = "Attribute key")),
    security(("bearer" = [])),
    responses((status = 200, description = "Redefined", body = AttributeDef),
        (status = 201, description = "Defined", body = AttributeDef), (status = 400, description = "Bad key, label or type", body = ErrorBody),
        (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Node absent or outside the caller's domain", body = ErrorBody),
        (status = 409, description = "attribute_defined_elsewhere, attribute_in_use or too_many_attributes", body = ErrorBody)))]
pub async fn define_attribute(
    State(state): Ctx,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    ApiJson(request): ApiJson<DefineAttribute>,
) -> WithStatus<AttributeDef> {
    let (def, new) =
        attributes::define(&state, &caller.actor(), (&id, &key), &request, ABOVE).await?;
    Ok((super::created_if(new), Json(def)))
}

/// Removes a custom attribute from a node, with its values on items there
/// and below (Manager+).
#[utoipa::path(delete, path = "/api/v1/nodes/{id}/attributes/{key}", tag = "nodes",
    params(("id" = String, Path, description = "Node id"), ("key" = String, Path, description = "Attribute key")),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Node or attribute absent, or outside the caller's domain", body = ErrorBody)))]
pub async fn remove_attribute(
    State(state): Ctx,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Done {
    attributes::remove(&state, &caller.actor(), (&id, &key), ABOVE).await?;
    Ok(StatusCode::NO_CONTENT)
}
