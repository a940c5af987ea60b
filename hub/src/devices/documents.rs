//! What a device's documents answer holds (S4): `GET /api/v1/device/documents`
//! gathers the calling device's signed envelopes, and [`add`] decides which
//! fit.
//!
//! Owns: the bounds of that answer (16 MiB, 64 manifests). Must not: read
//! or sign anything (the route reads the envelopes byte for byte as signed).

use signet_common::envelope::DocumentKind;
use signet_common::ids::DeviceId;
use signet_common::sync::documents::{
    DeviceDocuments, MAX_DOCUMENTS_ANSWER_BYTES, MAX_FETCHED_MANIFESTS,
};

use super::DeviceError;
use crate::keys::HubKeys;

/// Room left in [`MAX_DOCUMENTS_ANSWER_BYTES`] for the JSON around the
/// envelopes (field names, escaping).
const ANSWER_OVERHEAD: usize = 64 * 1024;

/// An answer holding `trust` (the trust document as stored), the earlier
/// trust documents an agent that missed a root rotation needs
/// (`trust_chain`, S2) and `hub_time`.
///
/// # Errors
/// [`DeviceError::Internal`] when a trust document is not UTF-8.
pub fn start(keys: &HubKeys, hub_time: String) -> Result<DeviceDocuments, DeviceError> {
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|e| DeviceError::Internal(e.to_string()))
    };
    let trust_chain = keys
        .chain
        .iter()
        .map(|bytes| text(bytes))
        .collect::<Result<_, _>>()?;
    Ok(DeviceDocuments {
        trust: Some(text(&keys.trust)?),
        trust_chain,
        hub_time: Some(hub_time),
        ..DeviceDocuments::default()
    })
}

/// Logs what `device`'s answer left out, if anything.
pub fn finish(documents: &DeviceDocuments, device: &DeviceId) {
    if !documents.omitted.is_empty() {
        tracing::warn!(%device, omitted = documents.omitted.len(),
            "device documents answer left manifests out to stay within its bound");
    }
}

/// Adds `envelope` (a document of `kind` about `subject`) to `documents`:
/// the assignment always; a manifest unless it would take the answer over
/// 16 MiB or past 64 manifests, then its group is listed in `omitted`;
/// other kinds are not served here.
pub fn add(documents: &mut DeviceDocuments, kind: DocumentKind, subject: String, envelope: String) {
    let budget = MAX_DOCUMENTS_ANSWER_BYTES - ANSWER_OVERHEAD;
    match kind {
        DocumentKind::DeviceAssignment => documents.assignment = Some(envelope),
        DocumentKind::GroupManifest => {
            if documents.manifests.len() < MAX_FETCHED_MANIFESTS
                && documents.envelope_bytes() + envelope.len() <= budget
            {
                documents.manifests.insert(subject, envelope);
            } else {
                documents.omitted.push(subject);
            }
        }
        DocumentKind::Trust
        | DocumentKind::Command
        | DocumentKind::HubTime
        | DocumentKind::DeviceState
        | DocumentKind::DeviceEvents => {}
    }
}
