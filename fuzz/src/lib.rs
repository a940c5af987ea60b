//! Fuzz targets for every parser of outside input in signet-common (issue
//! 15; S1, S11, S13, D5, D6, L7, U1, U4): the signed envelope, the signed
//! documents a device acts on, the reports a device sends, the member-import
//! CSV, the template layout and the schedule.
//!
//! Owns: [`TARGETS`], one function per target taking arbitrary bytes. Each
//! runs the public decode function a hub or an agent runs on those bytes,
//! and asserts what must hold for any input: no panic (a panic is the
//! finding), the size bound refused before parsing, and where it is cheap
//! the round trip (what was accepted, encoded again, is accepted as the same
//! value). Must not: do I/O or keep state between runs, so a finding
//! replays from its bytes alone.
//!
//! Two drivers call the targets: `src/bin/afl.rs` under AFL++ (`make fuzz`,
//! coverage-guided) and `tests/smoke.rs` in `cargo test`, which replays the
//! seed corpus and every kept regression case and runs a fixed number of
//! seeded mutations.

use std::fmt::Debug;
use std::sync::OnceLock;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use signet_common::approval::{Change, MAX_CANVAS_SIDE, MAX_ZONES, Template, classify_change};
use signet_common::digest::Sha256;
use signet_common::documents::{
    Command, DeviceAssignment, GroupManifest, MAX_MANIFEST_ITEMS, MAX_MEMBERSHIPS, MAX_NODE_CHAIN,
    MAX_NONCE_LEN,
};
use signet_common::envelope::{self, Document, DocumentKind, MAX_DOCUMENT_BYTES, SigningKey};
use signet_common::envelope::{KeyId, PublicKey, VerifyError};
use signet_common::ids::DeviceId;
use signet_common::members_csv::{self, ImportError, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS};
use signet_common::schedule::{self, MAX_ENTRIES, Schedule};
use signet_common::sync::documents::{MAX_DOCUMENTS_ANSWER_BYTES, parse_documents};
use signet_common::sync::signed::{MAX_SIGNED_REPORT_BYTES, Report, ReportError, verify_report};
use signet_common::sync::{
    self, Checked, DeviceState, EventBatch, MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES, WireError,
};
use signet_common::trust::{CertifiedKey, TrustDocument, TrustStore};

/// The device the signed-report targets receive reports from; the corpus
/// reports name it.
pub const REPORT_DEVICE: &str = "fuzz-device";

/// The largest input a target looks at: nothing outside reaches a parser
/// with more (the API's body limit, the document bound, the AFL++ default).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// One fuzz target: a name (the corpus folder and the AFL++ argument) and
/// the function that takes the bytes.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name: `fuzz/corpus/<name>/`, `fuzz/regressions/<name>/`.
    pub name: &'static str,
    /// Runs the target on one input; panics on a finding. True when the
    /// input passed every check (reached the round trip), so a corpus can
    /// be shown to reach past the parser.
    pub run: fn(&[u8]) -> bool,
}

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "envelope",
        run: envelope,
    },
    Target {
        name: "group_manifest",
        run: group_manifest,
    },
    Target {
        name: "device_assignment",
        run: device_assignment,
    },
    Target {
        name: "command",
        run: command,
    },
    Target {
        name: "device_state",
        run: device_state,
    },
    Target {
        name: "event_batch",
        run: event_batch,
    },
    Target {
        name: "signed_state",
        run: signed_state,
    },
    Target {
        name: "signed_events",
        run: signed_events,
    },
    Target {
        name: "device_documents",
        run: device_documents,
    },
    Target {
        name: "member_csv",
        run: member_csv,
    },
    Target {
        name: "template",
        run: template,
    },
    Target {
        name: "schedule",
        run: schedule,
    },
];

/// The target called `name`.
#[must_use]
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}

