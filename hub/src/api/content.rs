//! `/api/v1/content` (T2, D2, A1–A8) and `/api/v1/device/content/{sha256}`
//! (S7, D2): extraction, views and the mapping of [`ContentError`]; the
//! rules are [`crate::content::service`]'s and [`crate::content::approval`]'s.
//! The device route serves a blob, whole or one `Range` (206, 416), only to
//! a device [`device_may_fetch`] allows, authenticated by its pairing
//! credentials ([`DeviceAuth`], 401 otherwise).

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use signet_common::digest::{BadDigest, Sha256};
use tokio::io::AsyncReadExt as _;

use super::prelude::*;
use crate::access_groups::device_may_fetch;
use crate::content::approval;
use crate::content::inspect::InspectError;
use crate::content::media::ProbeError;
use crate::content::service::{self, BlobSlice, ContentError};
use crate::content::view::{
    ApproveRequest, CopyRequest, RejectRequest, UpdateContent, UploadQuery,
};
use crate::content::{BlobError, BlobStore, Items, copy, settings};

pub use crate::content::ContentView;
pub use device_auth::DeviceAuth;

mod device_auth;

concern_routes! { list_content, upload_content;
get_content, replace_content, update_content, delete_content; copy_content;
request_content_approval; approve_content; reject_content; content_thumbnail; download_content;
device_content }

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        use {BlobError as B, ContentError as E, InspectError as I, StatusCode as S};
        let message = e.to_string();
        let (status, code) = match e {
            E::NotFound(what) => return Self::not_found(what),
            E::Approval(e) => return e.into(),
            E::Store(e) => return e.into(),
            E::Forbidden(_) | E::Restricted(_) | E::RoleTooLow(_) => (S::FORBIDDEN, "forbidden"),
            E::InvalidName(_) => (S::BAD_REQUEST, "invalid_name"),
            E::Invalid { code, .. } => (S::BAD_REQUEST, code),
            E::Conflict { code, .. } => (S::CONFLICT, code),
            E::NotAllowed { code, .. } => (S::FORBIDDEN, code),
            E::TemplateNotMedia(_) => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            E::Blob(B::TooLarge { .. }) => (S::PAYLOAD_TOO_LARGE, "upload_too_large"),
            E::Blob(B::Unsupported) => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_content_type"),
            E::Blob(B::Body(_)) => (S::BAD_REQUEST, "upload_incomplete"),
            E::Inspect(I::TooManyPixels { .. }) => (S::BAD_REQUEST, "image_too_large"),
            E::Inspect(I::Unreadable { .. }) | E::Probe(ProbeError::Unreadable { .. }) => {
                (S::BAD_REQUEST, "unreadable_media")
            }
            E::Blob(B::Io(_)) | E::Inspect(I::Io(_)) | E::Probe(ProbeError::Failed(_)) => {
                return Self::internal(&message);
            }
            E::Internal(_) => return Self::internal(&message),
        };
        Self::new(status, code, message)
    }
}

/// The length a request declares, if any.
fn declared_len(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Content items the caller sees: inside its domain and above it (T2).
#[utoipa::path(get, path = "/api/v1/content", tag = "content", security(("bearer" = [])),
    responses((status = 200, description = "Visible items", body = Vec<ContentView>)))]
pub async fn list_content(State(state): Ctx, caller: Caller) -> Answer<Vec<ContentView>> {
    let items = service::list(&state, &caller.actor(), Items::Any).await?;
    Ok(Json(items.into_iter().map(ContentView::from).collect()))
}

/// Uploads a content item: the raw body, streamed (Contributor+).
#[utoipa::path(post, path = "/api/v1/content", tag = "content", params(UploadQuery),
    request_body(content = super::schemas::Binary, content_type = "application/octet-stream",
        description = "The item's bytes; the type is detected from them"),
    security(("bearer" = [])),
    responses((status = 201, description = "Stored", body = ContentView),
        (status = 400, description = "Invalid name, incomplete body, an image over max_image_pixels or media that cannot be read", body = ErrorBody),
        (status = 403, description = "Below Contributor", body = ErrorBody), (status = 404, description = "Node absent or not visible", body = ErrorBody),
        (status = 413, description = "Larger than max_upload_bytes", body = ErrorBody),
        (status = 415, description = "Not a known media type or template", body = ErrorBody)))]
