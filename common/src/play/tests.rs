//! The play decision and the combined schedule (D4, D5, A7, A8, L2, L4, S3, S6).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::reason::human_duration;
use super::*;
use crate::approval::{ApprovalState, ContentHash};
use crate::digest::Sha256;
use crate::documents::{
    AccessMembership, DeviceAssignment, GroupKind, GroupManifest, ItemKind, Location, ManifestItem,
    Unapproved,
};
use crate::ids::{AccessGroupId, DeviceId, EntryId, ItemId, NodeId};
use crate::license::{AccessWindow, Denied, LicenseError, LicenseTerms, Limit};
use crate::schedule::{Layer, MergeMode, PlaylistItem, Schedule, ScheduleEntry, evaluate};

// ---- fixtures -----------------------------------------------------------

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

const HOUR: i64 = 3_600;

fn id(s: &str) -> ItemId {
    ItemId::new(s)
}

/// The hash of a media item's bytes, derived from its id.
fn bytes_hash(item: &str) -> ContentHash {
    Sha256::of(item.as_bytes())
}

fn media(item: &str, approval: ApprovalState) -> ManifestItem {
    ManifestItem {
        id: id(item),
        kind: ItemKind::Image,
        sha256: bytes_hash(item),
        size: 10,
        url: format!(
            "https://hub.example/api/v1/device/content/{}",
            bytes_hash(item)
        ),
        approval,
        // A pending item keeps the hash of an earlier approved version: the
        // state alone must refuse it (A7).
        approved_hash: Some(bytes_hash(item)),
        categories: Vec::new(),
        renditions: Vec::new(),
    }
}

/// A template whose approved content hash is derived from its id.
fn template(item: &str) -> ManifestItem {
    ManifestItem {
        kind: ItemKind::Template,
        sha256: Sha256::of(format!("{item} bytes").as_bytes()),
        approved_hash: Some(template_hash(item)),
        ..media(item, ApprovalState::Active)
    }
}

fn template_hash(item: &str) -> ContentHash {
    Sha256::of(format!("{item} content").as_bytes())
}

fn entry(entry_id: &str, items: &[&str], priority: i32) -> ScheduleEntry {
    ScheduleEntry {
        id: EntryId::new(entry_id),
        items: items
            .iter()
            .map(|item| PlaylistItem {
                item: id(item),
                duration_ms: 10_000,
            })
            .collect(),
        dayparts: Vec::new(),
        weekdays: Vec::new(),
        dates: None,
        priority,
        layer: Layer::Main,
    }
}

fn schedule(entries: Vec<ScheduleEntry>) -> Schedule {
    Schedule {
        entries,
        merge: MergeMode::Sequence,
        default_item: None,
    }
}

fn node(group: &str, items: Vec<ManifestItem>) -> GroupManifest {
    GroupManifest {
        version: 5,
        issued_at: t0() - TimeDelta::days(1),
        expires_at: t0() + TimeDelta::days(7),
        group_id: group.to_owned(),
        group_kind: GroupKind::Node,
        items,
        schedule: schedule(Vec::new()),
        license: None,
    }
}

fn access(group: &str, items: Vec<ManifestItem>, terms: LicenseTerms) -> GroupManifest {
    GroupManifest {
        group_kind: GroupKind::AccessGroup,
        license: Some(terms),
        ..node(group, items)
    }
}

/// Terms allowing 2 h offline.
fn offline_terms() -> LicenseTerms {
    LicenseTerms {
        allow_offline: true,
        offline_grace_secs: 2 * 3_600,
        ..LicenseTerms::default()
    }
}

fn window(start: DateTime<Utc>, end: Option<(DateTime<Utc>, Limit)>) -> AccessWindow {
    AccessWindow {
        starts_at: start,
        ends_at: end.map(|(at, _)| at),
        ended_by: end.map(|(_, limit)| limit),
    }
}

fn membership(group: &str, window: AccessWindow) -> AccessMembership {
    AccessMembership {
        group_id: AccessGroupId::new(group),
        window,
    }
}

fn assignment(memberships: Vec<AccessMembership>) -> DeviceAssignment {
    DeviceAssignment {
        version: 1,
        issued_at: t0() - TimeDelta::days(1),
        device_id: DeviceId::new("d-1"),
        node_chain: vec![NodeId::new("root"), NodeId::new("site")],
        access_groups: memberships,
        min_manifest_versions: BTreeMap::new(),
        time_zone: chrono_tz::Europe::Berlin,
        location: Location {
            country: Some("DE".to_owned()),
            region: None,
        },
        offline_grace_secs: 7 * 24 * 3_600,
        variables: BTreeMap::new(),
    }
}

/// A membership of `group` open from a day ago, without end.
fn open_member(group: &str) -> AccessMembership {
    membership(group, window(t0() - TimeDelta::days(1), None))
}

fn view<'a>(
    assignment: &'a DeviceAssignment,
    manifests: &[&'a GroupManifest],
    now: DateTime<Utc>,
    last_hub_contact: Option<DateTime<Utc>>,
) -> DeviceView<'a> {
    DeviceView {
        assignment,
        manifests: manifests.to_vec(),
        successors: Vec::new(),
        now,
        last_hub_contact,
    }
}

