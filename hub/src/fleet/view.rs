//! The fleet view (U4, D3): what the hub makes of a device's latest
//! report against what it was told to follow — connection, desired against
//! accepted and activated documents, in sync or why not — and the fleet's
//! totals.
//!
//! Owns: [`device_view`], [`document_sync`], [`desired_documents`] and
//! [`counts`], read-only over the store. Must not: write anything, or
//! decide online other than by [`super::DeviceStatus::connection_at`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::documents::DeviceAssignment;
use signet_common::envelope::DocumentKind;
use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::{AppliedDocument, DeviceState, NowPlaying, PendingActivation};

use super::{DeviceStatus, Liveness, attached_devices, status_of};
use crate::publish::{self, SignedDocument};
use crate::store::{Store, StoreError};

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
    /// Access groups whose content the device is a member for but may not
    /// play, with why (L2): e.g. `licence_country`. One that sends content
    /// the device may never play (country, invalid terms) keeps it from
    /// being in sync.
    pub licence_refusals: Vec<crate::access_groups::delivery::LicenceRefusal>,
    /// Every desired document activated at exactly the desired version (U4),
    /// and no licence refusal that is a misdelivery (L2).
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
    Ok(desired_with_groups(store, device)?.map(|(desired, _)| desired))
}

/// The desired documents, and the group ids the assignment names.
type Desired = (Vec<SignedDocument>, Vec<String>);

/// [`desired_documents`], with every group id the assignment names (those
/// without a signed manifest too: their first manifest changes the view).
fn desired_with_groups(store: &Store, device: &DeviceId) -> Result<Option<Desired>, StoreError> {
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
    let mut groups = Vec::new();
    for group in assignment.group_ids() {
        groups.push(group.to_owned());
        if let Some(manifest) = publish::latest(store, DocumentKind::GroupManifest, group)? {
            desired.push(manifest);
        }
    }
    Ok(Some((desired, groups)))
}

/// Everything the fleet view of one device rests on that is read from the
/// store (U4): its stored status, its desired documents against its
/// report, its licence refusals. The view itself ([`DeviceFacts::view`])
/// adds only the clock: online and since, what plays, out of sync since.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFacts {
    /// The stored status, if it ever reported.
    pub status: Option<DeviceStatus>,
    /// Whether an assignment was signed for it.
    pub assigned: bool,
    /// Every desired document against its latest report.
    pub documents: Vec<DocumentSync>,
    /// Licensed content it may not play (L2), as of when the facts were
    /// read: they change only at a window's edge ([`DeviceFacts::until`]).
    pub licence_refusals: Vec<crate::access_groups::delivery::LicenceRefusal>,
    /// Every group its signed assignment names.
    pub groups: Vec<String>,
    /// The desired documents `documents` compares the report with: the
    /// assignment, then the manifest of each group it names that has one.
    pub desired: Vec<SignedDocument>,
    /// The access groups whose licence refuses it (content or not), as of
    /// when the facts were read: an item change of another group leaves
    /// its refusals as they are.
    pub denied: Vec<String>,
}

impl DeviceFacts {
    /// Reads the facts of `device`, attached at `node`, at `now` (licence
    /// windows are judged at `now`).
    ///
    /// # Errors
    /// When the store fails.
    pub fn read(
        store: &Store,
        device: &DeviceId,
        node: &NodeId,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let status = status_of(store, device)?;
        let desired = desired_with_groups(store, device)?;
        let report = status.as_ref().map(|s| &s.state);
        let assigned = desired.is_some();
        let (desired, groups) = desired.unwrap_or_default();
        let documents = desired.iter().map(|d| document_sync(d, report)).collect();
        let (licence_refusals, denied) =
            crate::access_groups::delivery::judged(store, device, node, now)?;
        Ok(Self {
            status,
            assigned,
            documents,
            licence_refusals,
            groups,
            desired,
            denied: denied.iter().map(|g| g.as_str().to_owned()).collect(),
        })
    }

    /// These facts with `status` stored now (a new report): exactly what
    /// [`DeviceFacts::read`] gives when nothing else changed, since only
    /// the documents compare against the report (X3, issue 20: a heartbeat
    /// costs the fleet index one record, not the device's every fact).
    #[must_use]
    pub fn with_status(mut self, status: Option<DeviceStatus>) -> Self {
        self.status = status;
        self.compare();
        self
    }

