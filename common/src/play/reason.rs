//! Why an item does not play, in the words operators read in reports.
//!
//! Owns: [`SkipReason`] and its texts. Must not: decide anything — the rules
//! are in [`super::decision`].

use chrono::{DateTime, Utc};

use crate::approval::ApprovalState;
use crate::documents::Unapproved;
use crate::ids::ItemId;
use crate::license::Denied;

/// Why an item may not play now (D4). The `Display` texts are short and
/// precise: they go into proof-of-play reports and `signet-agent status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// No playing manifest lists the item.
    #[error("not in any playing manifest")]
    NotListed,
    /// The manifest that lists it has expired (S3).
    #[error("manifest of {group} expired at {expired_at}")]
    ManifestExpired {
        /// The group whose manifest it is.
        group: String,
        /// Its expiry.
        expired_at: DateTime<Utc>,
    },
    /// The item is not approved, or the cached bytes are not the approved
    /// version (A7, A8).
    #[error("{}", unapproved_text(.0))]
    Unapproved(Unapproved),
    /// The bytes are not in the cache yet.
    #[error("not cached yet")]
    NotCached,
    /// The cached bytes cannot be used, with why.
    #[error("cached copy unusable: {0}")]
    Unusable(String),
    /// An access group's manifest lists it, but the device is not (or no
    /// longer) a member of that group (L4: removal is absence).
    #[error("not a member of access group {group}")]
    NotAMember {
        /// The access group.
        group: String,
    },
    /// An access group's manifest carries no license terms, so it grants
    /// nothing (a validated manifest always carries them).
    #[error("access group {group} has no license terms")]
    NoLicenseTerms {
        /// The access group.
        group: String,
    },
    /// The access group's license does not cover the device now (L2).
    #[error("{}", license_text(group, denied))]
    License {
        /// The access group.
        group: String,
        /// Which part of the license refuses.
        denied: Denied,
    },
    /// Licensed content, but the device has been out of contact with the hub
    /// for longer than the offline grace (S6, L4).
    #[error("{}", offline_text(group, *offline_for_secs, *grace_secs))]
    OfflineGraceExceeded {
        /// The access group.
        group: String,
        /// The trusted time of the last verified hub time; `None` if never.
        last_contact: Option<DateTime<Utc>>,
        /// Trusted seconds since then; `None` if never in contact.
        offline_for_secs: Option<i64>,
        /// The grace that applies, in seconds.
        grace_secs: i64,
    },
    /// A template's source item may not play.
    #[error("source {source}: {reason}")]
    Source {
        /// The source item.
        source: ItemId,
        /// Why it may not play. (Marked as the error source so that the
        /// field named `source` is not taken for one.)
        #[source]
        reason: Box<SkipReason>,
    },
}

fn unapproved_text(unapproved: &Unapproved) -> String {
    match unapproved {
        Unapproved::NotActive(ApprovalState::Pending) => "not approved (pending)".to_owned(),
        Unapproved::NotActive(ApprovalState::Inactive) => "not approved (inactive)".to_owned(),
        Unapproved::NotActive(ApprovalState::Active) => {
            "not approved (no approved hash)".to_owned()
        }
        Unapproved::NotTheApprovedVersion { approved, actual } => {
            format!("cached content {actual} is not the approved version {approved}")
        }
    }
}

fn license_text(group: &str, denied: &Denied) -> String {
    match denied {
        Denied::NotYetStarted { starts_at } => {
            format!("license of {group} not started (starts at {starts_at})")
        }
        Denied::Ended(limit) => format!("license of {group} ended by {limit}"),
        Denied::CountryNotAllowed { country } => {
            format!("license of {group} does not allow country {country}")
        }
        Denied::CountryUnknown => {
            format!("license of {group} is limited to some countries; device country unknown")
        }
        Denied::InvalidTerms(error) => format!("license of {group} is invalid: {error}"),
    }
}

fn offline_text(group: &str, offline_for_secs: Option<i64>, grace_secs: i64) -> String {
    let grace = human_duration(grace_secs);
    match offline_for_secs {
        Some(secs) => format!(
            "offline for {}, over the {grace} grace of {group}",
            human_duration(secs)
        ),
        None => format!("never in contact with the hub ({grace} grace of {group})"),
    }
}

/// `secs` as days, hours, minutes and seconds, zero units left out:
/// `"3 h 10 min"`, `"1 d 2 h 5 s"`, `"0 s"`.
pub(super) fn human_duration(secs: i64) -> String {
    let mut rest = secs.unsigned_abs();
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)] {
        let count = rest / size;
        rest %= size;
        if count > 0 {
            parts.push(format!("{count} {unit}"));
        }
    }
    match (parts.is_empty(), secs < 0) {
        (true, _) => "0 s".to_owned(),
        (false, false) => parts.join(" "),
        (false, true) => format!("-{}", parts.join(" ")),
    }
}
