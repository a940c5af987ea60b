//! The key hierarchy (S2): a pinned root key certifies online signing keys.
//!
//! Owns: the `trust` document (contract payload), the [`TrustStore`] an agent
//! pins at pairing, root rotation, and full verification of every other
//! document. Must not: persist anything (the store is plain serde data the
//! caller saves) or decide whether a version is new enough — the
//! [`crate::rollback::RollbackGuard`] does that for every kind but `trust`.
//!
//! # Rules
//! - A `trust` document is signed by the pinned root key. It lists signing
//!   keys, each with a validity window; every other document must be signed
//!   by one of them, inside its window.
//! - Rotating a signing key is one new `trust` document (version N+1 or
//!   later) from the same root: devices need no re-pairing.
//! - Rotating the root is a `trust` document whose `root_key_id` names the new
//!   root and whose `root_public_key` carries it, signed by the *old* root, at
//!   exactly version N+1. From then on only the new root is accepted.
//! - Versions never go back: an older `trust` document, or the same version
//!   with other content, is refused.
//! - A key's window is checked at the device's trusted time for every
//!   document but `hub_time`, whose key is checked at the time it states
//!   ([`TrustStore::verify_hub_time`], S6): the `hub_time` is what corrects a
//!   trusted time that is wrong.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::documents::HubTime;
use crate::envelope::{
    self, Document, DocumentKind, KeyId, Opened, PublicKey, Verified, VerifyError,
};

/// The most signing keys one trust document may list.
pub const MAX_SIGNING_KEYS: usize = 64;

/// The `trust` payload (contract fields plus the optional new root key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustDocument {
    /// Strictly increasing across every trust document of a fleet.
    pub version: u64,
    /// When the hub issued it.
    pub issued_at: DateTime<Utc>,
    /// The root this document establishes; differs from the signer only in a
    /// root rotation.
    pub root_key_id: KeyId,
    /// The new root's public key; required in a root rotation, optional (and
    /// then equal to the signer) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_public_key: Option<PublicKey>,
    /// The online keys allowed to sign other documents.
    pub signing_keys: Vec<CertifiedKey>,
}

/// One signing key and the window in which the root certifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedKey {
    /// Must equal the id of `public_key`.
    pub key_id: KeyId,
    /// The key's 32 raw public bytes, base64.
    pub public_key: PublicKey,
    /// Signatures by this key count from this time on.
    pub not_before: DateTime<Utc>,
    /// Signatures by this key stop counting at this time.
    pub not_after: DateTime<Utc>,
}

impl Document for TrustDocument {
    const KIND: DocumentKind = DocumentKind::Trust;

    fn version(&self) -> u64 {
        self.version
    }

    fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    fn subject(&self) -> Cow<'_, str> {
        Cow::Borrowed("trust")
    }
}

/// What applying a trust document changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustUpdate {
    /// The same document was already held.
    Unchanged,
    /// A newer document is now held.
    Updated {
        /// Its version.
        version: u64,
        /// The new root, when this document rotated it.
        new_root: Option<PublicKey>,
        /// Signing keys the previous document listed and this one does not:
        /// the rollback guard forgets what they vouched for (fast-forward
        /// recovery, see [`crate::rollback`]).
        removed_keys: Vec<KeyId>,
    },
}

/// The trust document currently held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HeldTrust {
    /// Its version.
    version: u64,
    /// SHA-256 of its payload, to tell a re-delivery from a conflict.
    hash: Sha256,
    /// Its signing keys.
    keys: Vec<CertifiedKey>,
    /// When the root signed it: real time is at least this (S6). Absent in
    /// state written before it was kept.
    #[serde(default)]
    issued_at: Option<DateTime<Utc>>,
}

/// What a device trusts: the pinned root and the newest trust document it
/// accepted. Plain data: the agent persists it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    /// The pinned root public key (replaced only by a root rotation).
    root: PublicKey,
    /// The newest accepted trust document, if any yet.
    held: Option<HeldTrust>,
}

impl TrustStore {
    /// A store that pins `root` and holds no trust document yet.
    #[must_use]
    pub fn new(root: PublicKey) -> Self {
        Self { root, held: None }
    }

    /// The pinned root key.
    #[must_use]
    pub fn root(&self) -> PublicKey {
        self.root
    }

