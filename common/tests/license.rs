//! License terms, access windows and device limits (L2, L5).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use signet_common::license::{
    AccessWindow, Denied, LicenseError, LicenseTerms, Limit, MAX_DURATION_SECS, Membership,
    access_window, check_access, check_activation, record_first_use,
};

const DAY: u64 = 24 * 60 * 60;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

// ---- L2 windows --------------------------------------------------------

#[test]
fn l2_no_limits_means_open_ended_from_join() {
    let window = access_window(&LicenseTerms::default(), &Membership::joined(t0()));
    assert_eq!(
        window,
        AccessWindow {
            starts_at: t0(),
            ends_at: None,
            ended_by: None
        }
    );
    assert!(window.contains(t0() + days(10_000)));
    assert!(!window.contains(t0() - TimeDelta::seconds(1)));
}

#[test]
fn l2_start_is_the_later_of_join_and_fixed_start() {
    let terms = LicenseTerms {
        fixed_start: Some(t0() + days(3)),
        ..LicenseTerms::default()
    };
    assert_eq!(
        access_window(&terms, &Membership::joined(t0())).starts_at,
        t0() + days(3)
    );
    assert_eq!(
        access_window(&terms, &Membership::joined(t0() + days(5))).starts_at,
        t0() + days(5)
    );
}

/// Moves one limit of a case earlier.
type Shorten = fn(&mut LicenseTerms, &mut Membership);

#[test]
fn l2_each_limit_can_be_the_earliest() {
    let terms = LicenseTerms {
        duration_from_join_secs: Some(30 * DAY),
        duration_from_first_use_secs: Some(30 * DAY),
        fixed_end: Some(t0() + days(30)),
        ..LicenseTerms::default()
    };
    let base = Membership {
        joined_at: t0(),
        first_used_at: Some(t0()),
        end_date: Some(t0() + days(30)),
        removed_at: Some(t0() + days(30)),
    };
    let cases: [(Shorten, Limit); 5] = [
        (|_, m| m.removed_at = Some(t0() + days(1)), Limit::Removed),
        (
            |_, m| m.end_date = Some(t0() + days(1)),
            Limit::MemberEndDate,
        ),
        (|t, _| t.fixed_end = Some(t0() + days(1)), Limit::FixedEnd),
        (
            |t, _| t.duration_from_join_secs = Some(DAY),
            Limit::DurationFromJoin,
        ),
        (
            |t, _| t.duration_from_first_use_secs = Some(DAY),
            Limit::DurationFromFirstUse,
        ),
    ];
    for (shorten, limit) in cases {
        let (mut terms, mut membership) = (terms.clone(), base.clone());
        shorten(&mut terms, &mut membership);
        let window = access_window(&terms, &membership);
        assert_eq!(window.ends_at, Some(t0() + days(1)), "{limit:?}");
        assert_eq!(window.ended_by, Some(limit));
    }
}

#[test]
fn l2_ties_name_the_most_member_specific_limit() {
    let terms = LicenseTerms {
        duration_from_join_secs: Some(DAY),
        duration_from_first_use_secs: Some(DAY),
        fixed_end: Some(t0() + days(1)),
        ..LicenseTerms::default()
    };
    let mut membership = Membership {
        joined_at: t0(),
        first_used_at: Some(t0()),
        end_date: Some(t0() + days(1)),
        removed_at: Some(t0() + days(1)),
    };
    let order = [
        Limit::Removed,
        Limit::MemberEndDate,
        Limit::FixedEnd,
        Limit::DurationFromJoin,
        Limit::DurationFromFirstUse,
    ];
    let mut terms = terms;
    for limit in order {
        assert_eq!(
            access_window(&terms, &membership).ended_by,
            Some(limit),
            "all tied from {limit:?} on"
        );
        match limit {
            Limit::Removed => membership.removed_at = None,
            Limit::MemberEndDate => membership.end_date = None,
            Limit::FixedEnd => terms.fixed_end = None,
            Limit::DurationFromJoin => terms.duration_from_join_secs = None,
            Limit::DurationFromFirstUse => terms.duration_from_first_use_secs = None,
        }
    }
    assert_eq!(access_window(&terms, &membership).ended_by, None);
}