/// The fixed trust of every signed-document target: a root, a signing key it
/// certifies, a store that holds that certificate, and the instant checks
/// run at (inside the key's window).
struct Fixture {
    /// The certified signing key the targets sign payloads with.
    signing: SigningKey,
    /// The public half of a key nobody certified.
    stranger: PublicKey,
    /// A key that signs reports as someone other than the device.
    forger: SigningKey,
    /// Pins the root and holds the trust document certifying `signing`.
    store: TrustStore,
    /// The trusted time of every verification.
    now: DateTime<Utc>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = || {
            SigningKey::generate_pkcs8()
                .and_then(|pkcs8| SigningKey::from_pkcs8(&pkcs8))
                .expect("the system's random source makes a key")
        };
        let (root, signing, stranger, forger) = (key(), key(), key(), key());
        let now = DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .expect("a valid time")
            .to_utc();
        let trust = TrustDocument {
            version: 1,
            issued_at: now - TimeDelta::days(30),
            root_key_id: root.key_id(),
            root_public_key: None,
            signing_keys: vec![CertifiedKey {
                key_id: signing.key_id(),
                public_key: signing.public_key(),
                not_before: now - TimeDelta::days(30),
                not_after: now + TimeDelta::days(365),
            }],
        };
        let mut store = TrustStore::new(root.public_key());
        let signed = envelope::sign_document(&trust, &root).expect("a trust document encodes");
        store
            .apply_trust(&signed)
            .expect("the fixture's trust document is valid");
        Fixture {
            signing,
            stranger: stranger.public_key(),
            forger,
            store,
            now,
        }
    })
}

/// Envelope bytes as they arrive from the broker or the hub: the size bound,
/// the parse and the base64 decoding ([`envelope::open`]), and full
/// verification of every kind against the fixture's trust (S1). Whatever
/// opens re-signs and re-opens to the same kind and payload, and no
/// arbitrary input verifies. True when the envelope opened.
pub fn envelope(data: &[u8]) -> bool {
    let fixture = fixture();
    // Arbitrary bytes carry no valid signature of the fixture's keys.
    let store = &fixture.store;
    assert!(store.verify_signature(data, fixture.now).is_err());
    assert!(store.verify_hub_time(data).is_err());
    assert!(store.verify::<GroupManifest>(data, fixture.now).is_err());
    assert!(store.clone().apply_trust(data).is_err());
    let opened = envelope::open(data);
    assert_eq!(
        opened
            .as_ref()
            .ok()
            .map(|o| (o.kind(), o.key_id(), o.payload().to_vec())),
        reference_open(data),
        "the envelope opened differently from the contract's reading"
    );
    match opened {
        Err(VerifyError::Oversized { size, max }) => {
            assert!(size == data.len() && size > max && max == MAX_DOCUMENT_BYTES);
            false
        }
        Err(_) => false,
        Ok(opened) => {
            assert!(data.len() <= MAX_DOCUMENT_BYTES, "oversized input opened");
            assert!(opened.payload().len() <= data.len());
            assert_eq!(
                opened.kind().as_str().parse::<DocumentKind>(),
                Ok(opened.kind())
            );
            assert!(!opened.signed_by(&fixture.stranger));
            let resigned = envelope::sign(opened.kind(), opened.payload(), &fixture.signing);
            let again = envelope::open(&resigned).expect("a signed envelope opens");
            assert_eq!(
                (again.kind(), again.payload()),
                (opened.kind(), opened.payload())
            );
            assert!(again.signed_by(&fixture.signing.public_key()));
            true
        }
    }
}

/// The envelope read the plain way, as the reference [`envelope::open`]
/// must agree with whichever path it takes (the byte search or the JSON
/// parser, SIMD base64): within the size bound, one JSON object of exactly
/// the four string fields, a known kind, a key id of 16 lowercase hex
/// digits, and the `base64` crate's strict standard decoding, the signature
/// 64 bytes. The kind, key and payload bytes when it opens.
fn reference_open(data: &[u8]) -> Option<(DocumentKind, KeyId, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        kind: String,
        key_id: String,
        payload: String,
        sig: String,
    }
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    if data.len() > MAX_DOCUMENT_BYTES {
        return None;
    }
    let wire: Wire = serde_json::from_slice(data).ok()?;
    let kind: DocumentKind = wire.kind.parse().ok()?;
    let key_id: KeyId = wire.key_id.parse().ok()?;
    if base64.decode(&wire.sig).ok()?.len() != 64 {
        return None;
    }
    Some((kind, key_id, base64.decode(&wire.payload).ok()?))
}

