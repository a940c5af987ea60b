//! The rollback guard (S3): refuses old, conflicting and frozen documents.
//!
//! Owns: the record of the highest version and hash accepted per (kind,
//! subject), the per-group manifest version floors set by the device
//! assignment, manifest freshness, and fast-forward recovery. Must not:
//! verify signatures (only verified documents reach it) or persist itself —
//! it is plain serde data the agent saves before it acknowledges (S5, S9).
//!
//! # Rules
//! - A version lower than the held one is refused ([`RollbackError::Older`]).
//! - The held version with another hash is refused
//!   ([`RollbackError::Conflict`]); with the same hash it is a harmless
//!   re-delivery ([`Acceptance::AlreadyHeld`]).
//! - A `group_manifest` below the floor the device assignment sets for its
//!   group is refused ([`RollbackError::BelowFloor`]); raising a floor above
//!   the held manifest makes that manifest stale ([`Freshness::BelowFloor`]).
//! - A held manifest whose `expires_at` passed is stale
//!   ([`Freshness::Expired`]): withholding updates from a device ("freeze")
//!   is bounded by the expiry, because the hub re-signs manifests well before.
//!
//! # Fast-forward recovery
//! If a signing key is compromised, its holder can sign a huge version (say
//! `u64::MAX`) that the device accepts; every honest version after it would
//! then be refused as older. Recovery is a signing-key rotation: the hub
//! publishes a `trust` document without the compromised key, and the agent
//! passes the removed key ids to [`RollbackGuard::forget_keys`], which drops
//! every record (and, with the assignment, every floor) that a removed key
//! vouched for. Documents signed by the removed key no longer verify, so the
//! forgotten records cannot be replayed; the next honest document signed by a
//! current key is accepted whatever its version. The `trust` document's own
//! version is guarded by [`crate::trust::TrustStore`], which only the offline
//! root can advance.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::envelope::{Document, DocumentKind, KeyId, Verified};

/// Why the guard refused a document. Nothing changes on refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// A version lower than the held one.
    #[error("{kind} {subject}: version {offered} is older than the held version {held}")]
    Older {
        /// The document kind.
        kind: DocumentKind,
        /// What the version counts for.
        subject: String,
        /// The held version.
        held: u64,
        /// The version offered.
        offered: u64,
    },
    /// The held version, but other content.
    #[error("{kind} {subject}: version {version} conflicts with the held document of that version")]
    Conflict {
        /// The document kind.
        kind: DocumentKind,
        /// What the version counts for.
        subject: String,
        /// The version both carry.
        version: u64,
    },
    /// A group manifest below the floor the device assignment sets.
    #[error("group_manifest {subject}: version {offered} is below the assigned floor {floor}")]
    BelowFloor {
        /// The group.
        subject: String,
        /// The assigned minimum version.
        floor: u64,
        /// The version offered.
        offered: u64,
    },
}

/// What accepting a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// A newer document is now held (`previous` is the version it replaced).
    New {
        /// The version held before, if any.
        previous: Option<u64>,
    },
    /// The same document was already held; nothing changed.
    AlreadyHeld,
}

/// Whether the held document of a subject may still be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Held, not expired, not below its floor.
    Fresh,
    /// Nothing is held for this subject.
    Missing,
    /// Its `expires_at` has passed.
    Expired {
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// The device assignment now requires a newer version.
    BelowFloor {
        /// The held version.
        held: u64,
        /// The required minimum.
        floor: u64,
    },
}

/// The record kept for one accepted document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedDocument {
    /// Its version.
    pub version: u64,
    /// SHA-256 of its payload.
    pub hash: Sha256,
    /// The key that signed it, for fast-forward recovery.
    pub key_id: KeyId,
    /// When it expires, for kinds that do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A document offered to the guard: what the version check needs.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// The document kind.
    pub kind: DocumentKind,
    /// What the version counts for (group id, device id, or the kind).
    pub subject: Cow<'a, str>,
    /// Its version.
    pub version: u64,
    /// SHA-256 of its payload.
    pub hash: Sha256,
    /// The key that signed it.
    pub key_id: KeyId,
    /// When it expires, if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

impl<'a> Offer<'a> {
    /// The offer for a verified document; the subject is the document's own
    /// ([`Document::subject`]), never the topic it arrived on.
    #[must_use]
    pub fn of<D: Document>(verified: &'a Verified<D>) -> Self {
        Self {
            kind: D::KIND,
            subject: verified.payload().subject(),
            version: verified.payload().version(),
            hash: verified.hash(),
            key_id: verified.key_id(),
            expires_at: verified.payload().expires_at(),
        }
    }
}