#[test]
fn l2_first_use_duration_counts_only_once_first_use_is_known() {
    let terms = LicenseTerms {
        duration_from_first_use_secs: Some(7 * DAY),
        ..LicenseTerms::default()
    };
    let mut membership = Membership::joined(t0());
    assert_eq!(access_window(&terms, &membership).ends_at, None);
    assert!(record_first_use(&mut membership, t0() + days(10)));
    let window = access_window(&terms, &membership);
    assert_eq!(window.ends_at, Some(t0() + days(17)));
    assert_eq!(window.ended_by, Some(Limit::DurationFromFirstUse));
}

#[test]
fn l2_first_use_is_recorded_once_and_never_moves() {
    let mut membership = Membership::joined(t0());
    assert!(record_first_use(&mut membership, t0() + days(2)));
    assert!(!record_first_use(&mut membership, t0() + days(5)));
    assert!(!record_first_use(&mut membership, t0() + days(1)));
    assert_eq!(membership.first_used_at, Some(t0() + days(2)));
}

#[test]
fn l2_durations_past_the_end_of_time_set_no_end() {
    let terms = LicenseTerms {
        duration_from_join_secs: Some(u64::MAX),
        ..LicenseTerms::default()
    };
    let window = access_window(&terms, &Membership::joined(DateTime::<Utc>::MAX_UTC));
    assert_eq!(window.ends_at, None);
    // and such terms do not validate
    assert!(terms.validate().is_err());
}

// ---- check_access denials ----------------------------------------------

fn month_terms() -> LicenseTerms {
    LicenseTerms {
        duration_from_join_secs: Some(30 * DAY),
        fixed_start: Some(t0()),
        allowed_countries: Some(vec!["de".into(), "AT".into()]),
        ..LicenseTerms::default()
    }
}

#[test]
fn l2_check_access_grants_inside_the_window() {
    let window = check_access(
        &month_terms(),
        &Membership::joined(t0()),
        Some("DE"),
        t0() + days(29),
    )
    .unwrap();
    assert_eq!(window.ends_at, Some(t0() + days(30)));
    assert!(check_access(&month_terms(), &Membership::joined(t0()), Some("at"), t0()).is_ok());
}

#[test]
fn l2_denied_not_yet_started() {
    let membership = Membership::joined(t0() - days(1));
    assert_eq!(
        check_access(
            &month_terms(),
            &membership,
            Some("DE"),
            t0() - TimeDelta::seconds(1)
        ),
        Err(Denied::NotYetStarted { starts_at: t0() })
    );
}

#[test]
fn l2_denied_ended_at_the_end_instant() {
    let membership = Membership::joined(t0());
    let end = t0() + days(30);
    assert!(
        check_access(
            &month_terms(),
            &membership,
            Some("DE"),
            end - TimeDelta::seconds(1)
        )
        .is_ok()
    );
    assert_eq!(
        check_access(&month_terms(), &membership, Some("DE"), end),
        Err(Denied::Ended(Limit::DurationFromJoin))
    );
}

#[test]
fn l4_removal_and_member_end_date_revoke() {
    let mut membership = Membership::joined(t0());
    membership.end_date = Some(t0() + days(10));
    assert_eq!(
        check_access(&month_terms(), &membership, Some("DE"), t0() + days(10)),
        Err(Denied::Ended(Limit::MemberEndDate))
    );
    membership.removed_at = Some(t0() + days(2));
    assert_eq!(
        check_access(&month_terms(), &membership, Some("DE"), t0() + days(2)),
        Err(Denied::Ended(Limit::Removed))
    );
}

#[test]
fn l2_a_window_that_ends_before_it_starts_is_ended() {
    let terms = LicenseTerms {
        fixed_start: Some(t0() + days(5)),
        ..LicenseTerms::default()
    };
    let mut membership = Membership::joined(t0());
    membership.removed_at = Some(t0() + days(1));
    assert_eq!(
        check_access(&terms, &membership, None, t0()),
        Err(Denied::Ended(Limit::Removed))
    );
}