pub async fn upload_content(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> WithStatus<ContentView> {
    let (declared, body) = (declared_len(&headers), body.into_data_stream());
    let item = service::upload(&state, &caller.actor(), query, declared, body).await?;
    Ok((StatusCode::CREATED, Json(item.into())))
}

/// Replaces an item's bytes (Contributor+, inside the caller's domain, A1):
/// the raw body, streamed like an upload. New bytes are a content change
/// (A3): the item becomes inactive if the caller's profile requires
/// approval, else active with the new hash. The same bytes change nothing.
#[utoipa::path(put, path = "/api/v1/content/{id}", tag = "content",
    params(("id" = String, Path, description = "Item id")),
    request_body(content = super::schemas::Binary, content_type = "application/octet-stream",
        description = "The new bytes; the type is detected from them"),
    security(("bearer" = [])),
    responses((status = 200, description = "Saved (or unchanged)", body = ContentView),
        (status = 400, description = "Incomplete body, an image over max_image_pixels or media that cannot be read", body = ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody), (status = 413, description = "Larger than max_upload_bytes", body = ErrorBody),
        (status = 415, description = "Not a known media type, or a template", body = ErrorBody)))]
pub async fn replace_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    headers: HeaderMap,
    body: Body,
) -> Answer<ContentView> {
    let (declared, body) = (declared_len(&headers), body.into_data_stream());
    let item = service::replace(&state, &caller.actor(), &id, declared, body).await?;
    Ok(Json(item.into()))
}

/// Changes an item's name, allowed groups (M1) or publish settings (M2)
/// (Contributor+, inside the caller's domain, A1). None is content: the
/// approval state stays.
#[utoipa::path(patch, path = "/api/v1/content/{id}", tag = "content", request_body = UpdateContent,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Changed (or unchanged)", body = ContentView),
        (status = 400, description = "Invalid name; a group not usable at the item's node, too many groups, or a change hiding the item from the caller", body = ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Absent or not visible, or a permission group absent or of another tenant", body = ErrorBody)))]
pub async fn update_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<UpdateContent>,
) -> Answer<ContentView> {
    let item = settings::update(&state, &caller.actor(), &id, &request).await?;
    Ok(Json(item.into()))
}

/// One content item the caller sees.
#[utoipa::path(get, path = "/api/v1/content/{id}", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The item", body = ContentView), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_content(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<ContentView> {
    let item = service::get(&state, &caller.actor(), &id, Items::Any).await?;
    Ok(Json(item.into()))
}

/// The thumbnail of a content item the caller sees (C5): JPEG or PNG, at
/// most 320 pixels wide; 404 when the item has none (audio, templates,
/// media GStreamer could not render) or is not visible (T4).
#[utoipa::path(get, path = "/api/v1/content/{id}/thumbnail", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The thumbnail",
            content((super::schemas::Binary = "image/jpeg"), (super::schemas::Binary = "image/png"))),
        (status = 404, description = "No thumbnail, or the item is absent or not visible", body = ErrorBody)))]
pub async fn content_thumbnail(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Result<Response, ApiError> {
    let thumbnail = service::thumbnail(&state, &caller.actor(), &id).await?;
    let headers = [
        (header::CONTENT_TYPE, thumbnail.media_type.to_owned()),
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        (header::ETAG, format!("\"{}\"", thumbnail.sha256)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((headers, thumbnail.bytes).into_response())
}

/// Downloads the original bytes of an item the caller views (M3), whole or
/// one `Range`: needs `download` and the item's `allow_download` (P5, M2).
#[utoipa::path(get, path = "/api/v1/content/{id}/download", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The bytes", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 403, description = "permission_not_held, or disabled_by_publish_settings", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody), (status = 416, description = "Range outside the bytes", body = ErrorBody)))]
pub async fn download_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sha256 = settings::download(&state, &caller.actor(), &id).await?;
    blob_answer(&state, &sha256, &headers).await
}

/// Deletes a content item inside the caller's domain (Contributor+); its
/// blob goes when no other item uses it.
#[utoipa::path(delete, path = "/api/v1/content/{id}", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Below Contributor, or above the caller's domain", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "Still used by a template, access group or playlist", body = ErrorBody)))]
pub async fn delete_content(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::delete(&state, &caller.actor(), &id, Items::Any).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies an item of a restricted node into a non-restricted node below it
/// (A2); the copy is active and names its source and revision.
#[utoipa::path(post, path = "/api/v1/content/{id}/copy", tag = "content", request_body = CopyRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "Copied", body = ContentView),
        (status = 400, description = "Destination restricted or not below the source", body = ErrorBody),
        (status = 403, description = "Below Contributor", body = ErrorBody),
        (status = 404, description = "Item or destination absent or not visible", body = ErrorBody),
        (status = 409, description = "Source not in a restricted node, or not approved", body = ErrorBody)))]
pub async fn copy_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<CopyRequest>,
) -> WithStatus<ContentView> {
    let copy = copy::copy(&state, &caller.actor(), &id, Items::Any, request).await?;
    Ok((StatusCode::CREATED, Json(copy.into())))
}

