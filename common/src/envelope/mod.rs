//! The signed envelope (DESIGN §4, contract) and the document kinds.
//!
//! Owns: the wire form `{"kind", "key_id", "payload", "sig"}`, signing, and
//! the first, key-independent half of verification: the size bound, the
//! envelope parse and the base64 decoding ([`open`]). Must not: decide which
//! keys are trusted — [`crate::trust::TrustStore`] does that, and is the only
//! way to get a [`Verified`] document.
//!
//! The signature covers `kind || 0x00 || payload bytes`, so a payload signed
//! as one kind can never be replayed as another. The hub signs five kinds
//! with certified signing keys; a device signs its reports (`device_state`,
//! `device_events`) with its own device key ([`crate::sync::signed`]), which
//! no trust document certifies, so an agent never accepts one as a hub
//! document and the hub never takes a hub document as a report.

mod keys;
mod plain;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use keys::{KeyError, KeyId, PublicKey, SigningKey};

use crate::digest::Sha256;

/// The largest envelope, in bytes, that is ever parsed (S1).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The kinds of signed document (contract names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// The root-signed list of signing keys.
    Trust,
    /// Everything one group (node or access group) gives its devices.
    GroupManifest,
    /// One device's node chain, memberships and manifest version floors.
    DeviceAssignment,
    /// A one-off instruction to one device.
    Command,
    /// The hub's clock, republished every minute.
    HubTime,
    /// A device's state report on its state topic, signed by the device key
    /// registered at pairing (S11; [`crate::sync::signed`]).
    DeviceState,
    /// A device's batch of proof-of-play events, signed by its device key
    /// (S11; [`crate::sync::signed`]).
    DeviceEvents,
}

impl DocumentKind {
    /// Every kind, in contract order: the hub's five, then the two a
    /// device signs.
    pub const ALL: [Self; 7] = [
        Self::Trust,
        Self::GroupManifest,
        Self::DeviceAssignment,
        Self::Command,
        Self::HubTime,
        Self::DeviceState,
        Self::DeviceEvents,
    ];

    /// The contract name, as it appears in the envelope's `kind`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trust => "trust",
            Self::GroupManifest => "group_manifest",
            Self::DeviceAssignment => "device_assignment",
            Self::Command => "command",
            Self::HubTime => "hub_time",
            Self::DeviceState => "device_state",
            Self::DeviceEvents => "device_events",
        }
    }

    fn from_bytes(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().as_bytes() == name)
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocumentKind {
    type Err = VerifyError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(name.as_bytes())
            .ok_or_else(|| VerifyError::UnknownKind(keys::truncate(name)))
    }
}