#[test]
fn l2_denied_by_country() {
    let membership = Membership::joined(t0());
    assert_eq!(
        check_access(&month_terms(), &membership, Some("FR"), t0()),
        Err(Denied::CountryNotAllowed {
            country: "FR".into()
        })
    );
    assert_eq!(
        check_access(&month_terms(), &membership, Some("DEU"), t0()),
        Err(Denied::CountryNotAllowed {
            country: "DEU".into()
        })
    );
    assert_eq!(
        check_access(&month_terms(), &membership, None, t0()),
        Err(Denied::CountryUnknown)
    );
    let everywhere = LicenseTerms::default();
    assert!(check_access(&everywhere, &membership, None, t0()).is_ok());
    assert!(check_access(&everywhere, &membership, Some("FR"), t0()).is_ok());
}

#[test]
fn l2_invalid_terms_grant_nothing() {
    let terms = LicenseTerms {
        duration_from_join_secs: Some(0),
        ..LicenseTerms::default()
    };
    assert_eq!(
        check_access(&terms, &Membership::joined(t0()), None, t0()),
        Err(Denied::InvalidTerms(LicenseError::ZeroDuration {
            which: Limit::DurationFromJoin
        }))
    );
}

// ---- validate ------------------------------------------------------------

#[test]
fn l2_validate_reports_each_problem() {
    let ok = LicenseTerms {
        duration_from_join_secs: Some(DAY),
        duration_from_first_use_secs: Some(DAY),
        fixed_start: Some(t0()),
        fixed_end: Some(t0() + days(1)),
        max_active_devices: Some(2),
        allow_offline: true,
        offline_grace_secs: 3 * DAY,
        allow_export: false,
        allowed_countries: Some(vec!["us".into(), "CA".into()]),
    };
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(ok.offline_grace(), TimeDelta::days(3));
    let offline_off = LicenseTerms {
        allow_offline: false,
        ..ok.clone()
    };
    assert_eq!(offline_off.offline_grace(), TimeDelta::zero());

    let check = |edit: fn(&mut LicenseTerms), expected: LicenseError| {
        let mut terms = ok.clone();
        edit(&mut terms);
        assert_eq!(terms.validate(), Err(expected));
    };
    check(
        |t| t.fixed_end = Some(t0()),
        LicenseError::EndNotAfterStart {
            start: t0(),
            end: t0(),
        },
    );
    check(
        |t| t.duration_from_first_use_secs = Some(0),
        LicenseError::ZeroDuration {
            which: Limit::DurationFromFirstUse,
        },
    );
    check(
        |t| t.duration_from_join_secs = Some(MAX_DURATION_SECS + 1),
        LicenseError::DurationTooLong {
            field: "duration_from_join_secs",
            max: MAX_DURATION_SECS,
        },
    );
    check(
        |t| t.offline_grace_secs = MAX_DURATION_SECS + 1,
        LicenseError::DurationTooLong {
            field: "offline_grace_secs",
            max: MAX_DURATION_SECS,
        },
    );
    check(|t| t.offline_grace_secs = 0, LicenseError::ZeroOfflineGrace);
    check(
        |t| t.max_active_devices = Some(0),
        LicenseError::ZeroMaxActiveDevices,
    );
    check(
        |t| t.allowed_countries = Some(vec![]),
        LicenseError::EmptyCountryList,
    );
    check(
        |t| t.allowed_countries = Some(vec!["USA".into()]),
        LicenseError::InvalidCountryCode { code: "USA".into() },
    );
    check(
        |t| t.allowed_countries = Some(vec!["1A".into()]),
        LicenseError::InvalidCountryCode { code: "1A".into() },
    );
    check(
        |t| t.allowed_countries = Some(vec!["ÄÖ".into()]),
        LicenseError::InvalidCountryCode {
            code: "ÄÖ".into()
        },
    );
    check(
        |t| t.allowed_countries = Some(vec!["DE".into(); 250]),
        LicenseError::TooManyCountries {
            count: 250,
            max: 249,
        },
    );
}

#[test]
fn l2_terms_refuse_unknown_fields() {
    let json = serde_json::to_string(&month_terms()).unwrap();
    assert_eq!(
        serde_json::from_str::<LicenseTerms>(&json).unwrap(),
        month_terms()
    );
    let typo = json.replacen("allow_export", "allow_exports", 1);
    assert!(serde_json::from_str::<LicenseTerms>(&typo).is_err());
    let fixed = r#"{"duration_from_join_secs":null,"duration_from_first_use_secs":null,
        "fixed_start":"2026-06-01T12:00:00Z","fixed_end":null,"max_active_devices":null,
        "allow_offline":false,"offline_grace_secs":0,"allow_export":false,"allowed_countries":null}"#;
    let terms: LicenseTerms = serde_json::from_str(fixed).unwrap();
    assert_eq!(terms.fixed_start, Some(t0()));
}

