//! Builders shared by the integration tests: a key hierarchy and documents.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use signet_common::documents::{Command, CommandAction, HubTime};
use signet_common::envelope::{self, DocumentKind, SigningKey};
use signet_common::ids::DeviceId;
use signet_common::trust::{CertifiedKey, TrustDocument, TrustStore};

/// 2026-06-01T12:00:00Z: a fixed "now" for tests.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
}

pub fn new_key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

/// A certificate for `key` valid from `t0 - 30 days` to `t0 + 30 days`.
pub fn cert(key: &SigningKey) -> CertifiedKey {
    cert_window(key, t0() - TimeDelta::days(30), t0() + TimeDelta::days(30))
}

pub fn cert_window(
    key: &SigningKey,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> CertifiedKey {
    CertifiedKey {
        key_id: key.key_id(),
        public_key: key.public_key(),
        not_before,
        not_after,
    }
}

pub fn trust_doc(version: u64, root: &SigningKey, keys: Vec<CertifiedKey>) -> TrustDocument {
    TrustDocument {
        version,
        issued_at: t0(),
        root_key_id: root.key_id(),
        root_public_key: None,
        signing_keys: keys,
    }
}

/// A root, one signing key, and a store that pinned the root and holds the
/// version-1 trust document.
pub struct Hierarchy {
    pub root: SigningKey,
    pub signing: SigningKey,
    pub store: TrustStore,
}

impl Hierarchy {
    pub fn new() -> Self {
        let root = new_key();
        let signing = new_key();
        let mut store = TrustStore::new(root.public_key());
        let trust =
            envelope::sign_document(&trust_doc(1, &root, vec![cert(&signing)]), &root).unwrap();
        store.apply_trust(&trust).unwrap();
        Self {
            root,
            signing,
            store,
        }
    }

    pub fn hub_time(&self, version: u64) -> Vec<u8> {
        envelope::sign_document(&hub_time(version), &self.signing).unwrap()
    }
}

pub fn hub_time(version: u64) -> HubTime {
    HubTime {
        version,
        issued_at: t0(),
        time: t0(),
    }
}

pub fn command(version: u64, expires_at: DateTime<Utc>) -> Command {
    Command {
        version,
        issued_at: t0(),
        expires_at,
        device_id: DeviceId::from("dev-1"),
        nonce: format!("nonce-{version}"),
        action: CommandAction::Screenshot,
    }
}

/// Re-signs raw payload bytes as `kind` (for malformed-payload tests).
pub fn sign_raw(kind: DocumentKind, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    envelope::sign(kind, payload, key)
}
