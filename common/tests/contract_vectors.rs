//! The signed format is a contract (DESIGN §4): fixed vectors made by
//! another Ed25519 implementation (Python `cryptography` over OpenSSL, from
//! fixed seeds) verify here byte for byte, and this crate's signer writes
//! exactly those bytes again (Ed25519 signatures are deterministic). So a
//! document signed by a hub of before issue 20 verifies on an agent of
//! after, and the other way round (S1, S2, issue 20).
//!
//! Also: the typed payload is parsed from the signed bytes as received —
//! nothing is encoded again — and the payload parser accepts exactly what
//! `serde_json` over the raw bytes accepts (property test).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use signet_common::digest::Sha256;
use signet_common::documents::{GroupKind, GroupManifest, HubTime};
use signet_common::envelope::{self, DocumentKind, SigningKey, VerifyError};
use signet_common::trust::{TrustStore, TrustUpdate};

/// PKCS#8 v2 of the Ed25519 key with the seed 32 × 0x11 (the root).
const ROOT_PKCS8: &str = "MFMCAQEwBQYDK2VwBCIEIBERERERERERERERERERERERERERERERERERERERERERoSMDIQDQSrIydCu0qzoTaL1GFeTm0CJKtxoBa6+FIKMyyXeHNw==";
/// PKCS#8 v2 of the Ed25519 key with the seed 32 × 0x22 (the signing key).
const SIGNING_PKCS8: &str = "MFMCAQEwBQYDK2VwBCIEICIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIioSMDIQCgmqX0emdZgC/5VfjcLSoUpcmdI76X+GQSf/k4NFWk8A==";
/// The root-signed trust document certifying the signing key.
const TRUST: &str = r#"{"kind":"trust","key_id":"10ba682c8ad13513","payload":"eyJ2ZXJzaW9uIjoxLCJpc3N1ZWRfYXQiOiIyMDI2LTA2LTAxVDAwOjAwOjAwWiIsInJvb3Rfa2V5X2lkIjoiMTBiYTY4MmM4YWQxMzUxMyIsInNpZ25pbmdfa2V5cyI6W3sia2V5X2lkIjoiMTMyNWI4NTBjMjg3MTkxNiIsInB1YmxpY19rZXkiOiJvSnFsOUhwbldZQXYrVlg0M0MwcUZLWEpuU08rbC9oa0VuLzVPRFJWcFBBPSIsIm5vdF9iZWZvcmUiOiIyMDI2LTA1LTMxVDAwOjAwOjAwWiIsIm5vdF9hZnRlciI6IjIwMjctMDYtMDFUMDA6MDA6MDBaIn1dfQ==","sig":"Fm1ZhE6dGBfwO1cDlzj7F4MvFS56G9m47iz882r0uQQC+cGNn2eR/gG2FDS/nN+5csvuFE8AbCZB6/k7ZUbBDQ=="}"#;
/// A one-item node manifest, signed by the signing key.
const MANIFEST: &str = r#"{"kind":"group_manifest","key_id":"1325b850c2871916","payload":"eyJ2ZXJzaW9uIjozLCJpc3N1ZWRfYXQiOiIyMDI2LTA2LTAxVDAwOjAwOjAwWiIsImV4cGlyZXNfYXQiOiIyMDI2LTA2LTA4VDAwOjAwOjAwWiIsImdyb3VwX2lkIjoibm9kZS0wMDAxIiwiZ3JvdXBfa2luZCI6Im5vZGUiLCJpdGVtcyI6W3siaWQiOiJpdGVtLTAwMDAxIiwia2luZCI6InZpZGVvIiwic2hhMjU2IjoiYzg1Njc3OTc3ZDMwYmZjNjQ4MjBiYTFlZDk3YjYyZGFiMGM4ZTk0MDRhNDZjZTI0Nzk2M2E4MDU0YTU5YzZkOSIsInNpemUiOjEwMDAwMDEsInVybCI6Imh0dHBzOi8vaHViLmV4YW1wbGUvYXBpL3YxL2RldmljZS9jb250ZW50L2M4NTY3Nzk3N2QzMGJmYzY0ODIwYmExZWQ5N2I2MmRhYjBjOGU5NDA0YTQ2Y2UyNDc5NjNhODA1NGE1OWM2ZDkiLCJhcHByb3ZhbCI6ImFjdGl2ZSIsImFwcHJvdmVkX2hhc2giOiJjODU2Nzc5NzdkMzBiZmM2NDgyMGJhMWVkOTdiNjJkYWIwYzhlOTQwNGE0NmNlMjQ3OTYzYTgwNTRhNTljNmQ5In1dLCJzY2hlZHVsZSI6eyJlbnRyaWVzIjpbeyJpZCI6ImFsbC1kYXkiLCJpdGVtcyI6W3siaXRlbSI6Iml0ZW0tMDAwMDEiLCJkdXJhdGlvbl9tcyI6MTAwMDB9XSwiZGF5cGFydHMiOltdLCJ3ZWVrZGF5cyI6W10sImRhdGVzIjpudWxsLCJwcmlvcml0eSI6MCwibGF5ZXIiOiJtYWluIn1dLCJtZXJnZSI6eyJtb2RlIjoic2VxdWVuY2UifSwiZGVmYXVsdF9pdGVtIjpudWxsfX0=","sig":"tWZWCEzF895Je+1LT/67VmOrLUZOF3JdiQD131Q6miucRzb9j1DGgs2sdXR6Z282xBB8itauvdjwRWwrK/hbCA=="}"#;
/// The item's hash in [`MANIFEST`]: SHA-256 of `item-00001`.
const ITEM_SHA256: &str = "c85677977d30bfc64820ba1ed97b62dab0c8e9404a46ce247963a8054a59c6d9";

