//! `GET /api/v1/device/documents` (S4, DESIGN §1): the calling device's
//! current signed documents over HTTP, so the broker is an accelerator and
//! never the only path. An agent fetches them when a document it needs is
//! missing or was refused (a poisoned or empty retained message), when the
//! broker is down, and now and then as an anti-entropy check.
//!
//! Who may do what: a paired device, with its own credentials
//! ([`DeviceAuth`], 401 otherwise), reads only its own documents: `trust`,
//! the latest `hub_time`, its own `device_assignment` and the manifests of
//! the groups that assignment names. Must not: sign or change anything
//! (the hub time is signed only when none was kept yet); every envelope is
//! served byte for byte as it was signed and published.

use axum::Json;
use axum::extract::State;
use signet_common::envelope::DocumentKind;
use signet_common::sync::documents::{
    DeviceDocuments, MAX_DOCUMENTS_ANSWER_BYTES, MAX_FETCHED_MANIFESTS,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, DeviceAuth};
use crate::mqtt::hub_time;
use crate::publish;

/// Room left in [`MAX_DOCUMENTS_ANSWER_BYTES`] for the JSON around the
/// envelopes (field names, escaping).
const ANSWER_OVERHEAD: usize = 64 * 1024;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(device_documents))
}

/// The calling device's current signed documents (S4): `trust`, the latest
/// `hub_time`, its `device_assignment` once one was signed, and the latest
/// manifest of every group that assignment names, each envelope a JSON
/// string byte for byte as signed. Manifests that would take the answer
/// over 16 MiB (or past 64 of them) are listed in `omitted` instead.
#[utoipa::path(get, path = "/api/v1/device/documents", tag = "device",
    responses((status = 200, description = "A DeviceDocuments object: {\"trust\", \"hub_time\", \"assignment\": envelope strings, \"manifests\": {group id: envelope}, \"omitted\": [group id]}", body = Object),
        (status = 401, description = "No device credentials", body = super::ErrorBody)))]
pub async fn device_documents(
    State(state): State<AppState>,
    device: DeviceAuth,
) -> Result<Json<DeviceDocuments>, ApiError> {
    let store = &state.store;
    let trust = String::from_utf8(state.keys.trust.clone()).map_err(|e| ApiError::internal(&e))?;
    let hub_time = hub_time::latest_or_sign(&state)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut documents = DeviceDocuments {
        trust: Some(trust),
        hub_time: Some(hub_time),
        ..DeviceDocuments::default()
    };
    let desired = crate::fleet::desired_documents(store, &device.device)?.unwrap_or_default();
    let budget = MAX_DOCUMENTS_ANSWER_BYTES - ANSWER_OVERHEAD;
    for record in desired {
        let Some(envelope) = publish::envelope_of(store, record.kind, &record.subject)? else {
            continue;
        };
        match record.kind {
            DocumentKind::DeviceAssignment => documents.assignment = Some(envelope),
            DocumentKind::GroupManifest => {
                if documents.manifests.len() < MAX_FETCHED_MANIFESTS
                    && documents.envelope_bytes() + envelope.len() <= budget
                {
                    documents.manifests.insert(record.subject, envelope);
                } else {
                    documents.omitted.push(record.subject);
                }
            }
            DocumentKind::Trust
            | DocumentKind::Command
            | DocumentKind::HubTime
            | DocumentKind::DeviceState
            | DocumentKind::DeviceEvents => {}
        }
    }
    if !documents.omitted.is_empty() {
        tracing::warn!(device = %device.device, omitted = documents.omitted.len(),
            "device documents answer left manifests out to stay within its bound");
    }
    Ok(Json(documents))
}