/// Why a document was refused. Each failure has its own variant so the agent
/// can log exactly why it kept its last good state (S1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Larger than [`MAX_DOCUMENT_BYTES`]; nothing was parsed.
    #[error("document is {size} bytes, over the {max}-byte limit")]
    Oversized {
        /// The size offered.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The envelope is not the contract JSON object, or a field is not valid
    /// base64 of the right length.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope names a kind that does not exist.
    #[error("unknown document kind {0:?}")]
    UnknownKind(String),
    /// The envelope is a valid document, but not of the kind asked for.
    #[error("expected a {expected} document, got {found}")]
    WrongKind {
        /// The kind the caller asked for.
        expected: DocumentKind,
        /// The kind the envelope carries.
        found: DocumentKind,
    },
    /// A `trust` document not signed by the pinned root key.
    #[error("trust document signed by {found}, not by the pinned root {root}")]
    NotSignedByRoot {
        /// The pinned root's id.
        root: KeyId,
        /// The key that signed it.
        found: KeyId,
    },
    /// No trust document is held yet, so no signing key is known.
    #[error("no trust document is held: signing keys are unknown")]
    NoTrust,
    /// The signing key is not certified by the current trust document.
    #[error("key {0} is not certified by the trust document")]
    UnknownKey(KeyId),
    /// The signing key's certificate is not valid yet at the given time.
    #[error("key {key_id} is not valid before {not_before}")]
    KeyNotYetValid {
        /// The key.
        key_id: KeyId,
        /// When its certificate starts.
        not_before: DateTime<Utc>,
    },
    /// The signing key's certificate has ended at the given time.
    #[error("key {key_id} expired at {not_after}")]
    KeyExpired {
        /// The key.
        key_id: KeyId,
        /// When its certificate ended.
        not_after: DateTime<Utc>,
    },
    /// The signature does not match the kind and payload.
    #[error("bad signature")]
    BadSignature,
    /// Signed correctly, but the payload is not the document it claims to be.
    #[error("malformed {kind} payload: {reason}")]
    MalformedPayload {
        /// The document's kind.
        kind: DocumentKind,
        /// What is wrong with it.
        reason: String,
    },
    /// A `hub_time` stating a time before the issue time of the held trust
    /// document: the root vouches that real time is past that (S6).
    #[error("hub_time states {time}, before the trust document issued at {trust_issued_at}")]
    HubTimeBeforeTrust {
        /// The time the `hub_time` states.
        time: DateTime<Utc>,
        /// When the held trust document was issued.
        trust_issued_at: DateTime<Utc>,
    },
    /// The document's `expires_at` has passed.
    #[error("document expired at {expires_at}")]
    Expired {
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// A `trust` document older than the one held (S3).
    #[error("trust version {offered} is older than the held version {held}")]
    TrustRollback {
        /// The version held.
        held: u64,
        /// The version offered.
        offered: u64,
    },
    /// A `trust` document with the held version but other content (S3).
    #[error("trust version {version} conflicts with the held document of that version")]
    TrustConflict {
        /// The version both documents carry.
        version: u64,
    },
    /// A `trust` document that is internally inconsistent or breaks the root
    /// rotation rule (S2).
    #[error("invalid trust document: {0}")]
    InvalidTrust(String),
}

/// A typed document payload: the part of a signed document after the
/// envelope. Every payload has a version and an issue time (DESIGN §4).
pub trait Document: DeserializeOwned {
    /// The kind this payload is signed as.
    const KIND: DocumentKind;

    /// The version, strictly increasing per subject.
    fn version(&self) -> u64;

    /// When the hub issued it.
    fn issued_at(&self) -> DateTime<Utc>;

    /// When it stops being valid, for kinds that expire.
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// The rollback-guard subject: what the version counts for (a group id,
    /// a device id, or the kind's single subject).
    fn subject(&self) -> Cow<'_, str>;

    /// Types the payload's JSON text (the signed bytes, already checked as
    /// UTF-8). `serde_json` unless a kind has a faster reader that takes
    /// exactly what `serde_json` takes, with the same value (issue 20: the
    /// group manifest's, [`crate::documents::GroupManifest`]).
    ///
    /// # Errors
    /// `serde_json`'s, when the text is not this document.
    fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A document whose envelope, key chain, signature and payload all checked
/// out. Only [`crate::trust::TrustStore`] makes these (the fields are
/// private), so a function that takes a `Verified<D>` cannot be handed an
/// unverified document. It keeps the signed payload bytes as they came
/// ([`Verified::payload_bytes`]), so whoever needs their hash or wants to
/// store them takes them from here rather than encoding the payload again.
#[derive(Clone, PartialEq)]
pub struct Verified<D> {
    /// The typed payload.
    payload: D,
    /// The key that signed it.
    key_id: KeyId,
    /// `kind || 0x00 || payload`: the signed bytes, payload at the end.
    message: Vec<u8>,
    /// Where the payload starts in `message`.
    payload_at: usize,
}

impl<D: fmt::Debug> fmt::Debug for Verified<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("payload", &self.payload)
            .field("key_id", &self.key_id)
            .field("payload_bytes", &self.payload_bytes().len())
            .finish_non_exhaustive()
    }
}

impl<D> Verified<D> {
    /// The typed payload.
    pub fn payload(&self) -> &D {
        &self.payload
    }

    /// The key that signed it.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The payload bytes exactly as signed.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.message[self.payload_at..]
    }

    /// SHA-256 of the payload bytes: what the rollback guard compares.
    /// Computed when asked (verification itself does not need it: the
    /// signature covers the bytes), so a document refused before the guard
    /// is never hashed.
    pub fn hash(&self) -> Sha256 {
        Sha256::of(self.payload_bytes())
    }

    /// The payload, giving up the proof that it was verified.
    pub fn into_payload(self) -> D {
        self.payload
    }
}

/// An envelope that passed the size bound and parsed, with its payload and
/// signature decoded. Nothing about it is trusted yet.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The kind the envelope claims.
    kind: DocumentKind,
    /// The key the envelope claims signed it.
    key_id: KeyId,
    /// `kind || 0x00 || payload`: the signed bytes, payload at the end.
    message: Vec<u8>,
    /// The 64-byte Ed25519 signature.
    signature: [u8; 64],
}

