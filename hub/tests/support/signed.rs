//! Signed documents as an agent sees them: the trust store it pins from
//! the hub's key files, and verification of every published message.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;

use base64::Engine as _;
use signet_common::documents::{DeviceAssignment, GroupManifest};
use signet_common::envelope::PublicKey;
use signet_common::ids::DeviceId;
use signet_common::trust::TrustStore;
use signet_hub::publish::RetainedMessage;

/// The trust store an agent paired with this hub holds: `root.pub` as
/// pinned (standard base64 of 32 raw bytes), then `signing.trust` applied.
pub fn device_trust(data: &std::path::Path) -> TrustStore {
    let line = std::fs::read_to_string(data.join("keys/root.pub")).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .unwrap();
    let root = PublicKey::from_bytes(raw.try_into().unwrap());
    let mut trust = TrustStore::new(root);
    trust
        .apply_trust(&std::fs::read(data.join("keys/signing.trust")).unwrap())
        .unwrap();
    trust
}

/// Verifies every message as an agent would and returns the manifests and
/// assignments by subject; panics on anything else or any failure.
pub fn verify_all(
    trust: &TrustStore,
    messages: &[RetainedMessage],
    now: chrono::DateTime<chrono::Utc>,
) -> (
    BTreeMap<String, GroupManifest>,
    BTreeMap<String, DeviceAssignment>,
) {
    let mut manifests = BTreeMap::new();
    let mut assignments = BTreeMap::new();
    for message in messages {
        let parts: Vec<&str> = message.topic.split('/').collect();
        match parts.as_slice() {
            ["signet", "v1", "groups", group, "manifest"] => {
                let manifest = trust
                    .verify::<GroupManifest>(&message.payload, now)
                    .unwrap()
                    .into_payload();
                manifest.validate().unwrap();
                assert_eq!(&manifest.group_id, group);
                manifests.insert((*group).to_owned(), manifest);
            }
            ["signet", "v1", "devices", device, "assignment"] => {
                let assignment = trust
                    .verify::<DeviceAssignment>(&message.payload, now)
                    .unwrap()
                    .into_payload();
                assignment.validate_for(&DeviceId::from(*device)).unwrap();
                assignments.insert((*device).to_owned(), assignment);
            }
            ["signet", "v1", "trust"] => {
                let mut fresh = TrustStore::new(trust.root());
                fresh.apply_trust(&message.payload).unwrap();
            }
            _ => panic!("not a contract topic: {}", message.topic),
        }
    }
    (manifests, assignments)
}