/// A cache holding every item's approved version (templates showing no source).
fn all_cached(item: &ManifestItem) -> Cached {
    Cached::Present {
        approval_hash: item.approved_hash.unwrap(),
        sources: Vec::new(),
    }
}

fn cache_must_not_be_asked(item: &ManifestItem) -> Cached {
    panic!("A7: the cache was asked about {}", item.id)
}

// ---- D4: the plain cases ------------------------------------------------

#[test]
fn d4_approved_cached_node_item_plays_until_the_manifest_expires() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    let permit = may_play(&view(&a, &[&site], t0(), None), &id("m"), &all_cached).unwrap();
    assert_eq!(
        permit,
        Permit {
            group: "site".to_owned(),
            access_group: None,
            license_version: None,
            until: Some(site.expires_at),
        }
    );
}

#[test]
fn d4_an_item_no_manifest_lists_is_not_listed() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    let v = view(&a, &[&site], t0(), None);
    assert_eq!(
        may_play(&v, &id("other"), &all_cached),
        Err(SkipReason::NotListed)
    );
    let empty = view(&a, &[], t0(), None);
    assert_eq!(
        may_play(&empty, &id("m"), &all_cached),
        Err(SkipReason::NotListed)
    );
}

#[test]
fn d4_missing_bytes_are_not_cached_and_bad_bytes_say_why() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    let v = view(&a, &[&site], t0(), None);
    assert_eq!(
        may_play(&v, &id("m"), &|_| Cached::Missing),
        Err(SkipReason::NotCached)
    );
    assert_eq!(
        may_play(&v, &id("m"), &|_| Cached::Unusable("bad json".to_owned())),
        Err(SkipReason::Unusable("bad json".to_owned()))
    );
}

// ---- S3 ----------------------------------------------------------------

#[test]
fn s3_an_expired_manifest_plays_nothing_from_its_expiry_instant_on() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    let at = |now| may_play(&view(&a, &[&site], now, None), &id("m"), &all_cached);
    assert!(at(site.expires_at - TimeDelta::nanoseconds(1)).is_ok());
    assert_eq!(
        at(site.expires_at),
        Err(SkipReason::ManifestExpired {
            group: "site".to_owned(),
            expired_at: site.expires_at,
        })
    );
}

/// D3, S3: the assignment's floor limits what the agent may accept, never
/// what plays: a playing manifest below a raised floor keeps playing while
/// its successor downloads.
#[test]
fn d3_a_playing_manifest_below_the_floor_keeps_playing() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let mut a = assignment(Vec::new());
    a.min_manifest_versions.insert("site".to_owned(), 6);
    assert!(may_play(&view(&a, &[&site], t0(), None), &id("m"), &all_cached).is_ok());
}

/// D3, A7: while a successor waits for its content, what it adds or drops
/// changes nothing yet, but an approval it withdraws applies at once.
#[test]
fn d3_a_waiting_successor_withdraws_approval_at_once_and_adds_nothing() {
    let playing = node(
        "site",
        vec![
            media("kept", ApprovalState::Active),
            media("dropped", ApprovalState::Active),
            media("withdrawn", ApprovalState::Active),
        ],
    );
    let mut successor = node(
        "site",
        vec![
            media("kept", ApprovalState::Active),
            media("withdrawn", ApprovalState::Inactive),
            media("added", ApprovalState::Active),
        ],
    );
    successor.version = playing.version + 1;
    let a = assignment(Vec::new());
    let mut v = view(&a, &[&playing], t0(), None);
    v.successors = vec![&successor];
    let decide = |item: &str| may_play(&v, &id(item), &all_cached);
    assert!(decide("kept").is_ok());
    assert!(decide("dropped").is_ok(), "dropped only at activation");
    assert_eq!(
        decide("added"),
        Err(SkipReason::NotListed),
        "added only at activation"
    );
    assert_eq!(
        decide("withdrawn"),
        Err(SkipReason::Unapproved(Unapproved::NotActive(
            ApprovalState::Inactive
        )))
    );
    // An older accepted manifest is no successor.
    let mut older = successor.clone();
    older.version = playing.version - 1;
    let mut v = view(&a, &[&playing], t0(), None);
    v.successors = vec![&older];
    assert!(may_play(&v, &id("withdrawn"), &all_cached).is_ok());
}

/// D3, L2: while a successor waits, an access group's content plays only
/// while the successor's license terms cover the device too: narrower
/// terms apply at once, and the permit ends at the earlier of both.
#[test]
fn d3_a_waiting_successors_license_terms_apply_at_once() {
    let playing = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let narrower = |terms: LicenseTerms| {
        let mut next = access("ag", vec![media("m", ApprovalState::Active)], terms);
        next.version = playing.version + 1;
        next
    };
    let a = assignment(vec![open_member("ag")]);
    let decide = |successor: &GroupManifest| {
        let mut v = view(&a, &[&playing], t0(), Some(t0()));
        v.successors = vec![successor];
        may_play(&v, &id("m"), &all_cached)
    };
    let elsewhere = narrower(LicenseTerms {
        allowed_countries: Some(vec!["AT".to_owned()]),
        ..offline_terms()
    });
    assert_eq!(
        decide(&elsewhere),
        Err(SkipReason::License {
            group: "ag".to_owned(),
            denied: Denied::CountryNotAllowed {
                country: "DE".to_owned()
            },
        })
    );
    let shorter = narrower(LicenseTerms {
        offline_grace_secs: 3_600,
        ..offline_terms()
    });
    let permit = decide(&shorter).unwrap();
    assert_eq!(permit.until, Some(t0() + TimeDelta::hours(1)));
    assert_eq!(permit.license_version, Some(playing.version));
}

