//! The wire types between agent and hub (DESIGN §5, §6): pairing over HTTP
//! (S7), the device state on `signet/v1/devices/{id}/state` (U4) and
//! proof-of-play event batches on `signet/v1/devices/{id}/events` or the
//! HTTP event upload (U1, U2), plus the topic names. State and event
//! batches travel signed by the device key ([`signed`], S11); the types
//! here are their payloads.
//!
//! Owns: the shapes, their bounds and their checks. Must not: do I/O. The
//! agent writes these, the hub reads them; both call [`check`](DeviceState::check)
//! style functions so a bad message is refused with a clear reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::ids::{AccessGroupId, DeviceId, EntryId, ItemId, MAX_ID_LEN};

pub mod documents;
pub mod signed;

/// The topic prefix every Signet topic lives under (DESIGN §5, contract).
pub const TOPIC_PREFIX: &str = "signet/v1";
/// The largest state or event message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The most events one batch may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 500;
/// The longest free-text field (reasons, errors, OS names), in bytes.
pub const MAX_TEXT_LEN: usize = 512;
/// The most applied documents one state message may list.
pub const MAX_APPLIED: usize = 1_100;
/// The length of a pairing code shown on the screen.
pub const PAIRING_CODE_LEN: usize = 8;

/// `signet/v1/groups/{group_id}/manifest` (retained, hub → agents).
#[must_use]
pub fn manifest_topic(group_id: &str) -> String {
    format!("{TOPIC_PREFIX}/groups/{group_id}/manifest")
}

/// `signet/v1/devices/{device_id}/assignment` (retained, hub → agent).
#[must_use]
pub fn assignment_topic(device: &DeviceId) -> String {
    format!("{TOPIC_PREFIX}/devices/{device}/assignment")
}

/// `signet/v1/devices/{device_id}/commands` (not retained, hub → agent).
#[must_use]
pub fn commands_topic(device: &DeviceId) -> String {
    format!("{TOPIC_PREFIX}/devices/{device}/commands")
}

/// `signet/v1/devices/{device_id}/state` (retained, agent → hub; the last
/// will sets `online: false`).
#[must_use]
pub fn state_topic(device: &DeviceId) -> String {
    format!("{TOPIC_PREFIX}/devices/{device}/state")
}

/// `signet/v1/devices/{device_id}/events` (not retained, agent → hub).
#[must_use]
pub fn events_topic(device: &DeviceId) -> String {
    format!("{TOPIC_PREFIX}/devices/{device}/events")
}

/// `signet/v1/hub/time` (retained, hub → agents).
pub const HUB_TIME_TOPIC: &str = "signet/v1/hub/time";
/// The longest time between two signed `hub_time` publishes a hub may be
/// configured with, in seconds (S6): device contact tolerance and the
/// shortest offline grace are counted in these intervals.
pub const MAX_HUB_TIME_INTERVAL_SECS: u64 = 60;
/// `signet/v1/trust` (retained, hub → agents).
pub const TRUST_TOPIC: &str = "signet/v1/trust";

/// Why a message from a device was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// Not the JSON shape expected.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A field out of its bounds.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn field(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Field {
        field,
        reason: reason.into(),
    }
}

/// `text` without control characters, cut to at most [`MAX_TEXT_LEN`]
/// bytes on a character boundary: a free-text field every check accepts.
#[must_use]
pub fn clip_text(text: &str) -> String {
    let mut clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.len() > MAX_TEXT_LEN {
        let mut end = MAX_TEXT_LEN;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    clean
}

fn check_text(name: &'static str, text: &str) -> Result<(), WireError> {
    if text.len() > MAX_TEXT_LEN || text.chars().any(char::is_control) {
        return Err(field(
            name,
            format!("at most {MAX_TEXT_LEN} bytes of text without control characters"),
        ));
    }
    Ok(())
}

fn check_id(name: &'static str, id: &str) -> Result<(), WireError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(field(name, format!("must be 1 to {MAX_ID_LEN} bytes")));
    }
    Ok(())
}

/// Parses a bounded JSON message and checks it.
///
/// # Errors
/// [`WireError`] when it is too large, malformed or out of bounds.
pub fn parse<T: serde::de::DeserializeOwned + Checked>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let value: T =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    value.check()?;
    Ok(value)
}

/// A wire message with bounds beyond its shape.
pub trait Checked {
    /// Checks the bounds.
    ///
    /// # Errors
    /// The first [`WireError`] found.
    fn check(&self) -> Result<(), WireError>;
}

// ------------------------------------------------------------------ pairing