impl Opened {
    /// The kind the envelope claims.
    #[must_use]
    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// The key the envelope claims signed it.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The decoded payload bytes.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.message[self.kind.as_str().len() + 1..]
    }

    /// Whether `key` signed exactly this kind and payload.
    #[must_use]
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        key.verifies(&self.message, &self.signature)
    }

    /// Parses the payload as `D`, after the signature was checked: once,
    /// straight from the signed bytes into the typed document (no
    /// intermediate value, nothing encoded again). The bytes are checked as
    /// UTF-8 in one pass first — JSON text is UTF-8 (RFC 8259), so this
    /// refuses nothing `serde_json` would take — which spares the parser
    /// checking each string on its own (issue 20: a fifth of the parse).
    pub(crate) fn into_verified<D: Document>(self) -> Result<Verified<D>, VerifyError> {
        let malformed = |reason: String| VerifyError::MalformedPayload {
            kind: self.kind,
            reason,
        };
        let text = std::str::from_utf8(self.payload())
            .map_err(|e| malformed(format!("not UTF-8 text: {e}")))?;
        let payload = D::from_json(text).map_err(|e| malformed(e.to_string()))?;
        Ok(Verified {
            payload,
            key_id: self.key_id,
            payload_at: self.kind.as_str().len() + 1,
            message: self.message,
        })
    }
}

/// The envelope exactly as it travels.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    key_id: Cow<'a, str>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow)]
    sig: Cow<'a, str>,
}

/// Signs `payload` as a document of `kind` and returns the envelope's JSON
/// bytes.
#[must_use]
pub fn sign(kind: DocumentKind, payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut message = Vec::with_capacity(kind.as_str().len() + 1 + payload.len());
    message.extend_from_slice(kind.as_str().as_bytes());
    message.push(0);
    message.extend_from_slice(payload);
    let sig = key.sign_raw(&message);
    // Every field is ASCII that JSON needs no escape for (a contract kind
    // name, hex, base64), so the object is written directly.
    format!(
        r#"{{"kind":"{}","key_id":"{}","payload":"{}","sig":"{}"}}"#,
        kind.as_str(),
        key.key_id(),
        BASE64.encode(payload),
        BASE64.encode(sig)
    )
    .into_bytes()
}

/// Serializes `document` as JSON and signs it as its kind.
///
/// # Errors
/// When `document` cannot be serialized as JSON.
pub fn sign_document<D: Document + Serialize>(
    document: &D,
    key: &SigningKey,
) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(document)?;
    Ok(sign(D::KIND, &payload, key))
}

/// Checks the size bound, parses the envelope and decodes its fields. Trusts
/// nothing: the signature is not checked here.
///
/// # Errors
/// [`VerifyError::Oversized`], [`VerifyError::Malformed`] or
/// [`VerifyError::UnknownKind`].
pub fn open(bytes: &[u8]) -> Result<Opened, VerifyError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(VerifyError::Oversized {
            size: bytes.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    if let Some(opened) = plain::open(bytes) {
        return Ok(opened);
    }
    let wire: Wire<'_> =
        serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let kind = DocumentKind::from_bytes(wire.kind.as_bytes())
        .ok_or_else(|| VerifyError::UnknownKind(keys::truncate(&wire.kind)))?;
    let key_id = KeyId::parse_bytes(wire.key_id.as_bytes()).ok_or_else(|| {
        VerifyError::Malformed(format!(
            "key_id {:?} is not 16 lowercase hex digits",
            keys::truncate(&wire.key_id)
        ))
    })?;
    let signature = decode_signature(wire.sig.as_bytes())
        .map_err(|e| VerifyError::Malformed(format!("sig: {e}")))?;
    let message = decode_message(kind, wire.payload.as_bytes())
        .map_err(|e| VerifyError::Malformed(format!("payload: {e}")))?;
    Ok(Opened {
        kind,
        key_id,
        message,
        signature,
    })
}

/// Why a base64 field of the envelope did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum BadBase64 {
    /// Not canonical standard base64 (alphabet, `=` padding to a multiple
    /// of four, zero trailing bits).
    #[error("not canonical standard base64")]
    Invalid,
    /// Valid base64 of the wrong length.
    #[error("{0} bytes, not 64")]
    Length(usize),
}

