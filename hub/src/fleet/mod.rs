//! Fleet status and proof of play (U1–U4): what devices report, and what
//! the hub makes of it.
//!
//! Owns: the latest state of every device ([`DEVICE_STATES`]), the
//! proof-of-play events ([`events`]), the fleet view with desired against
//! accepted and activated documents ([`device_view`]) and its totals
//! ([`counts`]), alerts ([`alerts`]) and the live feed of changes for the
//! console ([`stream`]). May call: the store,
//! [`crate::publish`] to read the latest signed documents,
//! [`crate::tenancy`] for where devices are attached, the device records
//! ([`crate::devices`]) to read a device's node. Must not: change any
//! record it does not own, or trust a report about another device.
//!
//! Interface for the MQTT subscriber and the event upload route:
//! [`record_state`] and [`ingest_events`].
//!
//! # Online
//! Online is decided when the view is read, never stored as a fact that
//! outlives its evidence (U4): a device is online when its latest message
//! said online (the MQTT last will says offline) *and* the hub received a
//! state from it within `heartbeat_timeout_secs` ([`Liveness`]). A frozen
//! agent or a silently dropped network sends no last will; its heartbeats
//! stop, so it turns offline at `last_heartbeat + heartbeat_timeout`, which
//! is then its `since`. The last heartbeat is the hub's receive time, stored
//! durably with the status, so the rule holds across hub restarts.
//!
//! # Desired documents
//! What a device should have in use is read from its latest signed
//! `device_assignment` as stored by publishing: the assignment itself, and
//! the latest signed `group_manifest` of every group its payload names
//! (node chain, then access groups). This is exactly what the device was
//! told to follow — computing the list from the tree and memberships
//! instead would count groups that were never published to it. A group
//! named there without any signed manifest yet has nothing to apply and is
//! left out. A device with no signed assignment yet, or that never
//! reported, is not in sync.
//!
//! # Accepted, activated, in sync
//! Per desired document the view shows the version the device *accepted*
//! (verified, past the rollback guard, durable) and the version it
//! *activated* (in use): a group manifest is activated only once every item
//! it needs is present and verified (D3), until then the previous one
//! plays; other kinds are in use as soon as accepted. A document is in sync
//! when the desired version is activated; a device is in sync when every
//! desired document is (U4). When they differ, [`DocumentStatus`] and a
//! human reason say why: not received, downloading (with progress),
//! refused (by verification, or by the cache limit), or waiting.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`DEVICE_STATES`] | device id | [`DeviceStatus`] |
//! | see [`events`] | | proof of play |
//! | see [`alerts`] | | alerts |

pub mod alerts;
pub mod events;
pub mod fixture;
pub mod stream;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::documents::DeviceAssignment;
use signet_common::envelope::DocumentKind;
use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::{
    AppliedDocument, Checked as _, DeviceState, EventBatch, NowPlaying, PendingActivation,
};

use crate::app::Hub;
use crate::publish::{self, SignedDocument};
use crate::store::{Store, StoreError, WriteBatch};
use crate::tenancy::NODE_DEVICES;

pub use events::Ingested;

/// The latest reported state per device id.
pub const DEVICE_STATES: &str = "device_states";

/// What the hub knows about a device's connection and its latest report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The latest report's details (applied documents, cache, disk, …): the
    /// newest report by its own `at`, so an offline message written at
    /// connect time (the MQTT last will) does not replace fresher details.
    pub state: DeviceState,
    /// Whether the last message said online (the last will says offline);
    /// whether the device *is* online is [`DeviceStatus::connection_at`].
    pub online: bool,
    /// When the hub received the latest online report (hub time).
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When the hub saw the device go online or offline last (hub time),
    /// as of the last message; see [`DeviceStatus::connection_at`].
    pub since: DateTime<Utc>,
    /// When the hub received the latest message of any kind.
    pub received_at: DateTime<Utc>,
}

/// When the fleet view is read and how long a heartbeat counts (U4):
/// online is derived from these at read time, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// The hub's time of the read.
    pub now: DateTime<Utc>,
    /// How long after its last heartbeat a device that said online still
    /// is (`heartbeat_timeout_secs`).
    pub heartbeat_timeout: TimeDelta,
}