/// A signed document whose payload is `payload`, as a device receives it:
/// signed by a certified key, then verified through the [`TrustStore`] (size,
/// envelope, key chain and window, signature, payload parse, expiry), then
/// `check`ed for the rules the signature cannot vouch for. What passes
/// re-encodes, re-signs and verifies as the same document.
///
/// `check` says whether the document passes its own rules; `bounded`
/// asserts the limits a passing document must respect. True when the
/// document passed.
pub fn signed_document<D>(payload: &[u8], check: impl Fn(&D) -> bool, bounded: impl Fn(&D)) -> bool
where
    D: Document + Serialize + PartialEq + Debug,
{
    let fixture = fixture();
    let signed = envelope::sign(D::KIND, payload, &fixture.signing);
    let verified = match fixture.store.verify::<D>(&signed, fixture.now) {
        Err(VerifyError::Oversized { size, .. }) => {
            assert!(size == signed.len() && size > MAX_DOCUMENT_BYTES);
            return false;
        }
        Err(_) => return false,
        Ok(verified) => verified,
    };
    assert!(
        signed.len() <= MAX_DOCUMENT_BYTES,
        "oversized document verified"
    );
    assert_eq!(verified.hash(), Sha256::of(payload));
    assert_eq!(verified.key_id(), fixture.signing.key_id());
    let document = verified.into_payload();
    if !check(&document) {
        return false;
    }
    bounded(&document);
    let encoded = serde_json::to_vec(&document).expect("a verified document encodes");
    let resigned = envelope::sign(D::KIND, &encoded, &fixture.signing);
    if resigned.len() <= MAX_DOCUMENT_BYTES {
        let again = fixture
            .store
            .verify::<D>(&resigned, fixture.now)
            .expect("a re-encoded document verifies");
        assert_eq!(again.payload(), &document);
    }
    true
}

/// A `group_manifest` payload (S1, S3, D5, L2): verified, then validated as
/// the agent does before acting on it.
pub fn group_manifest(payload: &[u8]) -> bool {
    signed_document::<GroupManifest>(
        payload,
        |manifest| manifest.validate().is_ok(),
        |manifest| {
            assert!(manifest.items.len() <= MAX_MANIFEST_ITEMS);
            assert!(manifest.schedule.entries.len() <= MAX_ENTRIES);
            assert!(manifest.expires_at > manifest.issued_at);
        },
    )
}

/// A `device_assignment` payload (S1, S3, D6): verified, then checked for
/// the device it names, as the agent does.
pub fn device_assignment(payload: &[u8]) -> bool {
    signed_document::<DeviceAssignment>(
        payload,
        |assignment| assignment.validate_for(&assignment.device_id).is_ok(),
        |assignment| {
            assert!(assignment.node_chain.len() <= MAX_NODE_CHAIN);
            assert!(assignment.access_groups.len() <= MAX_MEMBERSHIPS);
        },
    )
}

/// A `command` payload (S1): verified, then checked for the device it names.
pub fn command(payload: &[u8]) -> bool {
    signed_document::<Command>(
        payload,
        |command| command.check_for(&command.device_id).is_ok(),
        |command| assert!(command.nonce.len() <= MAX_NONCE_LEN),
    )
}

/// A bounded, checked JSON message from a device (or the hub's answer to
/// one): `parse` refuses anything over `max` bytes whatever it holds, and
/// what it accepts encodes and parses back to the same value. True when
/// `parse` accepted `data`.
pub fn wire_message<T>(data: &[u8], max: usize, parse: fn(&[u8]) -> Result<T, WireError>) -> bool
where
    T: Serialize + PartialEq + Debug,
{
    let Ok(message) = parse(data) else {
        return false;
    };
    assert!(
        data.len() <= max,
        "a message of {} bytes over the {max}-byte bound parsed",
        data.len()
    );
    let encoded = serde_json::to_vec(&message).expect("a parsed message encodes");
    if encoded.len() <= max {
        let again = parse(&encoded).expect("a re-encoded message parses");
        assert_eq!(again, message);
    }
    true
}