    /// These facts with `manifest` as the latest signed manifest of `group`
    /// (`None`: it has none), when the assignment names `group`: exactly
    /// what [`DeviceFacts::read`] gives when nothing else changed.
    #[must_use]
    pub fn with_manifest(mut self, group: &str, manifest: Option<&SignedDocument>) -> Self {
        if !self.assigned || !self.groups.iter().any(|g| g == group) {
            return self;
        }
        let manifest_of = |g: &str, held: &[SignedDocument]| {
            if g == group {
                return manifest.cloned();
            }
            held.iter()
                .find(|d| d.kind == DocumentKind::GroupManifest && d.subject == g)
                .cloned()
        };
        let held = std::mem::take(&mut self.desired);
        let assignment = held
            .iter()
            .find(|d| d.kind == DocumentKind::DeviceAssignment)
            .cloned();
        self.desired = assignment
            .into_iter()
            .chain(self.groups.iter().filter_map(|g| manifest_of(g, &held)))
            .collect();
        self.compare();
        self
    }

    /// The documents compared again with the report.
    fn compare(&mut self) {
        let report = self.status.as_ref().map(|s| &s.state);
        self.documents = self
            .desired
            .iter()
            .map(|d| document_sync(d, report))
            .collect();
    }

    /// Whether the device is in sync: it reported, an assignment was
    /// signed, every desired document is in use, and no licence refusal is
    /// a misdelivery. Does not depend on the clock.
    #[must_use]
    pub fn in_sync(&self) -> bool {
        self.status.is_some()
            && self.assigned
            && self.documents.iter().all(|d| d.in_sync)
            && !self.licence_refusals.iter().any(|r| r.is_misdelivery())
    }

    /// The fleet view of `device`, attached at `node`, from these facts as
    /// of `liveness` (U4).
    #[must_use]
    pub fn view(&self, device: &DeviceId, node: &NodeId, liveness: Liveness) -> FleetDevice {
        let status = self.status.as_ref();
        let report = status.map(|s| &s.state);
        let documents = &self.documents;
        let sync_note = match (status, self.assigned) {
            (None, _) => Some("the device never reported its state".to_owned()),
            (_, false) => Some("no assignment has been signed for the device yet".to_owned()),
            _ => None,
        };
        let in_sync = self.in_sync();
        let connected = status.map(|s| s.connection_at(liveness));
        let online = connected.is_some_and(|(online, _)| online);
        let out_of_sync_since = match connected {
            Some((true, since)) if !in_sync && self.assigned => documents
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
        FleetDevice {
            device_id: device.clone(),
            node: node.clone(),
            connection,
            online,
            since: connected.map(|(_, since)| since),
            last_heartbeat: status.and_then(|s| s.last_heartbeat),
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
            last_error: self.last_error(),
            documents: documents.clone(),
            licence_refusals: self.licence_refusals.clone(),
            in_sync,
            sync_note,
            out_of_sync_since,
        }
    }

    /// The last error the agent reported; when it reported none, the
    /// reason of the first refused desired document.
    fn last_error(&self) -> Option<String> {
        self.status
            .as_ref()
            .and_then(|s| s.state.last_error.clone())
            .filter(|e| !e.trim().is_empty())
            .or_else(|| {
                self.documents
                    .iter()
                    .find(|d| d.status == DocumentStatus::Refused)
                    .and_then(|d| d.reason.clone())
            })
    }
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
    Ok(DeviceFacts::read(store, device, node, liveness.now)?.view(device, node, liveness))
}

/// The fleet's totals (U4): the gauges of `/metrics` and the console's
/// summary (`GET /api/v1/fleet/summary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetCounts {
    /// Devices attached to a leaf node.
    pub attached: u64,
    /// Of those, online as [`super::DeviceStatus::connection_at`] decides.
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

// Schema only, for the OpenAPI document (signet-common stays free of
// utoipa): never used to (de)serialize anything.

/// `signet_common::sync::signed`: a report signed by the device key
/// registered at pairing (S11) — the signed envelope of DESIGN §4.
#[derive(utoipa::ToSchema)]
#[schema(as = SignedReport)]
#[allow(dead_code)] // schema only
pub struct SignedReportSchema {
    /// `device_events` (an `EventBatch`) or `device_state` (a device state).
    #[schema(pattern = "^device_(events|state)$")]
    kind: String,
    /// The device key's id: the first 16 hex digits of SHA-256 of its 32
    /// raw public-key bytes.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    key_id: String,
    /// Standard base64 of the report's JSON (for `device_events`, an
    /// `EventBatch`).
    payload: String,
    /// Standard base64 of the 64-byte Ed25519 signature over
    /// `kind || 0x00 || payload bytes`.
    sig: String,
}

/// What an event upload did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    /// Events stored for the first time.
    pub stored: usize,
    /// Events the hub already held (same id), ignored (U2).
    pub duplicates: usize,
}

impl From<super::events::Ingested> for IngestAnswer {
    fn from(ingested: super::events::Ingested) -> Self {
        Self {
            stored: ingested.stored,
            duplicates: ingested.duplicates,
        }
    }
}