/// What an unpaired agent sends to `POST /api/v1/device/pairings` (S7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingRequest {
    /// The agent's own Ed25519 public key, standard base64 of 32 bytes.
    pub public_key: String,
    /// The agent's version.
    pub agent_version: String,
    /// The device's operating system, e.g. `Raspberry Pi OS 12 (aarch64)`.
    pub os: String,
}

impl Checked for PairingRequest {
    fn check(&self) -> Result<(), WireError> {
        crate::envelope::PublicKey::from_base64(&self.public_key)
            .map_err(|e| field("public_key", e.to_string()))?;
        check_text("agent_version", &self.agent_version)?;
        check_text("os", &self.os)
    }
}

/// The hub's answer to a pairing request: the code to show on the screen
/// and the secret ticket the agent polls with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingTicket {
    /// Secret: only the agent knows it; it polls
    /// `GET /api/v1/device/pairings/{ticket}`.
    pub ticket: String,
    /// The short code the agent shows and an operator approves
    /// ([`PAIRING_CODE_LEN`] characters of an unambiguous alphabet).
    pub code: String,
    /// Until when the code may be approved.
    pub expires_at: DateTime<Utc>,
    /// How long to wait between polls, in seconds.
    pub poll_secs: u32,
}

/// Where and how a paired device connects to the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAccess {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// The MQTT user name: the device id.
    pub username: String,
    /// The device's own secret; it also authenticates the device's HTTP
    /// requests (`Authorization: Basic device_id:secret`).
    pub password: String,
    /// PEM of the CA that signs the broker's certificate, for `mqtts://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// What a poll of a pairing ticket answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum PairingStatus {
    /// Not approved yet; poll again.
    Pending {
        /// Until when the code may be approved.
        expires_at: DateTime<Utc>,
    },
    /// Approved: the device's identity and credentials, returned once.
    Approved {
        /// The device id.
        device_id: DeviceId,
        /// The broker and the device's credentials for it.
        broker: BrokerAccess,
        /// The root public key to pin (standard base64 of 32 bytes, as in
        /// `root.pub`).
        root_public_key: String,
        /// The hub's public base URL, for content and event uploads.
        hub_url: String,
    },
    /// Refused by an operator, expired, or already collected.
    Closed {
        /// Why.
        reason: String,
    },
}

// -------------------------------------------------------------- device state

/// One signed document the agent has applied (verified, accepted by the
/// rollback guard and made durable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedDocument {
    /// Its version.
    pub version: u64,
    /// SHA-256 of its envelope bytes.
    pub sha256: Sha256,
}

/// What the device shows on its main layer now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NowPlaying {
    /// The item.
    pub item: ItemId,
    /// The schedule entry it plays for, if not the default item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryId>,
    /// When it started.
    pub since: DateTime<Utc>,
}

/// How far the device got with the content its newest manifests need (D2,
/// D3, D10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheProgress {
    /// Items the newest accepted manifests need.
    pub items_needed: u64,
    /// Of those, items present and verified in the cache.
    pub items_cached: u64,
    /// Bytes the needed items take.
    pub bytes_needed: u64,
    /// Of those, bytes present (verified files plus partial downloads).
    pub bytes_cached: u64,
    /// The cache limit in bytes (D10).
    pub limit_bytes: u64,
    /// Groups whose newest manifest is accepted but not playing yet,
    /// because its content is not all present (D3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_groups: Vec<String>,
    /// Why the cache refuses what the manifests need (D10: more than the
    /// limit), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// Why a group's newest accepted manifest is not the one in use yet (D3,
/// U4): its content is still on its way, or the device refuses to fetch it.
/// Until it is activated, the previously activated manifest keeps playing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingActivation {
    /// The accepted version that waits.
    pub version: u64,
    /// Items it needs.
    pub items_needed: u64,
    /// Of those, items present and verified.
    pub items_cached: u64,
    /// Bytes its needed items take.
    pub bytes_needed: u64,
    /// Of those, bytes present (verified files plus partial downloads).
    pub bytes_cached: u64,
    /// Why it will not activate without a change (e.g. "refused: cache
    /// limit …"); absent while it is merely downloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// A document the device received and refused (S1, U4): it keeps its last
/// good state, and the fleet view shows why the newest is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedDocument {
    /// The version it claimed, when its payload could be read at all (an
    /// envelope with a bad signature is never parsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why it was refused ("bad signature", "version 3 is below …").
    pub reason: String,
    /// When (the device's trusted time).
    pub at: DateTime<Utc>,
}