// ---- L5 activation --------------------------------------------------------

#[test]
fn l5_activation_boundary() {
    let terms = LicenseTerms {
        max_active_devices: Some(2),
        ..LicenseTerms::default()
    };
    assert_eq!(check_activation(&terms, 0, false), Ok(()));
    assert_eq!(check_activation(&terms, 1, false), Ok(()));
    // two active: a third is refused
    assert_eq!(
        check_activation(&terms, 2, false),
        Err(LicenseError::TooManyDevices { max: 2 })
    );
    // re-activating one of the two is fine
    assert_eq!(check_activation(&terms, 2, true), Ok(()));
    // after one is deactivated, the third may activate
    assert_eq!(check_activation(&terms, 1, false), Ok(()));
    // a count already over the limit (limit lowered) still refuses new ones
    assert_eq!(
        check_activation(&terms, 5, false),
        Err(LicenseError::TooManyDevices { max: 2 })
    );
    assert_eq!(
        check_activation(&LicenseTerms::default(), usize::MAX, false),
        Ok(())
    );
}

// ---- Properties -----------------------------------------------------------

fn offset() -> impl Strategy<Value = i64> {
    -400 * 86_400..400 * 86_400i64
}

fn secs() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(1..400 * DAY)
}

fn at(offset: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(offset)
}

prop_compose! {
    fn case()(
        join in offset(),
        first_use in prop::option::of(0..400 * 86_400i64),
        end_date in prop::option::of(offset()),
        removed in prop::option::of(offset()),
        fixed_start in prop::option::of(offset()),
        fixed_end in prop::option::of(offset()),
        from_join in secs(),
        from_first_use in secs(),
    ) -> (LicenseTerms, Membership) {
        let terms = LicenseTerms {
            duration_from_join_secs: from_join,
            duration_from_first_use_secs: from_first_use,
            fixed_start: fixed_start.map(at),
            fixed_end: fixed_end.map(at),
            ..LicenseTerms::default()
        };
        let membership = Membership {
            joined_at: at(join),
            first_used_at: first_use.map(|after_join| at(join + after_join)),
            end_date: end_date.map(at),
            removed_at: removed.map(at),
        };
        (terms, membership)
    }
}

/// The limits as plain seconds from t0, computed without the library.
fn limits_in_seconds(terms: &LicenseTerms, membership: &Membership) -> Vec<i64> {
    let secs = |time: DateTime<Utc>| (time - t0()).num_seconds();
    let join = secs(membership.joined_at);
    let mut limits = Vec::new();
    limits.extend(membership.removed_at.map(secs));
    limits.extend(membership.end_date.map(secs));
    limits.extend(terms.fixed_end.map(secs));
    limits.extend(
        terms
            .duration_from_join_secs
            .map(|d| join + i64::try_from(d).unwrap()),
    );
    if let (Some(first), Some(d)) = (membership.first_used_at, terms.duration_from_first_use_secs) {
        limits.push(secs(first) + i64::try_from(d).unwrap());
    }
    limits
}

