//! License terms and a member's access window (L2, L5).
//!
//! Owns: the terms of an access group's license, a member's dates, the
//! window in which the member may use the group's content, and the device
//! count limit. Must not: read a clock — every time is passed in, and on the
//! agent it must be the trusted time (S6) — or know which content a group
//! holds.
//!
//! # Rules
//! - Access runs from `max(joined_at, fixed_start)` up to, not including, the
//!   earliest of: join + duration, first use + duration from first use (once
//!   first use is known), fixed end, the member's end date, removal (L2).
//! - On a tie the limit that says most about *this member* is named:
//!   [`Limit::Removed`], then [`Limit::MemberEndDate`], [`Limit::FixedEnd`],
//!   [`Limit::DurationFromJoin`], [`Limit::DurationFromFirstUse`] (the order
//!   of [`Limit`]).
//! - A duration that would run past the last representable date sets no end.
//! - Activating a device beyond `max_active_devices` is refused until one is
//!   deactivated; re-activating an active device is not a new activation (L5).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The longest duration any term may hold: 100 years, in seconds.
pub const MAX_DURATION_SECS: u64 = 100 * 366 * 24 * 60 * 60;
/// The most countries a license may list (there are 249 ISO 3166-1 codes).
pub const MAX_ALLOWED_COUNTRIES: usize = 249;
/// The shortest offline grace a hub signs, in seconds (S6): three of the
/// longest `hub_time` intervals
/// ([`crate::sync::MAX_HUB_TIME_INTERVAL_SECS`]), so a device that is online
/// never runs out of grace between two `hub_time`s, one of them lost or late.
/// A device honours whatever grace is signed; the hub refuses a shorter one
/// ([`LicenseTerms::check_issuable`]).
pub const MIN_OFFLINE_GRACE_SECS: u64 = 3 * crate::sync::MAX_HUB_TIME_INTERVAL_SECS;

/// The terms of an access group's one license (L1, L2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseTerms {
    /// How long a member has access after joining, in seconds.
    pub duration_from_join_secs: Option<u64>,
    /// How long a member has access after first using the content, in seconds.
    pub duration_from_first_use_secs: Option<u64>,
    /// No access before this time, whenever the member joined.
    pub fixed_start: Option<DateTime<Utc>>,
    /// No access from this time on, whenever the member joined.
    pub fixed_end: Option<DateTime<Utc>>,
    /// How many devices may hold the license at once; `None` for no limit.
    pub max_active_devices: Option<u32>,
    /// Whether a device may keep playing while it cannot reach the hub.
    pub allow_offline: bool,
    /// How long, in seconds of trusted time since the last signed hub
    /// contact, an offline device may keep playing (S6).
    pub offline_grace_secs: u64,
    /// Whether content may be exported from the device.
    pub allow_export: bool,
    /// ISO 3166-1 alpha-2 codes (any case) of the countries where the content
    /// may play; `None` for everywhere.
    pub allowed_countries: Option<Vec<String>>,
}

/// Why license terms were refused, or a device activation was refused (L5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// `fixed_end` is not after `fixed_start`.
    #[error("the fixed end {end} is not after the fixed start {start}")]
    EndNotAfterStart {
        /// The fixed start.
        start: DateTime<Utc>,
        /// The fixed end.
        end: DateTime<Utc>,
    },
    /// A duration of zero seconds, which would grant nothing.
    #[error("{which} is zero")]
    ZeroDuration {
        /// Which duration.
        which: Limit,
    },
    /// A duration beyond [`MAX_DURATION_SECS`].
    #[error("{field} is longer than {max} seconds")]
    DurationTooLong {
        /// Which field.
        field: &'static str,
        /// The bound, in seconds.
        max: u64,
    },
    /// Offline play allowed with no grace, which would allow nothing.
    #[error("offline play is allowed but the offline grace is zero")]
    ZeroOfflineGrace,
    /// An offline grace shorter than [`MIN_OFFLINE_GRACE_SECS`], which the
    /// hub does not sign (a device would go dark between two `hub_time`s).
    #[error(
        "offline_grace_secs is {secs}; it must be at least {min} \
         (three hub_time intervals), or allow_offline false"
    )]
    OfflineGraceTooShort {
        /// The grace given, in seconds.
        secs: u64,
        /// The shortest allowed, in seconds.
        min: u64,
    },
    /// `max_active_devices` of zero, which would allow no device.
    #[error("max_active_devices is zero")]
    ZeroMaxActiveDevices,
    /// A country list that is present but empty (omit it to allow everywhere).
    #[error("allowed_countries is empty; omit it to allow every country")]
    EmptyCountryList,
    /// More than [`MAX_ALLOWED_COUNTRIES`] countries.
    #[error("{count} allowed countries; at most {max}")]
    TooManyCountries {
        /// How many were given.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// An entry that is not two ASCII letters.
    #[error("{code:?} is not an ISO 3166-1 alpha-2 country code")]
    InvalidCountryCode {
        /// The entry given (at most 16 characters of it).
        code: String,
    },
    /// Activating one more device would exceed the license's limit (L5).
    #[error("the license allows at most {max} active devices")]
    TooManyDevices {
        /// The license's limit.
        max: u32,
    },
}