// ---- A7 / A8 -----------------------------------------------------------

#[test]
fn a7_pending_and_inactive_items_are_skipped_without_asking_the_cache() {
    for state in [ApprovalState::Pending, ApprovalState::Inactive] {
        let site = node("site", vec![media("m", state)]);
        let a = assignment(Vec::new());
        assert_eq!(
            may_play(
                &view(&a, &[&site], t0(), None),
                &id("m"),
                &cache_must_not_be_asked
            ),
            Err(SkipReason::Unapproved(Unapproved::NotActive(state)))
        );
    }
}

#[test]
fn a7_an_item_without_approved_hash_is_skipped_without_asking_the_cache() {
    let mut item = media("m", ApprovalState::Inactive);
    item.approved_hash = None;
    let site = node("site", vec![item]);
    let a = assignment(Vec::new());
    assert_eq!(
        may_play(
            &view(&a, &[&site], t0(), None),
            &id("m"),
            &cache_must_not_be_asked
        ),
        Err(SkipReason::Unapproved(Unapproved::NotActive(
            ApprovalState::Inactive
        )))
    );
}

#[test]
fn a8_media_bytes_that_are_not_the_approved_version_are_refused() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    let other = Sha256::of(b"tampered");
    assert_eq!(
        may_play(&view(&a, &[&site], t0(), None), &id("m"), &|_| {
            Cached::Present {
                approval_hash: other,
                sources: Vec::new(),
            }
        }),
        Err(SkipReason::Unapproved(Unapproved::NotTheApprovedVersion {
            approved: bytes_hash("m"),
            actual: other,
        }))
    );
}

/// A cache in which template `t` shows `sources` and has content hash `hash`.
fn template_cache(
    hash: ContentHash,
    sources: &'static [&'static str],
) -> impl Fn(&ManifestItem) -> Cached {
    move |item| {
        if item.kind == ItemKind::Template && item.id == id("t") {
            Cached::Present {
                approval_hash: hash,
                sources: sources.iter().map(|s| id(s)).collect(),
            }
        } else {
            all_cached(item)
        }
    }
}

#[test]
fn a8_a_template_plays_when_its_content_hash_and_its_sources_are_approved() {
    let site = node(
        "site",
        vec![
            template("t"),
            media("s1", ApprovalState::Active),
            media("s2", ApprovalState::Active),
        ],
    );
    let a = assignment(Vec::new());
    let v = view(&a, &[&site], t0(), None);
    assert!(
        may_play(
            &v,
            &id("t"),
            &template_cache(template_hash("t"), &["s1", "s2"])
        )
        .is_ok()
    );
}

#[test]
fn a8_a_template_whose_content_hash_is_not_the_approved_one_is_refused() {
    let site = node("site", vec![template("t")]);
    let a = assignment(Vec::new());
    let v = view(&a, &[&site], t0(), None);
    let edited = Sha256::of(b"edited layout");
    assert_eq!(
        may_play(&v, &id("t"), &template_cache(edited, &[])),
        Err(SkipReason::Unapproved(Unapproved::NotTheApprovedVersion {
            approved: template_hash("t"),
            actual: edited,
        }))
    );
}

#[test]
fn a8_a_template_with_an_unapproved_source_is_refused_and_the_source_not_fetched() {
    let site = node(
        "site",
        vec![
            template("t"),
            media("ok", ApprovalState::Active),
            media("p", ApprovalState::Pending),
        ],
    );
    let a = assignment(Vec::new());
    let v = view(&a, &[&site], t0(), None);
    let cache = template_cache(template_hash("t"), &["ok", "p"]);
    let asked_only_approved = |item: &ManifestItem| {
        assert_ne!(item.id, id("p"), "A7: the pending source was looked up");
        cache(item)
    };
    assert_eq!(
        may_play(&v, &id("t"), &asked_only_approved),
        Err(SkipReason::Source {
            source: id("p"),
            reason: Box::new(SkipReason::Unapproved(Unapproved::NotActive(
                ApprovalState::Pending
            ))),
        })
    );
}

