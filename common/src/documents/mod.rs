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
//! An optional field added within v1 (a manifest item's `renditions`, M3)
//! is left out when empty, so every document that does not use it is
//! byte-for-byte what older agents accept; an older agent refuses (with
//! the reason, keeping its last good state) a document that uses it.

mod assignment;
mod command;
mod hub_time;
mod manifest;
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
