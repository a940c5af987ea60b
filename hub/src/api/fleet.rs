//! `/api/v1/fleet` (U4, C3) and `/api/v1/device/events` (U2): fleet status,
//! its live stream, alerts, and the HTTP upload of proof-of-play events.
//!
//! Who may do what: any role reads the fleet and its alerts, for devices
//! attached inside its domain only (T4: others are 404 or absent from
//! lists). Event upload is for devices (device credentials), each only
//! about itself and signed by its own device key (S11). Must not: compute
//! status or decide who sees what — [`crate::fleet::service`] does.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt as _;
use signet_common::sync::signed::ReportError;

use super::DeviceAuth;
use super::prelude::*;
use crate::fleet::alerts::Alert;
use crate::fleet::service::{self, AlertFilter, FleetError, FleetFilter, SummaryFilter, Viewer};
use crate::fleet::stream::{FleetEvent, StreamError};
use crate::fleet::{FleetCounts, FleetDevice};
use crate::fleet::{IngestAnswer, SignedReportSchema};

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        use {FleetError as E, ReportError as R, StatusCode as S};
        let message = e.to_string();
        match e {
            E::NotFound(what) => Self::not_found(what),
            E::InvalidQuery(_) => Self::bad_request("invalid_query", message),
            E::InvalidRange => Self::bad_request("invalid_range", message),
            E::RangeTooLong => Self::bad_request("range_too_long", message),
            E::ReportTooLarge => Self::bad_request("report_too_large", message),
            E::Stream(StreamError::Busy) => Self::busy("too_many_streams", message, 5),
            E::Stream(StreamError::SessionEnded) => Self::unauthorized(message),
            E::Stream(StreamError::Store(e)) | E::Store(e) => e.into(),
            E::UnknownDevice | E::Report(R::Unsigned | R::WrongKey { .. } | R::BadSignature) => {
                Self::new(S::FORBIDDEN, "report_not_signed_by_device", message)
            }
            E::Report(R::Oversized { .. }) => {
                Self::new(S::PAYLOAD_TOO_LARGE, "report_too_large", message)
            }
            E::Report(_) | E::InvalidEvent(_) => Self::bad_request("invalid_events", message),
            E::NotPngType => {
                Self::new(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
            }
            E::UploadTooLarge => Self::new(S::PAYLOAD_TOO_LARGE, "upload_too_large", message),
            E::UploadIncomplete(_) => Self::bad_request("upload_incomplete", message),
            E::Png(_) => Self::bad_request("invalid_png", message),
            E::Csv(_) | E::Screenshot(_) => Self::internal(&message),
        }
    }
}

/// The viewer of a request: the caller over the tree read with it.
pub(super) fn viewer(caller: &Caller) -> Viewer {
    Viewer::new(caller.actor(), caller.tree.clone())
}

concern_routes! { list_fleet; fleet_summary; fleet_stream; list_alerts; get_fleet_device;
upload_events }

/// Devices inside the caller's domain, by id, with their status (online
/// from the last heartbeat) and desired against accepted and activated
/// documents (U4).
#[utoipa::path(get, path = "/api/v1/fleet", tag = "fleet", params(FleetFilter), security(("bearer" = [])),
    responses((status = 200, description = "Devices by id", body = Vec<FleetDevice>), (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 404, description = "The node filter names no visible node", body = ErrorBody)))]
pub async fn list_fleet(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<FleetFilter>,
) -> Result<impl IntoResponse, ApiError> {
    // The service answers the list serialized (`Vec<FleetDevice>` JSON).
    let listed = service::off_runtime(&state, viewer(&caller), filter, service::list);
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    Ok((json, listed.await?))
}
/// How many devices inside the caller's domain (or under `node`) are
/// attached, online, offline, in sync, out of sync, playing and showing an
/// error, by the fleet view's own rules (U4).
#[utoipa::path(get, path = "/api/v1/fleet/summary", tag = "fleet", params(SummaryFilter), security(("bearer" = [])),
    responses((status = 200, description = "The counts", body = FleetCounts), (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 404, description = "The node filter names no visible node", body = ErrorBody)))]
