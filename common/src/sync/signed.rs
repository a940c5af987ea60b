//! Device-signed reports (S11): the device state and proof-of-play batches
//! as signed envelopes, made with the device key the agent generated and
//! registered at pairing.
//!
//! Owns: the two report kinds ([`DocumentKind::DeviceState`],
//! [`DocumentKind::DeviceEvents`]), signing a report ([`sign_report`]) and
//! verifying one against one device's registered key ([`verify_report`]),
//! with every refusal named ([`ReportError`], with a bounded
//! [`ReportError::reason`] label for metrics). Must not: look keys up or
//! decide what a refusal costs — the hub finds the registered key of the
//! device the topic (or the authenticated HTTP identity) names, and counts
//! and logs refusals.
//!
//! The wire form is the contract envelope of [`crate::envelope`]
//! (`{"kind", "key_id", "payload", "sig"}`, signature over
//! `kind || 0x00 || payload`); the key id is the device key's id; the
//! payload is the [`DeviceState`] or [`EventBatch`] JSON exactly as it was
//! sent unsigned before. A report is accepted only when, in this order: its
//! size is within [`MAX_SIGNED_REPORT_BYTES`] (checked before anything is
//! parsed), it is an envelope of the expected kind, its key id is the
//! registered key's, the signature verifies with that key, the payload is
//! a report within its bounds ([`super::parse`]), and the report names no
//! device but the one expected. So a report signed by one device can never
//! be replayed as another's: another device's key has another id, and the
//! payload names the device that signed it.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::{Checked, DeviceState, EventBatch, MAX_MESSAGE_BYTES, WireError, parse};
use crate::envelope::{self, DocumentKind, KeyId, PublicKey, SigningKey, VerifyError};
use crate::ids::DeviceId;

/// Room in a signed report for the envelope around the base64 payload:
/// `{"kind":"device_events","key_id":"<16 hex>","payload":"","sig":"<88>"}`
/// is about 150 bytes.
const ENVELOPE_OVERHEAD: usize = 256;

/// The largest signed report, in bytes: a report of at most
/// [`MAX_MESSAGE_BYTES`] in base64, plus the envelope. Anything larger is
/// refused before it is parsed.
pub const MAX_SIGNED_REPORT_BYTES: usize = MAX_MESSAGE_BYTES.div_ceil(3) * 4 + ENVELOPE_OVERHEAD;

/// A report a device signs: its kind and which devices it speaks about.
pub trait Report: Checked + Serialize + DeserializeOwned {
    /// The kind it is signed as.
    const KIND: DocumentKind;

    /// The first device the report names that is not `device`, if any.
    fn other_device(&self, device: &DeviceId) -> Option<&DeviceId>;
}

impl Report for DeviceState {
    const KIND: DocumentKind = DocumentKind::DeviceState;

    fn other_device(&self, device: &DeviceId) -> Option<&DeviceId> {
        (&self.device_id != device).then_some(&self.device_id)
    }
}

impl Report for EventBatch {
    const KIND: DocumentKind = DocumentKind::DeviceEvents;

    fn other_device(&self, device: &DeviceId) -> Option<&DeviceId> {
        self.events
            .iter()
            .map(|event| &event.device_id)
            .find(|named| *named != device)
    }
}

/// Why a report was not signed, or was refused (S11).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Larger than [`MAX_SIGNED_REPORT_BYTES`]; nothing was parsed.
    #[error("report is {size} bytes, over the {max}-byte limit")]
    Oversized {
        /// The size offered.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A JSON object without a signature: a report of an agent from before
    /// S11, or a forgery.
    #[error("report is not signed")]
    Unsigned,
    /// Not a signed envelope (not JSON, a field missing or badly encoded).
    #[error("malformed signed report: {0}")]
    Malformed(String),
    /// A signed document, but not the report expected here.
    #[error("expected a {expected} report, got a {found:?} document")]
    WrongKind {
        /// The kind expected.
        expected: DocumentKind,
        /// The kind the envelope names (as sent, shortened).
        found: String,
    },
    /// Signed by a key that is not the device's registered key (a wrong
    /// key, or another device's).
    #[error("signed by key {found}, not by the device's registered key {registered}")]
    WrongKey {
        /// The id of the key registered for the device.
        registered: KeyId,
        /// The id the envelope names.
        found: KeyId,
    },
    /// The envelope names the registered key, but the signature does not
    /// verify with it.
    #[error("bad signature")]
    BadSignature,
    /// Signed correctly, but the payload is not a report within its bounds.
    #[error("signed report payload: {0}")]
    Payload(WireError),
    /// Signed correctly by this device, but about another device (a payload
    /// moved to another device's topic is refused by the key check first).
    #[error("report for device {expected} names device {named}")]
    OtherDevice {
        /// The device the topic or the HTTP identity names.
        expected: DeviceId,
        /// The device the payload names.
        named: DeviceId,
    },
    /// The report to sign is over [`MAX_MESSAGE_BYTES`] or cannot be
    /// serialized: the agent's own bug, never sent.
    #[error("report cannot be signed: {0}")]
    Unsignable(String),
}