impl Liveness {
    /// Now on the hub's clock, with the configured heartbeat timeout.
    #[must_use]
    pub fn of(state: &Hub) -> Self {
        Self {
            now: state.clock.now(),
            heartbeat_timeout: state.config.heartbeat_timeout(),
        }
    }
}

impl DeviceStatus {
    /// Whether the device is online at `liveness.now`, and since when it has
    /// been online or offline: online when its last message said so and its
    /// last heartbeat is at most `heartbeat_timeout` old; a device whose
    /// heartbeats stopped is offline since `last_heartbeat +
    /// heartbeat_timeout`.
    #[must_use]
    pub fn connection_at(&self, liveness: Liveness) -> (bool, DateTime<Utc>) {
        if !self.online {
            return (false, self.since);
        }
        match self.last_heartbeat {
            Some(beat) if liveness.now - beat <= liveness.heartbeat_timeout => (true, self.since),
            Some(beat) => (
                false,
                beat.checked_add_signed(liveness.heartbeat_timeout)
                    .unwrap_or(beat)
                    .max(self.since),
            ),
            None => (false, self.since),
        }
    }
}

/// The status after `reported` arrives at `liveness.now` on top of
/// `previous`. `since` changes only when the connection does, as
/// [`DeviceStatus::connection_at`] judged the previous status at that
/// moment: a device back after its heartbeats had timed out is online
/// since now, and a last will arriving after the timeout keeps the
/// timeout's `since`.
fn next_status(
    previous: Option<DeviceStatus>,
    reported: DeviceState,
    liveness: Liveness,
) -> DeviceStatus {
    let now = liveness.now;
    let online = reported.online;
    match previous {
        None => DeviceStatus {
            last_heartbeat: online.then_some(now),
            state: reported,
            online,
            since: now,
            received_at: now,
        },
        Some(previous) => {
            let (was_online, was_since) = previous.connection_at(liveness);
            let since = if was_online == online { was_since } else { now };
            let state = if online || reported.at >= previous.state.at {
                reported
            } else {
                DeviceState {
                    online: false,
                    ..previous.state
                }
            };
            DeviceStatus {
                state,
                online,
                last_heartbeat: if online {
                    Some(now)
                } else {
                    previous.last_heartbeat
                },
                since,
                received_at: now,
            }
        }
    }
}

/// Records the state `device` reported on its state topic (U4), durably
/// before returning: the report, the hub's receive time as the last
/// heartbeat, online or offline (the last will says `online: false`) and
/// when that last changed (judged by [`DeviceStatus::connection_at`]). A report naming another device, or out of its
/// bounds, is refused: logged, nothing stored.
///
/// # Errors
/// When the store fails.
pub async fn record_state(
    state: &Hub,
    device: &DeviceId,
    reported: DeviceState,
) -> Result<(), StoreError> {
    if &reported.device_id != device {
        tracing::warn!(%device, named = %reported.device_id,
            "refused a device state naming another device");
        return Ok(());
    }
    if let Err(e) = reported.check() {
        tracing::warn!(%device, error = %e, "refused a device state out of bounds");
        return Ok(());
    }
    let _write = state.store.write_lock().await;
    let previous: Option<DeviceStatus> = state.store.get(DEVICE_STATES, device.as_str())?;
    let status = next_status(previous, reported, Liveness::of(state));
    let mut batch = WriteBatch::new();
    batch.put(DEVICE_STATES, device.as_str(), &status)?;
    state.store.apply(batch).await?;
    state.fleet_feed.heartbeat(state, device, &status);
    state.fleet_feed.device_changed(state, device);
    Ok(())
}

/// Stores each event of `batch` from `device` exactly once by id (U2),
/// durably, in one batch, before returning. Events naming another device,
/// out of bounds, or beyond [`signet_common::sync::MAX_EVENTS_PER_BATCH`]
/// are refused (counted in [`Ingested::refused`]); see [`events::ingest`].
///
/// # Errors
/// When the store fails; then nothing was stored.
pub async fn ingest_events(
    state: &Hub,
    device: &DeviceId,
    batch: EventBatch,
) -> Result<Ingested, StoreError> {
    events::ingest(state, device, batch).await
}

