//! `/api/v1/fleet` (U4, C3) and `/api/v1/device/events` (U2): fleet status,
//! its live stream, alerts, and the HTTP upload of proof-of-play events.
//!
//! Who may do what: any role reads the fleet and its alerts, for devices
//! attached inside its domain only (T4: others are 404 or absent from
//! lists). Event upload is for devices (device credentials), each only
//! about itself and signed by its own device key (S11). Must not: compute
//! status itself — [`crate::fleet`] does.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::EventBatch;
use signet_common::sync::signed::{ReportError, verify_report};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiQuery, AppState, Caller, DeviceAuth};
use crate::fleet::alerts::{ALERTS, Alert, AlertKind};
use crate::fleet::events::check_event;
use crate::fleet::stream::{FleetEvent, StreamError};
use crate::fleet::{self, FleetCounts, FleetDevice};

/// The most devices one list answers.
pub const MAX_FLEET_PAGE: usize = 1000;
/// The most alerts one list answers.
pub const MAX_ALERTS_PAGE: usize = 1000;
/// The longest id looked up.
const MAX_ID_LEN: usize = 128;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_fleet))
        .routes(routes!(fleet_summary))
        .routes(routes!(fleet_stream))
        .routes(routes!(list_alerts))
        .routes(routes!(get_fleet_device))
        .routes(routes!(upload_events))
}

/// Which attached devices a fleet read covers: those inside the caller's
/// domain, and under the `node` filter when there is one.
struct Scope<'a> {
    /// Who reads.
    caller: &'a Caller,
    /// The node filter, checked visible.
    under: Option<NodeId>,
}

impl<'a> Scope<'a> {
    /// The scope of `caller` under `node`; 404 when the caller does not
    /// see that node.
    fn of(caller: &'a Caller, node: Option<&str>) -> Result<Self, ApiError> {
        let under = node.map(NodeId::from);
        if under.as_ref().is_some_and(|node| !caller.sees(node)) {
            return Err(ApiError::not_found("node"));
        }
        Ok(Self { caller, under })
    }

    /// Whether a device attached at `node` is covered.
    fn holds(&self, node: &NodeId) -> bool {
        self.caller.sees(node)
            && self
                .under
                .as_ref()
                .is_none_or(|top| self.caller.tree.is_within(node, top))
    }
}

/// Fleet list filter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FleetFilter {
    /// Only devices at this node or below.
    pub node: Option<String>,
    /// Only online (true) or not online (false) devices.
    pub online: Option<bool>,
    /// Only devices in sync (true) or not (false).
    pub in_sync: Option<bool>,
    /// Only devices whose id sorts after this (paging).
    pub after: Option<String>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<usize>,
}

/// Devices inside the caller's domain, by id, with their status (online
/// from the last heartbeat) and desired against accepted and activated
/// documents (U4).
#[utoipa::path(get, path = "/api/v1/fleet", tag = "fleet", params(FleetFilter), security(("bearer" = [])),
    responses((status = 200, description = "Devices by id", body = Vec<FleetDevice>),
        (status = 400, description = "Invalid filter", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "The node filter names no visible node", body = super::ErrorBody)))]
pub async fn list_fleet(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<FleetFilter>,
) -> Result<Json<Vec<FleetDevice>>, ApiError> {
    let scope = Scope::of(&caller, filter.node.as_deref())?;
    let limit = filter
        .limit
        .unwrap_or(MAX_FLEET_PAGE)
        .clamp(1, MAX_FLEET_PAGE);
    let liveness = fleet::Liveness::of(&state);
    let mut out = Vec::new();
    for (device, node) in fleet::attached_devices(&state.store)? {
        if out.len() >= limit {
            break;
        }
        if filter
            .after
            .as_deref()
            .is_some_and(|after| device.as_str() <= after)
            || !scope.holds(&node)
        {
            continue;
        }
        let view = fleet::device_view(&state.store, &device, &node, liveness)?;
        if filter.online.is_some_and(|o| o != view.online)
            || filter.in_sync.is_some_and(|s| s != view.in_sync)
        {
            continue;
        }
        out.push(view);
    }
    Ok(Json(out))
}

/// Summary filter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryFilter {
    /// Only devices at this node or below.
    pub node: Option<String>,
}

/// How many devices inside the caller's domain (or under `node`) are
/// attached, online, offline, in sync, out of sync, playing and showing an
/// error, by the fleet view's own rules (U4).
#[utoipa::path(get, path = "/api/v1/fleet/summary", tag = "fleet", params(SummaryFilter), security(("bearer" = [])),
    responses((status = 200, description = "The counts", body = FleetCounts),
        (status = 400, description = "Invalid filter", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "The node filter names no visible node", body = super::ErrorBody)))]