    /// The version of the held trust document.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        self.held.as_ref().map(|h| h.version)
    }

    /// The signing keys of the held trust document.
    #[must_use]
    pub fn signing_keys(&self) -> &[CertifiedKey] {
        self.held.as_ref().map_or(&[], |h| h.keys.as_slice())
    }

    /// Verifies a `trust` document against the pinned root and, if it is new,
    /// holds it. On any error nothing changes.
    ///
    /// # Errors
    /// Any envelope or signature error of [`VerifyError`], and
    /// [`VerifyError::TrustRollback`], [`VerifyError::TrustConflict`] or
    /// [`VerifyError::InvalidTrust`] for the trust rules.
    pub fn apply_trust(&mut self, bytes: &[u8]) -> Result<TrustUpdate, VerifyError> {
        let verified = self.verify_trust(bytes)?;
        let hash = verified.hash();
        let doc = verified.into_payload();
        if let Some(held) = &self.held {
            if doc.version < held.version {
                return Err(VerifyError::TrustRollback {
                    held: held.version,
                    offered: doc.version,
                });
            }
            if doc.version == held.version {
                return if hash == held.hash {
                    Ok(TrustUpdate::Unchanged)
                } else {
                    Err(VerifyError::TrustConflict {
                        version: doc.version,
                    })
                };
            }
        }
        validate_keys(&doc.signing_keys)?;
        let new_root = self.rotation(&doc)?;
        let removed_keys = self
            .signing_keys()
            .iter()
            .map(|k| k.key_id)
            .filter(|id| !doc.signing_keys.iter().any(|k| k.key_id == *id))
            .collect();
        if let Some(root) = new_root {
            self.root = root;
        }
        self.held = Some(HeldTrust {
            version: doc.version,
            hash,
            keys: doc.signing_keys,
            issued_at: Some(doc.issued_at),
        });
        Ok(TrustUpdate::Updated {
            version: doc.version,
            new_root,
            removed_keys,
        })
    }

    /// Checks the root-rotation rule; returns the new root if `doc` rotates.
    fn rotation(&self, doc: &TrustDocument) -> Result<Option<PublicKey>, VerifyError> {
        if doc.root_key_id == self.root.key_id() {
            return match doc.root_public_key {
                Some(key) if key != self.root => Err(VerifyError::InvalidTrust(
                    "root_public_key does not match root_key_id".into(),
                )),
                _ => Ok(None),
            };
        }
        let Some(new_root) = doc.root_public_key else {
            return Err(VerifyError::InvalidTrust(format!(
                "root rotation to {} carries no root_public_key",
                doc.root_key_id
            )));
        };
        if new_root.key_id() != doc.root_key_id {
            return Err(VerifyError::InvalidTrust(
                "root_public_key does not match root_key_id".into(),
            ));
        }
        if let Some(held) = &self.held
            && Some(doc.version) != held.version.checked_add(1)
        {
            return Err(VerifyError::InvalidTrust(format!(
                "a root rotation must be version {} (N+1), got {}",
                held.version.saturating_add(1),
                doc.version
            )));
        }
        Ok(Some(new_root))
    }

    /// Verifies a `trust` document against the pinned root without holding it.
    fn verify_trust(&self, bytes: &[u8]) -> Result<Verified<TrustDocument>, VerifyError> {
        let opened = envelope::open(bytes)?;
        expect_kind(&opened, DocumentKind::Trust)?;
        self.check_signature(&opened, None)?;
        opened.into_verified()
    }

    /// Fully verifies a document of kind `D` at time `now` (the trusted time,
    /// S6): size, envelope, kind, key lookup and its chain to the pinned root,
    /// the key's validity window, the signature, the payload, and the
    /// document's own expiry. A `trust` document is checked against the root
    /// (and not held: use [`Self::apply_trust`] for that).
    ///
    /// # Errors
    /// The [`VerifyError`] of the first check that fails, in the order above.
    pub fn verify<D: Document>(
        &self,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified<D>, VerifyError> {
        let opened = envelope::open(bytes)?;
        expect_kind(&opened, D::KIND)?;
        self.check_signature(&opened, Some(now))?;
        let verified = opened.into_verified::<D>()?;
        if let Some(expires_at) = verified.payload().expires_at()
            && expires_at <= now
        {
            return Err(VerifyError::Expired { expires_at });
        }
        Ok(verified)
    }

    /// Verifies a `hub_time` (S6). As [`Self::verify`], except that the
    /// signing key's validity window is checked at the time the `hub_time`
    /// itself states, not at the device's trusted time, which is what a
    /// `hub_time` corrects and may be wrong by any amount; and that stated
    /// time must not be before the issue time of the held trust document
    /// (the root vouches that real time is past it). Whether its version is
    /// new is the rollback guard's check, which the caller makes before using
    /// it; see [`crate::clock`] for why this opens no hole.
    ///
    /// # Errors
    /// The [`VerifyError`] of the first check that fails: envelope, kind,
    /// key and signature, payload, then [`VerifyError::KeyNotYetValid`] or
    /// [`VerifyError::KeyExpired`] at the stated time, then
    /// [`VerifyError::HubTimeBeforeTrust`].
    pub fn verify_hub_time(&self, bytes: &[u8]) -> Result<Verified<HubTime>, VerifyError> {
        let opened = envelope::open(bytes)?;
        expect_kind(&opened, DocumentKind::HubTime)?;
        self.check_signature(&opened, None)?;
        let key_id = opened.key_id();
        let verified = opened.into_verified::<HubTime>()?;
        let time = verified.payload().time;
        self.check_window(key_id, time)?;
        if let Some(trust_issued_at) = self.held.as_ref().and_then(|h| h.issued_at)
            && time < trust_issued_at
        {
            return Err(VerifyError::HubTimeBeforeTrust {
                time,
                trust_issued_at,
            });
        }
        Ok(verified)
    }

    /// Verifies the envelope and signature of a document of any kind, for
    /// tools that inspect documents (`signet-agent verify`). Returns the
    /// opened envelope; its payload is authentic but not parsed.
    ///
    /// # Errors
    /// As [`Self::verify`], short of the payload and expiry checks.
    pub fn verify_signature(
        &self,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Opened, VerifyError> {
        let opened = envelope::open(bytes)?;
        self.check_signature(&opened, Some(now))?;
        Ok(opened)
    }

    /// Key lookup, chain, window and signature. `trust` documents chain to
    /// the root directly and have no window.
    fn check_signature(
        &self,
        opened: &Opened,
        now: Option<DateTime<Utc>>,
    ) -> Result<(), VerifyError> {
        let key_id = opened.key_id();
        let key = if opened.kind() == DocumentKind::Trust {
            if key_id != self.root.key_id() {
                return Err(VerifyError::NotSignedByRoot {
                    root: self.root.key_id(),
                    found: key_id,
                });
            }
            self.root
        } else {
            let cert = self.certificate(key_id)?;
            if let Some(now) = now {
                self.check_window(key_id, now)?;
            }
            cert.public_key
        };
        if opened.signed_by(&key) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    /// The held certificate of signing key `key_id`.
    fn certificate(&self, key_id: KeyId) -> Result<&CertifiedKey, VerifyError> {
        let held = self.held.as_ref().ok_or(VerifyError::NoTrust)?;
        held.keys
            .iter()
            .find(|k| k.key_id == key_id)
            .ok_or(VerifyError::UnknownKey(key_id))
    }

    /// Whether signing key `key_id` is certified at `at`.
    fn check_window(&self, key_id: KeyId, at: DateTime<Utc>) -> Result<(), VerifyError> {
        let cert = self.certificate(key_id)?;
        if at < cert.not_before {
            return Err(VerifyError::KeyNotYetValid {
                key_id,
                not_before: cert.not_before,
            });
        }
        if at >= cert.not_after {
            return Err(VerifyError::KeyExpired {
                key_id,
                not_after: cert.not_after,
            });
        }
        Ok(())
    }
}

fn expect_kind(opened: &Opened, expected: DocumentKind) -> Result<(), VerifyError> {
    if opened.kind() == expected {
        Ok(())
    } else {
        Err(VerifyError::WrongKind {
            expected,
            found: opened.kind(),
        })
    }
}

fn validate_keys(keys: &[CertifiedKey]) -> Result<(), VerifyError> {
    if keys.len() > MAX_SIGNING_KEYS {
        return Err(VerifyError::InvalidTrust(format!(
            "{} signing keys, over the limit of {MAX_SIGNING_KEYS}",
            keys.len()
        )));
    }
    for (i, key) in keys.iter().enumerate() {
        if key.public_key.key_id() != key.key_id {
            return Err(VerifyError::InvalidTrust(format!(
                "key_id {} does not match its public key",
                key.key_id
            )));
        }
        if key.not_before >= key.not_after {
            return Err(VerifyError::InvalidTrust(format!(
                "key {} has an empty validity window",
                key.key_id
            )));
        }
        if keys[..i].iter().any(|k| k.key_id == key.key_id) {
            return Err(VerifyError::InvalidTrust(format!(
                "key {} is listed twice",
                key.key_id
            )));
        }
    }
    Ok(())
}
