//! [`MemberError`]: why the member player refused (M6).
//!
//! Owns: the kinds of refusal, with the stable codes the console's player
//! page shows. Must not: know HTTP (`api::member` maps each kind once).

use chrono::{DateTime, Utc};

use crate::store::StoreError;
use crate::values::InvalidName;

/// Why a member-player operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Absent, or not the caller's to play (404): `what` names it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The browser's token names no browser of the caller (404
    /// `device_not_registered`): register it again.
    #[error("this browser is not registered; name it again")]
    BrowserUnknown,
    /// Every group holding the item refuses the member now (403
    /// `outside_licence_window`), with the licence's reason.
    #[error("your licence does not allow playing this now: {0}")]
    OutsideWindow(String),
    /// Every slot is taken (409 `too_many_devices`, L5).
    #[error(
        "your licence allows at most {max} device(s); remove one of your devices to use this one"
    )]
    TooManyDevices {
        /// The licence's `max_active_devices`.
        max: u32,
    },
    /// The user has [`super::MAX_BROWSERS`] browsers (409 `too_many_browsers`).
    #[error("you have registered {0} browsers; remove one first")]
    TooManyBrowsers(usize),
    /// The item may not play (409 `not_approved`, A3).
    #[error("this item is not approved to play")]
    NotApproved,
    /// The media URL's signature does not match (403 `bad_signature`).
    #[error("the media link is not valid")]
    BadSignature,
    /// The media URL expired (410 `link_expired`): start the playback again.
    #[error("the media link expired at {}; start the playback again", .0.to_rfc3339())]
    LinkExpired(DateTime<Utc>),
    /// A value is not acceptable (400).
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// A browser name is not one (400 `invalid_name`).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The bytes could not be read (500).
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
