//! The fleet-ingest port (U2, U4, S9): where checked device reports go into
//! the store, many to a commit.
//!
//! Owns: [`ReportIngest`], which [`super::Hub`] holds, and what it answers
//! for an event batch ([`Ingested`]). The fleet implements it
//! (`fleet::FleetIngest`, above the core; `serve::open` installs it), so
//! the MQTT subscriber, the HTTP upload and the tests all reach the one
//! queue of the hub through the hub. Must not: know how reports are stored.

use futures_util::future::BoxFuture;
use signet_common::ids::DeviceId;
use signet_common::sync::{DeviceState, EventBatch};

use super::Hub;
use crate::store::StoreError;

/// What became of a batch of proof-of-play events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events stored for the first time.
    pub stored: usize,
    /// Events already stored (same id): ignored (U2).
    pub duplicates: usize,
    /// Events refused: naming another device, out of bounds, starting
    /// outside the years 2000–9999, or beyond the batch limit. Logged.
    pub refused: usize,
}

/// Stores device reports, durably, before answering (S9). One per hub.
pub trait ReportIngest: Send + Sync + 'static {
    /// Stores the state `device` reported (already checked to be about it
    /// and within bounds) and tells the fleet feed.
    ///
    /// # Errors
    /// When the store fails; then nothing was stored.
    fn state<'a>(
        &'a self,
        hub: &'a Hub,
        device: &'a DeviceId,
        reported: DeviceState,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Stores each event of `batch` from `device` exactly once by id (U2).
    ///
    /// # Errors
    /// When the store fails; then nothing was stored.
    fn events<'a>(
        &'a self,
        hub: &'a Hub,
        device: &'a DeviceId,
        batch: EventBatch,
    ) -> BoxFuture<'a, Result<Ingested, StoreError>>;
}