/// The lowest temperature a device may report, in °C (U4).
pub const MIN_TEMPERATURE_C: f32 = -100.0;
/// The highest temperature a device may report, in °C (U4).
pub const MAX_TEMPERATURE_C: f32 = 200.0;

/// The retained state of a device on `signet/v1/devices/{id}/state` (U4).
/// The last will publishes the same shape with `online: false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    /// The device.
    pub device_id: DeviceId,
    /// False only in the last will (and on a clean shutdown).
    pub online: bool,
    /// When the agent wrote it (trusted time).
    pub at: DateTime<Utc>,
    /// Agent version.
    pub agent_version: String,
    /// Operating system.
    pub os: String,
    /// Accepted documents (verified, passed the rollback guard and durable),
    /// keyed `{kind}/{subject}` (e.g. `group_manifest/n-1`,
    /// `device_assignment/d-1`).
    #[serde(default)]
    pub applied: BTreeMap<String, AppliedDocument>,
    /// The group manifests in use (D3: every item present and verified, and
    /// switched to atomically), keyed `group_manifest/{group}`. Documents of
    /// other kinds are in use as soon as they are accepted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub activated: BTreeMap<String, AppliedDocument>,
    /// Accepted group manifests not activated yet, and why, keyed
    /// `group_manifest/{group}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, PendingActivation>,
    /// The latest refusal per document key, until a version of that
    /// document is accepted again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, RefusedDocument>,
    /// What plays now, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now_playing: Option<NowPlaying>,
    /// Bytes in the content cache.
    #[serde(default)]
    pub cache_bytes: u64,
    /// Download and cache progress towards the newest manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheProgress>,
    /// Free bytes on the cache's file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// The processor temperature in °C, where the device reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f32>,
    /// Trusted time minus wall clock, in milliseconds (S6).
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// The last error the agent hit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The optional document fields the agent reads
    /// ([`crate::documents::DOCUMENT_FEATURES`]): the hub leaves any other
    /// out of the documents this device receives. Absent from agents
    /// built before it, which read none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub document_features: Vec<String>,
}

impl DeviceState {
    /// `device_id`'s state at `at`, online, from agent `agent_version` on
    /// `os` that has accepted, activated and refused nothing, plays
    /// nothing, caches nothing and reads no sensor: what a report starts
    /// from before it says what it knows (struct update syntax,
    /// `DeviceState { cache_bytes, ..DeviceState::new(…) }`).
    #[must_use]
    pub fn new(device_id: DeviceId, at: DateTime<Utc>, agent_version: &str, os: &str) -> Self {
        Self {
            device_id,
            online: true,
            at,
            agent_version: agent_version.to_owned(),
            os: os.to_owned(),
            applied: BTreeMap::new(),
            activated: BTreeMap::new(),
            pending: BTreeMap::new(),
            refused: BTreeMap::new(),
            now_playing: None,
            cache_bytes: 0,
            cache: None,
            disk_free_bytes: None,
            temperature_c: None,
            clock_offset_ms: 0,
            last_error: None,
            document_features: Vec::new(),
        }
    }
}

impl Checked for DeviceState {
    fn check(&self) -> Result<(), WireError> {
        check_id("device_id", self.device_id.as_str())?;
        check_text("agent_version", &self.agent_version)?;
        check_text("os", &self.os)?;
        if self.applied.len() > MAX_APPLIED {
            return Err(field("applied", format!("at most {MAX_APPLIED} documents")));
        }
        for key in self.applied.keys() {
            check_text("applied", key)?;
        }
        for (name, count) in [
            ("activated", self.activated.len()),
            ("pending", self.pending.len()),
            ("refused", self.refused.len()),
        ] {
            if count > MAX_APPLIED {
                return Err(field(name, format!("at most {MAX_APPLIED} documents")));
            }
        }
        for key in self
            .activated
            .keys()
            .chain(self.pending.keys())
            .chain(self.refused.keys())
        {
            check_text("document key", key)?;
        }
        for pending in self.pending.values() {
            if let Some(refusal) = &pending.refusal {
                check_text("pending.refusal", refusal)?;
            }
        }
        for refused in self.refused.values() {
            check_text("refused.reason", &refused.reason)?;
        }
        if let Some(error) = &self.last_error {
            check_text("last_error", error)?;
        }
        if self.document_features.len() > crate::documents::MAX_DOCUMENT_FEATURES {
            return Err(field(
                "document_features",
                format!(
                    "at most {} features",
                    crate::documents::MAX_DOCUMENT_FEATURES
                ),
            ));
        }
        for feature in &self.document_features {
            check_id("document_features", feature)?;
        }
        if let Some(cache) = &self.cache {
            if cache.waiting_groups.len() > MAX_APPLIED {
                return Err(field(
                    "cache.waiting_groups",
                    format!("at most {MAX_APPLIED} groups"),
                ));
            }
            for group in &cache.waiting_groups {
                check_id("cache.waiting_groups", group)?;
            }
            if let Some(refusal) = &cache.refusal {
                check_text("cache.refusal", refusal)?;
            }
        }
        if self
            .temperature_c
            .is_some_and(|t| !(MIN_TEMPERATURE_C..=MAX_TEMPERATURE_C).contains(&t))
        {
            return Err(field(
                "temperature_c",
                format!("must be a number from {MIN_TEMPERATURE_C} to {MAX_TEMPERATURE_C}"),
            ));
        }
        Ok(())
    }
}