impl ReportError {
    /// A short, bounded label for the refusal (a metric label, never an
    /// id): `oversized`, `unsigned`, `malformed`, `wrong_kind`, `wrong_key`,
    /// `bad_signature`, `bad_payload`, `other_device`, `unsignable`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Unsigned => "unsigned",
            Self::Malformed(_) => "malformed",
            Self::WrongKind { .. } => "wrong_kind",
            Self::WrongKey { .. } => "wrong_key",
            Self::BadSignature => "bad_signature",
            Self::Payload(_) => "bad_payload",
            Self::OtherDevice { .. } => "other_device",
            Self::Unsignable(_) => "unsignable",
        }
    }
}

/// Serializes `report` and signs it with the device key as its kind;
/// returns the envelope's JSON bytes (at most
/// [`MAX_SIGNED_REPORT_BYTES`]).
///
/// # Errors
/// [`ReportError::Unsignable`] when the report does not serialize or its
/// JSON is over [`MAX_MESSAGE_BYTES`].
pub fn sign_report<R: Report>(report: &R, key: &SigningKey) -> Result<Vec<u8>, ReportError> {
    let payload = serde_json::to_vec(report).map_err(|e| ReportError::Unsignable(e.to_string()))?;
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(ReportError::Unsignable(format!(
            "{} bytes of JSON, over the {MAX_MESSAGE_BYTES}-byte limit",
            payload.len()
        )));
    }
    Ok(envelope::sign(R::KIND, &payload, key))
}

/// Verifies a signed report from `device` against `key`, the public key
/// registered for `device` at pairing, and returns the checked report.
///
/// # Errors
/// The [`ReportError`] of the first check that fails, in the order of the
/// module documentation.
pub fn verify_report<R: Report>(
    bytes: &[u8],
    device: &DeviceId,
    key: &PublicKey,
) -> Result<R, ReportError> {
    if bytes.len() > MAX_SIGNED_REPORT_BYTES {
        return Err(ReportError::Oversized {
            size: bytes.len(),
            max: MAX_SIGNED_REPORT_BYTES,
        });
    }
    let opened = envelope::open(bytes).map_err(|error| match error {
        VerifyError::UnknownKind(found) => ReportError::WrongKind {
            expected: R::KIND,
            found,
        },
        _ if is_unsigned(bytes) => ReportError::Unsigned,
        other => ReportError::Malformed(other.to_string()),
    })?;
    if opened.kind() != R::KIND {
        return Err(ReportError::WrongKind {
            expected: R::KIND,
            found: opened.kind().as_str().to_owned(),
        });
    }
    if opened.key_id() != key.key_id() {
        return Err(ReportError::WrongKey {
            registered: key.key_id(),
            found: opened.key_id(),
        });
    }
    if !opened.signed_by(key) {
        return Err(ReportError::BadSignature);
    }
    let report: R = parse(opened.payload()).map_err(ReportError::Payload)?;
    if let Some(named) = report.other_device(device) {
        return Err(ReportError::OtherDevice {
            expected: device.clone(),
            named: named.clone(),
        });
    }
    Ok(report)
}

