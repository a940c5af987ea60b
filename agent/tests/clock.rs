//! The trusted clock in the agent's play decision (S6, L2, L4): the wall
//! clock is injected through the clock seam ([`ClockReading`]) and set back
//! a year; the license still ends at its trusted end time.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use signet_agent::decide::{ContentView, Decider};
use signet_agent::state::{Documents, HeldManifest};
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
            renditions: Vec::new(),
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

// ---- hub_time through the verifier's decision (S3, S6) --------------------

use signet_agent::sync::apply::{self, Decision, FollowUp, Held, Route};
use signet_common::documents::HubTime;
use signet_common::envelope::{self, SigningKey};
use signet_common::rollback::RollbackGuard;
use signet_common::trust::{CertifiedKey, TrustDocument, TrustStore};

fn new_key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

/// A device paired to a hub whose trust document was issued a day before
/// `real` and certifies `signing` from then for 30 days; its trusted clock
/// starts from `wall`.
fn held(real: DateTime<Utc>, signing: &SigningKey, wall: &ClockReading) -> Held {
    let root = new_key();
    let trust = TrustDocument {
        version: 1,
        issued_at: real - TimeDelta::days(1),
        root_key_id: root.key_id(),
        root_public_key: None,
        signing_keys: vec![CertifiedKey {
            key_id: signing.key_id(),
            public_key: signing.public_key(),
            not_before: real - TimeDelta::days(1),
            not_after: real + TimeDelta::days(30),
        }],
    };
    let mut store = TrustStore::new(root.public_key());
    store
        .apply_trust(&envelope::sign_document(&trust, &root).unwrap())
        .unwrap();
    Held {
        device: DeviceId::from("dev-1"),
        trust: store,
        guard: RollbackGuard::default(),
        clock: TrustedClock::new(wall),
        assignment: None,
        documents: BTreeMap::new(),
    }
}

fn hub_time(signing: &SigningKey, version: u64, time: DateTime<Utc>) -> Vec<u8> {
    envelope::sign_document(
        &HubTime {
            version,
            issued_at: time,
            time,
        },
        signing,
    )
    .unwrap()
}

/// Takes `bytes` on the hub time topic at `at`, as the verifier does.
fn offer(held: &mut Held, bytes: &[u8], at: &ClockReading) -> Decision {
    let now = held.clock.tick(at);
    apply::decide(held, &Route::HubTime, bytes, now, at, &|_| Ok(false))
}

/// S6 (issue 14, defect 2b): a device whose trusted time is a year ahead —
/// its hub's signing key looks expired there — or ten days behind (the key
/// looks not yet valid) takes the `hub_time` that corrects it, and
/// subscribes again so documents refused at the wrong time come back.
#[test]
fn s6_a_device_a_year_ahead_or_ten_days_behind_takes_the_correcting_hub_time() {
    let real: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let signing = new_key();
    for wall in [real + TimeDelta::days(365), real - TimeDelta::days(10)] {
        let at = reading(wall, "boot-a", TimeDelta::minutes(1));
        let mut held = held(real, &signing, &at);
        let Decision::Apply(plan) = offer(&mut held, &hub_time(&signing, 7, real), &at) else {
            panic!("the correcting hub_time was not applied (wall {wall})");
        };
        assert_eq!(plan.follow_up, FollowUp::Resubscribe);
        let clock = plan.clock.clone().unwrap();
        assert_eq!(clock.peek(&at), real);
        let later = reading(wall, "boot-a", TimeDelta::minutes(2));
        assert_eq!(clock.peek(&later), real + TimeDelta::minutes(1));
    }
}

/// S3, S6: a replayed `hub_time` (same version) changes nothing, an older
/// one (lower version) is refused and moves nothing, and a `hub_time` close
/// to trusted time needs no new subscription.
#[test]
fn s3_s6_a_replayed_or_older_hub_time_moves_nothing() {
    let real: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let signing = new_key();
    let at = reading(real, "boot-a", TimeDelta::minutes(1));
    let mut held = held(real, &signing, &at);
    let current = hub_time(&signing, 7, real + TimeDelta::seconds(2));
    let Decision::Apply(plan) = offer(&mut held, &current, &at) else {
        panic!("hub_time not applied");
    };
    assert_eq!(plan.follow_up, FollowUp::Nothing);
    plan.adopt(&mut held);
    let held_clock = held.clock.clone();
    let later = reading(real, "boot-a", TimeDelta::minutes(2));
    assert!(matches!(
        offer(&mut held, &current, &later),
        Decision::Unchanged(_)
    ));
    let old = hub_time(&signing, 6, real - TimeDelta::hours(12));
    assert!(matches!(
        offer(&mut held, &old, &later),
        Decision::Refused(_)
    ));
    let forged_same_version = hub_time(&signing, 7, real - TimeDelta::hours(12));
    assert!(matches!(
        offer(&mut held, &forged_same_version, &later),
        Decision::Refused(_)
    ));
    assert_eq!(
        held.clock.peek(&later),
        held_clock.peek(&later),
        "nothing moved the clock"
    );
    assert_eq!(held.clock.peek(&later), real + TimeDelta::seconds(62));
}