fn key(pkcs8: &str) -> SigningKey {
    SigningKey::from_pkcs8(&BASE64.decode(pkcs8).unwrap()).unwrap()
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, day, hour, 0, 0)
        .single()
        .unwrap()
}

/// The payload bytes an envelope carries, decoded independently of the crate.
fn payload_of(envelope: &str) -> Vec<u8> {
    let object: serde_json::Value = serde_json::from_str(envelope).unwrap();
    BASE64.decode(object["payload"].as_str().unwrap()).unwrap()
}

/// The store a device pinned at pairing, holding [`TRUST`].
fn device_store() -> TrustStore {
    let mut store = TrustStore::new(key(ROOT_PKCS8).public_key());
    assert!(matches!(
        store.apply_trust(TRUST.as_bytes()),
        Ok(TrustUpdate::Updated { version: 1, .. })
    ));
    store
}

#[test]
fn s1_s2_documents_signed_elsewhere_verify_and_keep_their_bytes() {
    let (root, signing) = (key(ROOT_PKCS8), key(SIGNING_PKCS8));
    assert_eq!(root.key_id().to_string(), "10ba682c8ad13513");
    assert_eq!(signing.key_id().to_string(), "1325b850c2871916");
    let store = device_store();
    assert_eq!(store.signing_keys()[0].key_id, signing.key_id());

    let verified = store
        .verify::<GroupManifest>(MANIFEST.as_bytes(), at(1, 12))
        .unwrap();
    let manifest = verified.payload();
    assert_eq!(
        (manifest.version, manifest.group_id.as_str()),
        (3, "node-0001")
    );
    assert_eq!(manifest.group_kind, GroupKind::Node);
    assert_eq!(manifest.expires_at, at(8, 0));
    assert_eq!(manifest.items.len(), 1);
    assert_eq!(manifest.items[0].sha256.to_string(), ITEM_SHA256);
    assert_eq!(
        manifest.items[0].approved_hash,
        Some(manifest.items[0].sha256)
    );
    assert!(manifest.items[0].url.ends_with(ITEM_SHA256));
    assert_eq!(manifest.schedule.entries[0].items[0].duration_ms, 10_000);
    assert_eq!(verified.key_id(), signing.key_id());
    // The bytes the signature covers are the ones kept and hashed: as
    // received, not the typed document encoded again.
    let payload = payload_of(MANIFEST);
    assert_eq!(verified.payload_bytes(), payload.as_slice());
    assert_eq!(verified.hash(), Sha256::of(&payload));

    // One bit of the payload or of the signature changed: refused.
    for field in ["payload", "sig"] {
        let mut object: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        let mut bytes = BASE64.decode(object[field].as_str().unwrap()).unwrap();
        bytes[7] ^= 0x01;
        object[field] = BASE64.encode(&bytes).into();
        let tampered = serde_json::to_vec(&object).unwrap();
        assert_eq!(
            store.verify::<GroupManifest>(&tampered, at(1, 12)),
            Err(VerifyError::BadSignature),
            "{field}"
        );
    }
}

