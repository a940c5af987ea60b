//! [`AccessGroupError`]: why an access-group operation was refused.
//!
//! Owns: the kinds of refusal the access-group service makes, with the
//! stable codes and messages clients match on. Must not: know HTTP — the
//! API maps each kind to a status in one place (`api::access_groups`).

use chrono::{DateTime, Utc};

use crate::identity::{HashError, RoleTooLow};
use crate::store::StoreError;
use crate::values::InvalidName;

/// Why an access-group operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessGroupError {
    /// Absent, or outside what the actor may see (T4): `what` names it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A token or key that matches nothing (404 with its own code).
    #[error("{message}")]
    Unknown {
        /// Stable code, e.g. `invite_not_found`.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// The input is not acceptable as sent (400).
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `invalid_end_date`.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// The change conflicts with the stored state (409), e.g. `group_full`.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// What the token grants has ended (410).
    #[error("{message}")]
    Gone {
        /// Stable code, e.g. `invite_expired`.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// Allowed to nobody in this situation (403), e.g. `domain_not_allowed`.
    #[error("{message}")]
    Refused {
        /// Stable code.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// The shop hook's key is missing or wrong (401).
    #[error("{0}")]
    WrongKey(&'static str),
    /// A signup confirmation went to this address less than
    /// [`super::SIGNUP_MAIL_INTERVAL_SECS`] ago (S12: 429).
    #[error(
        "a confirmation was mailed to this address at {}; use it, or ask again after {}",
        sent.to_rfc3339(), next.to_rfc3339()
    )]
    MailedRecently {
        /// When the last one went.
        sent: DateTime<Utc>,
        /// The first instant another may go.
        next: DateTime<Utc>,
        /// Seconds until then (at least 1).
        retry_after: u64,
    },
    /// A display name is not one (400 `invalid_name`).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The CSV file could not be read as a member list (L7).
    #[error(transparent)]
    Csv(#[from] signet_common::members_csv::ImportError),
    /// The actor's role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// A password could not be hashed (busy: 503, else 500).
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// The store failed, or the transaction kept conflicting.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccessGroupError {
    /// 400 with `code` and `message`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// 409 with `code` and `message`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// 410 with `code` and `message`.
    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Self::Gone {
            code,
            message: message.into(),
        }
    }
}