fn parse_wire<T: DeserializeOwned + Checked>(data: &[u8]) -> Result<T, WireError> {
    sync::parse::<T>(data)
}

/// A device's state report (U4) on `devices/{id}/state`.
pub fn device_state(data: &[u8]) -> bool {
    wire_message(data, MAX_MESSAGE_BYTES, parse_wire::<DeviceState>)
}

/// A batch of proof-of-play events (U1, U2) on `devices/{id}/events` or the
/// HTTP event upload.
pub fn event_batch(data: &[u8]) -> bool {
    let accepted = wire_message(data, MAX_MESSAGE_BYTES, parse_wire::<EventBatch>);
    if let Ok(batch) = sync::parse::<EventBatch>(data) {
        assert!(batch.events.len() <= MAX_EVENTS_PER_BATCH);
    }
    accepted
}

/// A device-signed report (S11) as the hub receives it for device
/// [`REPORT_DEVICE`]: arbitrary bytes never verify against the device's
/// registered key (nor does an envelope signed by another key); the same
/// bytes signed as this report's kind by the device key verify exactly when
/// they are a valid report naming that device, and what verifies is what
/// the plain wire parser reads. True when the signed bytes verified.
pub fn signed_report<R>(data: &[u8]) -> bool
where
    R: Report + PartialEq + Debug,
{
    let fixture = fixture();
    let device = DeviceId::from(REPORT_DEVICE);
    let registered = fixture.signing.public_key();
    match verify_report::<R>(data, &device, &registered) {
        Err(ReportError::Oversized { size, max }) => {
            assert!(size == data.len() && size > max && max == MAX_SIGNED_REPORT_BYTES);
        }
        Err(_) => {}
        Ok(_) => panic!("arbitrary bytes verified as a device report"),
    }
    if data.len() > MAX_MESSAGE_BYTES {
        return false;
    }
    let by_device = envelope::sign(R::KIND, data, &fixture.signing);
    assert!(by_device.len() <= MAX_SIGNED_REPORT_BYTES);
    let forged = envelope::sign(R::KIND, data, &fixture.forger);
    assert!(matches!(
        verify_report::<R>(&forged, &device, &registered),
        Err(ReportError::WrongKey { .. })
    ));
    let plain = sync::parse::<R>(data);
    match verify_report::<R>(&by_device, &device, &registered) {
        Ok(report) => {
            assert_eq!(Some(&report), plain.as_ref().ok(), "verified ≠ parsed");
            assert!(report.other_device(&device).is_none());
            true
        }
        Err(ReportError::Payload(_)) => {
            assert!(plain.is_err(), "a valid payload was refused");
            false
        }
        Err(ReportError::OtherDevice { named, .. }) => {
            assert_ne!(named, device);
            false
        }
        Err(other) => panic!("the device's own signature was refused: {other}"),
    }
}

/// A signed state report (S11, U4).
pub fn signed_state(data: &[u8]) -> bool {
    signed_report::<DeviceState>(data)
}

/// A signed proof-of-play batch (S11, U1).
pub fn signed_events(data: &[u8]) -> bool {
    signed_report::<EventBatch>(data)
}

/// The hub's answer of current signed documents to a device (S4), fetched
/// over HTTP when the broker is away.
pub fn device_documents(data: &[u8]) -> bool {
    wire_message(data, MAX_DOCUMENTS_ANSWER_BYTES, parse_documents)
}

