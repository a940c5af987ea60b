//! `/api/v1/my` (M6, feature row 38): the member player — "My content",
//! the caller's browsers (each counts as a device, L5), playbacks with
//! short-lived signed media URLs, and their progress (U1) — over HTTP.
//!
//! Owns: extracting requests, the one mapping of [`MemberError`] to
//! answers, and the OpenAPI description of the routes. Must not: decide
//! anything — every rule is [`crate::member`]'s. Every route but the media
//! URL needs a login (any role: the caller's own memberships decide); the
//! media URL's signature is its credential.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse as _, Response};

use super::prelude::*;
use crate::content::BlobStore;
use crate::member::types::{
    BrowserRegistered, BrowserView, MediaSignature, MyContent, PlayGranted, PlayProgress,
    RegisterBrowser, StartPlay,
};
use crate::member::{MemberError, browsers, playback, thumbnails};

concern_routes! { my_content; list_browsers, register_browser; remove_browser; start_play;
play_progress; media; thumbnail }

impl From<MemberError> for ApiError {
    fn from(e: MemberError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            MemberError::NotFound(what) => return Self::not_found(what),
            MemberError::BrowserUnknown => (StatusCode::NOT_FOUND, "device_not_registered"),
            MemberError::OutsideWindow(_) => (StatusCode::FORBIDDEN, "outside_licence_window"),
            MemberError::TooManyDevices { .. } => (StatusCode::CONFLICT, "too_many_devices"),
            MemberError::TooManyBrowsers(_) => (StatusCode::CONFLICT, "too_many_browsers"),
            MemberError::NotApproved => (StatusCode::CONFLICT, "not_approved"),
            MemberError::BadSignature => (StatusCode::FORBIDDEN, "bad_signature"),
            MemberError::LinkExpired(_) => (StatusCode::GONE, "link_expired"),
            MemberError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            MemberError::InvalidName(e) => return e.into(),
            MemberError::Internal(_) => return Self::internal(&message),
            MemberError::Store(e) => return e.into(),
        };
        Self::new(status, code, message)
    }
}

/// "My content" (M6): the caller's access groups — window, device limit —
/// with their playable items and categories.
#[utoipa::path(get, path = "/api/v1/my/content", tag = "member", security(("bearer" = [])),
    responses((status = 200, description = "The caller's groups and items", body = MyContent)))]
pub async fn my_content(State(state): Ctx, caller: Caller) -> Answer<MyContent> {
    Ok(Json(playback::my_content(&state, &caller.actor()).await?))
}

/// The caller's registered browsers (each counts as a device, L5).
#[utoipa::path(get, path = "/api/v1/my/devices", tag = "member", security(("bearer" = [])),
    responses((status = 200, description = "The caller's browsers", body = Vec<BrowserView>)))]
pub async fn list_browsers(State(state): Ctx, caller: Caller) -> Answer<Vec<BrowserView>> {
    Ok(Json(browsers::list(&state, &caller.actor())?))
}

/// Registers this browser under a name (M6, L5): it takes a device slot in
/// each of the caller's groups with room; refused with 409
/// `too_many_devices` when every group the caller may play in is full. The
/// token in the answer is shown once; the page keeps it.
#[utoipa::path(post, path = "/api/v1/my/devices", tag = "member", request_body = RegisterBrowser,
    security(("bearer" = [])),
    responses((status = 201, description = "Registered", body = BrowserRegistered),
        (status = 400, description = "Invalid name", body = ErrorBody), (status = 409, description = "Too many devices or browsers", body = ErrorBody)))]
pub async fn register_browser(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<RegisterBrowser>,
) -> WithStatus<BrowserRegistered> {
    let registered = browsers::register(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

/// Removes one of the caller's browsers: its token stops working and its
/// device slots are free (L5).
#[utoipa::path(delete, path = "/api/v1/my/devices/{id}", tag = "member",
    params(("id" = String, Path, description = "Browser id")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 404, description = "Not one of the caller's browsers", body = ErrorBody)))]
