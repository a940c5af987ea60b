//! Content approval (A3, A4) and templates with their content hash (A8).
//!
//! Owns: the approval state of an item and every transition between states,
//! the template document and its validation, and which template edits count
//! as content. Must not: decide who may approve (that is `approve_content`
//! on the node or above, A6, checked with [`crate::permissions`]), send the
//! request e-mail (A5), write the audit log, or read a clock — it tells the
//! caller which of those to do.
//!
//! # State machine (A3, A4)
//! | From | Event | To | Effect |
//! |---|---|---|---|
//! | — | copy ([`ItemApproval::copied`]) | active | |
//! | — | create ([`ItemApproval::created`]) | inactive if the profile requires approval, else active | |
//! | any | save, no change | unchanged | |
//! | any | save, feed-only change | unchanged | audit the feed change |
//! | any | save, feed-URL change in strict mode | as a content change | audit the feed change |
//! | any | save, content change, profile requires approval | inactive | |
//! | any | save, content change, profile does not | active (new hash approved) | |
//! | inactive | request approval | pending | send the request |
//! | pending | request approval, same version | pending | re-send the same request (A5) |
//! | pending | approve (same version) | active | |
//! | pending | reject with a reason | inactive, reason kept | |
//!
//! Every other pair is an [`ApprovalError`] and changes nothing. A user whose
//! profile does not require approval approves their own saves: the new
//! content hash becomes the approved one. A rejection's reason stays on the
//! inactive item while it is edited, until approval is requested again.

mod template;

pub use template::{
    Canvas, Change, FeedBinding, MAX_CANVAS_SIDE, MAX_FEED_URL_LEN, MAX_FEED_VALUE_CHARS,
    MAX_FEED_VARIABLE, MAX_FONT_SIZE_PX, MAX_JSON_POINTER_LEN, MAX_REFRESH_SECS, MAX_TEXT_CHARS,
    MAX_ZONE_ID_LEN, MAX_ZONES, MIN_REFRESH_SECS, Rect, Template, TemplateError, TextAlign,
    TextStyle, Zone, ZoneKind, classify_change,
};

use serde::{Deserialize, Serialize};

/// The SHA-256 of an approved version: a template's
/// [`Template::content_hash`] or a media file's bytes (A8). Serialized as 64
/// lowercase hex digits.
pub type ContentHash = crate::digest::Sha256;

/// The longest rejection reason, in characters.
pub const MAX_REJECTION_REASON_CHARS: usize = 2000;

/// Whether an item may play (A7): only active items do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Approved, or saved by someone who needs no approval; plays.
    Active,
    /// Changed since approval, never approved, or rejected; never plays.
    Inactive,
    /// Waiting for an approver; never plays.
    Pending,
}

/// The approval setting of the profile of the user who saves an item (A3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalProfile {
    /// Whether this user's content changes need approval before they play.
    pub requires_approval: bool,
}

/// An item's approval record, holding exactly what its state needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum ItemApproval {
    /// Plays; only content that hashes to `approved_hash` may play (A8).
    Active {
        /// The hash of the approved version.
        approved_hash: ContentHash,
    },
    /// Never plays.
    Inactive {
        /// Why an approver rejected the last request, if one did.
        rejection_reason: Option<String>,
    },
    /// Waiting for an approver; never plays.
    Pending {
        /// The hash of the version the request is for (one open request per
        /// version, A5).
        requested_hash: ContentHash,
    },
}

/// Something that happens to an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApprovalEvent {
    /// A user saved the item.
    Saved {
        /// What the save changed ([`classify_change`] for templates; media
        /// changes are [`Change::Content`] when the bytes' hash changed).
        change: Change,
        /// The item's content hash after the save.
        content_hash: ContentHash,
        /// Whether the item's node treats a feed-URL change as content (A4).
        strict_mode: bool,
    },
    /// A user asked for approval of the current version (A5).
    RequestApproval {
        /// The item's current content hash.
        content_hash: ContentHash,
    },
    /// An approver approved the version they reviewed (A6).
    Approve {
        /// The hash of the version the approver reviewed.
        approved_hash: ContentHash,
    },
    /// An approver rejected the request.
    Reject {
        /// Why; shown to the author; not blank.
        reason: String,
    },
}

impl ApprovalEvent {
    /// The event's name, for errors and audit records.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            ApprovalEvent::Saved { .. } => "saved",
            ApprovalEvent::RequestApproval { .. } => "request_approval",
            ApprovalEvent::Approve { .. } => "approve",
            ApprovalEvent::Reject { .. } => "reject",
        }
    }
}

/// Which approval request e-mail the caller must send (A5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestMail {
    /// A new request for this version.
    Send,
    /// The same request again; no second open request is created.
    Resend,
}

/// The outcome of an event: the new record and what the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before the event.
    pub from: ApprovalState,
    /// The record to store.
    pub approval: ItemApproval,
    /// Whether the caller must write the feed change to the audit log (A4).
    pub audit_feed_change: bool,
    /// Whether the caller must e-mail the node's content manager (A5).
    pub request_mail: Option<RequestMail>,
}

impl Transition {
    /// The state after the event.
    #[must_use]
    pub fn to(&self) -> ApprovalState {
        self.approval.state()
    }
}

/// Why an event was refused; the record is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// The event does not apply in this state (approve when not pending, …).
    #[error("cannot {event} an item that is {state:?}")]
    InvalidTransition {
        /// The item's state.
        state: ApprovalState,
        /// The event's name.
        event: &'static str,
    },
    /// The event names another version than the one the record holds.
    #[error("the event is for version {given}, but the item holds {expected}")]
    VersionMismatch {
        /// The hash the record holds.
        expected: ContentHash,
        /// The hash the event carries.
        given: ContentHash,
    },
    /// A rejection without a reason.
    #[error("a rejection needs a reason")]
    EmptyRejectionReason,
    /// A rejection reason longer than [`MAX_REJECTION_REASON_CHARS`].
    #[error("the rejection reason is longer than {max} characters")]
    RejectionReasonTooLong {
        /// The bound.
        max: usize,
    },
}

