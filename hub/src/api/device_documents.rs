//! `GET /api/v1/device/documents` (S4, DESIGN §1): a paired device's own
//! signed documents over HTTP ([`DeviceAuth`]), so the broker is never the only path.

use signet_common::sync::documents::DeviceDocuments;

use super::DeviceAuth;
use super::prelude::*;
use crate::devices::documents;
use crate::mqtt::hub_time;
use crate::publish;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(device_documents))
}

/// The calling device's `trust`, latest `hub_time`, `device_assignment` and
/// the manifests it names, byte for byte as signed; manifests past the
/// answer's bounds (16 MiB, 64 manifests) are listed in `omitted`.
#[utoipa::path(get, path = "/api/v1/device/documents", tag = "device",
    description = "`device_assignment` once one was signed, and the latest manifest of every group it names, each envelope a JSON string byte for byte as signed (S4). Manifests that would take the answer over 16 MiB (or past 64) are listed in `omitted` instead.",
    responses((status = 200, description = "A DeviceDocuments object: {\"trust\", \"hub_time\", \"assignment\": envelope strings, \"manifests\": {group id: envelope}, \"omitted\": [group id]}", body = Object),
        (status = 401, description = "No device credentials", body = ErrorBody)))]
pub async fn device_documents(State(state): Ctx, device: DeviceAuth) -> Answer<DeviceDocuments> {
    let hub_time = hub_time::latest_or_sign(&state)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut documents = documents::start(&state.keys.current(), hub_time)?;
    let desired = crate::fleet::desired_documents(&state.store, &device.device)?;
    for record in desired.unwrap_or_default() {
        if let Some(envelope) = publish::envelope_of(&state.store, record.kind, &record.subject)? {
            documents::add(&mut documents, record.kind, record.subject, envelope);
        }
    }
    documents::finish(&documents, &device.device);
    Ok(Json(documents))
}