/// Requests approval of the item's current version (A5): one e-mail to the
/// node's content manager; asking again re-sends the same request.
#[utoipa::path(post, path = "/api/v1/content/{id}/request-approval", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Pending", body = ContentView),
        (status = 403, description = "Below Contributor or above the caller's domain", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "Already active, or no content-manager address", body = ErrorBody)))]
pub async fn request_content_approval(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<ContentView> {
    let item = approval::request_approval(&state, &caller.actor(), &id, Items::Any).await?;
    Ok(Json(item.into()))
}

/// Approves the pending version (A6: `approve_content` on the node or above).
#[utoipa::path(post, path = "/api/v1/content/{id}/approve", tag = "content",
    request_body = ApproveRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Active", body = ContentView),
        (status = 403, description = "Without approve_content here", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "Not pending, or another version", body = ErrorBody)))]
pub async fn approve_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Answer<ContentView> {
    let item = approval::decide(&state, &caller.actor(), &id, Items::Any, request.into()).await?;
    Ok(Json(item.into()))
}

/// Rejects the pending version with a reason (A6).
#[utoipa::path(post, path = "/api/v1/content/{id}/reject", tag = "content",
    request_body = RejectRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Inactive, with the reason", body = ContentView),
        (status = 400, description = "Blank or overlong reason", body = ErrorBody),
        (status = 403, description = "Without approve_content here", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody)))]
pub async fn reject_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<RejectRequest>,
) -> Answer<ContentView> {
    let item = approval::decide(&state, &caller.actor(), &id, Items::Any, request.into()).await?;
    Ok(Json(item.into()))
}

/// A blob for a device, whole or one `Range` (D2), only if the device is
/// entitled to an item with those bytes (S7).
#[utoipa::path(get, path = "/api/v1/device/content/{sha256}", tag = "device",
    params(("sha256" = String, Path, description = "SHA-256 of the bytes, lowercase hex")),
    responses((status = 200, description = "The whole blob", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 400, description = "Not a SHA-256", body = ErrorBody), (status = 401, description = "No device credentials", body = ErrorBody),
        (status = 404, description = "Absent or not entitled", body = ErrorBody), (status = 416, description = "Range outside the blob", body = ErrorBody)))]
pub async fn device_content(
    State(state): Ctx,
    device: DeviceAuth,
    Path(sha256): Id,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sha256: Sha256 = (sha256.parse())
        .map_err(|e: BadDigest| ApiError::bad_request("invalid_sha256", e.to_string()))?;
    if !device_may_fetch(&state.store, &device.device, &sha256, state.clock.now())? {
        return Err(ApiError::not_found("content"));
    }
    blob_answer(&state, &sha256, &headers).await
}

/// [`blob_response`] for the blob `sha256` and the request's `Range`.
async fn blob_answer(
    state: &AppState,
    sha256: &Sha256,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    blob_response(&BlobStore::new(state.config.shared_dir()), sha256, range).await
}

/// The answer for blob `sha256` and an optional `Range` header value: 200
/// with the whole blob, 206 with `Content-Range` and exactly the requested
/// bytes, 416 with `Content-Range: bytes */size`, 404 when absent. The
/// bytes are streamed from the file.
///
/// # Errors
/// 404 when the blob is absent, 416, or 500 when the disk fails.
pub async fn blob_response(
    blobs: &BlobStore,
    sha256: &Sha256,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    typed_blob_response(blobs, sha256, range, "application/octet-stream").await
}

/// [`blob_response`] with `media_type` as its `Content-Type` (a browser's
/// media element plays it, M6).
///
/// # Errors
/// As [`blob_response`].
pub async fn typed_blob_response(
    blobs: &BlobStore,
    sha256: &Sha256,
    range: Option<&str>,
    media_type: &str,
) -> Result<Response, ApiError> {
    let blob = match service::open_blob(blobs, sha256, range).await? {
        BlobSlice::Bytes(blob) => blob,
        BlobSlice::Unsatisfiable { size } => {
            let message = format!("the blob has {size} bytes");
            let status = StatusCode::RANGE_NOT_SATISFIABLE;
            let error = ApiError::new(status, "range_not_satisfiable", message);
            let range = [(header::CONTENT_RANGE, format!("bytes */{size}"))];
            return Ok((range, error).into_response());
        }
    };
    let status = if blob.partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let headers = [
        (header::CONTENT_LENGTH, blob.len.to_string()),
        (header::CONTENT_TYPE, media_type.to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (header::ETAG, format!("\"{sha256}\"")),
    ];
    let range = blob.content_range().map(|r| [(header::CONTENT_RANGE, r)]);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(blob.file.take(blob.len)));
    Ok((status, headers, range, body).into_response())
}
