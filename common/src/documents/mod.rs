//! The payloads of signed documents (DESIGN §4–§5).
//!
//! Owns: the typed payload of every document kind but `trust` (which lives
//! with the key hierarchy in [`crate::trust`]), their bounds and their
//! rollback subjects. Must not: sign or verify — [`crate::envelope`] and
//! [`crate::trust`] do that.
//!
//! Payloads are UTF-8 JSON; times are RFC 3339 UTC strings. Every payload,
//! like the envelope, refuses unknown fields: a document that means more than
//! the agent understands is refused, never half-applied. The format evolves
//! with the topic namespace (`signet/v1/`), not by fields old agents skip.
//!
//! # Optional fields within v1 ([`DOCUMENT_FEATURES`])
//! An optional field added within v1 (a manifest item's `renditions`, M3)
//! is left out when empty, so every document that does not use it is
//! byte-for-byte what older agents accept. An agent names the optional
//! fields it reads in its state (`document_features`); the hub puts such a
//! field into a document only when every device that receives it named
//! the field, so an agent built before the field never gets a document it
//! would refuse, and a fleet upgrades screen by screen without a dark one.
//! Parsing stays strict on both sides: a document using a field the agent
//! did not declare is still refused, with the reason (and the agent keeps
//! its last good state).

mod assignment;
mod command;
mod hub_time;
mod manifest;
mod plain;
mod rendition;

pub use assignment::{
    AccessMembership, AssignmentError, DeviceAssignment, Location, MAX_MEMBERSHIPS, MAX_NODE_CHAIN,
    MAX_VARIABLE_VALUE_LEN, validate_variables,
};
pub use command::{Command, CommandAction, CommandError, MAX_NONCE_LEN};
pub use hub_time::HubTime;
pub use manifest::{
    GroupKind, GroupManifest, ItemKind, MAX_CATEGORIES, MAX_CATEGORY_LEN, MAX_MANIFEST_ITEMS,
    MAX_URL_LEN, ManifestError, ManifestItem, Unapproved,
};
pub use rendition::{DecodeLimit, MAX_CODEC_LEN, MAX_RENDITIONS, Rendition};

/// The optional document field `renditions` of a manifest item (M3).
pub const FEATURE_RENDITIONS: &str = "renditions";

/// Every optional document field this build of `signet-common` reads:
/// what an agent declares in its state (`document_features`, see the
/// module doc).
pub const DOCUMENT_FEATURES: &[&str] = &[FEATURE_RENDITIONS];

/// The most features one state may declare.
pub const MAX_DOCUMENT_FEATURES: usize = 32;