#[test]
fn a8_template_sources_come_from_the_same_manifest_are_cached_and_never_templates() {
    let site = node(
        "site",
        vec![
            template("t"),
            template("inner"),
            media("missing", ApprovalState::Active),
        ],
    );
    // Listed by another manifest, which does not count.
    let root = node("root", vec![media("elsewhere", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    let v = view(&a, &[&root, &site], t0(), None);
    let source_reason = |sources: &'static [&'static str],
                         cache: &dyn Fn(&ManifestItem) -> Cached| {
        let with_cache = |item: &ManifestItem| {
            if item.id == id("t") {
                template_cache(template_hash("t"), sources)(item)
            } else {
                cache(item)
            }
        };
        match may_play(&v, &id("t"), &with_cache) {
            Err(SkipReason::Source { reason, .. }) => *reason,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        source_reason(&["elsewhere"], &all_cached),
        SkipReason::NotListed
    );
    assert!(matches!(
        source_reason(&["inner"], &all_cached),
        SkipReason::Unusable(_)
    ));
    assert_eq!(
        source_reason(&["missing"], &|_| Cached::Missing),
        SkipReason::NotCached
    );
}

// ---- L2 / L4 -----------------------------------------------------------

#[test]
fn l2_licensed_content_plays_inside_the_window_and_the_permit_names_the_license() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let end = t0() + secs(HOUR);
    let a = assignment(vec![membership(
        "ag",
        window(t0() - secs(HOUR), Some((end, Limit::FixedEnd))),
    )]);
    let permit = may_play(
        &view(&a, &[&group], t0(), Some(t0())),
        &id("m"),
        &all_cached,
    )
    .unwrap();
    assert_eq!(
        permit,
        Permit {
            group: "ag".to_owned(),
            access_group: Some(AccessGroupId::new("ag")),
            license_version: Some(5),
            until: Some(end),
        }
    );
}

#[test]
fn l2_the_window_end_is_excluded() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let end = t0() + secs(HOUR);
    let a = assignment(vec![membership(
        "ag",
        window(t0() - secs(HOUR), Some((end, Limit::FixedEnd))),
    )]);
    let at =
        |now: DateTime<Utc>| may_play(&view(&a, &[&group], now, Some(now)), &id("m"), &all_cached);
    assert!(at(end - TimeDelta::nanoseconds(1)).is_ok());
    let refused = at(end).unwrap_err();
    assert_eq!(
        refused,
        SkipReason::License {
            group: "ag".to_owned(),
            denied: Denied::Ended(Limit::FixedEnd),
        }
    );
    assert_eq!(refused.to_string(), "license of ag ended by the fixed end");
}

#[test]
fn l2_a_window_not_yet_started_and_an_empty_window_refuse() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let start = t0() + secs(60);
    let a = assignment(vec![membership("ag", window(start, None))]);
    let at = |a: &DeviceAssignment, now| {
        may_play(&view(a, &[&group], now, Some(now)), &id("m"), &all_cached)
    };
    assert_eq!(
        at(&a, start - TimeDelta::nanoseconds(1)),
        Err(SkipReason::License {
            group: "ag".to_owned(),
            denied: Denied::NotYetStarted { starts_at: start },
        })
    );
    assert!(at(&a, start).is_ok());
    // Empty: the end is not after the start, so it counts as ended, before
    // and after the start alike.
    let empty = assignment(vec![membership(
        "ag",
        window(start, Some((start, Limit::MemberEndDate))),
    )]);
    for now in [start - secs(1), start, start + secs(1)] {
        assert_eq!(
            at(&empty, now),
            Err(SkipReason::License {
                group: "ag".to_owned(),
                denied: Denied::Ended(Limit::MemberEndDate),
            })
        );
    }
}

#[test]
fn l4_a_removed_member_is_absent_from_the_assignment_and_plays_nothing() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let member = assignment(vec![open_member("ag")]);
    let removed = assignment(Vec::new());
    assert!(
        may_play(
            &view(&member, &[&group], t0(), Some(t0())),
            &id("m"),
            &all_cached
        )
        .is_ok()
    );
    let refused = may_play(
        &view(&removed, &[&group], t0(), Some(t0())),
        &id("m"),
        &all_cached,
    )
    .unwrap_err();
    assert_eq!(
        refused,
        SkipReason::NotAMember {
            group: "ag".to_owned()
        }
    );
    assert_eq!(refused.to_string(), "not a member of access group ag");
}

#[test]
fn l4_a_window_the_hub_ended_by_removal_names_removal() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let a = assignment(vec![membership(
        "ag",
        window(t0() - secs(HOUR), Some((t0(), Limit::Removed))),
    )]);
    let refused = may_play(
        &view(&a, &[&group], t0(), Some(t0())),
        &id("m"),
        &all_cached,
    )
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "license of ag ended by removal from the group"
    );
}

#[test]
fn l2_countries_allowed_refused_and_unknown() {
    let terms = LicenseTerms {
        allowed_countries: Some(vec!["de".to_owned(), "AT".to_owned()]),
        ..offline_terms()
    };
    let group = access("ag", vec![media("m", ApprovalState::Active)], terms);
    let with_country = |country: Option<&str>| {
        let mut a = assignment(vec![open_member("ag")]);
        a.location.country = country.map(str::to_owned);
        may_play(
            &view(&a, &[&group], t0(), Some(t0())),
            &id("m"),
            &all_cached,
        )
    };
    assert!(with_country(Some("DE")).is_ok());
    assert_eq!(
        with_country(Some("FR")),
        Err(SkipReason::License {
            group: "ag".to_owned(),
            denied: Denied::CountryNotAllowed {
                country: "FR".to_owned()
            },
        })
    );
    assert_eq!(
        with_country(None),
        Err(SkipReason::License {
            group: "ag".to_owned(),
            denied: Denied::CountryUnknown,
        })
    );
}