/// `kind || 0x00 || payload`: the envelope's base64 payload decoded after
/// the kind's name into one buffer of exactly the signed message's size
/// (one allocation, no zero-filling, nothing copied afterwards), with SIMD
/// where the CPU has it (issue 20: base64 was a sixth of a 100-item
/// manifest's verify). As strict as the `base64` crate's `STANDARD`: the
/// standard alphabet, `=` padding to a multiple of four, zero trailing
/// bits (property-tested against it below).
fn decode_message(kind: DocumentKind, payload: &[u8]) -> Result<Vec<u8>, BadBase64> {
    let name = kind.as_str().as_bytes();
    let size = base64_simd::STANDARD
        .decoded_length(payload)
        .map_err(|_| BadBase64::Invalid)?;
    let mut message = Vec::with_capacity(name.len() + 1 + size);
    message.extend_from_slice(name);
    message.push(0);
    base64_simd::STANDARD
        .decode_append(payload, &mut message)
        .map_err(|_| BadBase64::Invalid)?;
    Ok(message)
}

/// The envelope's `sig`: base64 of exactly 64 bytes.
fn decode_signature(sig: &[u8]) -> Result<[u8; 64], BadBase64> {
    let size = base64_simd::STANDARD
        .decoded_length(sig)
        .map_err(|_| BadBase64::Invalid)?;
    if size != 64 {
        // Still refuse invalid text as invalid, whatever its length.
        base64_simd::STANDARD
            .check(sig)
            .map_err(|_| BadBase64::Invalid)?;
        return Err(BadBase64::Length(size));
    }
    let mut signature = [0u8; 64];
    base64_simd::STANDARD
        .decode(sig, base64_simd::Out::from_slice(&mut signature))
        .map_err(|_| BadBase64::Invalid)?;
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Base64 text as an envelope may carry it: the encoding of some bytes,
    /// then maybe a few edits with characters of the alphabet, padding,
    /// white space or any byte (so lengths, padding and trailing bits go
    /// wrong in every way).
    fn near_base64() -> impl Strategy<Value = Vec<u8>> {
        let edit = (
            0..3u8,
            any::<prop::sample::Index>(),
            prop_oneof![
                8 => prop::sample::select(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".to_vec()
                ),
                1 => prop::sample::select(b" \n-_.\"".to_vec()),
                1 => any::<u8>(),
            ],
        );
        (
            prop::collection::vec(any::<u8>(), 0..80),
            prop::collection::vec(edit, 0..3),
        )
            .prop_map(|(bytes, edits)| {
                let mut text = BASE64.encode(bytes).into_bytes();
                for (op, at, byte) in edits {
                    let at = at.index(text.len() + 1);
                    match op {
                        0 => text.insert(at, byte),
                        1 if at < text.len() => text[at] = byte,
                        _ if at < text.len() => {
                            text.remove(at);
                        }
                        _ => {}
                    }
                }
                text
            })
    }

    proptest! {
        /// S1, issue 20: the SIMD decoding of the payload and signature
        /// takes exactly what the `base64` crate's strict `STANDARD` takes,
        /// with the same bytes, and refuses the rest.
        #[test]
        fn s1_simd_base64_agrees_with_the_base64_crate(text in near_base64()) {
            let reference = BASE64.decode(&text).ok();
            let message = decode_message(DocumentKind::Command, &text).ok();
            let expected = reference.as_ref().map(|bytes| [b"command\0".as_slice(), bytes].concat());
            prop_assert_eq!(message, expected);
            let signature = decode_signature(&text).ok().map(|sig| sig.to_vec());
            prop_assert_eq!(signature, reference.filter(|bytes| bytes.len() == 64));
        }
    }

    /// Every signature length but 64 is refused, and so is a 64-byte
    /// signature with one bad character or non-zero trailing bits.
    #[test]
    fn s1_signature_is_exactly_64_canonical_bytes() {
        for len in [0, 1, 63, 65, 66, 96] {
            let text = BASE64.encode(vec![7u8; len]);
            assert_eq!(
                decode_signature(text.as_bytes()),
                Err(BadBase64::Length(len)),
                "{len}"
            );
        }
        let good = BASE64.encode([7u8; 64]);
        assert_eq!(decode_signature(good.as_bytes()), Ok([7u8; 64]));
        // 64 bytes end in one byte and "==": its last digit carries 4 unused bits.
        let last = good.len() - 3;
        let mut trailing = good.clone().into_bytes();
        trailing[last] = b'x';
        assert!(BASE64.decode(&trailing).is_err());
        assert_eq!(decode_signature(&trailing), Err(BadBase64::Invalid));
        let bad = good.replacen('B', "*", 1);
        assert_eq!(decode_signature(bad.as_bytes()), Err(BadBase64::Invalid));
    }
}