/// The per-device rollback state. Plain data: persist it before acking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackGuard {
    /// The held record per kind and subject.
    accepted: BTreeMap<DocumentKind, BTreeMap<String, AcceptedDocument>>,
    /// Minimum group-manifest version per group, from the device assignment.
    floors: BTreeMap<String, u64>,
}

impl RollbackGuard {
    /// An empty guard (a newly paired device).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The record held for a kind and subject.
    #[must_use]
    pub fn held(&self, kind: DocumentKind, subject: &str) -> Option<&AcceptedDocument> {
        self.accepted.get(&kind)?.get(subject)
    }

    /// The floor the device assignment sets for a group's manifest.
    #[must_use]
    pub fn floor(&self, group: &str) -> Option<u64> {
        self.floors.get(group).copied()
    }

    /// Decides whether `offer` may be accepted, without changing anything.
    ///
    /// # Errors
    /// [`RollbackError::Older`], [`RollbackError::Conflict`] or
    /// [`RollbackError::BelowFloor`].
    pub fn check(&self, offer: &Offer<'_>) -> Result<Acceptance, RollbackError> {
        if offer.kind == DocumentKind::GroupManifest
            && let Some(floor) = self.floor(&offer.subject)
            && offer.version < floor
        {
            return Err(RollbackError::BelowFloor {
                subject: offer.subject.to_string(),
                floor,
                offered: offer.version,
            });
        }
        let Some(held) = self.held(offer.kind, &offer.subject) else {
            return Ok(Acceptance::New { previous: None });
        };
        if offer.version < held.version {
            return Err(RollbackError::Older {
                kind: offer.kind,
                subject: offer.subject.to_string(),
                held: held.version,
                offered: offer.version,
            });
        }
        if offer.version == held.version {
            return if offer.hash == held.hash {
                Ok(Acceptance::AlreadyHeld)
            } else {
                Err(RollbackError::Conflict {
                    kind: offer.kind,
                    subject: offer.subject.to_string(),
                    version: offer.version,
                })
            };
        }
        Ok(Acceptance::New {
            previous: Some(held.version),
        })
    }

    /// Accepts `offer` if [`Self::check`] allows it, recording its version and
    /// hash. On refusal nothing changes.
    ///
    /// # Errors
    /// As [`Self::check`].
    pub fn accept(&mut self, offer: &Offer<'_>) -> Result<Acceptance, RollbackError> {
        let acceptance = self.check(offer)?;
        if let Acceptance::New { .. } = acceptance {
            self.accepted.entry(offer.kind).or_default().insert(
                offer.subject.to_string(),
                AcceptedDocument {
                    version: offer.version,
                    hash: offer.hash,
                    key_id: offer.key_id,
                    expires_at: offer.expires_at,
                },
            );
        }
        Ok(acceptance)
    }

    /// Replaces the group-manifest floors with those of a newly accepted
    /// device assignment. Returns the groups whose held manifest is now below
    /// its floor (they must not be acted on until a newer one arrives).
    pub fn set_floors(&mut self, floors: impl IntoIterator<Item = (String, u64)>) -> Vec<String> {
        self.floors = floors.into_iter().collect();
        self.floors
            .iter()
            .filter(|(group, floor)| {
                self.held(DocumentKind::GroupManifest, group)
                    .is_some_and(|held| held.version < **floor)
            })
            .map(|(group, _)| group.clone())
            .collect()
    }

    /// Whether the held document of a kind and subject may be acted on at
    /// trusted time `now`.
    #[must_use]
    pub fn freshness(&self, kind: DocumentKind, subject: &str, now: DateTime<Utc>) -> Freshness {
        let Some(held) = self.held(kind, subject) else {
            return Freshness::Missing;
        };
        if let Some(expires_at) = held.expires_at
            && expires_at <= now
        {
            return Freshness::Expired { expires_at };
        }
        if kind == DocumentKind::GroupManifest
            && let Some(floor) = self.floor(subject)
            && held.version < floor
        {
            return Freshness::BelowFloor {
                held: held.version,
                floor,
            };
        }
        Freshness::Fresh
    }

    /// Fast-forward recovery (see the module doc): forgets every record a
    /// removed signing key vouched for, and the floors if the device
    /// assignment was one of them. Returns the forgotten (kind, subject)
    /// pairs.
    pub fn forget_keys(&mut self, removed: &[KeyId]) -> Vec<(DocumentKind, String)> {
        let mut forgotten = Vec::new();
        for (kind, records) in &mut self.accepted {
            records.retain(|subject, record| {
                let keep = !removed.contains(&record.key_id);
                if !keep {
                    forgotten.push((*kind, subject.clone()));
                }
                keep
            });
        }
        self.accepted.retain(|_, records| !records.is_empty());
        if forgotten
            .iter()
            .any(|(kind, _)| *kind == DocumentKind::DeviceAssignment)
        {
            self.floors.clear();
        }
        forgotten
    }
}
