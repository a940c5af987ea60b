//! Signed-envelope verification (S1, S2, DESIGN §4): one test per refusal
//! path, asserting the specific error, plus tamper and fuzz properties.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::TimeDelta;
use proptest::prelude::*;
use serde_json::{Value, json};
use signet_common::documents::{Command, HubTime};
use signet_common::envelope::{self, DocumentKind, MAX_DOCUMENT_BYTES, VerifyError};
use signet_common::trust::TrustStore;
use support::*;

/// Replaces one top-level field of an envelope with `value`.
fn with_field(envelope: &[u8], field: &str, value: Value) -> Vec<u8> {
    let mut object: Value = serde_json::from_slice(envelope).unwrap();
    object[field] = value;
    serde_json::to_vec(&object).unwrap()
}

fn decoded(envelope: &[u8], field: &str) -> Vec<u8> {
    let object: Value = serde_json::from_slice(envelope).unwrap();
    BASE64.decode(object[field].as_str().unwrap()).unwrap()
}

#[test]
fn s1_round_trip_verifies_and_reports_key_and_payload_hash() {
    let h = Hierarchy::new();
    let bytes = h.hub_time(7);
    let verified = h.store.verify::<HubTime>(&bytes, t0()).unwrap();
    assert_eq!(verified.payload(), &hub_time(7));
    assert_eq!(verified.key_id(), h.signing.key_id());
    let payload = decoded(&bytes, "payload");
    assert_eq!(verified.hash(), signet_common::digest::Sha256::of(&payload));
}

#[test]
fn s1_envelope_is_the_contract_json_object() {
    let h = Hierarchy::new();
    let object: Value = serde_json::from_slice(&h.hub_time(1)).unwrap();
    let keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4);
    for key in ["kind", "key_id", "payload", "sig"] {
        assert!(keys.contains(&key), "missing {key}");
    }
    assert_eq!(object["kind"], "hub_time");
    assert_eq!(object["key_id"], h.signing.key_id().to_string());
    // The signature is over kind || 0x00 || payload, checkable with ring alone.
    let mut message = b"hub_time\0".to_vec();
    message.extend(decoded(&h.hub_time(1), "payload"));
    let sig = decoded(&h.hub_time(1), "sig");
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ED25519,
        h.signing.public_key().as_bytes(),
    )
    .verify(&message, &sig)
    .unwrap();
}

#[test]
fn design_key_id_is_first_16_hex_digits_of_sha256_of_public_key() {
    let key = new_key();
    let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_bytes());
    let expected: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(key.key_id().to_string(), expected);
    assert_eq!(expected.parse::<envelope::KeyId>().unwrap(), key.key_id());
}

#[test]
fn s1_oversized_document_is_refused_before_parsing() {
    let h = Hierarchy::new();
    // Not even JSON: the size check must come first.
    let bytes = vec![b'x'; MAX_DOCUMENT_BYTES + 1];
    assert_eq!(
        h.store.verify::<HubTime>(&bytes, t0()),
        Err(VerifyError::Oversized {
            size: MAX_DOCUMENT_BYTES + 1,
            max: MAX_DOCUMENT_BYTES
        })
    );
    // A validly signed document over the limit is refused too.
    let padding = "p".repeat(MAX_DOCUMENT_BYTES);
    let payload =
        serde_json::to_vec(&json!({"version": 1, "issued_at": t0(), "time": t0(), "pad": padding}))
            .unwrap();
    let big = sign_raw(DocumentKind::HubTime, &payload, &h.signing);
    assert!(matches!(
        h.store.verify::<HubTime>(&big, t0()),
        Err(VerifyError::Oversized { .. })
    ));
}

#[test]
fn s2_trust_signed_by_another_root_is_refused() {
    let ours = Hierarchy::new();
    let theirs = Hierarchy::new();
    let mut store = ours.store.clone();
    let foreign_trust = envelope::sign_document(
        &trust_doc(2, &theirs.root, vec![cert(&theirs.signing)]),
        &theirs.root,
    )
    .unwrap();
    assert_eq!(
        store.apply_trust(&foreign_trust),
        Err(VerifyError::NotSignedByRoot {
            root: ours.root.key_id(),
            found: theirs.root.key_id()
        })
    );
    assert_eq!(
        store, ours.store,
        "a refused trust document changes nothing"
    );
}

#[test]
fn s2_document_signed_by_a_key_of_another_hierarchy_is_refused() {
    let ours = Hierarchy::new();
    let theirs = Hierarchy::new();
    assert_eq!(
        ours.store.verify::<HubTime>(&theirs.hub_time(1), t0()),
        Err(VerifyError::UnknownKey(theirs.signing.key_id()))
    );
}

