//! Media actions (M3, P5, P7, M2, M1): share an item by a signed,
//! expiring playback link ([`share`]); like or dislike it, once per user,
//! and keep it among one's favorites ([`service`]); report it with a reason
//! into the moderators' queue ([`feedback`]); set its custom attributes,
//! typed and defined per node ([`attributes`]).
//!
//! Rules: every action on an item goes through [`service::acting_in`], the
//! one check of P5 inside the action's transaction: the caller views the
//! item (else 404, as for other tenants), holds the action's permission
//! (403 `permission_not_held`) and the item's publish settings allow it
//! (403 `disabled_by_publish_settings`: share and rate have a setting). Items
//! are content items, media and templates alike (a share link plays media
//! only); rating and favorites also take playlists, through
//! [`crate::content::subjects`] (removed with the playlist by the schedules
//! service). Deleting an item removes its ratings, favorites, attribute
//! values, share links and open feedback in the same transaction
//! ([`repo::remove_of_item_in`], called by the content repository).
//!
//! Owns: the trees below (written only by [`repo`]), the share-link key, the
//! typed [`ActionError`] and what the API shows of these ([`view`]). Must
//! not: know HTTP, send mail itself (it queues it in the outbox inside the
//! action's transaction), or import the domains above content.

pub mod attributes;
pub mod feedback;
pub mod repo;
pub mod service;
pub mod share;
pub mod view;

use crate::identity::RoleTooLow;
use crate::store::StoreError;

use super::service::ContentError;

/// Ratings by item and user, keyed `{item}/{user}`.
pub const RATINGS: &str = "item_ratings";
/// Favorites by user and item, keyed `{user}/{item}`.
pub const FAVORITES: &str = "user_favorites";
/// The favorites index by item, keyed `{item}/{user}` (value: the user).
pub const FAVORITES_BY_ITEM: &str = "item_favorites";
/// Feedback reports by time-ordered id.
pub const FEEDBACK: &str = "feedback";
/// Open feedback by item, keyed `{item}/{feedback}` (value: the reporter).
pub const OPEN_FEEDBACK: &str = "feedback_open";
/// Custom attribute definitions, keyed `{node}/{key}`.
pub const ATTRIBUTE_DEFS: &str = "attribute_defs";
/// Custom attribute values, keyed `{item}/{key}`.
pub const ATTRIBUTE_VALUES: &str = "attribute_values";
/// Share links by id.
pub const SHARES: &str = "shares";
/// Share links by item, keyed `{item}/{share}` (value: the share id).
pub const SHARES_BY_ITEM: &str = "shares_by_item";
/// The key share links are authenticated with, under [`SHARE_KEY_ID`].
pub const SHARE_KEYS: &str = "share_keys";
/// The record of the current share-link key.
pub const SHARE_KEY_ID: &str = "current";

/// Why a media action was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The item check failed: not visible (404), permission not held or
    /// disabled by the publish settings (403).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Absent or not visible (404, T4).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// A request not acceptable as sent (400, with its code).
    #[error("{message}")]
    Invalid {
        /// The stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The request conflicts with the current state (409, with its code).
    #[error("{message}")]
    Conflict {
        /// The stable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// A share link that worked once and works no more (410, with its code).
    #[error("{message}")]
    Gone {
        /// The stable code: `share_expired` or `share_revoked`.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ActionError {
    /// 400 with `code`.
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// 409 with `code`.
    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// A free text of 1 to `max` characters (`field` names it in the error):
/// trimmed, not blank, without control characters other than line breaks
/// and tabs.
///
/// # Errors
/// [`ActionError::Invalid`] with `code`.
pub(crate) fn text(
    raw: &str,
    max: usize,
    (field, code): (&str, &'static str),
) -> Result<String, ActionError> {
    let text = raw.trim();
    let bad = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
    if text.is_empty() || text.chars().count() > max || bad {
        return Err(ActionError::invalid(
            code,
            format!("{field} must be 1 to {max} characters of text"),
        ));
    }
    Ok(text.to_owned())
}
