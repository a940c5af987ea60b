//! Fleet status and proof of play (U1–U4): what devices report, and what
//! the hub makes of it.
//!
//! Owns: the latest state of every device ([`DEVICE_STATES`]), the
//! proof-of-play events ([`events`]), the fleet view with applied versus
//! desired documents ([`device_view`]) and its totals ([`counts`]), and
//! alerts ([`alerts`]). May call: the store, [`crate::publish`] to read
//! the latest signed documents, [`crate::tenancy`] for where devices are
//! attached. Must not: change any
//! record it does not own, or trust a report about another device.
//!
//! Interface for the MQTT subscriber and the event upload route:
//! [`record_state`] and [`ingest_events`].
//!
//! # Desired documents
//! What a device should have applied is read from its latest signed
//! `device_assignment` as stored by publishing: the assignment itself, and
//! the latest signed `group_manifest` of every group its payload names
//! (node chain, then access groups). This is exactly what the device was
//! told to follow — computing the list from the tree and memberships
//! instead would count groups that were never published to it. A group
//! named there without any signed manifest yet has nothing to apply and is
//! left out. A device is *in sync* only when it reported every desired
//! document at exactly the desired version (U4); a device with no signed
//! assignment yet, or that never reported, is not in sync.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`DEVICE_STATES`] | device id | [`DeviceStatus`] |
//! | see [`events`] | | proof of play |
//! | see [`alerts`] | | alerts |

pub mod alerts;
pub mod events;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::documents::DeviceAssignment;
use signet_common::envelope::DocumentKind;
use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::{Checked as _, DeviceState, EventBatch, NowPlaying};

use crate::api::AppState;
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
    /// Whether the last message said online (the last will says offline).
    pub online: bool,
    /// When the hub received the latest online report.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When the hub saw the device go online or offline last (hub time): what
    /// offline alerts measure from.
    pub since: DateTime<Utc>,
    /// When the hub received the latest message of any kind.
    pub received_at: DateTime<Utc>,
}