/// A member-import CSV file (L7, S13): refused whole over the size or row
/// bound, otherwise one row per data line, in order, each with its line.
/// True when the file parsed into at least one row with a valid end date.
pub fn member_csv(data: &[u8]) -> bool {
    match members_csv::parse(data) {
        Err(ImportError::TooLarge) => {
            assert!(data.len() > MAX_IMPORT_BYTES);
            false
        }
        Err(_) => {
            assert!(data.len() <= MAX_IMPORT_BYTES);
            false
        }
        Ok(rows) => {
            assert!(data.len() <= MAX_IMPORT_BYTES);
            assert!(rows.len() <= MAX_IMPORT_ROWS);
            assert!(
                rows.windows(2).all(|w| w[0].line < w[1].line),
                "rows out of order"
            );
            for row in &rows {
                assert!(row.line >= 1);
                assert!(row.email.len() <= data.len());
                assert!(row.name.as_ref().is_none_or(|n| !n.is_empty()));
            }
            rows.iter().any(|r| r.end_date.is_ok() && r.shape.is_ok())
        }
    }
}

/// A template (D6, A4, A8) as the API receives it: parsed and validated;
/// a valid one re-encodes to the same template with the same content hash,
/// and compared with itself is no change. True when valid.
pub fn template(data: &[u8]) -> bool {
    if data.len() > MAX_INPUT_BYTES {
        return false;
    }
    let Ok(template) = serde_json::from_slice::<Template>(data) else {
        return false;
    };
    if template.validate().is_err() {
        return false;
    }
    assert!(template.zones.len() <= MAX_ZONES);
    assert!(template.canvas.width <= MAX_CANVAS_SIDE && template.canvas.height <= MAX_CANVAS_SIDE);
    let hash = template.content_hash();
    let encoded = serde_json::to_vec(&template).expect("a template encodes");
    let again: Template = serde_json::from_slice(&encoded).expect("a re-encoded template parses");
    assert_eq!(again, template);
    assert_eq!(again.content_hash(), hash);
    assert_eq!(classify_change(&template, &again), Change::None);
    true
}

/// The time zones and instants a schedule is evaluated at: zones with and
/// without daylight saving, and instants on both sides of a change.
const EVALUATED_AT: [(&str, &str); 4] = [
    ("Europe/Berlin", "2026-03-29T01:30:00Z"),
    ("Europe/Berlin", "2026-10-25T00:45:00Z"),
    ("America/New_York", "2026-06-01T12:00:00Z"),
    ("UTC", "1970-01-01T00:00:00Z"),
];

/// A schedule (D5) as the API receives it: parsed and validated; then
/// evaluated (which must not panic on any schedule, validated or not) at
/// instants around daylight-saving changes. The answer plays only items the
/// schedule names, and its next change lies after the instant asked about.
/// True when valid.
pub fn schedule(data: &[u8]) -> bool {
    if data.len() > MAX_INPUT_BYTES {
        return false;
    }
    let Ok(parsed) = serde_json::from_slice::<Schedule>(data) else {
        return false;
    };
    let valid = parsed.validate().is_ok();
    for (zone, at) in EVALUATED_AT {
        let tz: chrono_tz::Tz = zone.parse().expect("a known zone");
        let at = DateTime::parse_from_rfc3339(at)
            .expect("a valid time")
            .to_utc();
        let answer = schedule::evaluate(&parsed, tz, at, &|_| true);
        assert!(
            answer.next_change > at,
            "next change {} not after {at}",
            answer.next_change
        );
        for slot in answer.main.iter().chain(&answer.overlays) {
            let named = parsed
                .entries
                .iter()
                .flat_map(|e| &e.items)
                .chain(&parsed.default_item)
                .any(|i| i.item == slot.item);
            assert!(
                named,
                "plays {}, which the schedule does not name",
                slot.item
            );
            assert!(slot.ends_at > slot.started_at);
        }
        assert!(answer.overlays.len() <= parsed.entries.len());
        // Nothing playable: nothing plays.
        let none = schedule::evaluate(&parsed, tz, at, &|_| false);
        assert!(none.main.is_none() && none.overlays.is_empty());
    }
    if !valid {
        return false;
    }
    assert!(parsed.entries.len() <= MAX_ENTRIES);
    let encoded = serde_json::to_vec(&parsed).expect("a schedule encodes");
    let again: Schedule = serde_json::from_slice(&encoded).expect("a re-encoded schedule parses");
    assert_eq!(again, parsed);
    true
}