impl ItemApproval {
    /// A copy of a restricted node's item (A2): active, with its content hash
    /// approved.
    #[must_use]
    pub fn copied(content_hash: ContentHash) -> Self {
        ItemApproval::Active {
            approved_hash: content_hash,
        }
    }

    /// A new item saved by a user with `profile`: inactive if the profile
    /// requires approval, otherwise active with its hash approved.
    #[must_use]
    pub fn created(profile: ApprovalProfile, content_hash: ContentHash) -> Self {
        if profile.requires_approval {
            ItemApproval::Inactive {
                rejection_reason: None,
            }
        } else {
            ItemApproval::Active {
                approved_hash: content_hash,
            }
        }
    }

    /// The state this record is in.
    #[must_use]
    pub fn state(&self) -> ApprovalState {
        match self {
            ItemApproval::Active { .. } => ApprovalState::Active,
            ItemApproval::Inactive { .. } => ApprovalState::Inactive,
            ItemApproval::Pending { .. } => ApprovalState::Pending,
        }
    }

    /// The approved hash, if the item is active (plays only then, A7, A8).
    #[must_use]
    pub fn approved_hash(&self) -> Option<&ContentHash> {
        match self {
            ItemApproval::Active { approved_hash } => Some(approved_hash),
            _ => None,
        }
    }

    /// Applies `event`, saved by or on behalf of a user with `profile` (the
    /// profile matters only for saves). Returns the new record and the
    /// caller's duties; `self` is untouched, so a refusal changes nothing.
    ///
    /// # Errors
    /// [`ApprovalError`] when the event does not apply (see the module table).
    pub fn apply(
        &self,
        event: &ApprovalEvent,
        profile: ApprovalProfile,
    ) -> Result<Transition, ApprovalError> {
        let from = self.state();
        let done = |approval: ItemApproval, audit_feed_change, request_mail| {
            Ok(Transition {
                from,
                approval,
                audit_feed_change,
                request_mail,
            })
        };
        match (self, event) {
            (
                _,
                ApprovalEvent::Saved {
                    change,
                    content_hash,
                    strict_mode,
                },
            ) => {
                let (content_changed, audit) = match change {
                    Change::None => (false, false),
                    Change::FeedOnly { url_changed } => (*url_changed && *strict_mode, true),
                    Change::Content => (true, false),
                };
                if content_changed {
                    let next = ItemApproval::created(profile, *content_hash);
                    // Keep a rejection's reason visible while the author edits.
                    let next = match (self, next) {
                        (
                            ItemApproval::Inactive { rejection_reason },
                            ItemApproval::Inactive { .. },
                        ) => ItemApproval::Inactive {
                            rejection_reason: rejection_reason.clone(),
                        },
                        (_, next) => next,
                    };
                    return done(next, audit, None);
                }
                self.expect_version(content_hash)?;
                done(self.clone(), audit, None)
            }
            (ItemApproval::Inactive { .. }, ApprovalEvent::RequestApproval { content_hash }) => {
                done(
                    ItemApproval::Pending {
                        requested_hash: *content_hash,
                    },
                    false,
                    Some(RequestMail::Send),
                )
            }
            (ItemApproval::Pending { .. }, ApprovalEvent::RequestApproval { content_hash }) => {
                self.expect_version(content_hash)?;
                done(self.clone(), false, Some(RequestMail::Resend))
            }
            (ItemApproval::Pending { .. }, ApprovalEvent::Approve { approved_hash }) => {
                self.expect_version(approved_hash)?;
                done(
                    ItemApproval::Active {
                        approved_hash: *approved_hash,
                    },
                    false,
                    None,
                )
            }
            (ItemApproval::Pending { .. }, ApprovalEvent::Reject { reason }) => {
                let reason = reason.trim();
                if reason.is_empty() {
                    return Err(ApprovalError::EmptyRejectionReason);
                }
                if reason.chars().count() > MAX_REJECTION_REASON_CHARS {
                    return Err(ApprovalError::RejectionReasonTooLong {
                        max: MAX_REJECTION_REASON_CHARS,
                    });
                }
                done(
                    ItemApproval::Inactive {
                        rejection_reason: Some(reason.to_owned()),
                    },
                    false,
                    None,
                )
            }
            (_, event) => Err(ApprovalError::InvalidTransition {
                state: from,
                event: event.name(),
            }),
        }
    }

    /// Checks `given` is the version the record holds, if it holds one.
    fn expect_version(&self, given: &ContentHash) -> Result<(), ApprovalError> {
        let held = match self {
            ItemApproval::Active { approved_hash } => approved_hash,
            ItemApproval::Pending { requested_hash } => requested_hash,
            ItemApproval::Inactive { .. } => return Ok(()),
        };
        if held == given {
            Ok(())
        } else {
            Err(ApprovalError::VersionMismatch {
                expected: *held,
                given: *given,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_refuses_approval_of_another_version() {
        let pending = ItemApproval::Pending {
            requested_hash: ContentHash::of(b"a"),
        };
        let before = pending.clone();
        let result = pending.apply(
            &ApprovalEvent::Approve {
                approved_hash: ContentHash::of(b"b"),
            },
            ApprovalProfile {
                requires_approval: true,
            },
        );
        assert!(matches!(result, Err(ApprovalError::VersionMismatch { .. })));
        assert_eq!(pending, before);
    }
}
