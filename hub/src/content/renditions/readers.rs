//! Which devices read renditions in their manifests (M3; the optional
//! document fields of [`signet_common::documents`]).
//!
//! A device's agent declares in each state report the optional document
//! fields it reads (`document_features`); an agent built before
//! renditions declares nothing, and refuses (strictly, by design) any
//! manifest that lists one. The fleet ingest calls [`note_state_in`] with
//! every state it stores, so [`READERS`] holds exactly the devices whose
//! latest report declared [`FEATURE_RENDITIONS`]; the manifest builder
//! lists renditions in a group's manifest only when [`all_read`] says every
//! device that receives it is one of them. A device that never reported
//! (just paired) counts as one that does not read them.
//!
//! Owns: the [`READERS`] tree. Must not: decide which devices receive a
//! manifest (the publisher does), or publish.
//!
//! | tree | key | value |
//! |---|---|---|
//! | [`READERS`] | device id | when its report first declared it (hub time) |

use chrono::{DateTime, Utc};
use signet_common::documents::FEATURE_RENDITIONS;
use signet_common::ids::DeviceId;
use signet_common::sync::DeviceState;

use crate::store::{Store, StoreError, Tx};

/// Devices whose latest state declared they read renditions.
pub const READERS: &str = "rendition_readers";

/// Records, in the ingest's transaction, whether `device`'s latest state
/// (`reported`) declares it reads renditions. Writes only when that
/// changed, so a steady fleet's heartbeats add no writes.
///
/// # Errors
/// When the store fails.
pub fn note_state_in(
    tx: &mut Tx,
    device: &DeviceId,
    reported: &DeviceState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let reads = reported
        .document_features
        .iter()
        .any(|feature| feature == FEATURE_RENDITIONS);
    let recorded = tx.contains(READERS, device.as_str())?;
    match (reads, recorded) {
        (true, false) => tx.put(READERS, device.as_str(), &now),
        (false, true) => {
            tx.delete(READERS, device.as_str());
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether every device of `devices` reads renditions (true for none).
/// A device unpaired later keeps its entry: ids are never reused, and only
/// receiving devices are asked about.
///
/// # Errors
/// When the store fails.
pub fn all_read<'a>(
    store: &Store,
    devices: impl IntoIterator<Item = &'a DeviceId>,
) -> Result<bool, StoreError> {
    for device in devices {
        if store
            .get::<DateTime<Utc>>(READERS, device.as_str())?
            .is_none()
        {
            return Ok(false);
        }
    }
    Ok(true)
}