#[test]
fn s1_s2_this_signer_writes_the_vectors_byte_for_byte() {
    let (root, signing) = (key(ROOT_PKCS8), key(SIGNING_PKCS8));
    // The wire form: the same payload bytes give the same envelope bytes.
    assert_eq!(
        envelope::sign(DocumentKind::Trust, &payload_of(TRUST), &root),
        TRUST.as_bytes()
    );
    assert_eq!(
        envelope::sign(DocumentKind::GroupManifest, &payload_of(MANIFEST), &signing),
        MANIFEST.as_bytes()
    );
    // And the hub's path, typed document → payload → envelope, writes them too.
    let store = device_store();
    let manifest = store
        .verify::<GroupManifest>(MANIFEST.as_bytes(), at(1, 12))
        .unwrap()
        .into_payload();
    assert_eq!(
        envelope::sign_document(&manifest, &signing).unwrap(),
        MANIFEST.as_bytes()
    );
    let trust: signet_common::trust::TrustDocument =
        serde_json::from_slice(&payload_of(TRUST)).unwrap();
    assert_eq!(
        envelope::sign_document(&trust, &root).unwrap(),
        TRUST.as_bytes()
    );
}

/// One edit of a payload: a byte put in, taken out or replaced.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, u8),
    Remove(usize),
    Replace(usize, u8),
}

fn edit(payload: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = payload.to_vec();
    for e in edits {
        match *e {
            Edit::Insert(at, byte) => out.insert(at % (out.len() + 1), byte),
            Edit::Remove(at) if !out.is_empty() => {
                out.remove(at % out.len());
            }
            Edit::Replace(at, byte) if !out.is_empty() => {
                let at = at % out.len();
                out[at] = byte;
            }
            Edit::Remove(_) | Edit::Replace(..) => {}
        }
    }
    out
}

/// Bytes that matter to JSON and UTF-8: quotes, escapes, structure, digits,
/// and lead, continuation and never-valid UTF-8 bytes.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => proptest::sample::select(
            b"\"\\{}[],:0123456789.-eE tnufalsr/".to_vec()
        ),
        1 => proptest::sample::select(vec![0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xf5, 0xff]),
        1 => any::<u8>(),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), interesting_byte()).prop_map(|(at, b)| Edit::Insert(at, b)),
            any::<usize>().prop_map(Edit::Remove),
            (any::<usize>(), interesting_byte()).prop_map(|(at, b)| Edit::Replace(at, b)),
        ],
        1..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// S1, issue 20: the payload parser (one UTF-8 pass, then the typed
    /// parse) refuses a correctly signed payload exactly when `serde_json`
    /// over the raw bytes refuses it, and otherwise yields the same
    /// document — for edited manifests and hub times.
    #[test]
    fn s1_payload_parse_accepts_exactly_what_serde_json_accepts(
        edits in edits(),
        hub_time in any::<bool>(),
    ) {
        let signing = key(SIGNING_PKCS8);
        let store = device_store();
        let now = at(1, 12);
        if hub_time {
            let original = br#"{"version":1,"issued_at":"2026-06-01T12:00:00Z","time":"2026-06-01T12:00:00Z"}"#;
            let payload = edit(original, &edits);
            let signed = envelope::sign(DocumentKind::HubTime, &payload, &signing);
            let ours = store.verify::<HubTime>(&signed, now);
            match serde_json::from_slice::<HubTime>(&payload) {
                Ok(doc) => prop_assert_eq!(ours.map(|v| v.into_payload()), Ok(doc)),
                Err(_) => prop_assert!(
                    matches!(ours, Err(VerifyError::MalformedPayload { kind: DocumentKind::HubTime, .. })),
                    "{:?}", ours
                ),
            }
        } else {
            let payload = edit(&payload_of(MANIFEST), &edits);
            let signed = envelope::sign(DocumentKind::GroupManifest, &payload, &signing);
            let ours = store.verify::<GroupManifest>(&signed, now);
            match serde_json::from_slice::<GroupManifest>(&payload) {
                // An edit may leave a valid manifest that has expired.
                Ok(doc) if doc.expires_at <= now => prop_assert!(
                    matches!(ours, Err(VerifyError::Expired { .. })), "{:?}", ours
                ),
                Ok(doc) => {
                    let verified = ours.unwrap();
                    prop_assert_eq!(verified.payload_bytes(), payload.as_slice());
                    prop_assert_eq!(verified.into_payload(), doc);
                }
                Err(_) => prop_assert!(
                    matches!(ours, Err(VerifyError::MalformedPayload { kind: DocumentKind::GroupManifest, .. })),
                    "{:?}", ours
                ),
            }
        }
    }
}