// --------------------------------------------------------------- play events

/// What happened when an item was due (U1, A7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It played for the event's duration.
    Played,
    /// It was due but did not play; `skip_reason` says why.
    Skipped,
}

/// One proof-of-play record (U1). Its `id` is unique (the agent makes it
/// random), so the hub stores each exactly once however often it arrives
/// (U2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayEvent {
    /// Unique id (32 hex digits).
    pub id: String,
    /// The device.
    pub device_id: DeviceId,
    /// The item.
    pub item: ItemId,
    /// The access group whose license covered it, if licensed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_group: Option<AccessGroupId>,
    /// The version of the license terms (the group manifest) that covered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_version: Option<u64>,
    /// When it started (trusted time).
    pub start: DateTime<Utc>,
    /// How long it showed, in milliseconds (0 when skipped).
    pub duration_ms: u64,
    /// Played or skipped.
    pub outcome: Outcome,
    /// Why it was skipped (not approved, not licensed, not cached, hash
    /// mismatch, …); only and always on skipped events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Country (ISO 3166-1 alpha-2) of the device's node, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Region of the device's node, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Operating system.
    pub os: String,
    /// Agent version.
    pub agent_version: String,
}

impl Checked for PlayEvent {
    fn check(&self) -> Result<(), WireError> {
        if self.id.len() != 32 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(field("id", "must be 32 hex digits"));
        }
        check_id("device_id", self.device_id.as_str())?;
        check_id("item", self.item.as_str())?;
        if let Some(group) = &self.access_group {
            check_id("access_group", group.as_str())?;
        }
        match (self.outcome, &self.skip_reason) {
            (Outcome::Played, None) => {}
            (Outcome::Skipped, Some(reason)) if !reason.trim().is_empty() => {
                check_text("skip_reason", reason)?;
            }
            (Outcome::Played, Some(_)) => {
                return Err(field("skip_reason", "only skipped events carry a reason"));
            }
            (Outcome::Skipped, _) => {
                return Err(field("skip_reason", "a skipped event says why"));
            }
        }
        for (name, value) in [("country", &self.country), ("region", &self.region)] {
            if let Some(value) = value {
                check_text(name, value)?;
            }
        }
        check_text("os", &self.os)?;
        check_text("agent_version", &self.agent_version)
    }
}

/// A batch of events on `signet/v1/devices/{id}/events` or
/// `POST /api/v1/device/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// At most [`MAX_EVENTS_PER_BATCH`] events.
    pub events: Vec<PlayEvent>,
}