/// The stored status of `device`, if it ever reported.
///
/// # Errors
/// When the store fails.
pub fn status_of(store: &Store, device: &DeviceId) -> Result<Option<DeviceStatus>, StoreError> {
    store.get(DEVICE_STATES, device.as_str())
}

/// Every attached device with its node (`NODE_DEVICES` keys
/// `{node}/{device}`), by device id.
///
/// # Errors
/// When the store fails.
pub fn attached_devices(store: &Store) -> Result<Vec<(DeviceId, NodeId)>, StoreError> {
    let mut devices: Vec<(DeviceId, NodeId)> = store
        .scan_keys(NODE_DEVICES, "")?
        .into_iter()
        .filter_map(|key| {
            key.split_once('/')
                .map(|(node, device)| (DeviceId::from(device), NodeId::from(node)))
        })
        .collect();
    devices.sort();
    Ok(devices)
}

/// The node `device` is attached at, if it is.
///
/// # Errors
/// When the store fails.
pub fn node_of(store: &Store, device: &DeviceId) -> Result<Option<NodeId>, StoreError> {
    let suffix = format!("/{device}");
    Ok(store
        .scan_keys(NODE_DEVICES, "")?
        .into_iter()
        .find_map(|key| {
            key.strip_suffix(&suffix)
                .filter(|node| !node.is_empty() && !node.contains('/'))
                .map(NodeId::from)
        }))
}

/// How the device is connected, as far as the hub knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Its latest message said online and its last heartbeat is recent.
    Online,
    /// Its latest message said offline (MQTT last will or clean shutdown),
    /// or its heartbeats stopped for longer than `heartbeat_timeout_secs`.
    Offline,
    /// It never reported.
    NeverReported,
}

/// Where one desired document stands on the device (U4, D3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// The desired version is in use (activated).
    InSync,
    /// Nothing, or only an older version, accepted; no refusal known.
    NotReceived,
    /// The desired version is accepted and its content on its way; the
    /// previously activated version keeps playing.
    Downloading,
    /// Refused: by verification (signature, rollback guard, floor, …) or
    /// by the cache (more than its limit).
    Refused,
    /// Accepted at the desired version, but neither activated nor reported
    /// as pending (e.g. an agent too old to report activation).
    Waiting,
}

impl DocumentStatus {
    /// The status in words, for status lines.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::InSync => "in sync",
            Self::NotReceived => "not received",
            Self::Downloading => "downloading",
            Self::Refused => "refused",
            Self::Waiting => "waiting",
        }
    }
}

/// How far the content of an accepted, not yet activated manifest is (D3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActivationProgress {
    /// Items it needs.
    pub items_needed: u64,
    /// Of those, items present and verified.
    pub items_cached: u64,
    /// Bytes its needed items take.
    pub bytes_needed: u64,
    /// Of those, bytes present.
    pub bytes_cached: u64,
}

impl From<&PendingActivation> for ActivationProgress {
    fn from(pending: &PendingActivation) -> Self {
        Self {
            items_needed: pending.items_needed,
            items_cached: pending.items_cached,
            bytes_needed: pending.bytes_needed,
            bytes_cached: pending.bytes_cached,
        }
    }
}

/// One desired document against what the device accepted and activated
/// (U4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentSync {
    /// `device_assignment` or `group_manifest`.
    #[schema(value_type = String)]
    pub kind: DocumentKind,
    /// The device id or group id.
    pub subject: String,
    /// The latest signed version.
    pub desired_version: u64,
    /// SHA-256 of the latest signed envelope.
    #[schema(value_type = String)]
    pub desired_sha256: Sha256,
    /// When the latest version was signed.
    pub issued_at: DateTime<Utc>,
    /// The version the device accepted (verified and durable), if any.
    pub accepted_version: Option<u64>,
    /// The hash the device reported with it.
    #[schema(value_type = Option<String>)]
    pub accepted_sha256: Option<Sha256>,
    /// The version in use: for a group manifest the one activated (every
    /// item present and verified), for other kinds the one accepted.
    pub activated_version: Option<u64>,
    /// Where it stands.
    pub status: DocumentStatus,
    /// Why it is not in sync, for a human; `None` when in sync.
    pub reason: Option<String>,
    /// Content progress of the accepted version while it is not activated.
    pub progress: Option<ActivationProgress>,
    /// The desired version is activated.
    pub in_sync: bool,
}