proptest! {
    #[test]
    fn l2_end_is_the_minimum_of_the_set_limits((terms, membership) in case()) {
        let window = access_window(&terms, &membership);
        let expected = limits_in_seconds(&terms, &membership).into_iter().min();
        prop_assert_eq!(window.ends_at.map(|end| (end - t0()).num_seconds()), expected);
        prop_assert_eq!(window.ends_at.is_some(), window.ended_by.is_some());
        let start = membership.joined_at.max(terms.fixed_start.unwrap_or(membership.joined_at));
        prop_assert_eq!(window.starts_at, start);
    }

    #[test]
    fn l2_access_never_extends_beyond_any_limit(
        (terms, membership) in case(),
        probe in offset(),
    ) {
        let now = at(probe);
        if let Ok(window) = check_access(&terms, &membership, None, now) {
            let now_secs = probe;
            for limit in limits_in_seconds(&terms, &membership) {
                prop_assert!(now_secs < limit);
            }
            prop_assert!(now >= membership.joined_at);
            if let Some(start) = terms.fixed_start {
                prop_assert!(now >= start);
            }
            prop_assert!(window.contains(now));
        }
    }

    #[test]
    fn l2_first_use_is_recorded_once(
        join in offset(),
        uses in prop::collection::vec(offset(), 1..10),
    ) {
        let mut membership = Membership::joined(at(join));
        let changes: Vec<bool> = uses.iter().map(|u| record_first_use(&mut membership, at(*u))).collect();
        prop_assert_eq!(changes.iter().filter(|c| **c).count(), 1);
        prop_assert!(changes[0]);
        prop_assert_eq!(membership.first_used_at, Some(at(uses[0])));
    }

    #[test]
    fn l5_never_more_active_devices_than_max(
        max in 1..10u32,
        requests in prop::collection::vec((0..15usize, any::<bool>()), 0..60),
    ) {
        // Simulate devices 0..15 activating (true) and deactivating (false).
        let terms = LicenseTerms { max_active_devices: Some(max), ..LicenseTerms::default() };
        let mut active = std::collections::BTreeSet::new();
        for (device, activate) in requests {
            if activate {
                let already = active.contains(&device);
                if check_activation(&terms, active.len(), already).is_ok() {
                    active.insert(device);
                } else {
                    prop_assert_eq!(active.len(), max as usize);
                }
            } else {
                active.remove(&device);
            }
            prop_assert!(active.len() <= max as usize);
        }
    }
}

// ---- L2 first use and countries (issue 18 point 5) ----------------------

proptest! {
    /// L2: recording a first use only ever shortens the window: its end
    /// becomes the earlier of the end before and first use + the duration
    /// from first use, and nothing else about the window changes.
    #[test]
    fn l2_first_use_shortens_the_window_to_min_of_existing_end_and_first_use_plus_duration(
        (terms, membership) in case(),
        used_after_join in 0..400 * 86_400i64,
    ) {
        let mut before = membership.clone();
        before.first_used_at = None;
        let old = access_window(&terms, &before);
        let mut after = before.clone();
        let used = before.joined_at + TimeDelta::seconds(used_after_join);
        prop_assert!(record_first_use(&mut after, used));
        let new = access_window(&terms, &after);
        let by_first_use = terms
            .duration_from_first_use_secs
            .map(|d| used + TimeDelta::seconds(i64::try_from(d).unwrap()));
        let expected = match (old.ends_at, by_first_use) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        prop_assert_eq!(new.ends_at, expected);
        prop_assert_eq!(new.starts_at, old.starts_at);
        if let (Some(old_end), Some(new_end)) = (old.ends_at, new.ends_at) {
            prop_assert!(new_end <= old_end);
        }
        // Recorded once: a later play does not move it.
        prop_assert!(!record_first_use(&mut after, used + days(1)));
        prop_assert_eq!(access_window(&terms, &after), new);
    }

    /// L2: the country rule ignores case and surrounding blanks on both
    /// sides, and refuses every other code, and an unknown country, when
    /// the license lists countries.
    #[test]
    fn l2_country_rule_ignores_case_and_blanks(
        listed in "[a-zA-Z]{2}",
        other in "[a-zA-Z]{2}",
        pad in " {0,2}",
    ) {
        let terms = LicenseTerms {
            allowed_countries: Some(vec![listed.clone()]),
            ..LicenseTerms::default()
        };
        let asked = format!("{pad}{}{pad}", listed.to_ascii_lowercase());
        prop_assert_eq!(terms.check_country(Some(&asked)), Ok(()));
        prop_assert_eq!(terms.check_country(Some(&listed.to_ascii_uppercase())), Ok(()));
        if !other.eq_ignore_ascii_case(&listed) {
            prop_assert_eq!(
                terms.check_country(Some(&other)),
                Err(Denied::CountryNotAllowed { country: other.clone() })
            );
        }
        prop_assert_eq!(terms.check_country(None), Err(Denied::CountryUnknown));
        prop_assert_eq!(terms.check_country(Some(&pad)), Err(Denied::CountryUnknown));
        prop_assert!(LicenseTerms::default().check_country(None).is_ok());
    }
}