pub async fn fleet_summary(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<SummaryFilter>,
) -> Answer<FleetCounts> {
    let counts = service::off_runtime(&state, viewer(&caller), filter, service::summary);
    Ok(Json(counts.await?))
}
/// Live fleet changes as server-sent events (C3, U4), for devices attached
/// inside the caller's domain only (T4): first a `summary`; then `device`
/// (the device's view, as `GET /api/v1/fleet/{device}`) whenever a device
/// reports or turns offline by its heartbeat deadline, and `summary` (as
/// `GET /api/v1/fleet/summary`) when the totals changed, at most once a
/// second while changes keep coming; `resync` (data `{}`) when the client
/// fell behind or a device left its domain: refetch. A comment every 15 s
/// keeps the connection alive. The stream ends when the session does.
#[utoipa::path(get, path = "/api/v1/fleet/stream", tag = "fleet", security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of `summary`, `device` and `resync` events",
            body = String, content_type = "text/event-stream"),
        (status = 503, description = "Too many live streams open; retry", body = ErrorBody)))]
pub async fn fleet_stream(
    State(state): Ctx,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let stream = crate::fleet::stream::subscribe(&state, caller.session_key, caller.user.id)
        .await
        .map_err(FleetError::from)?;
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        stream.next().await.map(|event| (event, stream))
    })
    .filter_map(|event| async move { sse_event(&event).map(Ok::<Event, Infallible>) });
    Ok((
        [("x-accel-buffering", "no")],
        Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    ))
}

/// The server-sent event of `event`; `None` (logged) if it cannot be
/// encoded.
fn sse_event(event: &FleetEvent) -> Option<Event> {
    let encoded = match event {
        FleetEvent::Device(view) => Event::default().event("device").json_data(view),
        FleetEvent::Summary(counts) => Event::default().event("summary").json_data(counts),
        FleetEvent::Resync => Ok(Event::default().event("resync").data("{}")),
    };
    encoded
        .map_err(|e| tracing::warn!(error = %e, "a fleet event was not encoded"))
        .ok()
}

/// One device's status and desired against accepted and activated
/// documents, with why they differ (U4).
#[utoipa::path(get, path = "/api/v1/fleet/{device}", tag = "fleet",
    params(("device" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "The device", body = FleetDevice),
        (status = 404, description = "Not attached inside the caller's domain", body = ErrorBody)))]
pub async fn get_fleet_device(
    State(state): Ctx,
    caller: Caller,
    Path(device): Id,
) -> Answer<FleetDevice> {
    Ok(Json(service::device(&state, &viewer(&caller), &device)?))
}
/// Alerts about devices inside the caller's domain, oldest first: the
/// newest `limit` that match (U4).
#[utoipa::path(get, path = "/api/v1/fleet/alerts", tag = "fleet", params(AlertFilter), security(("bearer" = [])),
    responses((status = 200, description = "Matching alerts, oldest first", body = Vec<Alert>),
        (status = 400, description = "Invalid filter", body = ErrorBody)))]
pub async fn list_alerts(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AlertFilter>,
) -> Answer<Vec<Alert>> {
    Ok(Json(service::alerts(
        &state.store,
        &viewer(&caller),
        filter,
    )?))
}

/// Uploads a batch of proof-of-play events (U1, U2), signed by the device
/// (S11): the body is a `device_events` envelope signed with the key the
/// device registered at pairing, exactly as on its MQTT events topic. Each
/// event is stored once by its id, durably before the answer (S9); a batch
/// sent again answers with its events as duplicates. A batch not signed by
/// the device's key is refused (403, counted in
/// `signet_device_reports_refused_total`) and nothing is stored; so is one
/// with any event about another device, or out of bounds (400).
#[utoipa::path(post, path = "/api/v1/device/events", tag = "device",
    request_body(content = SignedReportSchema, description = "A batch of proof-of-play events (EventBatch), signed by the device key"),
    responses((status = 200, description = "Stored", body = IngestAnswer),
        (status = 400, description = "Malformed, out of bounds or about another device", body = ErrorBody),
        (status = 401, description = "No device credentials", body = ErrorBody),
        (status = 403, description = "Not signed by the key the device registered at pairing", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub async fn upload_events(
    State(state): Ctx,
    device: DeviceAuth,
    body: Bytes,
) -> Answer<IngestAnswer> {
    let ingested = service::upload_events(&state, &device.device, &body).await?;
    Ok(Json(ingested.into()))
}