/// Megabytes with one decimal, for reasons.
fn mib(bytes: u64) -> String {
    // Display only: the precision lost above 2^52 bytes does not matter.
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!("{mib:.1} MiB")
}

/// Where `desired` stands on a device whose latest report is `report`
/// (see the module doc).
#[must_use]
pub fn document_sync(desired: &SignedDocument, report: Option<&DeviceState>) -> DocumentSync {
    let key = publish::document_key(desired.kind, &desired.subject);
    let version = desired.version;
    let accepted: Option<&AppliedDocument> = report.and_then(|r| r.applied.get(&key));
    let activated = if desired.kind == DocumentKind::GroupManifest {
        report
            .and_then(|r| r.activated.get(&key))
            .map(|a| a.version)
    } else {
        accepted.map(|a| a.version)
    };
    let pending = report.and_then(|r| r.pending.get(&key));
    let refused = report
        .and_then(|r| r.refused.get(&key))
        .filter(|r| r.version.is_none_or(|v| v >= version));
    let in_sync = activated == Some(version);
    let mut progress = None;
    let (status, reason) = if in_sync {
        (DocumentStatus::InSync, None)
    } else if accepted.is_some_and(|a| a.version == version) {
        match pending {
            Some(pending) => {
                progress = Some(ActivationProgress::from(pending));
                match &pending.refusal {
                    Some(refusal) => (DocumentStatus::Refused, Some(refusal.clone())),
                    None => (
                        DocumentStatus::Downloading,
                        Some(format!(
                            "downloading version {}: {} of {} items, {} of {}",
                            pending.version,
                            pending.items_cached,
                            pending.items_needed,
                            mib(pending.bytes_cached),
                            mib(pending.bytes_needed)
                        )),
                    ),
                }
            }
            None => (
                DocumentStatus::Waiting,
                Some(format!(
                    "version {version} accepted but not in use, and the device reports no progress towards it"
                )),
            ),
        }
    } else if let Some(refused) = refused {
        let reason = match refused.version {
            Some(v) => format!("version {v} refused: {}", refused.reason),
            None => format!("refused: {}", refused.reason),
        };
        (DocumentStatus::Refused, Some(reason))
    } else {
        let reason = match accepted {
            Some(a) => format!(
                "has version {}; version {version} not received yet",
                a.version
            ),
            None => format!("version {version} not received yet"),
        };
        (DocumentStatus::NotReceived, Some(reason))
    };
    DocumentSync {
        kind: desired.kind,
        subject: desired.subject.clone(),
        desired_version: version,
        desired_sha256: desired.sha256,
        issued_at: desired.issued_at,
        accepted_version: accepted.map(|a| a.version),
        accepted_sha256: accepted.map(|a| a.sha256),
        activated_version: activated,
        status,
        reason,
        progress,
        in_sync,
    }
}