impl LicenseTerms {
    /// Checks the terms are coherent and bounded.
    ///
    /// # Errors
    /// The first problem found, as a [`LicenseError`].
    pub fn validate(&self) -> Result<(), LicenseError> {
        if let (Some(start), Some(end)) = (self.fixed_start, self.fixed_end)
            && end <= start
        {
            return Err(LicenseError::EndNotAfterStart { start, end });
        }
        for (which, field, value) in [
            (
                Limit::DurationFromJoin,
                "duration_from_join_secs",
                self.duration_from_join_secs,
            ),
            (
                Limit::DurationFromFirstUse,
                "duration_from_first_use_secs",
                self.duration_from_first_use_secs,
            ),
        ] {
            match value {
                Some(0) => return Err(LicenseError::ZeroDuration { which }),
                Some(secs) if secs > MAX_DURATION_SECS => {
                    return Err(LicenseError::DurationTooLong {
                        field,
                        max: MAX_DURATION_SECS,
                    });
                }
                _ => {}
            }
        }
        if self.offline_grace_secs > MAX_DURATION_SECS {
            return Err(LicenseError::DurationTooLong {
                field: "offline_grace_secs",
                max: MAX_DURATION_SECS,
            });
        }
        if self.allow_offline && self.offline_grace_secs == 0 {
            return Err(LicenseError::ZeroOfflineGrace);
        }
        if self.max_active_devices == Some(0) {
            return Err(LicenseError::ZeroMaxActiveDevices);
        }
        if let Some(countries) = &self.allowed_countries {
            if countries.is_empty() {
                return Err(LicenseError::EmptyCountryList);
            }
            if countries.len() > MAX_ALLOWED_COUNTRIES {
                return Err(LicenseError::TooManyCountries {
                    count: countries.len(),
                    max: MAX_ALLOWED_COUNTRIES,
                });
            }
            if let Some(bad) = countries.iter().find(|code| !is_country_code(code)) {
                return Err(LicenseError::InvalidCountryCode {
                    code: bad.chars().take(16).collect(),
                });
            }
        }
        Ok(())
    }

    /// [`Self::validate`], and the rules for terms a hub signs: an offline
    /// grace of at least [`MIN_OFFLINE_GRACE_SECS`] when offline play is
    /// allowed. A device checks only [`Self::validate`] and honours the
    /// signed grace as it is.
    ///
    /// # Errors
    /// The first problem found, as a [`LicenseError`].
    pub fn check_issuable(&self) -> Result<(), LicenseError> {
        self.validate()?;
        if self.allow_offline && self.offline_grace_secs < MIN_OFFLINE_GRACE_SECS {
            return Err(LicenseError::OfflineGraceTooShort {
                secs: self.offline_grace_secs,
                min: MIN_OFFLINE_GRACE_SECS,
            });
        }
        Ok(())
    }

    /// How long an offline device may keep playing since its last signed hub
    /// contact: zero when offline play is not allowed (S6, L4).
    #[must_use]
    pub fn offline_grace(&self) -> TimeDelta {
        if self.allow_offline {
            seconds(self.offline_grace_secs).unwrap_or(TimeDelta::MAX)
        } else {
            TimeDelta::zero()
        }
    }

    /// Whether content may play in `country` (ISO 3166-1 alpha-2, any case,
    /// surrounding blanks ignored). With no country list every country is
    /// allowed, an unknown country included; with a list, an unknown country
    /// is not.
    #[must_use]
    pub fn allows_country(&self, country: Option<&str>) -> bool {
        self.check_country(country).is_ok()
    }

    /// [`Self::allows_country`] with the reason (L2): the one country rule
    /// the hub (content route, fleet view) and the device (fetching,
    /// playing) apply.
    ///
    /// # Errors
    /// [`Denied::CountryUnknown`] when the terms list countries and
    /// `country` is absent or blank; [`Denied::CountryNotAllowed`] when it
    /// is not in the list.
    pub fn check_country(&self, country: Option<&str>) -> Result<(), Denied> {
        let Some(allowed) = &self.allowed_countries else {
            return Ok(());
        };
        let country = country.map(str::trim).filter(|c| !c.is_empty());
        let Some(country) = country else {
            return Err(Denied::CountryUnknown);
        };
        let listed = is_country_code(country)
            && allowed
                .iter()
                .any(|code| code.trim().eq_ignore_ascii_case(country));
        if listed {
            Ok(())
        } else {
            Err(Denied::CountryNotAllowed {
                country: country.chars().take(16).collect(),
            })
        }
    }
}

fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_alphabetic())
}

fn seconds(secs: u64) -> Option<TimeDelta> {
    i64::try_from(secs).ok().and_then(TimeDelta::try_seconds)
}

fn after(start: DateTime<Utc>, secs: u64) -> Option<DateTime<Utc>> {
    seconds(secs).and_then(|delta| start.checked_add_signed(delta))
}

/// One member's dates in an access group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// When the member joined the group.
    pub joined_at: DateTime<Utc>,
    /// When the member first used the group's content; set once.
    pub first_used_at: Option<DateTime<Utc>>,
    /// This member's own end date, set by an operator or a CSV import (L7).
    pub end_date: Option<DateTime<Utc>>,
    /// When the member was removed from the group.
    pub removed_at: Option<DateTime<Utc>>,
}

impl Membership {
    /// A member who joined at `joined_at` and has not used anything yet.
    #[must_use]
    pub fn joined(joined_at: DateTime<Utc>) -> Self {
        Self {
            joined_at,
            first_used_at: None,
            end_date: None,
            removed_at: None,
        }
    }
}

/// Records the member's first use at `at` unless one is already recorded;
/// returns whether it changed. A recorded first use never moves.
pub fn record_first_use(membership: &mut Membership, at: DateTime<Utc>) -> bool {
    if membership.first_used_at.is_some() {
        return false;
    }
    membership.first_used_at = Some(at);
    true
}

/// Which limit ends a member's access. The declaration order is the tie
/// order: when two limits fall at the same instant, the earlier variant is
/// named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The member was removed from the group.
    Removed,
    /// The member's own end date.
    MemberEndDate,
    /// The license's fixed end.
    FixedEnd,
    /// Join plus the duration from join.
    DurationFromJoin,
    /// First use plus the duration from first use.
    DurationFromFirstUse,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Removed => "removal from the group",
            Limit::MemberEndDate => "the member's end date",
            Limit::FixedEnd => "the fixed end",
            Limit::DurationFromJoin => "the duration from join",
            Limit::DurationFromFirstUse => "the duration from first use",
        })
    }
}

/// When a member may use the group's content: from `starts_at` up to, not
/// including, `ends_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessWindow {
    /// The first instant of access: the later of joining and the fixed start.
    pub starts_at: DateTime<Utc>,
    /// The first instant without access; `None` while no limit is known.
    pub ends_at: Option<DateTime<Utc>>,
    /// Which limit sets `ends_at`.
    pub ended_by: Option<Limit>,
}

impl AccessWindow {
    /// Whether `at` lies in the window.
    #[must_use]
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        at >= self.starts_at && self.ends_at.is_none_or(|end| at < end)
    }

    /// The first instant after `at` at which [`Self::contains`] may answer
    /// otherwise than at `at`: the start while it is ahead, else the end
    /// while it is ahead; `None` when the answer never changes again. A
    /// screen re-judges its content then (L3: a window that opens is
    /// served at once, not at the next periodic look).
    #[must_use]
    pub fn next_change_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if at < self.starts_at {
            return Some(self.starts_at);
        }
        self.ends_at.filter(|end| at < *end)
    }
}

/// The member's access window under `terms` (L2): the earliest limit wins.
#[must_use]
pub fn access_window(terms: &LicenseTerms, membership: &Membership) -> AccessWindow {
    let starts_at = terms.fixed_start.map_or(membership.joined_at, |start| {
        start.max(membership.joined_at)
    });
    let limits = [
        (Limit::Removed, membership.removed_at),
        (Limit::MemberEndDate, membership.end_date),
        (Limit::FixedEnd, terms.fixed_end),
        (
            Limit::DurationFromJoin,
            terms
                .duration_from_join_secs
                .and_then(|secs| after(membership.joined_at, secs)),
        ),
        (
            Limit::DurationFromFirstUse,
            membership
                .first_used_at
                .zip(terms.duration_from_first_use_secs)
                .and_then(|(first, secs)| after(first, secs)),
        ),
    ];
    let earliest = limits
        .into_iter()
        .filter_map(|(limit, end)| end.map(|end| (end, limit)))
        .min();
    AccessWindow {
        starts_at,
        ends_at: earliest.map(|(end, _)| end),
        ended_by: earliest.map(|(_, limit)| limit),
    }
}

