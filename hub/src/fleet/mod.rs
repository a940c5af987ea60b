//! Fleet status and proof of play (U1–U4): what devices report, and what
//! the hub makes of it.
//!
//! Owns: the latest state of every device ([`DEVICE_STATES`]), the
//! proof-of-play events ([`events`]), the fleet view with desired against
//! accepted and activated documents ([`device_view`]) and its totals
//! ([`counts`]), alerts ([`alerts`]) and the live feed of changes for the
//! console ([`stream`]). The fleet list and summary are answered from
//! [`index::FleetIndex`], the view kept in memory and up to date from every
//! commit (issue 20), never by reading every device. May call: the store,
//! [`crate::publish`] to read the latest signed documents,
//! [`crate::tenancy`] for where devices are attached, the device records
//! ([`crate::devices`]) to read a device's node. Must not: change any
//! record it does not own, or trust a report about another device.
//!
//! Interface for the MQTT subscriber and the event upload route:
//! [`record_state`] and [`ingest_events`]. The operations the API calls
//! (fleet list, alerts, uploads, screenshots) are [`service`], the usage
//! reports [`reports`].
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

pub mod alert_settings;
pub mod alerts;
pub mod event_query;
pub mod events;
pub mod fixture;
pub mod index;
pub mod ingest;

pub mod reports;
pub mod service;
pub mod stream;

mod view;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{DeviceId, NodeId};
use signet_common::sync::{DeviceState, EventBatch};

use crate::app::Hub;
use crate::store::{Store, StoreError};
use crate::tenancy::NODE_DEVICES;

pub use events::Ingested;
pub use ingest::FleetIngest;
pub use view::{
    ActivationProgress, Connection, DeviceFacts, DocumentStatus, DocumentSync, FleetCounts,
    FleetDevice, IngestAnswer, SignedReportSchema, counts, desired_documents, device_view,
    document_sync,
};

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
pub(crate) fn next_status(
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
/// when that last changed (judged by [`DeviceStatus::connection_at`]). It
/// goes into the next batch of [`FleetIngest`] (one commit for many
/// reports, never behind an operator's write). A report naming another
/// device, or out of its bounds, is refused: logged, nothing stored.
///
/// # Errors
/// When the store fails.
pub async fn record_state(
    state: &Hub,
    device: &DeviceId,
    reported: DeviceState,
) -> Result<(), StoreError> {
    state.fleet_ingest.state(state, device, reported).await
}

/// Stores each event of `batch` from `device` exactly once by id (U2),
/// durably, before returning, in the next batch of [`FleetIngest`]; a
/// member's first play under a license is recorded with it and the group's
/// documents signed again after (L2, [`crate::publish::after_first_use`]). Events
/// naming another device, out of bounds, or beyond
/// [`signet_common::sync::MAX_EVENTS_PER_BATCH`] are refused (counted in
/// [`Ingested::refused`]). Each event is stored with the node the device is
/// attached at now.
///
/// # Errors
/// When the store fails; then nothing was stored.
pub async fn ingest_events(
    state: &Hub,
    device: &DeviceId,
    batch: EventBatch,
) -> Result<Ingested, StoreError> {
    state.fleet_ingest.events(state, device, batch).await
}

/// The stored status of `device`, if it ever reported.
///
/// # Errors
/// When the store fails.
pub fn status_of(store: &Store, device: &DeviceId) -> Result<Option<DeviceStatus>, StoreError> {
    store.get(DEVICE_STATES, device.as_str())
}

pub use crate::tenancy::attached_devices;

/// The node `device` is attached at, if it is: the node its record names,
/// when [`NODE_DEVICES`] holds it there (two point reads, whatever the
/// fleet's size; the device record and its index entry are written
/// together by [`crate::devices`]).
///
/// # Errors
/// When the store fails.
pub fn node_of(store: &Store, device: &DeviceId) -> Result<Option<NodeId>, StoreError> {
    let Some(record) = crate::devices::device(store, device.as_str())? else {
        return Ok(None);
    };
    let key = crate::devices::node_device_key(&record.node, device);
    let attached = !record.node.as_str().is_empty()
        && !record.node.as_str().contains('/')
        && store
            .get::<serde::de::IgnoredAny>(NODE_DEVICES, &key)?
            .is_some();
    Ok(attached.then_some(record.node))
}

#[cfg(test)]
mod tests {

    use signet_common::digest::Sha256;
    use signet_common::envelope::DocumentKind;
    use signet_common::sync::{AppliedDocument, PendingActivation};

    use super::*;
    use crate::publish::SignedDocument;

    fn report(online: bool, at: &str) -> DeviceState {
        DeviceState {
            online,
            cache_bytes: if online { 10 } else { 1 },
            ..DeviceState::new(
                DeviceId::from("d-1"),
                at.parse().unwrap(),
                "0.1.0",
                "Debian 12",
            )
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
            key_id: None,
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
