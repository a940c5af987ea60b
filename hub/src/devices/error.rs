//! [`DeviceError`]: why a devices operation was refused.

use super::{MAX_OPEN_PAIRINGS, MAX_OPEN_PAIRINGS_PER_ADDRESS};
use crate::store::StoreError;

/// Why a devices operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Absent, or outside the actor's domain (T4): what was not found.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor lacks `manage_devices` (P7).
    #[error("needs the manage_devices permission")]
    Forbidden,
    /// The request is not acceptable as sent (400).
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The change conflicts with the current state (409).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The hub holds [`MAX_OPEN_PAIRINGS`] open pairings (503).
    #[error("the hub holds at most {MAX_OPEN_PAIRINGS} open pairings; try again later")]
    TooManyPairings,
    /// This address holds [`MAX_OPEN_PAIRINGS_PER_ADDRESS`] open pairings (429).
    #[error(
        "at most {MAX_OPEN_PAIRINGS_PER_ADDRESS} open pairings per client address; \
         approve or let some expire"
    )]
    TooManyFromAddress {
        /// Seconds until its first one expires.
        retry_after: u64,
    },
    /// The hub failed (500; the cause is logged, not shown).
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