pub async fn remove_browser(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    browsers::remove(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts playing an item of the caller's groups in this browser (M6):
/// only inside the caller's licence window (L2, L4: 403
/// `outside_licence_window`) and device limit (L5: 409 `too_many_devices`).
/// Records the play event (U1) and the caller's first use (L2); answers a
/// signed media URL that works until `expires_at`.
#[utoipa::path(post, path = "/api/v1/my/items/{id}/play", tag = "member", request_body = StartPlay,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Playback granted", body = PlayGranted),
        (status = 403, description = "Outside the licence window", body = ErrorBody),
        (status = 404, description = "Not in the caller's groups, or the browser is not registered", body = ErrorBody),
        (status = 409, description = "Too many devices, or not approved", body = ErrorBody)))]
pub async fn start_play(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<StartPlay>,
) -> Answer<PlayGranted> {
    let started = playback::start(&state, &caller.actor(), &id, request).await?;
    if started.first_use {
        let hub = state.hub().clone();
        tokio::spawn(async move { crate::publish::after_first_use(&hub).await });
    }
    Ok(Json(started.granted))
}

/// How far one of the caller's playbacks got (U1: the play event's
/// duration, at most the time since it started).
#[utoipa::path(post, path = "/api/v1/my/plays/{id}", tag = "member", request_body = PlayProgress,
    params(("id" = String, Path, description = "Playback id")), security(("bearer" = [])),
    responses((status = 204, description = "Recorded"), (status = 404, description = "Not one of the caller's playbacks", body = ErrorBody)))]
pub async fn play_progress(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<PlayProgress>,
) -> Done {
    playback::progress(&state, &caller.actor(), &id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A playback's media (M6), by its signed URL (no login: the signature is
/// the credential), with `Range`; only until it expires, while the browser
/// is registered and the member's licence lets them play.
#[utoipa::path(get, path = "/api/v1/my/media/{play}", tag = "member",
    params(("play" = String, Path, description = "Playback id"), MediaSignature),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range"), (status = 403, description = "Bad signature, or outside the licence window", body = ErrorBody),
        (status = 404, description = "Unknown playback, or the browser was removed", body = ErrorBody),
        (status = 410, description = "The link expired", body = ErrorBody), (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 429, description = "Too many requests from this source", body = ErrorBody)))]
pub async fn media(
    State(state): Ctx,
    Path(play): Id,
    ApiQuery(signature): ApiQuery<MediaSignature>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let play = playback::media(&state, &play, &signature)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let blobs = BlobStore::new(state.config.shared_dir());
    let mut response =
        super::typed_blob_response(&blobs, &play.sha256, range, &play.media_type).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// The thumbnail of an item "My content" lists (M6, C5), by the signed URL
/// the listing gave (no login: the signature is the credential).
#[utoipa::path(get, path = "/api/v1/my/thumbnails/{item}", tag = "member",
    params(("item" = String, Path, description = "Item id"), MediaSignature),
    responses((status = 200, description = "The thumbnail",
            content((super::schemas::Binary = "image/jpeg"), (super::schemas::Binary = "image/png"))),
        (status = 403, description = "Bad signature", body = super::ErrorBody),
        (status = 404, description = "No such item, or it has no thumbnail", body = super::ErrorBody),
        (status = 410, description = "The link expired", body = super::ErrorBody),
        (status = 429, description = "Too many requests from this source", body = super::ErrorBody)))]
pub async fn thumbnail(
    State(state): State<AppState>,
    Path(item): Path<String>,
    ApiQuery(signature): ApiQuery<MediaSignature>,
) -> Result<Response, ApiError> {
    let file = thumbnails::open(&state, &item, &signature).await?;
    let headers = [
        (header::CONTENT_TYPE, file.media_type.to_owned()),
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        (header::ETAG, format!("\"{}\"", file.sha256)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, file.bytes).into_response())
}