#[test]
fn l2_invalid_or_missing_terms_grant_nothing() {
    let bad = LicenseTerms {
        allowed_countries: Some(Vec::new()),
        ..offline_terms()
    };
    let group = access("ag", vec![media("m", ApprovalState::Active)], bad);
    let a = assignment(vec![open_member("ag")]);
    assert_eq!(
        may_play(
            &view(&a, &[&group], t0(), Some(t0())),
            &id("m"),
            &all_cached
        ),
        Err(SkipReason::License {
            group: "ag".to_owned(),
            denied: Denied::InvalidTerms(LicenseError::EmptyCountryList),
        })
    );
    let mut unlicensed = group.clone();
    unlicensed.license = None;
    assert_eq!(
        may_play(
            &view(&a, &[&unlicensed], t0(), Some(t0())),
            &id("m"),
            &all_cached
        ),
        Err(SkipReason::NoLicenseTerms {
            group: "ag".to_owned()
        })
    );
}

// ---- S6 ----------------------------------------------------------------

/// S6: contact + grace is the first instant refused; the instant before it
/// is the last allowed, and the permit holds until exactly contact + grace.
#[test]
fn s6_offline_grace_boundary_is_exclusive() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let a = assignment(vec![open_member("ag")]);
    let contact = t0();
    let grace_end = contact + secs(2 * HOUR);
    let at = |now| {
        may_play(
            &view(&a, &[&group], now, Some(contact)),
            &id("m"),
            &all_cached,
        )
    };
    let last = at(grace_end - TimeDelta::nanoseconds(1)).unwrap();
    assert_eq!(last.until, Some(grace_end));
    let refused = at(grace_end).unwrap_err();
    assert_eq!(
        refused,
        SkipReason::OfflineGraceExceeded {
            group: "ag".to_owned(),
            last_contact: Some(contact),
            offline_for_secs: Some(2 * HOUR),
            grace_secs: 2 * HOUR,
        }
    );
    assert_eq!(
        at(contact + secs(3 * HOUR + 600)).unwrap_err().to_string(),
        "offline for 3 h 10 min, over the 2 h grace of ag"
    );
}

#[test]
fn s6_a_device_never_in_contact_plays_no_licensed_content() {
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let a = assignment(vec![open_member("ag")]);
    let refused = may_play(&view(&a, &[&group], t0(), None), &id("m"), &all_cached).unwrap_err();
    assert_eq!(
        refused,
        SkipReason::OfflineGraceExceeded {
            group: "ag".to_owned(),
            last_contact: None,
            offline_for_secs: None,
            grace_secs: 2 * HOUR,
        }
    );
    assert_eq!(
        refused.to_string(),
        "never in contact with the hub (2 h grace of ag)"
    );
}

#[test]
fn s6_a_license_without_offline_play_still_tolerates_the_contact_interval() {
    let terms = LicenseTerms::default(); // allow_offline: false
    let group = access("ag", vec![media("m", ApprovalState::Active)], terms.clone());
    let a = assignment(vec![open_member("ag")]);
    assert_eq!(offline_grace(&a, &terms), secs(CONTACT_TOLERANCE_SECS));
    let contact = t0();
    let at = |now| {
        may_play(
            &view(&a, &[&group], now, Some(contact)),
            &id("m"),
            &all_cached,
        )
    };
    let last = at(contact + secs(CONTACT_TOLERANCE_SECS) - TimeDelta::nanoseconds(1)).unwrap();
    assert_eq!(last.until, Some(contact + secs(CONTACT_TOLERANCE_SECS)));
    assert!(matches!(
        at(contact + secs(CONTACT_TOLERANCE_SECS)),
        Err(SkipReason::OfflineGraceExceeded {
            grace_secs: CONTACT_TOLERANCE_SECS,
            ..
        })
    ));
}

#[test]
fn s6_the_smaller_of_the_device_and_license_grace_applies() {
    let terms = offline_terms(); // 2 h
    let mut a = assignment(Vec::new());
    a.offline_grace_secs = 3_600;
    assert_eq!(offline_grace(&a, &terms), secs(HOUR));
    a.offline_grace_secs = 10 * 3_600;
    assert_eq!(offline_grace(&a, &terms), secs(2 * HOUR));
    a.offline_grace_secs = u64::MAX;
    assert_eq!(offline_grace(&a, &terms), secs(2 * HOUR));
    // A signed grace below the contact tolerance is honoured, not raised.
    a.offline_grace_secs = 60;
    assert_eq!(offline_grace(&a, &terms), secs(60));
    a.offline_grace_secs = 0;
    assert_eq!(offline_grace(&a, &terms), TimeDelta::zero());
}

