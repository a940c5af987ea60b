//! Fleet status and proof of play (U1–U4): what devices report.
//!
//! Interface for the MQTT subscriber and the event upload route:
//! [`record_state`] and [`ingest_events`].

use signet_common::ids::DeviceId;
use signet_common::sync::{DeviceState, EventBatch};

use crate::api::AppState;
use crate::store::StoreError;

/// What [`ingest_events`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored for the first time.
    pub stored: usize,
    /// Events already stored (same id): ignored (U2).
    pub duplicates: usize,
}

/// Records the state `device` reported on its state topic (U4), durably.
///
/// # Errors
/// When the store fails.
pub async fn record_state(
    state: &AppState,
    device: &DeviceId,
    reported: DeviceState,
) -> Result<(), StoreError> {
    let _ = (state, device, reported);
    Ok(())
}

/// Stores each event of `batch` from `device` exactly once by id (U2),
/// durably, before returning.
///
/// # Errors
/// When the store fails.
pub async fn ingest_events(
    state: &AppState,
    device: &DeviceId,
    batch: EventBatch,
) -> Result<Ingested, StoreError> {
    let _ = (state, device, batch);
    Ok(Ingested::default())
}
