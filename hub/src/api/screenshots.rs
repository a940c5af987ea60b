//! Screenshots over HTTP (D8): `POST /api/v1/device/screenshot` for a
//! device to upload what its screen shows, `GET /api/v1/devices/{id}/screenshot`
//! for operators to look at it.
//!
//! Who may do what: a device uploads only its own screenshot (device
//! credentials, [`DeviceAuth`], 401 otherwise); any operator who sees the
//! device (the rule of `GET /api/v1/devices/{id}`, T4) reads its latest one,
//! anyone else gets 404. Must not: decide what a screenshot must be or who sees it —
//! [`crate::fleet::service`] does; [`crate::screenshots`] stores it durably
//! before the answer (S9).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;

use super::DeviceAuth;
use super::fleet::viewer;
use super::prelude::*;
use crate::fleet::service::{self, FleetError};
use crate::screenshots::{MAX_SCREENSHOT_BYTES, Screenshot};

/// The header naming when the screenshot reached the hub (RFC 3339).
pub const TAKEN_AT_HEADER: &str = "x-signet-taken-at";

concern_routes! { upload_screenshot; get_screenshot }

/// Reads `body` whole, refusing (413) a declared or actual length over
/// [`MAX_SCREENSHOT_BYTES`] as soon as it is known.
async fn read_bounded(headers: &HeaderMap, body: Body) -> Result<Bytes, FleetError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_SCREENSHOT_BYTES as u64) {
        return Err(FleetError::UploadTooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FleetError::UploadIncomplete(e.to_string()))?;
        if bytes.len() + chunk.len() > MAX_SCREENSHOT_BYTES {
            return Err(FleetError::UploadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

/// Uploads the calling device's screenshot (D8): a PNG of at most 8 MiB,
/// 1 to 8192 pixels on each side. It replaces the device's previous one and
/// is durable (file synced, metadata stored) before the answer: 201 for the
/// device's first screenshot, 200 when it replaced one. A body that is not
/// such a PNG is refused (400 `invalid_png`, 413, 415) and nothing changes.
#[utoipa::path(post, path = "/api/v1/device/screenshot", tag = "device",
    request_body(content = super::schemas::Binary, content_type = "image/png", description = "The PNG bytes"),
    responses((status = 200, description = "Stored, replacing the previous one", body = Screenshot),
        (status = 201, description = "Stored, the device's first", body = Screenshot),
        (status = 400, description = "Not a PNG of sane size, or an incomplete body", body = ErrorBody),
        (status = 401, description = "No device credentials", body = ErrorBody), (status = 413, description = "Larger than 8 MiB", body = ErrorBody),
        (status = 415, description = "A Content-Type other than image/png", body = ErrorBody)))]
pub async fn upload_screenshot(
    State(state): Ctx,
    device: DeviceAuth,
    headers: HeaderMap,
    body: Body,
) -> WithStatus<Screenshot> {
    service::check_screenshot_type(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes))?;
    let png = read_bounded(&headers, body).await?;
    let (screenshot, first) = service::store_screenshot(&state, &device.device, png).await?;
    Ok((super::created_if(first), Json(screenshot)))
}

/// The latest screenshot of a device the caller sees (D8, T4), as
/// `image/png`, with `X-Signet-Taken-At` (when the hub received it, RFC
/// 3339) and `ETag` (the SHA-256 of the bytes, quoted).
#[utoipa::path(get, path = "/api/v1/devices/{id}/screenshot", tag = "devices",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "The PNG", body = super::schemas::Binary, content_type = "image/png"),
        (status = 404, description = "No screenshot yet, or the device is absent or not visible", body = ErrorBody)))]
pub async fn get_screenshot(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Result<Response, ApiError> {
    let (screenshot, bytes) = service::latest_screenshot(&state, &viewer(&caller), &id).await?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let taken_at = screenshot
        .taken_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (name, value) in [
        (HeaderName::from_static(TAKEN_AT_HEADER), taken_at),
        (header::ETAG, format!("\"{}\"", screenshot.sha256)),
    ] {
        let value = HeaderValue::from_str(&value).map_err(|e| ApiError::internal(&e))?;
        headers.insert(name, value);
    }
    Ok(response)
}
