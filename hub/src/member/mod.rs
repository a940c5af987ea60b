//! The member player (M6, feature row 38): a user who is a member of
//! access groups plays their items in a browser — "My content", by
//! category — only inside the member's licence window (L2, L4) and device
//! limit (L5: a browser counts as a device), through short-lived signed
//! URLs, with every playback recorded as a play event for usage reports
//! (U1, U3, L8) and a first playback starting the duration from first use
//! (L2).
//!
//! Owns: the member's browsers ([`browsers`]: registered once with a name,
//! each holding a device slot per group), playbacks and their signed media
//! URLs ([`playback`]), the signed thumbnail URLs of the listed items
//! ([`thumbnails`]), the key they are signed with, and the trees below.
//! Must not: decide a window itself ([`signet_common::license`] does),
//! write access-group records other than through
//! [`crate::access_groups::first_use::note_use`], or know HTTP
//! (`api::member` maps [`MemberError`]).
//!
//! # The device limit for users
//! A licence's `max_active_devices` bounds, for a user member, the browsers
//! of that user holding a slot in the group (screens are counted per group,
//! [`crate::access_groups::device_slot`]; a user's browsers per user). A
//! browser takes a slot in each of its user's groups with room when it is
//! registered, and again at a playback in a group joined since. Removing
//! the browser frees its slots.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`BROWSERS`] | `{user}/{browser id}` | [`Browser`] |
//! | [`BROWSER_TOKENS`] | SHA-256 of the browser's token | `{user}/{browser id}` |
//! | [`PLAYS`] | play id (the play event's id) | [`Play`] |
//! | [`SIGNING_KEY`] | `hmac` | the key media URLs are signed with |
//!
//! A play is also stored as a [`crate::fleet::events::StoredEvent`] under
//! the browser's id as its device, with the user and the group's node.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, UserId};

pub mod browsers;
pub mod error;
pub mod playback;
pub mod thumbnails;
pub mod types;

pub use error::MemberError;

/// A user's browsers, keyed `{user}/{browser id}`.
pub const BROWSERS: &str = "member_browsers";
/// Browser keys by the SHA-256 of the browser's token.
pub const BROWSER_TOKENS: &str = "member_browser_tokens";
/// Playbacks by id.
pub const PLAYS: &str = "member_plays";
/// The key media URLs are signed with (made at first use).
pub const SIGNING_KEY: &str = "member_signing_key";

/// The most browsers one user may register.
pub const MAX_BROWSERS: usize = 20;
/// The longest browser name, in bytes.
pub const MAX_BROWSER_NAME_LEN: usize = 64;
/// How long a media URL works beyond the item's playing time, in seconds.
pub const MEDIA_URL_TTL_SECS: i64 = 600;
/// The longest a media URL works, in seconds.
pub const MAX_MEDIA_URL_TTL_SECS: i64 = 6 * 3600;

/// A browser a user registered to play in (it counts as a device, L5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Browser {
    /// Stable id (`web-…`): the device id of its play events.
    pub id: DeviceId,
    /// Whose.
    pub user: UserId,
    /// The name the user gave it.
    pub name: String,
    /// The SHA-256 of its token (the browser keeps the token).
    pub token_hash: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last started a playback.
    pub last_played_at: Option<DateTime<Utc>>,
    /// The groups in which it holds one of the user's device slots.
    pub slots: BTreeSet<AccessGroupId>,
}

/// One playback: what its signed media URL serves, and its play event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Play {
    /// Stable id (32 hex digits), also the play event's id.
    pub id: String,
    /// Who plays.
    pub user: UserId,
    /// In which browser.
    pub browser: DeviceId,
    /// What.
    pub item: ItemId,
    /// Under which group's licence.
    pub group: AccessGroupId,
    /// The bytes served.
    pub sha256: Sha256,
    /// Their media type.
    pub media_type: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its media URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// The key of a browser record.
#[must_use]
pub fn browser_key(user: &UserId, browser: &DeviceId) -> String {
    format!("{user}/{browser}")
}
