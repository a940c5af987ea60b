//! The fleet-ingest port (U2, U4, S9): where checked device reports go into
//! the store, many to a commit.
//!
//! Owns: [`ReportIngest`], which [`super::Hub`] holds, and what it answers
//! for an event batch ([`Ingested`]) or for a batch of reports handed over
//! at once ([`Incoming`], [`Settled`]). The fleet implements it
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

/// One report of a batch handed to [`ReportIngest::batch`], already
/// checked to come from the device it is filed under (S11).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A state the device reported.
    State(Box<DeviceState>),
    /// A batch of proof-of-play events.
    Events(EventBatch),
}

/// What became of one report of a [`ReportIngest::batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The state is stored, or was refused (naming another device, out of
    /// bounds: logged, nothing stored).
    State,
    /// What became of the batch's events.
    Events(Ingested),
}

/// Stores device reports, durably, before answering (S9). One per hub.
pub trait ReportIngest: Send + Sync + 'static {
    /// Stores the state `device` reported and tells the fleet feed; a state
    /// naming another device or out of its bounds is refused (logged,
    /// nothing stored).
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

    /// Stores `reports` (each with the device it is filed under) in one
    /// hand-off, in their order, as [`Self::state`] and [`Self::events`]
    /// store one; answers each, in the same order, once durable. A report
    /// that fails fails alone (the others are stored).
    fn batch<'a>(
        &'a self,
        hub: &'a Hub,
        reports: Vec<(DeviceId, Incoming)>,
    ) -> BoxFuture<'a, Vec<Result<Settled, StoreError>>>;
}