pub async fn fleet_summary(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<SummaryFilter>,
) -> Result<Json<FleetCounts>, ApiError> {
    let scope = Scope::of(&caller, filter.node.as_deref())?;
    let liveness = fleet::Liveness::of(&state);
    let mut counts = FleetCounts::default();
    for (device, node) in fleet::attached_devices(&state.store)? {
        if !scope.holds(&node) {
            continue;
        }
        counts.add(&fleet::device_view(&state.store, &device, &node, liveness)?);
    }
    Ok(Json(counts))
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
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 503, description = "Too many live streams open; retry", body = super::ErrorBody)))]
pub async fn fleet_stream(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let stream = fleet::stream::subscribe(&state, caller.session_key, caller.user.id)
        .await
        .map_err(|e| match e {
            StreamError::Busy => ApiError::busy("too_many_streams", e.to_string(), 5),
            StreamError::SessionEnded => ApiError::unauthorized("the session ended"),
            StreamError::Store(e) => ApiError::from(e),
        })?;
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
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Not attached inside the caller's domain", body = super::ErrorBody)))]
pub async fn get_fleet_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(device): Path<String>,
) -> Result<Json<FleetDevice>, ApiError> {
    if device.is_empty() || device.len() > MAX_ID_LEN {
        return Err(ApiError::not_found("device"));
    }
    let device = DeviceId::from(device.as_str());
    let node = fleet::node_of(&state.store, &device)?
        .filter(|node| caller.sees(node))
        .ok_or_else(|| ApiError::not_found("device"))?;
    Ok(Json(fleet::device_view(
        &state.store,
        &device,
        &node,
        fleet::Liveness::of(&state),
    )?))
}

/// Alert list filter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertFilter {
    /// Only open (true) or cleared (false) alerts.
    pub open: Option<bool>,
    /// Only alerts about this device.
    pub device: Option<String>,
    /// Only `offline` or `out_of_sync` alerts.
    #[param(value_type = Option<String>)]
    pub kind: Option<AlertKind>,
    /// At most this many of the newest matches (default and maximum 1000).
    pub limit: Option<usize>,
}

/// Alerts about devices inside the caller's domain, oldest first: the
/// newest `limit` that match (U4).
#[utoipa::path(get, path = "/api/v1/fleet/alerts", tag = "fleet", params(AlertFilter), security(("bearer" = [])),
    responses((status = 200, description = "Matching alerts, oldest first", body = Vec<Alert>),
        (status = 400, description = "Invalid filter", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AlertFilter>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let limit = filter
        .limit
        .unwrap_or(MAX_ALERTS_PAGE)
        .clamp(1, MAX_ALERTS_PAGE);
    let mut matching: Vec<Alert> = state
        .store
        .scan::<Alert>(ALERTS, "")?
        .into_iter()
        .filter(|a| {
            caller.sees(&a.node)
                && filter.open.is_none_or(|open| a.is_open() == open)
                && filter.kind.is_none_or(|kind| a.kind == kind)
                && filter
                    .device
                    .as_deref()
                    .is_none_or(|d| a.device.as_str() == d)
        })
        .collect();
    let skip = matching.len().saturating_sub(limit);
    matching.drain(..skip);
    Ok(Json(matching))
}

/// What an event upload did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    /// Events stored for the first time.
    pub stored: usize,
    /// Events the hub already held (same id), ignored (U2).
    pub duplicates: usize,
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
    request_body(content = super::schemas::SignedReportSchema, description = "A batch of proof-of-play events (EventBatch), signed by the device key"),
    responses((status = 200, description = "Stored", body = IngestAnswer),
        (status = 400, description = "Malformed, out of bounds or about another device", body = super::ErrorBody),
        (status = 401, description = "No device credentials", body = super::ErrorBody),
        (status = 403, description = "Not signed by the key the device registered at pairing", body = super::ErrorBody),
        (status = 413, description = "Body too large", body = super::ErrorBody)))]
pub async fn upload_events(
    State(state): State<AppState>,
    device: DeviceAuth,
    body: Bytes,
) -> Result<Json<IngestAnswer>, ApiError> {
    let refused = |reason: &'static str, detail: &dyn std::fmt::Display| {
        state
            .metrics
            .count_refused_report(reason, "http", device.device.as_str(), detail);
    };
    let Some(key) = crate::devices::registered_key(&state.store, &device.device)? else {
        let detail = "no usable key is registered for this device";
        refused("unknown_device", &detail);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "report_not_signed_by_device",
            detail,
        ));
    };
    let batch: EventBatch = verify_report(&body, &device.device, &key).map_err(|e| {
        refused(e.reason(), &e);
        report_refusal(&e)
    })?;
    for event in &batch.events {
        check_event(&device.device, event)
            .map_err(|reason| ApiError::bad_request("invalid_events", reason))?;
    }
    let ingested = fleet::ingest_events(&state, &device.device, batch).await?;
    Ok(Json(IngestAnswer {
        stored: ingested.stored,
        duplicates: ingested.duplicates,
    }))
}

/// The answer to a refused signed report (S11): 403 when it is not signed
/// by the device's key (an agent keeps such events queued and retries), 413
/// when it is too large, 400 otherwise.
fn report_refusal(error: &ReportError) -> ApiError {
    match error {
        ReportError::Unsigned | ReportError::WrongKey { .. } | ReportError::BadSignature => {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "report_not_signed_by_device",
                error.to_string(),
            )
        }
        ReportError::Oversized { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "report_too_large",
            error.to_string(),
        ),
        _ => ApiError::bad_request("invalid_events", error.to_string()),
    }
}
