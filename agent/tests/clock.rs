//! The trusted clock in the agent's play decision (S6, L2, L4): the wall
//! clock is injected through the clock seam ([`ClockReading`]) and set back
//! a year; the license still ends at its trusted end time.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use signet_agent::activate::{Documents, HeldManifest};
use signet_agent::player::decide::{ContentView, Decider};
use signet_common::approval::ApprovalState;
use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::digest::Sha256;
use signet_common::documents::{
    AccessMembership, DeviceAssignment, GroupKind, GroupManifest, ItemKind, ManifestItem,
};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId};
use signet_common::license::{AccessWindow, LicenseTerms, Limit};
use signet_common::play::SkipReason;
use signet_common::schedule::{MergeMode, Schedule};

/// Every item is cached (this test is about time, not the cache).
struct AllCached;

impl ContentView for AllCached {
    fn present(&self, _item: &ManifestItem) -> Option<PathBuf> {
        Some(PathBuf::from("/nonexistent"))
    }
}

fn reading(wall: DateTime<Utc>, boot: &str, since_boot: TimeDelta) -> ClockReading {
    ClockReading {
        wall,
        boot_id: boot.to_owned(),
        since_boot_ms: u64::try_from(since_boot.num_milliseconds()).unwrap(),
    }
}

/// A device in access group `ag-1`, whose window ends at `end`, playing its
/// manifest with one licensed image.
fn documents(t0: DateTime<Utc>, end: DateTime<Utc>) -> Documents {
    let sha = Sha256::of(b"paid");
    let manifest = GroupManifest {
        version: 1,
        issued_at: t0,
        expires_at: t0 + TimeDelta::days(7),
        group_id: "ag-1".into(),
        group_kind: GroupKind::AccessGroup,
        items: vec![ManifestItem {
            id: ItemId::from("paid"),
            kind: ItemKind::Image,
            sha256: sha,
            size: 4,
            url: "http://127.0.0.1:9/x".into(),
            approval: ApprovalState::Active,
            approved_hash: Some(sha),
            categories: vec![],
        }],
        schedule: Schedule {
            entries: vec![],
            merge: MergeMode::Sequence,
            default_item: None,
        },
        license: Some(LicenseTerms {
            fixed_end: Some(end),
            allow_offline: true,
            offline_grace_secs: 30 * 86_400,
            ..LicenseTerms::default()
        }),
    };
    manifest.validate().unwrap();
    let assignment = DeviceAssignment {
        version: 1,
        issued_at: t0,
        device_id: DeviceId::from("dev-1"),
        node_chain: vec![],
        access_groups: vec![AccessMembership {
            group_id: AccessGroupId::from("ag-1"),
            window: AccessWindow {
                starts_at: t0 - TimeDelta::days(1),
                ends_at: Some(end),
                ended_by: Some(Limit::FixedEnd),
            },
        }],
        min_manifest_versions: BTreeMap::new(),
        time_zone: chrono_tz::UTC,
        location: Default::default(),
        offline_grace_secs: 30 * 86_400,
        variables: Default::default(),
    };
    let held = HeldManifest {
        manifest,
        envelope: vec![],
    };
    Documents {
        assignment: Some(assignment),
        accepted: BTreeMap::from([("ag-1".to_owned(), held.clone())]),
        playing: BTreeMap::from([("ag-1".to_owned(), held)]),
    }
}

fn decide(documents: &Documents, clock: &TrustedClock, at: &ClockReading) -> Result<(), String> {
    let decider = Decider::new(AllCached);
    let now = clock.peek(at);
    decider
        .decide(documents, clock, now, &ItemId::from("paid"))
        .map(|_| ())
        .map_err(|reason: SkipReason| reason.to_string())
}

/// S6, L4: setting the wall clock back a year, in the same boot or across
/// a reboot, does not extend the license: it ends when trusted time
/// reaches its end.
#[test]
fn s6_l4_wall_clock_set_back_a_year_does_not_extend_a_license() {
    let t0: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let end = t0 + TimeDelta::hours(1);
    let documents = documents(t0, end);
    let start = reading(t0, "boot-a", TimeDelta::minutes(5));
    let mut clock = TrustedClock::new(&start);
    clock.observe_hub_time(&start, t0);
    assert_eq!(decide(&documents, &clock, &start), Ok(()));

    // Same boot, two hours on, wall clock a year back.
    let back = reading(
        t0 - TimeDelta::days(365) + TimeDelta::hours(2),
        "boot-a",
        TimeDelta::minutes(5) + TimeDelta::hours(2),
    );
    assert!(clock.peek(&back) >= t0 + TimeDelta::hours(2));
    let refused = decide(&documents, &clock, &back).unwrap_err();
    assert!(refused.contains("ended"), "{refused}");

    // A reboot with the wall clock a year back: trusted time resumes at
    // the persisted high-water mark, never before it ...
    let persisted: TrustedClock =
        serde_json::from_slice(&serde_json::to_vec(&clock).unwrap()).unwrap();
    let reboot = reading(t0 - TimeDelta::days(365), "boot-b", TimeDelta::seconds(20));
    assert_eq!(persisted.peek(&reboot), t0);
    assert_eq!(decide(&documents, &persisted, &reboot), Ok(()));
    // ... and runs on with the monotonic clock of the new boot, so the
    // license still ends at its trusted end time.
    let mut rebooted = persisted.clone();
    rebooted.tick(&reboot);
    let just_before = reading(
        t0 - TimeDelta::days(365) + TimeDelta::minutes(59),
        "boot-b",
        TimeDelta::seconds(20) + TimeDelta::minutes(59) + TimeDelta::seconds(59),
    );
    assert!(rebooted.peek(&just_before) < end);
    assert_eq!(decide(&documents, &rebooted, &just_before), Ok(()));
    let at_end = reading(
        t0 - TimeDelta::days(365) + TimeDelta::hours(1),
        "boot-b",
        TimeDelta::seconds(20) + TimeDelta::hours(1),
    );
    assert_eq!(rebooted.peek(&at_end), end);
    let refused = decide(&documents, &rebooted, &at_end).unwrap_err();
    assert!(refused.contains("fixed end"), "{refused}");
}