/// A device as the fleet view shows it (U4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetDevice {
    /// The device.
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    /// The leaf node it is attached at.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Online, offline or never reported.
    pub connection: Connection,
    /// Online now: its latest message said online and its last heartbeat
    /// is at most `heartbeat_timeout_secs` old.
    pub online: bool,
    /// Since when it is online or offline (hub time); for a device whose
    /// heartbeats stopped, its last heartbeat plus the timeout.
    pub since: Option<DateTime<Utc>>,
    /// When the hub received its latest online report.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When the device wrote its latest report (its trusted time).
    pub reported_at: Option<DateTime<Utc>>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// What plays now (only while online).
    #[schema(value_type = Option<Object>)]
    pub now_playing: Option<NowPlaying>,
    /// Bytes in the content cache.
    pub cache_bytes: Option<u64>,
    /// Download progress towards the newest manifests, and the cache's
    /// refusal when they need more than its limit (D2, D3, D10).
    #[schema(value_type = Option<Object>)]
    pub cache: Option<signet_common::sync::CacheProgress>,
    /// Free bytes on the cache's file system.
    pub disk_free_bytes: Option<u64>,
    /// Processor temperature in °C.
    pub temperature_c: Option<f32>,
    /// Trusted time minus wall clock, in milliseconds (S6).
    pub clock_offset_ms: Option<i64>,
    /// The last error the agent reported; when it reported none, the reason
    /// of the first refused desired document.
    pub last_error: Option<String>,
    /// Every desired document against what the device accepted and
    /// activated.
    pub documents: Vec<DocumentSync>,
    /// Every desired document activated at exactly the desired version (U4).
    pub in_sync: bool,
    /// Why it cannot be in sync when that is not about one document (no
    /// assignment signed yet, never reported).
    pub sync_note: Option<String>,
    /// Since when an online device has been out of sync: the later of when
    /// the oldest desired version not in use was signed and when it came
    /// online. What out-of-sync alerts measure from.
    pub out_of_sync_since: Option<DateTime<Utc>>,
}

/// The documents `device` should have applied: its latest signed
/// assignment and the latest signed manifest of every group that
/// assignment names (see the module doc). `None` when no assignment was
/// signed for it.
///
/// # Errors
/// When the store fails, or the stored assignment does not decode.
pub fn desired_documents(
    store: &Store,
    device: &DeviceId,
) -> Result<Option<Vec<SignedDocument>>, StoreError> {
    let kind = DocumentKind::DeviceAssignment;
    let Some(record) = publish::latest(store, kind, device.as_str())? else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: publish::SIGNED_ENVELOPES,
        key: publish::document_key(kind, device.as_str()),
        reason,
    };
    let envelope = publish::envelope_of(store, kind, device.as_str())?
        .ok_or_else(|| corrupt("the envelope of a signed document is missing".into()))?;
    let opened =
        signet_common::envelope::open(envelope.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    let assignment: DeviceAssignment =
        serde_json::from_slice(opened.payload()).map_err(|e| corrupt(e.to_string()))?;
    let mut desired = vec![record];
    for group in assignment.group_ids() {
        if let Some(manifest) = publish::latest(store, DocumentKind::GroupManifest, group)? {
            desired.push(manifest);
        }
    }
    Ok(Some(desired))
}

/// The fleet view of `device`, attached at `node`, as of `liveness` (U4).
///
/// # Errors
/// When the store fails.
pub fn device_view(
    store: &Store,
    device: &DeviceId,
    node: &NodeId,
    liveness: Liveness,
) -> Result<FleetDevice, StoreError> {
    let status = status_of(store, device)?;
    let desired = desired_documents(store, device)?;
    let report = status.as_ref().map(|s| &s.state);
    let documents: Vec<DocumentSync> = desired
        .iter()
        .flatten()
        .map(|d| document_sync(d, report))
        .collect();
    let sync_note = match (&status, &desired) {
        (None, _) => Some("the device never reported its state".to_owned()),
        (_, None) => Some("no assignment has been signed for the device yet".to_owned()),
        _ => None,
    };
    let in_sync = sync_note.is_none() && documents.iter().all(|d| d.in_sync);
    let connected = status.as_ref().map(|s| s.connection_at(liveness));
    let online = connected.is_some_and(|(online, _)| online);
    let out_of_sync_since = match connected {
        Some((true, since)) if !in_sync && desired.is_some() => documents
            .iter()
            .filter(|d| !d.in_sync)
            .map(|d| d.issued_at)
            .min()
            .map(|oldest| oldest.max(since)),
        _ => None,
    };
    let connection = match connected {
        None => Connection::NeverReported,
        Some((true, _)) => Connection::Online,
        Some((false, _)) => Connection::Offline,
    };
    let last_error = report
        .and_then(|r| r.last_error.clone())
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            documents
                .iter()
                .find(|d| d.status == DocumentStatus::Refused)
                .and_then(|d| d.reason.clone())
        });
    Ok(FleetDevice {
        device_id: device.clone(),
        node: node.clone(),
        connection,
        online,
        since: connected.map(|(_, since)| since),
        last_heartbeat: status.as_ref().and_then(|s| s.last_heartbeat),
        reported_at: report.map(|r| r.at),
        agent_version: report.map(|r| r.agent_version.clone()),
        os: report.map(|r| r.os.clone()),
        now_playing: report
            .filter(|_| online)
            .and_then(|r| r.now_playing.clone()),
        cache_bytes: report.map(|r| r.cache_bytes),
        cache: report.and_then(|r| r.cache.clone()),
        disk_free_bytes: report.and_then(|r| r.disk_free_bytes),
        temperature_c: report.and_then(|r| r.temperature_c),
        clock_offset_ms: report.map(|r| r.clock_offset_ms),
        last_error,
        documents,
        in_sync,
        sync_note,
        out_of_sync_since,
    })
}