/// Why a member may not use the group's content now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Before the window starts (before joining or the fixed start).
    #[error("access starts at {starts_at}")]
    NotYetStarted {
        /// When access starts.
        starts_at: DateTime<Utc>,
    },
    /// At or after the window's end; names the limit that ended it.
    #[error("access ended by {0}")]
    Ended(Limit),
    /// The device's country is not in the license's list.
    #[error("the content may not play in {country:?}")]
    CountryNotAllowed {
        /// The country given (at most 16 characters of it).
        country: String,
    },
    /// The license lists countries but the device's country is unknown.
    #[error("the license is limited to some countries and the device's country is unknown")]
    CountryUnknown,
    /// The terms themselves are invalid, so nothing is granted.
    #[error("invalid license terms: {0}")]
    InvalidTerms(LicenseError),
}

/// Whether the member may use the group's content at `at` from `country`,
/// returning the window on success. Checks, in order: the terms are valid,
/// the window has not ended (an empty window counts as ended), it has
/// started, and the country is allowed.
///
/// # Errors
/// The first reason found, as [`Denied`].
pub fn check_access(
    terms: &LicenseTerms,
    membership: &Membership,
    country: Option<&str>,
    at: DateTime<Utc>,
) -> Result<AccessWindow, Denied> {
    terms.validate().map_err(Denied::InvalidTerms)?;
    let window = access_window(terms, membership);
    if let (Some(end), Some(limit)) = (window.ends_at, window.ended_by)
        && (at >= end || end <= window.starts_at)
    {
        return Err(Denied::Ended(limit));
    }
    if at < window.starts_at {
        return Err(Denied::NotYetStarted {
            starts_at: window.starts_at,
        });
    }
    terms.check_country(country)?;
    Ok(window)
}

/// Whether one more device may be activated under `terms` while
/// `active_devices` are active (L5). Re-activating a device that is already
/// active is always fine; a deactivated device no longer counts.
///
/// # Errors
/// [`LicenseError::TooManyDevices`] when the limit is reached.
pub fn check_activation(
    terms: &LicenseTerms,
    active_devices: usize,
    device_already_active: bool,
) -> Result<(), LicenseError> {
    match terms.max_active_devices {
        Some(max) if !device_already_active && active_devices >= max as usize => {
            Err(LicenseError::TooManyDevices { max })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_order_is_the_documented_tie_order() {
        assert!(Limit::Removed < Limit::MemberEndDate);
        assert!(Limit::MemberEndDate < Limit::FixedEnd);
        assert!(Limit::FixedEnd < Limit::DurationFromJoin);
        assert!(Limit::DurationFromJoin < Limit::DurationFromFirstUse);
    }

    proptest::proptest! {
        /// L3: between `at` and the next change the window's answer stays
        /// what it is at `at`, and at the change it differs (or the window
        /// is empty); with no next change it never differs again.
        #[test]
        fn l3_the_next_change_is_where_the_answer_changes(
            start in 0i64..1_000, length in proptest::option::of(-50i64..1_000),
            at in -100i64..2_100, probe in 0i64..2_200,
        ) {
            let t0 = DateTime::<Utc>::UNIX_EPOCH;
            let window = AccessWindow {
                starts_at: t0 + TimeDelta::seconds(start),
                ends_at: length.map(|l| t0 + TimeDelta::seconds(start + l)),
                ended_by: None,
            };
            let at = t0 + TimeDelta::seconds(at);
            let later = at + TimeDelta::seconds(probe);
            if let Some(change) = window.next_change_after(at) {
                proptest::prop_assert!(change > at);
                if later < change {
                    proptest::prop_assert_eq!(window.contains(later), window.contains(at));
                }
                let empty = window.ends_at.is_some_and(|end| end <= window.starts_at);
                proptest::prop_assert!(empty || window.contains(change) != window.contains(at));
            } else {
                proptest::prop_assert_eq!(window.contains(later), window.contains(at));
            }
        }
    }

    #[test]
    fn durations_that_overflow_are_absent() {
        assert_eq!(after(DateTime::<Utc>::MAX_UTC, 1), None);
        assert_eq!(seconds(u64::MAX), None);
        assert_eq!(seconds(60), Some(TimeDelta::minutes(1)));
    }

    #[test]
    fn country_codes_are_two_ascii_letters_any_case() {
        assert!(is_country_code("de") && is_country_code("DE") && is_country_code("dE"));
        assert!(!is_country_code("D") && !is_country_code("DEU") && !is_country_code("D1"));
        let terms = LicenseTerms {
            allowed_countries: Some(vec!["De".into()]),
            ..LicenseTerms::default()
        };
        assert!(terms.allows_country(Some("dE")));
        assert!(!terms.allows_country(Some("AT")));
        assert!(!terms.allows_country(None));
    }
}
