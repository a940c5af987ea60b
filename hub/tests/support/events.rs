//! Proof-of-play events as an agent reports them (U1), for the tests that
//! ingest them and read them back.

use chrono::{DateTime, Utc};
use serde_json::Value;
use signet_common::ids::{AccessGroupId, DeviceId, ItemId};
use signet_common::sync::{Outcome, PlayEvent};

/// Event `n` (its id, 32 hex digits): `item` played for 10 s on `device`
/// from `start`, in Germany, under `group`'s licence version when it names
/// one (`(group, version)`).
pub fn played(
    n: u64,
    device: &str,
    item: &str,
    group: Option<(&str, u64)>,
    start: DateTime<Utc>,
) -> PlayEvent {
    PlayEvent {
        id: format!("{n:032x}"),
        device_id: DeviceId::from(device),
        item: ItemId::from(item),
        access_group: group.map(|(id, _)| AccessGroupId::from(id)),
        license_version: group.map(|(_, version)| version),
        start,
        duration_ms: 10_000,
        outcome: Outcome::Played,
        skip_reason: None,
        country: Some("DE".into()),
        region: None,
        os: "Debian 12".into(),
        agent_version: "0.1.0".into(),
    }
}

/// `event` skipped instead, for `reason`: it played for no time.
pub fn skipped(event: PlayEvent, reason: &str) -> PlayEvent {
    PlayEvent {
        duration_ms: 0,
        outcome: Outcome::Skipped,
        skip_reason: Some(reason.to_owned()),
        ..event
    }
}

/// The event ids of a usage report page (`GET /api/v1/reports/usage`), in
/// the page's order.
pub fn ids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}