impl Checked for EventBatch {
    fn check(&self) -> Result<(), WireError> {
        if self.events.len() > MAX_EVENTS_PER_BATCH {
            return Err(field(
                "events",
                format!("at most {MAX_EVENTS_PER_BATCH} per batch"),
            ));
        }
        self.events.iter().try_for_each(Checked::check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> PlayEvent {
        PlayEvent {
            id: "0123456789abcdef0123456789abcdef".into(),
            device_id: DeviceId::new("d-1"),
            item: ItemId::new("c-1"),
            access_group: None,
            license_version: None,
            start: "2026-11-23T10:00:00Z".parse().unwrap(),
            duration_ms: 10_000,
            outcome: Outcome::Skipped,
            skip_reason: Some("pending approval".into()),
            country: Some("DE".into()),
            region: None,
            os: "Debian 12".into(),
            agent_version: "0.1.0".into(),
        }
    }

    /// Clipped text always passes the text check, and short text is kept.
    #[test]
    fn clip_text_fits_every_text_field() {
        let long = "é".repeat(MAX_TEXT_LEN);
        let clipped = clip_text(&format!("a\nb{long}"));
        assert!(clipped.starts_with("abé"));
        assert!(clipped.len() <= MAX_TEXT_LEN);
        assert!(check_text("x", &clipped).is_ok());
        assert_eq!(clip_text("fine"), "fine");
    }

    /// U1, U2: an event travels as flat JSON and back unchanged.
    #[test]
    fn u1_events_round_trip_as_flat_json() {
        let batch = EventBatch {
            events: vec![event()],
        };
        let bytes = serde_json::to_vec(&batch).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["events"][0]["outcome"], "skipped");
        assert_eq!(json["events"][0]["skip_reason"], "pending approval");
        assert_eq!(parse::<EventBatch>(&bytes).unwrap(), batch);
    }

    /// M3 (fleet upgrade): a state from an agent built before
    /// `document_features` parses and declares nothing; a state declaring
    /// features round-trips; too many or empty feature names are refused.
    #[test]
    fn m3_document_features_are_optional_and_bounded() {
        let old = br#"{"device_id":"d-1","online":true,"at":"2026-11-23T10:00:00Z",
            "agent_version":"0.1.0","os":"Raspberry Pi OS"}"#;
        let state = parse::<DeviceState>(old).unwrap();
        assert!(state.document_features.is_empty());
        let mut declared = state.clone();
        declared.document_features = crate::documents::DOCUMENT_FEATURES
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        let bytes = serde_json::to_vec(&declared).unwrap();
        assert_eq!(parse::<DeviceState>(&bytes).unwrap(), declared);
        let mut many = state.clone();
        many.document_features = vec!["x".into(); crate::documents::MAX_DOCUMENT_FEATURES + 1];
        assert!(many.check().is_err());
        let mut empty = state;
        empty.document_features = vec![String::new()];
        assert!(empty.check().is_err());
    }

    /// DESIGN §5: the contract topic names, spelled out.
    #[test]
    fn s4_contract_topics() {
        let device = DeviceId::new("d-1");
        assert_eq!(manifest_topic("n-1"), "signet/v1/groups/n-1/manifest");
        assert_eq!(
            assignment_topic(&device),
            "signet/v1/devices/d-1/assignment"
        );
        assert_eq!(commands_topic(&device), "signet/v1/devices/d-1/commands");
        assert_eq!(state_topic(&device), "signet/v1/devices/d-1/state");
        assert_eq!(events_topic(&device), "signet/v1/devices/d-1/events");
        assert_eq!(HUB_TIME_TOPIC, "signet/v1/hub/time");
        assert_eq!(TRUST_TOPIC, "signet/v1/trust");
    }

    /// U4: free disk and temperature are optional on the wire (an older
    /// agent's state still parses), and a temperature out of its bounds is
    /// refused with the field named.
    #[test]
    fn u4_readings_are_optional_and_bounded() {
        let older = br#"{"device_id": "d-1", "online": true, "at": "2026-11-23T10:00:00Z",
            "agent_version": "0.1.0", "os": "Debian 12"}"#;
        let state = parse::<DeviceState>(older).unwrap();
        assert_eq!((state.disk_free_bytes, state.temperature_c), (None, None));
        let with = |temperature: f32| {
            let mut json: serde_json::Value = serde_json::from_slice(older).unwrap();
            json["disk_free_bytes"] = 8_000_000_000_u64.into();
            json["temperature_c"] = temperature.into();
            parse::<DeviceState>(&serde_json::to_vec(&json).unwrap())
        };
        let state = with(51.5).unwrap();
        assert_eq!(state.disk_free_bytes, Some(8_000_000_000));
        assert_eq!(state.temperature_c, Some(51.5));
        for bad in [MAX_TEMPERATURE_C + 1.0, MIN_TEMPERATURE_C - 1.0] {
            assert!(matches!(
                with(bad),
                Err(WireError::Field {
                    field: "temperature_c",
                    ..
                })
            ));
        }
    }

    /// DESIGN §7: bad or oversized messages are refused with a reason.
    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let mut bad = event();
        bad.id = "not-hex".into();
        let bytes = serde_json::to_vec(&EventBatch { events: vec![bad] }).unwrap();
        assert!(matches!(
            parse::<EventBatch>(&bytes),
            Err(WireError::Field { field: "id", .. })
        ));
        assert!(matches!(
            parse::<EventBatch>(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            Err(WireError::TooLarge(_))
        ));
        assert!(matches!(
            parse::<EventBatch>(b"{\"events\": [], \"extra\": 1}"),
            Err(WireError::Malformed(_))
        ));
    }
}