/// S6 (issue 14, defect 8): a license grace of 60 s is honoured as signed:
/// the content stops 60 s after the last hub time, not 180 s.
#[test]
fn s6_a_license_grace_below_the_contact_tolerance_is_honoured_not_raised() {
    let terms = LicenseTerms {
        allow_offline: true,
        offline_grace_secs: 60,
        ..LicenseTerms::default()
    };
    let group = access("ag", vec![media("m", ApprovalState::Active)], terms.clone());
    let a = assignment(vec![open_member("ag")]);
    assert_eq!(offline_grace(&a, &terms), secs(60));
    let contact = t0();
    let at = |now| {
        may_play(
            &view(&a, &[&group], now, Some(contact)),
            &id("m"),
            &all_cached,
        )
    };
    assert_eq!(
        at(contact + secs(59)).unwrap().until,
        Some(contact + secs(60))
    );
    assert!(matches!(
        at(contact + secs(60)),
        Err(SkipReason::OfflineGraceExceeded { grace_secs: 60, .. })
    ));
}

/// S6: the hub signs no license whose offline grace is below three `hub_time`
/// intervals; the device's own check accepts it (and honours it).
#[test]
fn s6_the_hub_refuses_to_issue_a_grace_below_the_minimum() {
    use crate::license::{LicenseError, MIN_OFFLINE_GRACE_SECS};
    assert_eq!(MIN_OFFLINE_GRACE_SECS, 180);
    assert_eq!(
        i64::try_from(MIN_OFFLINE_GRACE_SECS).unwrap(),
        CONTACT_TOLERANCE_SECS
    );
    let short = LicenseTerms {
        allow_offline: true,
        offline_grace_secs: MIN_OFFLINE_GRACE_SECS - 1,
        ..LicenseTerms::default()
    };
    assert_eq!(short.validate(), Ok(()));
    assert_eq!(
        short.check_issuable(),
        Err(LicenseError::OfflineGraceTooShort {
            secs: MIN_OFFLINE_GRACE_SECS - 1,
            min: MIN_OFFLINE_GRACE_SECS
        })
    );
    let enough = LicenseTerms {
        offline_grace_secs: MIN_OFFLINE_GRACE_SECS,
        ..short
    };
    assert_eq!(enough.check_issuable(), Ok(()));
    // No offline play: the grace field is not used.
    assert_eq!(LicenseTerms::default().check_issuable(), Ok(()));
}

#[test]
fn d1_s6_node_content_ignores_the_offline_grace() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let a = assignment(Vec::new());
    for contact in [None, Some(t0() - TimeDelta::days(6))] {
        let permit = may_play(&view(&a, &[&site], t0(), contact), &id("m"), &all_cached).unwrap();
        assert_eq!(permit.until, Some(site.expires_at));
    }
}

// ---- several manifests -------------------------------------------------

#[test]
fn d4_an_item_in_a_node_and_an_access_group_plays_under_the_node() {
    let site = node("site", vec![media("m", ApprovalState::Active)]);
    let group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let a = assignment(vec![open_member("ag")]);
    let permit = may_play(
        &view(&a, &[&site, &group], t0(), Some(t0())),
        &id("m"),
        &all_cached,
    )
    .unwrap();
    assert_eq!(permit.group, "site");
    assert_eq!(permit.access_group, None);
    assert_eq!(permit.license_version, None);
}