/// The status after `reported` arrives at `now` on top of `previous`.
fn next_status(
    previous: Option<DeviceStatus>,
    reported: DeviceState,
    now: DateTime<Utc>,
) -> DeviceStatus {
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
            let since = if previous.online == online {
                previous.since
            } else {
                now
            };
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
/// when that last changed. A report naming another device, or out of its
/// bounds, is refused: logged, nothing stored.
///
/// # Errors
/// When the store fails.
pub async fn record_state(
    state: &AppState,
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
    let now = state.clock.now();
    let previous: Option<DeviceStatus> = state.store.get(DEVICE_STATES, device.as_str())?;
    let status = next_status(previous, reported, now);
    let mut batch = WriteBatch::new();
    batch.put(DEVICE_STATES, device.as_str(), &status)?;
    state.store.apply(batch).await
}

/// Stores each event of `batch` from `device` exactly once by id (U2),
/// durably, in one batch, before returning. Events naming another device,
/// out of bounds, or beyond [`signet_common::sync::MAX_EVENTS_PER_BATCH`]
/// are refused (counted in [`Ingested::refused`]); see [`events::ingest`].
///
/// # Errors
/// When the store fails; then nothing was stored.
pub async fn ingest_events(
    state: &AppState,
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
    /// Its latest message said online.
    Online,
    /// Its latest message said offline (MQTT last will or clean shutdown).
    Offline,
    /// It never reported.
    NeverReported,
}

/// One desired document against what the device applied (U4).
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
    /// The version the device reported applied, if any.
    pub applied_version: Option<u64>,
    /// The hash the device reported with it.
    #[schema(value_type = Option<String>)]
    pub applied_sha256: Option<Sha256>,
    /// Applied at exactly the desired version.
    pub in_sync: bool,
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
    /// Whether its latest message said online.
    pub online: bool,
    /// Since when it is online or offline (hub time).
    pub since: Option<DateTime<Utc>>,
    /// When the hub received its latest online report.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When the device wrote its latest report (its trusted time).
    pub reported_at: Option<DateTime<Utc>>,
    /// Agent version.
    pub agent_version: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// What plays now.
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
    /// The last error the agent reported.
    pub last_error: Option<String>,
    /// Every desired document against what the device applied.
    pub documents: Vec<DocumentSync>,
    /// Every desired document applied at exactly the desired version (U4).
    pub in_sync: bool,
    /// Why it cannot be in sync when that is not about one document (no
    /// assignment signed yet, never reported).
    pub sync_note: Option<String>,
    /// Since when an online device has been out of sync: the later of when
    /// the oldest unapplied desired version was signed and when it came
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

/// The fleet view of `device`, attached at `node` (U4).
///
/// # Errors
/// When the store fails.
pub fn device_view(
    store: &Store,
    device: &DeviceId,
    node: &NodeId,
) -> Result<FleetDevice, StoreError> {
    let status = status_of(store, device)?;
    let desired = desired_documents(store, device)?;
    let empty = BTreeMap::new();
    let applied = status.as_ref().map_or(&empty, |s| &s.state.applied);
    let documents: Vec<DocumentSync> = desired
        .iter()
        .flatten()
        .map(|d| {
            let reported = applied.get(&publish::document_key(d.kind, &d.subject));
            DocumentSync {
                kind: d.kind,
                subject: d.subject.clone(),
                desired_version: d.version,
                desired_sha256: d.sha256,
                issued_at: d.issued_at,
                applied_version: reported.map(|a| a.version),
                applied_sha256: reported.map(|a| a.sha256),
                in_sync: reported.is_some_and(|a| a.version == d.version),
            }
        })
        .collect();
    let sync_note = match (&status, &desired) {
        (None, _) => Some("the device never reported its state".to_owned()),
        (_, None) => Some("no assignment has been signed for the device yet".to_owned()),
        _ => None,
    };
    let in_sync = sync_note.is_none() && documents.iter().all(|d| d.in_sync);
    let out_of_sync_since = match &status {
        Some(s) if s.online && !in_sync && desired.is_some() => documents
            .iter()
            .filter(|d| !d.in_sync)
            .map(|d| d.issued_at)
            .min()
            .map(|oldest| oldest.max(s.since)),
        _ => None,
    };
    let connection = match &status {
        None => Connection::NeverReported,
        Some(s) if s.online => Connection::Online,
        Some(_) => Connection::Offline,
    };
    let report = status.as_ref().map(|s| &s.state);
    Ok(FleetDevice {
        device_id: device.clone(),
        node: node.clone(),
        connection,
        online: status.as_ref().is_some_and(|s| s.online),
        since: status.as_ref().map(|s| s.since),
        last_heartbeat: status.as_ref().and_then(|s| s.last_heartbeat),
        reported_at: report.map(|r| r.at),
        agent_version: report.map(|r| r.agent_version.clone()),
        os: report.map(|r| r.os.clone()),
        now_playing: report
            .filter(|_| status.as_ref().is_some_and(|s| s.online))
            .and_then(|r| r.now_playing.clone()),
        cache_bytes: report.map(|r| r.cache_bytes),
        cache: report.and_then(|r| r.cache.clone()),
        disk_free_bytes: report.and_then(|r| r.disk_free_bytes),
        temperature_c: report.and_then(|r| r.temperature_c),
        clock_offset_ms: report.map(|r| r.clock_offset_ms),
        last_error: report.and_then(|r| r.last_error.clone()),
        documents,
        in_sync,
        sync_note,
        out_of_sync_since,
    })
}

/// How many attached devices there are, are online and are in sync (U4):
/// the fleet gauges of `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Devices attached to a leaf node.
    pub attached: u64,
    /// Of those, whose latest message said online.
    pub online: u64,
    /// Of those, in sync as [`device_view`] decides, online or not.
    pub in_sync: u64,
}

/// Counts the attached devices, online and in sync, each through
/// [`device_view`] (the fleet view's own rule).
///
/// # Errors
/// When the store fails.
pub fn counts(store: &Store) -> Result<FleetCounts, StoreError> {
    let mut counts = FleetCounts::default();
    for (device, node) in attached_devices(store)? {
        let view = device_view(store, &device, &node)?;
        counts.attached += 1;
        counts.online += u64::from(view.online);
        counts.in_sync += u64::from(view.in_sync);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
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

    /// U4: a last will written at connect time marks the device offline
    /// without replacing the fresher details of its latest report.
    #[test]
    fn u4_last_will_marks_offline_and_keeps_fresher_details() {
        let t0: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let t1 = t0 + chrono::TimeDelta::minutes(5);
        let first = next_status(None, report(true, "2026-01-01T10:00:00Z"), t0);
        assert!(first.online);
        assert_eq!(first.last_heartbeat, Some(t0));
        let will = report(false, "2026-01-01T09:00:00Z");
        let after = next_status(Some(first), will, t1);
        assert!(!after.online);
        assert_eq!(after.since, t1);
        assert_eq!(after.last_heartbeat, Some(t0));
        assert_eq!(after.state.cache_bytes, 10, "fresher details kept");
        assert!(!after.state.online);
        let back = next_status(Some(after), report(true, "2026-01-01T10:06:00Z"), t1);
        assert!(back.online);
        assert_eq!(back.since, t1);
    }
}