#[test]
fn s2_document_signed_by_the_root_itself_is_refused() {
    // The root certifies signing keys; it does not sign operational documents.
    let h = Hierarchy::new();
    let by_root = envelope::sign_document(&hub_time(1), &h.root).unwrap();
    assert_eq!(
        h.store.verify::<HubTime>(&by_root, t0()),
        Err(VerifyError::UnknownKey(h.root.key_id()))
    );
}

#[test]
fn s2_no_trust_document_means_no_signing_key() {
    let h = Hierarchy::new();
    let store = TrustStore::new(h.root.public_key());
    assert_eq!(
        store.verify::<HubTime>(&h.hub_time(1), t0()),
        Err(VerifyError::NoTrust)
    );
}

#[test]
fn s2_signing_key_outside_its_validity_window_is_refused() {
    let h = Hierarchy::new();
    let not_before = t0() - TimeDelta::days(30);
    let not_after = t0() + TimeDelta::days(30);
    let bytes = h.hub_time(1);
    assert_eq!(
        h.store
            .verify::<HubTime>(&bytes, not_before - TimeDelta::seconds(1)),
        Err(VerifyError::KeyNotYetValid {
            key_id: h.signing.key_id(),
            not_before
        })
    );
    assert_eq!(
        h.store.verify::<HubTime>(&bytes, not_after),
        Err(VerifyError::KeyExpired {
            key_id: h.signing.key_id(),
            not_after
        })
    );
    assert!(
        h.store
            .verify::<HubTime>(&bytes, not_after - TimeDelta::seconds(1))
            .is_ok()
    );
    assert!(h.store.verify::<HubTime>(&bytes, not_before).is_ok());
}

#[test]
fn s1_expired_document_is_refused() {
    let h = Hierarchy::new();
    let expires_at = t0() + TimeDelta::minutes(5);
    let bytes = envelope::sign_document(&command(1, expires_at), &h.signing).unwrap();
    assert!(
        h.store
            .verify::<Command>(&bytes, expires_at - TimeDelta::seconds(1))
            .is_ok()
    );
    assert_eq!(
        h.store.verify::<Command>(&bytes, expires_at),
        Err(VerifyError::Expired { expires_at })
    );
}