/// The fleet's totals (U4): the gauges of `/metrics` and the console's
/// summary (`GET /api/v1/fleet/summary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetCounts {
    /// Devices attached to a leaf node.
    pub attached: u64,
    /// Of those, online as [`DeviceStatus::connection_at`] decides.
    pub online: u64,
    /// Of those, not online (offline, or never reported).
    pub offline: u64,
    /// Of those, in sync as [`device_view`] decides, online or not.
    pub in_sync: u64,
    /// Of those, not in sync.
    pub out_of_sync: u64,
    /// Of those, online and reporting something playing.
    pub playing: u64,
    /// Of those, showing a last error (the agent's, or a refusal).
    pub with_errors: u64,
}

impl FleetCounts {
    /// The counts of one device's view.
    #[must_use]
    pub fn of(view: &FleetDevice) -> Self {
        let mut one = Self::default();
        one.add(view);
        one
    }

    /// Adds other counts.
    pub fn merge(&mut self, other: &Self) {
        self.attached += other.attached;
        self.online += other.online;
        self.offline += other.offline;
        self.in_sync += other.in_sync;
        self.out_of_sync += other.out_of_sync;
        self.playing += other.playing;
        self.with_errors += other.with_errors;
    }

    /// Takes away counts [`FleetCounts::merge`] added.
    pub fn remove(&mut self, other: &Self) {
        self.attached = self.attached.saturating_sub(other.attached);
        self.online = self.online.saturating_sub(other.online);
        self.offline = self.offline.saturating_sub(other.offline);
        self.in_sync = self.in_sync.saturating_sub(other.in_sync);
        self.out_of_sync = self.out_of_sync.saturating_sub(other.out_of_sync);
        self.playing = self.playing.saturating_sub(other.playing);
        self.with_errors = self.with_errors.saturating_sub(other.with_errors);
    }

    /// Adds one device's view.
    pub fn add(&mut self, view: &FleetDevice) {
        self.attached += 1;
        self.online += u64::from(view.online);
        self.offline += u64::from(!view.online);
        self.in_sync += u64::from(view.in_sync);
        self.out_of_sync += u64::from(!view.in_sync);
        self.playing += u64::from(view.online && view.now_playing.is_some());
        self.with_errors += u64::from(view.last_error.is_some());
    }
}

