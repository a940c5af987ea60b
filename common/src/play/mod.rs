//! The play decision (D4) and the device's combined schedule (D5).
//!
//! Owns: whether one item may play on a device at a trusted instant, given the
//! device's assignment, the manifests it follows and what its cache holds
//! ([`may_play`]), why not ([`SkipReason`], whose texts operators read in
//! reports), until when a yes holds ([`Permit::until`]), and the one schedule a
//! device evaluates, made from every manifest it follows ([`combine`]). Must
//! not: read a clock (the caller passes trusted time, S6), read the cache or
//! hash bytes (the caller's `cached` answers), verify signatures or rollback
//! (done before a manifest is handed here), or keep state between calls.
//!
//! # The decision (D4)
//!
//! A device follows the manifests of its node chain (root → leaf; no license)
//! and of its access groups (each with license terms, L2). The caller passes
//! them in that *view order*. Every manifest that lists the item is tried, in
//! view order; the first that allows it gives the [`Permit`]. If none allows
//! it, the reason given is the one of the **first** manifest that lists it;
//! an item no manifest lists is [`SkipReason::NotListed`]. One manifest allows
//! an item when, in this order:
//!
//! 1. **The manifest is fresh (S3).** `now < expires_at` (the expiry instant
//!    itself is refused). The assignment's version floor is *not* checked
//!    here (D3, DESIGN §4): a floor limits which versions the agent may
//!    *accept*; the manifest that plays keeps playing until its successor is
//!    activated, however far the floor has moved.
//! 2. **An access group's license covers the device (L2, L4, S6).** The
//!    assignment must hold a membership for the group (removal is absence);
//!    the manifest must carry valid license terms; the membership's window must contain `now` (its end excluded; an empty
//!    window counts as ended, as in [`crate::license::check_access`]); the
//!    terms must allow the device's country (an unknown country is refused
//!    when the terms list countries); and the device must be in contact:
//!    `now < last_hub_contact + offline_grace` — the instant contact + grace
//!    is the first one refused, and a device never in contact is refused.
//!    The grace is the smaller of the assignment's and the license's, as
//!    signed — never raised ([`offline_grace`]); a license that disallows
//!    offline play counts as [`CONTACT_TOLERANCE_SECS`], so it plays while
//!    the hub's signed time keeps arriving. Node content needs no license and
//!    ignores the grace: approved, unlicensed content keeps playing offline
//!    (D1).
//!    The license comes before the cache: a device does not fetch what its
//!    license refuses, so "not cached" would hide the reason (L2).
//! 3. **The item is approved and cached (A7, A8).** An item that is not
//!    active (inactive or pending) is refused *before* the cache is asked, so
//!    it never needs to be downloaded. Otherwise the cache must hold bytes
//!    whose approval hash — the bytes' SHA-256 for media,
//!    [`crate::approval::Template::content_hash`] for a template — is the
//!    approved hash; missing bytes are "not cached", unusable bytes (a
//!    template that does not parse) say why.
//! 4. **A template's sources pass too.** Every item a template shows must be
//!    listed in the *same* manifest and pass step 3 itself; a source that is
//!    itself a template is unusable (templates do not nest).
//!
//! **A successor's restrictions apply at once (D3, A7, L2).** While a newer
//! accepted manifest of the same group waits for its content
//! ([`DeviceView::successors`]), the playing one keeps playing *except* what
//! the successor already takes away without needing any byte: an item the
//! successor lists as not active (its approval was withdrawn) is refused
//! as the successor refuses it, and an access group's content plays only
//! while the successor's license terms cover the device too. What the
//! successor adds, or merely stops listing, changes at activation only.
//!
//! A permit holds until the earliest of: the manifest's expiry, and for an
//! access group the window's end and the end of the offline grace. `until`
//! is the first instant at which the answer may no longer hold (exclusive,
//! like a window's end); the caller asks again then, or sooner when anything
//! else changes (a new document, a new hub contact, the cache).
//!
//! # The combined schedule (D5)
//!
//! [`combine`] puts every manifest's entries into one
//! [`crate::schedule::Schedule`]:
//! - entries in view order, each renamed `"{group}/{entry id}"` so that ids
//!   stay unique (should two still collide, the later one gets `#2`, `#3`, …);
//!   [`DeviceSchedule::origin`] maps each back to its group and own id;
//! - `merge`: the merge mode of the last manifest in view order that has
//!   entries (leaf-most), else the default
//!   ([`crate::schedule::MergeMode::Sequence`]);
//! - `default_item`: the leaf-most node manifest's default item that is set
//!   (walking from the leaf towards the root), else the first access group
//!   manifest's, in view order, that is set.
//!
//! Priorities compare across groups as written. Whether an item plays is
//! then [`may_play`], passed to [`crate::schedule::evaluate`] as `playable`.

mod decision;
mod reason;
mod schedule;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

use crate::approval::ContentHash;
use crate::documents::{DeviceAssignment, GroupManifest};
use crate::ids::{AccessGroupId, ItemId};

pub use decision::{may_play, offline_grace};
pub use reason::SkipReason;
pub use schedule::{DeviceSchedule, combine, scheduled_items};

/// A device counts as in contact with the hub for this long after its last
/// signed hub time: three of the longest `hub_time` intervals
/// ([`crate::sync::MAX_HUB_TIME_INTERVAL_SECS`]). It is the grace of a
/// license that does not allow offline play, and equals
/// [`crate::license::MIN_OFFLINE_GRACE_SECS`].
pub const CONTACT_TOLERANCE_SECS: i64 = 180;

/// Everything the decision looks at on one device at one instant.
#[derive(Debug, Clone)]
pub struct DeviceView<'a> {
    /// The device's verified assignment: memberships, floors, location, grace.
    pub assignment: &'a DeviceAssignment,
    /// The playing manifests, in following order: node chain root → leaf,
    /// then access groups in assignment order.
    pub manifests: Vec<&'a GroupManifest>,
    /// Accepted manifests newer than the playing one of their group, not
    /// activated yet (D3): only their restrictions apply (see the module
    /// doc). At most one per group.
    pub successors: Vec<&'a GroupManifest>,
    /// Trusted time (S6).
    pub now: DateTime<Utc>,
    /// The trusted time of the last verified `hub_time`, if any.
    pub last_hub_contact: Option<DateTime<Utc>>,
}

/// What the device's cache says about one item's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// Present and verified.
    Present {
        /// The bytes' SHA-256 for media,
        /// [`crate::approval::Template::content_hash`] of the parsed bytes
        /// for a template (A8).
        approval_hash: ContentHash,
        /// The items a template shows (empty for media).
        sources: Vec<ItemId>,
    },
    /// Not (yet) in the cache.
    Missing,
    /// Present but unusable (e.g. template bytes that do not parse), with why.
    Unusable(String),
}

/// Why an item may play: the group whose manifest allows it, and until when
/// that answer holds at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The group (node or access group) whose manifest allows the item.
    pub group: String,
    /// The access group whose license covers it; `None` for node content.
    pub access_group: Option<AccessGroupId>,
    /// The version of the access group's manifest (its license terms);
    /// `None` for node content.
    pub license_version: Option<u64>,
    /// The first instant at which this answer may no longer hold: the earliest
    /// of the access window's end, the end of the offline grace (last contact
    /// + grace) and the manifest's expiry. `None` if nothing limits it.
    pub until: Option<DateTime<Utc>>,
}