#[test]
fn s1_signature_by_the_right_key_over_other_bytes_is_refused() {
    let h = Hierarchy::new();
    let other_sig = decoded(&h.hub_time(2), "sig");
    let spliced = with_field(&h.hub_time(1), "sig", json!(BASE64.encode(other_sig)));
    assert_eq!(
        h.store.verify::<HubTime>(&spliced, t0()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn s1_a_payload_cannot_be_replayed_as_another_kind() {
    let h = Hierarchy::new();
    let bytes = h.hub_time(1);
    // Asking for another kind: refused by kind.
    assert_eq!(
        h.store.verify::<Command>(&bytes, t0()),
        Err(VerifyError::WrongKind {
            expected: DocumentKind::Command,
            found: DocumentKind::HubTime
        })
    );
    // Relabelling the envelope: the signature covers the kind.
    let relabelled = with_field(&bytes, "kind", json!("command"));
    assert_eq!(
        h.store.verify::<Command>(&relabelled, t0()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn s1_unknown_kind_is_refused() {
    let h = Hierarchy::new();
    let bytes = with_field(&h.hub_time(1), "kind", json!("firmware"));
    assert_eq!(
        h.store.verify::<HubTime>(&bytes, t0()),
        Err(VerifyError::UnknownKind("firmware".into()))
    );
}

#[test]
fn s1_malformed_envelopes_are_refused_as_malformed() {
    let h = Hierarchy::new();
    let good = h.hub_time(1);
    let mut unknown_field: Value = serde_json::from_slice(&good).unwrap();
    unknown_field["extra"] = json!(1);
    let mut missing: Value = serde_json::from_slice(&good).unwrap();
    missing.as_object_mut().unwrap().remove("sig");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"hello".to_vec()),
        ("array", b"[]".to_vec()),
        ("unknown field", serde_json::to_vec(&unknown_field).unwrap()),
        ("missing field", serde_json::to_vec(&missing).unwrap()),
        (
            "payload not base64",
            with_field(&good, "payload", json!("***")),
        ),
        ("sig not base64", with_field(&good, "sig", json!("!!"))),
        (
            "sig too short",
            with_field(&good, "sig", json!(BASE64.encode([0u8; 63]))),
        ),
        (
            "key id uppercase",
            with_field(
                &good,
                "key_id",
                json!(h.signing.key_id().to_string().to_uppercase()),
            ),
        ),
        ("key id short", with_field(&good, "key_id", json!("abcd"))),
        ("kind not a string", with_field(&good, "kind", json!(5))),
    ];
    for (name, bytes) in cases {
        let result = h.store.verify::<HubTime>(&bytes, t0());
        assert!(
            matches!(result, Err(VerifyError::Malformed(_))),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn s1_correctly_signed_but_malformed_payload_is_refused_after_the_signature() {
    let h = Hierarchy::new();
    let bytes = sign_raw(DocumentKind::HubTime, br#"{"version":"one"}"#, &h.signing);
    assert!(matches!(
        h.store.verify::<HubTime>(&bytes, t0()),
        Err(VerifyError::MalformedPayload {
            kind: DocumentKind::HubTime,
            ..
        })
    ));
    // The same malformed payload with a bad signature is refused for the signature.
    let forged = with_field(&bytes, "sig", json!(BASE64.encode([7u8; 64])));
    assert_eq!(
        h.store.verify::<HubTime>(&forged, t0()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn s1_json_escaped_base64_is_accepted() {
    // Some encoders write "/" as "\/"; the envelope must still verify.
    let h = Hierarchy::new();
    for version in 1..200 {
        let bytes = h.hub_time(version);
        let text = String::from_utf8(bytes).unwrap();
        if text.contains('/') {
            let escaped = text.replace('/', "\\/");
            assert!(h.store.verify::<HubTime>(escaped.as_bytes(), t0()).is_ok());
            return;
        }
    }
    panic!("no envelope with a '/' in 200 tries");
}

fn hierarchy_and_document() -> (Hierarchy, Vec<u8>) {
    let h = Hierarchy::new();
    let doc = envelope::sign_document(&command(3, t0() + TimeDelta::hours(1)), &h.signing).unwrap();
    (h, doc)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// S1: flipping any single bit of the envelope's bytes fails verification.
    #[test]
    fn s1_any_flipped_envelope_bit_fails(seed in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (h, doc) = hierarchy_and_document();
        let mut bytes = doc.clone();
        let i = seed.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(h.store.verify::<Command>(&bytes, t0()).is_err(), "flip at byte {} bit {} verified", i, bit);
    }

    /// S1: flipping any bit of the payload, re-encoded as valid base64, fails.
    #[test]
    fn s1_any_flipped_payload_bit_fails(seed in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (h, doc) = hierarchy_and_document();
        let mut payload = decoded(&doc, "payload");
        let i = seed.index(payload.len());
        payload[i] ^= 1 << bit;
        let tampered = with_field(&doc, "payload", json!(BASE64.encode(&payload)));
        prop_assert_eq!(h.store.verify::<Command>(&tampered, t0()), Err(VerifyError::BadSignature));
    }

    /// S1: flipping any bit of the signature, re-encoded as valid base64, fails.
    #[test]
    fn s1_any_flipped_signature_bit_fails(seed in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (h, doc) = hierarchy_and_document();
        let mut sig = decoded(&doc, "sig");
        let i = seed.index(sig.len());
        sig[i] ^= 1 << bit;
        let tampered = with_field(&doc, "sig", json!(BASE64.encode(&sig)));
        prop_assert_eq!(h.store.verify::<Command>(&tampered, t0()), Err(VerifyError::BadSignature));
    }

    /// S1: verify returns an error, never panics, on arbitrary bytes.
    #[test]
    fn s1_verify_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let h = Hierarchy::new();
        prop_assert!(h.store.verify::<Command>(&bytes, t0()).is_err());
        let mut store = h.store.clone();
        prop_assert!(store.apply_trust(&bytes).is_err());
    }

    /// S1: nor on envelope-shaped JSON with arbitrary field contents.
    #[test]
    fn s1_verify_never_panics_on_arbitrary_envelope_fields(
        kind in prop_oneof![Just("command".to_string()), Just("trust".to_string()), ".{0,20}"],
        key_id in "[0-9a-f]{0,20}",
        payload in "[A-Za-z0-9+/=]{0,200}",
        sig in "[A-Za-z0-9+/=]{0,100}",
    ) {
        let h = Hierarchy::new();
        let bytes = serde_json::to_vec(&json!({"kind": kind, "key_id": key_id, "payload": payload, "sig": sig})).unwrap();
        prop_assert!(h.store.verify::<Command>(&bytes, t0()).is_err());
    }
}