/// Counts the attached devices, online, in sync, playing and with errors,
/// each through [`device_view`] (the fleet view's own rule) as of
/// `liveness`.
///
/// # Errors
/// When the store fails.
pub fn counts(store: &Store, liveness: Liveness) -> Result<FleetCounts, StoreError> {
    let mut counts = FleetCounts::default();
    for (device, node) in attached_devices(store)? {
        counts.add(&device_view(store, &device, &node, liveness)?);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn report(online: bool, at: &str) -> DeviceState {
        DeviceState {
            device_id: DeviceId::from("d-1"),
            online,
            at: at.parse().unwrap(),
            agent_version: "0.1.0".into(),
            os: "Debian 12".into(),
            applied: BTreeMap::new(),
            activated: Default::default(),
            pending: Default::default(),
            refused: Default::default(),
            now_playing: None,
            cache_bytes: if online { 10 } else { 1 },
            cache: None,
            disk_free_bytes: None,
            temperature_c: None,
            clock_offset_ms: 0,
            last_error: None,
        }
    }

    /// The hub's rules as of `now`, with a 180 s heartbeat timeout.
    fn at(now: DateTime<Utc>) -> Liveness {
        Liveness {
            now,
            heartbeat_timeout: TimeDelta::seconds(180),
        }
    }

    /// U4: a last will written at connect time marks the device offline
    /// without replacing the fresher details of its latest report.
    #[test]
    fn u4_last_will_marks_offline_and_keeps_fresher_details() {
        let t0: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let t1 = t0 + chrono::TimeDelta::minutes(2);
        let first = next_status(None, report(true, "2026-01-01T10:00:00Z"), at(t0));
        assert!(first.online);
        assert_eq!(first.last_heartbeat, Some(t0));
        let will = report(false, "2026-01-01T09:00:00Z");
        let after = next_status(Some(first), will, at(t1));
        assert!(!after.online);
        assert_eq!(after.since, t1);
        assert_eq!(after.last_heartbeat, Some(t0));
        assert_eq!(after.state.cache_bytes, 10, "fresher details kept");
        assert!(!after.state.online);
        let back = next_status(Some(after), report(true, "2026-01-01T10:06:00Z"), at(t1));
        assert!(back.online);
        assert_eq!(back.since, t1);
    }

    /// U4 (issue 14, defect 7): online is derived at read time from the
    /// last heartbeat. A device that said online and then went silent (a
    /// frozen agent: no last will) is online up to exactly the timeout,
    /// then offline since `last_heartbeat + timeout`; its next heartbeat
    /// brings it back online since then, and a last will arriving after
    /// the timeout keeps the timeout's `since`.
    #[test]
    fn u4_online_is_derived_from_the_last_heartbeat_with_an_injected_clock() {
        let t0: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let timeout = TimeDelta::seconds(180);
        let first = next_status(None, report(true, "2026-01-01T10:00:00Z"), at(t0));
        let beat = next_status(
            Some(first),
            report(true, "2026-01-01T10:01:00Z"),
            at(t0 + TimeDelta::seconds(60)),
        );
        let last = t0 + TimeDelta::seconds(60);
        assert_eq!(beat.last_heartbeat, Some(last));
        assert_eq!(beat.since, t0, "a heartbeat does not move since");
        assert_eq!(beat.connection_at(at(last + timeout)), (true, t0));
        assert_eq!(
            beat.connection_at(at(last + timeout + TimeDelta::seconds(1))),
            (false, last + timeout)
        );
        // Still offline hours later, with the same since.
        assert_eq!(
            beat.connection_at(at(last + TimeDelta::hours(5))),
            (false, last + timeout)
        );

        // It comes back: online since its return.
        let back_at = last + TimeDelta::minutes(10);
        let back = next_status(
            Some(beat.clone()),
            report(true, "2026-01-01T10:11:00Z"),
            at(back_at),
        );
        assert_eq!(back.connection_at(at(back_at)), (true, back_at));

        // Or its last will arrives after the timeout: offline since the timeout.
        let will = next_status(
            Some(beat),
            report(false, "2026-01-01T09:00:00Z"),
            at(last + TimeDelta::minutes(4)),
        );
        assert_eq!(
            will.connection_at(at(last + TimeDelta::minutes(5))),
            (false, last + timeout)
        );
    }

    fn signed(kind: DocumentKind, subject: &str, version: u64) -> SignedDocument {
        SignedDocument {
            kind,
            subject: subject.into(),
            version,
            issued_at: "2026-01-01T09:00:00Z".parse().unwrap(),
            expires_at: None,
            sha256: Sha256::of(format!("{subject}/{version}").as_bytes()),
            content_hash: Sha256::of(b"content"),
            group: None,
        }
    }

    fn doc(version: u64) -> AppliedDocument {
        AppliedDocument {
            version,
            sha256: Sha256::of(format!("g-1/{version}").as_bytes()),
        }
    }

    fn pending(version: u64, refusal: Option<&str>) -> PendingActivation {
        PendingActivation {
            version,
            items_needed: 3,
            items_cached: 1,
            bytes_needed: 80 * 1024 * 1024,
            bytes_cached: 20 * 1024 * 1024,
            refusal: refusal.map(str::to_owned),
        }
    }

    /// U4, D3 (issue 14, defect 6): per document, desired against accepted
    /// and activated, with the status and reason when they differ; a
    /// manifest is in sync only when activated, other kinds when accepted.
    #[test]
    fn u4_d3_document_status_follows_accepted_and_activated() {
        let manifest = signed(DocumentKind::GroupManifest, "g-1", 2);
        let key = "group_manifest/g-1".to_owned();
        let status = |state: &DeviceState| document_sync(&manifest, Some(state));
        let mut state = report(true, "2026-01-01T10:00:00Z");

        let nothing = status(&state);
        assert_eq!(nothing.status, DocumentStatus::NotReceived);
        assert!(!nothing.in_sync);
        assert_eq!(
            document_sync(&manifest, None).status,
            DocumentStatus::NotReceived
        );

        // Version 1 accepted and playing: version 2 not received.
        state.applied.insert(key.clone(), doc(1));
        state.activated.insert(key.clone(), doc(1));
        let older = status(&state);
        assert_eq!(older.status, DocumentStatus::NotReceived);
        assert_eq!(
            (older.accepted_version, older.activated_version),
            (Some(1), Some(1))
        );
        assert!(older.reason.unwrap().contains("has version 1"));

        // Version 2 refused by verification.
        state.refused.insert(
            key.clone(),
            signet_common::sync::RefusedDocument {
                version: Some(2),
                reason: "version 2 is below the floor 3".into(),
                at: "2026-01-01T10:00:00Z".parse().unwrap(),
            },
        );
        let refused = status(&state);
        assert_eq!(refused.status, DocumentStatus::Refused);
        assert!(
            refused.reason.unwrap().contains("below the floor"),
            "reason"
        );
        // A refusal of an older replay says nothing about version 2.
        state.refused.get_mut(&key).unwrap().version = Some(1);
        assert_eq!(status(&state).status, DocumentStatus::NotReceived);
        state.refused.clear();

        // Version 2 accepted; version 1 still plays while 2 downloads.
        state.applied.insert(key.clone(), doc(2));
        let waiting = status(&state);
        assert_eq!(waiting.status, DocumentStatus::Waiting);
        assert_eq!(
            (
                waiting.accepted_version,
                waiting.activated_version,
                waiting.in_sync
            ),
            (Some(2), Some(1), false)
        );
        state.pending.insert(key.clone(), pending(2, None));
        let downloading = status(&state);
        assert_eq!(downloading.status, DocumentStatus::Downloading);
        assert!(!downloading.in_sync);
        assert_eq!(
            downloading.progress,
            Some(ActivationProgress {
                items_needed: 3,
                items_cached: 1,
                bytes_needed: 80 * 1024 * 1024,
                bytes_cached: 20 * 1024 * 1024,
            })
        );
        assert_eq!(
            downloading.reason.as_deref(),
            Some("downloading version 2: 1 of 3 items, 20.0 MiB of 80.0 MiB")
        );
        // Refused by the cache.
        state.pending.insert(
            key.clone(),
            pending(2, Some("refused: cache limit of 64 MiB")),
        );
        let cache = status(&state);
        assert_eq!(cache.status, DocumentStatus::Refused);
        assert_eq!(
            cache.reason.as_deref(),
            Some("refused: cache limit of 64 MiB")
        );
        assert!(cache.progress.is_some());

        // Activated: in sync.
        state.pending.clear();
        state.activated.insert(key.clone(), doc(2));
        let done = status(&state);
        assert_eq!(
            (done.status, done.in_sync, done.reason),
            (DocumentStatus::InSync, true, None)
        );

        // Other kinds are in use once accepted.
        let assignment = signed(DocumentKind::DeviceAssignment, "d-1", 4);
        state.applied.insert(
            "device_assignment/d-1".into(),
            AppliedDocument {
                version: 4,
                sha256: Sha256::of(b"a"),
            },
        );
        let accepted = document_sync(&assignment, Some(&state));
        assert_eq!(
            (accepted.status, accepted.activated_version),
            (DocumentStatus::InSync, Some(4))
        );
    }
}
