//! The events seam (U3, X4, issue 21): what an engine may answer about the
//! proof-of-play tree [`EVENTS_TREE`] beyond get, scan and commit.
//!
//! Owns: the engine-agnostic shape of an event query ([`EventQuery`]), of a
//! per-item tally ([`ItemTally`]) and of a retention pass ([`EventPrune`]).
//! sled answers none of these (each call says `None`) and the fleet service
//! scans its trees as before; PostgreSQL answers them in SQL over the
//! partitioned `play_events` table ([`super::PgStorage`]). Must not: decide
//! who sees what — the service resolves visibility into the lists a query
//! carries (visible nodes, hidden items, allowed groups) — so both paths
//! apply the same rule and give the same answers.

use chrono::{DateTime, Utc};

/// The tree holding proof-of-play events, keyed `{start}/{id}` (its
/// records are `fleet::events::StoredEvent` as JSON). On PostgreSQL it is
/// the partitioned table `play_events`, its columns read from the record.
pub const EVENTS_TREE: &str = "play_events";

/// Which stored events a query reads: every field must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Events starting at or after this time.
    pub from: DateTime<Utc>,
    /// Events starting before this time.
    pub to: DateTime<Utc>,
    /// Events stored with one of these nodes.
    pub nodes: Vec<String>,
    /// And events stored without a node.
    pub unattached: bool,
    /// Only this device.
    pub device: Option<String>,
    /// Only this item.
    pub item: Option<String>,
    /// Only events licensed through one of these access groups.
    pub groups: Option<Vec<String>>,
    /// Never these items.
    pub hidden_items: Vec<String>,
    /// Events played by this user in a browser, or by a screen (no user).
    pub user: Option<String>,
}

/// One item's plays, skips and milliseconds played.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemTally {
    /// The item id.
    pub item: String,
    /// Events played.
    pub played: u64,
    /// Events skipped.
    pub skipped: u64,
    /// Milliseconds played (saturating).
    pub played_ms: u64,
}

/// What one retention pass removes: every event starting before `before`,
/// with its entries in the id tree (whose values are the events' keys) and
/// the hour tree (keyed by `YYYY-MM-DDTHH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPrune {
    /// The cut-off (the service passes a whole hour).
    pub before: DateTime<Utc>,
    /// The tree mapping an event id to its key.
    pub ids_tree: &'static str,
    /// The tree counting events per hour.
    pub hours_tree: &'static str,
}

/// The key prefix of events starting at `at`: `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
/// the text every event key starts with, in time order.
#[must_use]
pub fn key_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