#[test]
fn d4_a_later_manifest_allows_what_an_earlier_refuses_and_the_first_reason_is_reported() {
    let ended = access(
        "ag1",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let open = access(
        "ag2",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let a = assignment(vec![
        membership(
            "ag1",
            window(t0() - secs(HOUR), Some((t0(), Limit::DurationFromJoin))),
        ),
        open_member("ag2"),
    ]);
    let v = view(&a, &[&ended, &open], t0(), Some(t0()));
    assert_eq!(may_play(&v, &id("m"), &all_cached).unwrap().group, "ag2");
    // ag2 not a member either: the reason of ag1, the first to list it.
    let only_ag1 = assignment(vec![membership(
        "ag1",
        window(t0() - secs(HOUR), Some((t0(), Limit::DurationFromJoin))),
    )]);
    let v = view(&only_ag1, &[&ended, &open], t0(), Some(t0()));
    assert_eq!(
        may_play(&v, &id("m"), &all_cached),
        Err(SkipReason::License {
            group: "ag1".to_owned(),
            denied: Denied::Ended(Limit::DurationFromJoin),
        })
    );
}

#[test]
fn d4_the_permit_holds_until_the_earliest_limit() {
    let mut group = access(
        "ag",
        vec![media("m", ApprovalState::Active)],
        offline_terms(),
    );
    let contact = t0();
    let grace_end = contact + secs(2 * HOUR);
    let cases = [
        // (window end, expiry, expected until)
        (
            Some(t0() + secs(HOUR)),
            t0() + secs(5 * HOUR),
            t0() + secs(HOUR),
        ),
        (None, t0() + secs(5 * HOUR), grace_end),
        (
            Some(t0() + secs(4 * HOUR)),
            t0() + secs(30 * 60),
            t0() + secs(30 * 60),
        ),
    ];
    for (end, expiry, expected) in cases {
        group.expires_at = expiry;
        let a = assignment(vec![membership(
            "ag",
            window(t0() - secs(HOUR), end.map(|e| (e, Limit::FixedEnd))),
        )]);
        let permit = may_play(
            &view(&a, &[&group], t0(), Some(contact)),
            &id("m"),
            &all_cached,
        )
        .unwrap();
        assert_eq!(permit.until, Some(expected));
    }
}

proptest! {
    /// D4/L2/S6/S3: a permit's `until` is never later than the window's end,
    /// the grace's end or the manifest's expiry, is one of them, lies after
    /// `now`, and at `until` the item no longer plays.
    #[test]
    fn d4_until_is_the_earliest_limit(
        start_min in -600i64..120,
        end_min in prop::option::weighted(0.7, 0i64..600),
        contact_ago_min in prop::option::weighted(0.9, -5i64..300),
        allow_offline in prop::bool::weighted(0.8),
        license_grace_min in 1u64..600,
        device_grace_min in 0u64..600,
        expiry_min in 1i64..600,
        now_min in 0i64..240,
    ) {
        let minute = |m: i64| t0() + TimeDelta::minutes(m);
        let terms = LicenseTerms {
            allow_offline,
            offline_grace_secs: license_grace_min * 60,
            ..LicenseTerms::default()
        };
        let mut group = access("ag", vec![media("m", ApprovalState::Active)], terms.clone());
        group.issued_at = minute(-1000);
        group.expires_at = minute(expiry_min);
        let mut a = assignment(vec![membership(
            "ag",
            window(minute(start_min), end_min.map(|e| (minute(e), Limit::FixedEnd))),
        )]);
        a.offline_grace_secs = device_grace_min * 60;
        let now = minute(now_min);
        let contact = contact_ago_min.map(|ago| now - TimeDelta::minutes(ago));
        let at = |now| may_play(&view(&a, &[&group], now, contact), &id("m"), &all_cached);
        if let Ok(permit) = at(now) {
            let until = permit.until.unwrap();
            let grace_end = contact.unwrap() + offline_grace(&a, &terms);
            prop_assert!(until > now);
            prop_assert!(until <= group.expires_at);
            prop_assert!(until <= grace_end);
            if let Some(end) = end_min.map(minute) {
                prop_assert!(until <= end);
            }
            prop_assert!(
                until == group.expires_at
                    || until == grace_end
                    || end_min.map(minute) == Some(until)
            );
            prop_assert!(at(until - TimeDelta::nanoseconds(1)).is_ok());
            prop_assert!(at(until).is_err());
        }
    }
}

// ---- reason texts ------------------------------------------------------

#[test]
fn skip_reason_texts_are_short_and_precise() {
    let cases = [
        (SkipReason::NotListed, "not in any playing manifest"),
        (
            SkipReason::Unapproved(Unapproved::NotActive(ApprovalState::Pending)),
            "not approved (pending)",
        ),
        (
            SkipReason::Unapproved(Unapproved::NotActive(ApprovalState::Inactive)),
            "not approved (inactive)",
        ),
        (SkipReason::NotCached, "not cached yet"),
        (
            SkipReason::ManifestExpired {
                group: "site".to_owned(),
                expired_at: t0(),
            },
            "manifest of site expired at 2026-06-01 12:00:00 UTC",
        ),
        (
            SkipReason::Source {
                source: id("logo"),
                reason: Box::new(SkipReason::NotCached),
            },
            "source logo: not cached yet",
        ),
        (
            SkipReason::License {
                group: "ag".to_owned(),
                denied: Denied::CountryNotAllowed {
                    country: "FR".to_owned(),
                },
            },
            "license of ag does not allow country FR",
        ),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn durations_read_as_units() {
    assert_eq!(human_duration(0), "0 s");
    assert_eq!(human_duration(45), "45 s");
    assert_eq!(human_duration(2 * 3_600), "2 h");
    assert_eq!(human_duration(3 * 3_600 + 600), "3 h 10 min");
    assert_eq!(human_duration(86_400 + 7_205), "1 d 2 h 5 s");
    assert_eq!(human_duration(-90), "-1 min 30 s");
}

// ---- D5: the combined schedule -----------------------------------------

fn with_schedule(mut manifest: GroupManifest, schedule: Schedule) -> GroupManifest {
    manifest.schedule = schedule;
    manifest
}

#[test]
fn d5_combine_prefixes_entry_ids_and_maps_them_back() {
    let root = with_schedule(
        node("root", vec![media("r", ApprovalState::Active)]),
        schedule(vec![entry("e1", &["r"], 0)]),
    );
    let site = with_schedule(
        node("site", vec![media("s", ApprovalState::Active)]),
        schedule(vec![entry("e1", &["s"], 1), entry("e2", &["s"], 2)]),
    );
    let group = with_schedule(
        access(
            "ag",
            vec![media("a", ApprovalState::Active)],
            offline_terms(),
        ),
        schedule(vec![entry("e1", &["a"], 3)]),
    );
    let combined = combine(&[&root, &site, &group]);
    let ids: Vec<&str> = combined
        .schedule
        .entries
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids, ["root/e1", "site/e1", "site/e2", "ag/e1"]);
    assert_eq!(
        combined.origin,
        BTreeMap::from([
            (
                EntryId::new("root/e1"),
                ("root".to_owned(), EntryId::new("e1"))
            ),
            (
                EntryId::new("site/e1"),
                ("site".to_owned(), EntryId::new("e1"))
            ),
            (
                EntryId::new("site/e2"),
                ("site".to_owned(), EntryId::new("e2"))
            ),
            (EntryId::new("ag/e1"), ("ag".to_owned(), EntryId::new("e1"))),
        ])
    );
    // Everything but the id is the manifest's own entry.
    assert_eq!(
        combined.schedule.entries[2].items,
        site.schedule.entries[1].items
    );
    assert_eq!(combined.schedule.entries[3].priority, 3);
}

#[test]
fn d5_combine_keeps_ids_unique_when_group_and_entry_ids_collide() {
    let a = with_schedule(node("a", Vec::new()), schedule(vec![entry("b/c", &[], 0)]));
    let ab = with_schedule(node("a/b", Vec::new()), schedule(vec![entry("c", &[], 0)]));
    let combined = combine(&[&a, &ab]);
    assert_eq!(combined.origin.len(), 2);
    assert_eq!(
        combined.origin[&EntryId::new("a/b/c#2")],
        ("a/b".to_owned(), EntryId::new("c"))
    );
}

#[test]
fn d5_combine_takes_the_leaf_most_default_item_and_merge_mode() {
    let default = |item: &str| {
        Some(PlaylistItem {
            item: id(item),
            duration_ms: 5_000,
        })
    };
    let mut root = node("root", Vec::new());
    root.schedule.default_item = default("root-default");
    root.schedule.entries = vec![entry("e", &[], 0)];
    let mut mid = node("mid", Vec::new());
    mid.schedule.default_item = default("mid-default");
    mid.schedule.merge = MergeMode::Interleave { n: 2 };
    mid.schedule.entries = vec![entry("e", &[], 0)];
    let leaf = node("leaf", Vec::new()); // no default, no entries
    let mut group = access("ag", Vec::new(), offline_terms());
    group.schedule.default_item = default("ag-default");

    let combined = combine(&[&root, &mid, &leaf, &group]);
    assert_eq!(combined.schedule.default_item, default("mid-default"));
    assert_eq!(combined.schedule.merge, MergeMode::Interleave { n: 2 });

    let combined = combine(&[&leaf, &group]);
    assert_eq!(combined.schedule.default_item, default("ag-default"));
    assert_eq!(combined.schedule.merge, MergeMode::Sequence);

    group.schedule.entries = vec![entry("e", &[], 0)];
    group.schedule.merge = MergeMode::Interleave { n: 3 };
    let combined = combine(&[&root, &mid, &group]);
    assert_eq!(combined.schedule.merge, MergeMode::Interleave { n: 3 });
    assert_eq!(combine(&[]).schedule, schedule(Vec::new()));
}

#[test]
fn d5_scheduled_items_lists_each_item_with_its_groups_in_view_order() {
    let mut site = with_schedule(
        node(
            "site",
            vec![
                media("x", ApprovalState::Active),
                media("d", ApprovalState::Active),
            ],
        ),
        schedule(vec![entry("e1", &["x", "x"], 0), entry("e2", &["x"], 0)]),
    );
    site.schedule.default_item = Some(PlaylistItem {
        item: id("d"),
        duration_ms: 1,
    });
    let group = with_schedule(
        access(
            "ag",
            vec![media("x", ApprovalState::Active)],
            offline_terms(),
        ),
        schedule(vec![entry("e1", &["x", "y"], 0)]),
    );
    let listed = scheduled_items(&[&site, &group]);
    assert_eq!(
        listed,
        BTreeMap::from([
            (id("d"), vec!["site".to_owned()]),
            (id("x"), vec!["site".to_owned(), "ag".to_owned()]),
            (id("y"), vec!["ag".to_owned()]),
        ])
    );
}

/// D5/D4/L2: over the combined schedule, the access group's high-priority
/// item plays while licensed; once its window ends, the node's lower-priority
/// item takes over.
#[test]
fn d5_a_node_item_plays_once_the_access_group_item_stops_being_licensed() {
    let site = with_schedule(
        node("site", vec![media("house-ad", ApprovalState::Active)]),
        schedule(vec![entry("base", &["house-ad"], 0)]),
    );
    let group = with_schedule(
        access(
            "ag",
            vec![media("licensed", ApprovalState::Active)],
            offline_terms(),
        ),
        schedule(vec![entry("campaign", &["licensed"], 10)]),
    );
    let end = t0() + secs(HOUR);
    let a = assignment(vec![membership(
        "ag",
        window(t0() - TimeDelta::days(1), Some((end, Limit::FixedEnd))),
    )]);
    let manifests = [&site, &group];
    let combined = combine(&manifests);
    let playing = |now: DateTime<Utc>| {
        let v = view(&a, &manifests, now, Some(now));
        let playable = |item: &ItemId| may_play(&v, item, &all_cached).is_ok();
        let slot = evaluate(&combined.schedule, a.time_zone, now, &playable)
            .main
            .unwrap();
        (
            slot.item,
            combined.origin[slot.entry.as_ref().unwrap()].clone(),
        )
    };
    assert_eq!(
        playing(end - secs(1)),
        (id("licensed"), ("ag".to_owned(), EntryId::new("campaign")))
    );
    assert_eq!(
        playing(end),
        (id("house-ad"), ("site".to_owned(), EntryId::new("base")))
    );
}