/// Whether `bytes` are a JSON object without a `sig` field: an unsigned
/// report rather than a broken envelope. Called only on bytes already
/// within [`MAX_SIGNED_REPORT_BYTES`].
fn is_unsigned(bytes: &[u8]) -> bool {
    /// Any JSON object; only whether it has a `sig` matters.
    #[derive(Deserialize)]
    struct Probe {
        /// The envelope's signature field, if present.
        #[serde(default)]
        sig: Option<IgnoredAny>,
    }
    matches!(
        serde_json::from_slice::<Probe>(bytes),
        Ok(Probe { sig: None })
    )
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::ids::ItemId;
    use crate::sync::{Outcome, PlayEvent};

    /// Two device keys, made once: generating keys per case would dominate.
    static KEYS: LazyLock<[SigningKey; 2]> = LazyLock::new(|| {
        let make = || SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        [make(), make()]
    });

    fn own() -> &'static SigningKey {
        &KEYS[0]
    }

    fn other() -> &'static SigningKey {
        &KEYS[1]
    }

    fn device() -> DeviceId {
        DeviceId::new("d-1")
    }

    fn state(device: &str, cache_bytes: u64, error: Option<String>) -> DeviceState {
        DeviceState {
            applied: std::collections::BTreeMap::new(),
            activated: std::collections::BTreeMap::new(),
            pending: std::collections::BTreeMap::new(),
            refused: std::collections::BTreeMap::new(),
            cache_bytes,
            last_error: error,
            ..DeviceState::new(
                DeviceId::new(device),
                "2026-11-23T10:00:00Z".parse().unwrap(),
                "0.1.0",
                "Debian 12",
            )
        }
    }

    fn event(device: &str, seed: u64, duration_ms: u64) -> PlayEvent {
        PlayEvent {
            id: format!("{seed:032x}"),
            device_id: DeviceId::new(device),
            item: ItemId::new("c-1"),
            access_group: None,
            license_version: None,
            start: "2026-11-23T10:00:00Z".parse().unwrap(),
            duration_ms,
            outcome: Outcome::Played,
            skip_reason: None,
            country: None,
            region: None,
            os: "Debian 12".into(),
            agent_version: "0.1.0".into(),
        }
    }

    fn field(envelope: &[u8], name: &str) -> Value {
        let object: Value = serde_json::from_slice(envelope).unwrap();
        object[name].clone()
    }

    fn with_field(envelope: &[u8], name: &str, value: Value) -> Vec<u8> {
        let mut object: Value = serde_json::from_slice(envelope).unwrap();
        object[name] = value;
        serde_json::to_vec(&object).unwrap()
    }

    /// S11: a signed state is the contract envelope, named by the device
    /// key's id, and verifies back to the same state.
    #[test]
    fn s11_a_signed_state_round_trips_as_the_contract_envelope() {
        let report = state("d-1", 42, None);
        let bytes = sign_report(&report, own()).unwrap();
        assert_eq!(field(&bytes, "kind"), "device_state");
        assert_eq!(field(&bytes, "key_id"), own().key_id().to_string());
        let payload = BASE64
            .decode(field(&bytes, "payload").as_str().unwrap())
            .unwrap();
        assert_eq!(payload, serde_json::to_vec(&report).unwrap());
        let verified: DeviceState = verify_report(&bytes, &device(), &own().public_key()).unwrap();
        assert_eq!(verified, report);
    }

    /// S11: each forgery is refused with its own reason.
    #[test]
    fn s11_forged_reports_are_refused_with_their_reason() {
        let key = own().public_key();
        let check = |bytes: &[u8]| verify_report::<DeviceState>(bytes, &device(), &key);
        // No signature at all: the plain JSON a pre-S11 agent sends.
        let plain = serde_json::to_vec(&state("d-1", 1, None)).unwrap();
        assert_eq!(check(&plain), Err(ReportError::Unsigned));
        // Another device's key.
        let theirs = sign_report(&state("d-1", 1, None), other()).unwrap();
        assert!(matches!(check(&theirs), Err(ReportError::WrongKey { .. })));
        // A wrong key claiming to be the device's.
        let claimed = with_field(&theirs, "key_id", json!(own().key_id().to_string()));
        assert_eq!(check(&claimed), Err(ReportError::BadSignature));
        // Signed by the device, but about another device.
        let about_other = sign_report(&state("d-2", 1, None), own()).unwrap();
        assert_eq!(
            check(&about_other),
            Err(ReportError::OtherDevice {
                expected: device(),
                named: DeviceId::new("d-2"),
            })
        );
        // An event batch is not a state, nor a hub document.
        let batch = sign_report(
            &EventBatch {
                events: vec![event("d-1", 1, 10)],
            },
            own(),
        )
        .unwrap();
        assert!(matches!(check(&batch), Err(ReportError::WrongKind { .. })));
        let command = envelope::sign(DocumentKind::Command, b"{}", own());
        assert!(matches!(
            check(&command),
            Err(ReportError::WrongKind { .. })
        ));
        let unknown = with_field(&batch, "kind", json!("device_selfie"));
        assert!(matches!(
            check(&unknown),
            Err(ReportError::WrongKind { .. })
        ));
        // Malformed, signed garbage, oversized.
        assert!(matches!(
            check(b"{not json"),
            Err(ReportError::Malformed(_))
        ));
        assert!(matches!(check(b""), Err(ReportError::Malformed(_))));
        let garbage = envelope::sign(DocumentKind::DeviceState, b"[1,2]", own());
        assert!(matches!(check(&garbage), Err(ReportError::Payload(_))));
        let huge = vec![b' '; MAX_SIGNED_REPORT_BYTES + 1];
        assert!(matches!(check(&huge), Err(ReportError::Oversized { .. })));
        // Too large to sign at all.
        let long = state("d-1", 1, Some("x".repeat(MAX_MESSAGE_BYTES)));
        assert!(matches!(
            sign_report(&long, own()),
            Err(ReportError::Unsignable(_))
        ));
    }

    /// S11: a batch naming another device anywhere is refused whole.
    #[test]
    fn s11_an_event_batch_about_another_device_is_refused() {
        let batch = EventBatch {
            events: vec![event("d-1", 1, 10), event("d-2", 2, 10)],
        };
        let bytes = sign_report(&batch, own()).unwrap();
        assert_eq!(
            verify_report::<EventBatch>(&bytes, &device(), &own().public_key()),
            Err(ReportError::OtherDevice {
                expected: device(),
                named: DeviceId::new("d-2"),
            })
        );
    }

    /// S11: the largest report that can be signed fits the bound the
    /// verifier checks before parsing.
    #[test]
    fn s11_every_signable_report_fits_the_verifier_bound() {
        let mut report = state("d-1", 1, None);
        let base = serde_json::to_vec(&report).unwrap().len();
        report.os = "o".repeat(MAX_MESSAGE_BYTES - base + "Debian 12".len());
        assert_eq!(
            serde_json::to_vec(&report).unwrap().len(),
            MAX_MESSAGE_BYTES
        );
        let bytes = sign_report(&report, own()).unwrap();
        assert!(bytes.len() <= MAX_SIGNED_REPORT_BYTES, "{}", bytes.len());
        // Signed, but out of the report's own bounds (os is free text).
        assert!(matches!(
            verify_report::<DeviceState>(&bytes, &device(), &own().public_key()),
            Err(ReportError::Payload(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// S11: any state or batch signed by the device verifies back to
        /// itself with the device's key, and never with another key.
        #[test]
        fn s11_sign_verify_round_trips(
            cache_bytes in any::<u64>(),
            error in proptest::option::of("[a-zA-Z0-9 éü]{0,64}"),
            durations in proptest::collection::vec(0u64..10_000_000, 0..20),
        ) {
            let report = state("d-1", cache_bytes, error);
            let bytes = sign_report(&report, own()).unwrap();
            prop_assert_eq!(
                verify_report::<DeviceState>(&bytes, &device(), &own().public_key()),
                Ok(report)
            );
            let refused = verify_report::<DeviceState>(&bytes, &device(), &other().public_key());
            let wrong_key = matches!(refused, Err(ReportError::WrongKey { .. }));
            prop_assert!(wrong_key, "accepted with another key: {:?}", refused);

            let batch = EventBatch {
                events: durations
                    .iter()
                    .enumerate()
                    .map(|(i, d)| event("d-1", i as u64, *d))
                    .collect(),
            };
            let bytes = sign_report(&batch, own()).unwrap();
            prop_assert_eq!(
                verify_report::<EventBatch>(&bytes, &device(), &own().public_key()),
                Ok(batch)
            );
        }

        /// S11: changing any one byte of a signed report makes it refused.
        #[test]
        fn s11_any_tampered_byte_is_refused(
            cache_bytes in any::<u64>(),
            position in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let bytes = sign_report(&state("d-1", cache_bytes, None), own()).unwrap();
            let mut tampered = bytes.clone();
            let at = position.index(tampered.len());
            tampered[at] ^= flip;
            prop_assert!(
                verify_report::<DeviceState>(&tampered, &device(), &own().public_key()).is_err(),
                "byte {} changed and still accepted", at
            );
        }

        /// S11: a payload changed and signed again by anyone but the device
        /// is refused, whatever key id it claims.
        #[test]
        fn s11_a_resigned_payload_needs_the_device_key(cache_bytes in any::<u64>()) {
            let forged = sign_report(&state("d-1", cache_bytes, None), other()).unwrap();
            let claimed = with_field(&forged, "key_id", json!(own().key_id().to_string()));
            for bytes in [forged, claimed] {
                prop_assert!(
                    verify_report::<DeviceState>(&bytes, &device(), &own().public_key()).is_err()
                );
            }
        }
    }
}
