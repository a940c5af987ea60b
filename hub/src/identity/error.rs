//! [`IdentityError`]: why the identity service refused.

use chrono::{DateTime, Utc};

use super::names::NameError;
use super::{HashError, RoleTooLow};
use crate::store::StoreError;

/// Why an identity operation (users, sessions, login) was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Absent, or not visible to the actor (404).
    #[error("user not found")]
    NotFound,
    /// Not a current session of the actor (404).
    #[error("session not found")]
    SessionNotFound,
    /// The actor's role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// A field is not acceptable (400 with `code`).
    #[error("{message}")]
    Invalid {
        /// The machine code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The login name is taken (409 `name_taken`, S13).
    #[error("the name {0:?} is taken")]
    NameTaken(String),
    /// The login name looks like an existing one (409 `name_confusable`).
    #[error(transparent)]
    Confusable(NameError),
    /// A password hash did not happen: every slot stayed busy (503) or it
    /// failed (500) (S12).
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A login with a wrong name or password, or a disabled account (401).
    #[error("wrong name or password")]
    WrongCredentials,
    /// Too many failed logins for a name from this source (429, S12).
    #[error("too many failed logins for this name from this address; retry after {until}")]
    Throttled {
        /// When the source may try again.
        until: DateTime<Utc>,
        /// Seconds until then (at least 1).
        retry_after: u64,
    },
    /// A set-password token that was never issued (404 `token_not_found`).
    #[error("unknown set-password token")]
    TokenUnknown,
    /// A set-password token already used (409 `token_used`): it works once.
    #[error("this set-password link was already used at {0}; ask for a new one")]
    TokenUsed(DateTime<Utc>),
    /// A set-password token past its time (410 `token_expired`).
    #[error("this set-password link expired at {0}; ask for a new one")]
    TokenExpired(DateTime<Utc>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdentityError {
    /// 400 with `code`.
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}
