//! The trusted clock (S6): a newer verified `hub_time` sets trusted time in
//! either direction; between hub contacts it advances by monotonic elapsed
//! time; after a reboot without hub contact it is `max(wall, high-water)`;
//! a clock set back by hand never extends a license; a replayed `hub_time`
//! moves nothing; offline grace counts trusted time since the last
//! `hub_time`. Every reading is injected.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::documents::HubTime;
use signet_common::envelope::{self, VerifyError};
use signet_common::rollback::{Acceptance, Offer, RollbackGuard};
use signet_common::trust::TrustStore;
use support::{Hierarchy, cert_window, new_key, t0, trust_doc};

fn reading(wall: DateTime<Utc>, boot: &str, since_boot_s: u64) -> ClockReading {
    ClockReading {
        wall,
        boot_id: boot.to_string(),
        since_boot_ms: since_boot_s * 1000,
    }
}

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

/// S6 (a): a Pi boots 10 days behind, one `hub_time` arrives, then NTP sets
/// the wall clock right: trusted time stays the hub's, not 10 days ahead.
#[test]
fn s6_boot_behind_then_ntp_fix_keeps_the_hubs_time() {
    let behind = t0() - TimeDelta::days(10);
    let mut clock = TrustedClock::new(&reading(behind, "b1", 5));
    assert_eq!(
        clock.tick(&reading(behind + secs(5), "b1", 10)),
        behind + secs(5)
    );
    assert_eq!(
        clock.observe_hub_time(&reading(behind + secs(5), "b1", 10), t0()),
        t0()
    );
    // NTP steps the wall clock to the right time a minute later.
    let fixed = reading(t0() + secs(60), "b1", 70);
    assert_eq!(clock.tick(&fixed), t0() + secs(60));
    assert_eq!(clock.offset(&fixed), TimeDelta::zero());
    // The next hub_time agrees; nothing jumps.
    assert_eq!(
        clock.observe_hub_time(&reading(t0() + secs(120), "b1", 130), t0() + secs(120)),
        t0() + secs(120)
    );
    // A reboot with the right wall clock and no hub yet: the wall clock.
    assert_eq!(
        clock.tick(&reading(t0() + TimeDelta::hours(1), "b2", 3)),
        t0() + TimeDelta::hours(1)
    );
}

/// S6 (b): a clock a year ahead made trusted time a year ahead; a newer
/// `hub_time` sets it back, and the high-water mark goes down with it, so a
/// reboot with the right clock does not restore the year.
#[test]
fn s6_boot_ahead_then_hub_time_sets_time_back_and_lowers_the_high_water_mark() {
    let ahead = t0() + TimeDelta::days(365);
    let mut clock = TrustedClock::new(&reading(ahead, "b1", 5));
    assert_eq!(
        clock.tick(&reading(ahead + secs(60), "b1", 65)),
        ahead + secs(60)
    );
    assert_eq!(
        clock.observe_hub_time(&reading(ahead + secs(61), "b1", 66), t0()),
        t0()
    );
    assert_eq!(clock.high_water(), t0());
    // Same boot, the wall clock still a year ahead: the hub's time runs on.
    assert_eq!(
        clock.tick(&reading(ahead + secs(121), "b1", 126)),
        t0() + secs(60)
    );
    // Reboot, the wall clock now right.
    let rebooted = reading(t0() + TimeDelta::minutes(5), "b2", 2);
    assert_eq!(clock.tick(&rebooted), t0() + TimeDelta::minutes(5));
    // Reboot with the wall clock a year ahead again: until the next
    // hub_time it is followed (forward moves only end licenses sooner) ...
    let ahead_again = reading(ahead + TimeDelta::minutes(10), "b3", 2);
    assert_eq!(clock.tick(&ahead_again), ahead + TimeDelta::minutes(10));
    // ... and the next hub_time sets it right.
    assert_eq!(
        clock.observe_hub_time(
            &reading(ahead + TimeDelta::minutes(11), "b3", 62),
            t0() + TimeDelta::minutes(11)
        ),
        t0() + TimeDelta::minutes(11)
    );
}

/// S6: a hub whose clock was ahead and is corrected sets its devices back
/// too (either direction), and forward.
#[test]
fn s6_hub_time_sets_trusted_time_in_either_direction() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    assert_eq!(
        clock.observe_hub_time(&reading(t0(), "b1", 0), t0() - TimeDelta::hours(1)),
        t0() - TimeDelta::hours(1)
    );
    assert_eq!(
        clock.tick(&reading(t0(), "b1", 60)),
        t0() - TimeDelta::hours(1) + secs(60)
    );
    assert_eq!(
        clock.observe_hub_time(&reading(t0(), "b1", 120), t0() + TimeDelta::hours(3)),
        t0() + TimeDelta::hours(3)
    );
    assert_eq!(
        clock.tick(&reading(t0(), "b1", 180)),
        t0() + TimeDelta::hours(3) + secs(60)
    );
}

/// S6: between hub contacts trusted time is the last hub time plus the
/// monotonic time elapsed since it arrived, whatever the wall clock says.
#[test]
fn s6_between_hub_contacts_monotonic_elapsed_time_counts_not_the_wall_clock() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 1_000));
    clock.observe_hub_time(&reading(t0(), "b1", 1_000), t0());
    for (wall, since, expected) in [
        (t0() + TimeDelta::days(30), 1_060, 60),
        (t0() - TimeDelta::days(365), 1_120, 120),
        (t0() + secs(5), 4_600, 3_600),
    ] {
        let r = reading(wall, "b1", since);
        assert_eq!(clock.peek(&r), t0() + secs(expected));
        assert_eq!(clock.tick(&r), t0() + secs(expected));
    }
}

/// S6, L4: the owner sets the clock back 30 days, with and without hub
/// contact in this boot: the license still ends after two real days.
#[test]
fn s6_l4_clock_set_back_by_hand_within_a_boot_never_extends_a_license() {
    let license_end = t0() + TimeDelta::days(2);
    for anchored in [false, true] {
        let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
        if anchored {
            clock.observe_hub_time(&reading(t0(), "b1", 0), t0());
        }
        let mut wall = t0() - TimeDelta::days(30);
        let mut since_boot = 0;
        let mut ended_at = None;
        for _ in 0..(4 * 24) {
            wall += TimeDelta::hours(1);
            since_boot += 3600;
            let now = clock.tick(&reading(wall, "b1", since_boot));
            if now >= license_end && ended_at.is_none() {
                ended_at = Some(since_boot);
            }
        }
        assert_eq!(ended_at, Some(2 * 86_400), "anchored: {anchored}");
    }
}

/// S6, L4: set back by hand and rebooted (offline): trusted time resumes at
/// the persisted high-water mark, never below it, and keeps monotonic pace
/// in the new boot, so the license ends when that much time has passed.
#[test]
fn s6_l4_clock_set_back_across_a_reboot_never_goes_below_the_high_water_mark() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    clock.observe_hub_time(&reading(t0(), "b1", 0), t0());
    clock.tick(&reading(t0(), "b1", 5 * 3600));
    let persisted: TrustedClock =
        serde_json::from_str(&serde_json::to_string(&clock).unwrap()).unwrap();
    let mut clock = persisted;
    let boot_wall = t0() - TimeDelta::days(365);
    assert_eq!(
        clock.tick(&reading(boot_wall, "b2", 20)),
        t0() + TimeDelta::hours(5)
    );
    assert_eq!(
        clock.tick(&reading(boot_wall + TimeDelta::minutes(10), "b2", 620)),
        t0() + TimeDelta::hours(5) + TimeDelta::minutes(10)
    );
    // The offline grace runs on from the last hub time across the reboot.
    assert_eq!(
        clock.offline_for(t0() + TimeDelta::hours(5) + TimeDelta::minutes(10)),
        Some(TimeDelta::hours(5) + TimeDelta::minutes(10))
    );
}

/// S6: a reboot offline with the wall clock right counts the downtime; with
/// the wall clock behind it resumes at the high-water mark.
#[test]
fn s6_reboot_offline_takes_the_later_of_wall_clock_and_high_water_mark() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    clock.observe_hub_time(&reading(t0(), "b1", 0), t0());
    assert_eq!(clock.tick(&reading(t0(), "b1", 600)), t0() + secs(600));
    let later = t0() + TimeDelta::hours(8);
    assert_eq!(clock.peek(&reading(later, "b2", 30)), later);
    assert_eq!(
        clock.peek(&reading(t0() - TimeDelta::days(3), "b2", 30)),
        t0() + secs(600)
    );
}

/// S6: offline grace is trusted time since the last verified hub time, and
/// a device never in contact is outside any grace.
#[test]
fn s6_offline_grace_is_measured_in_trusted_time_since_the_last_hub_time() {
    let grace = TimeDelta::hours(48);
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    assert!(!clock.within_grace(t0(), grace));
    clock.observe_hub_time(&reading(t0(), "b1", 0), t0());
    let back = t0() - TimeDelta::days(100);
    let now = clock.tick(&reading(back, "b1", 47 * 3600));
    assert_eq!(clock.offline_for(now), Some(TimeDelta::hours(47)));
    assert!(clock.within_grace(now, grace));
    let now = clock.tick(&reading(back, "b1", 48 * 3600 + 1));
    assert!(!clock.within_grace(now, grace));
    // A hub time that sets the clock back also restarts the grace there.
    clock.observe_hub_time(
        &reading(back, "b1", 48 * 3600 + 2),
        t0() + TimeDelta::hours(1),
    );
    assert_eq!(
        clock.offline_for(clock.high_water()),
        Some(TimeDelta::zero())
    );
}

#[test]
fn s6_clock_state_survives_a_json_round_trip_and_reads_the_old_format() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    clock.observe_hub_time(&reading(t0(), "b1", 1), t0() + secs(30));
    let restored: TrustedClock =
        serde_json::from_str(&serde_json::to_string(&clock).unwrap()).unwrap();
    assert_eq!(restored, clock);
    // State persisted before hub anchors existed (with a wall correction).
    let old = r#"{"high_water":"2026-06-01T12:00:00Z","correction_ms":864000000,
        "last_mark":{"boot_id":"b1","since_boot_ms":0},
        "last_hub_contact":"2026-06-01T12:00:00Z"}"#;
    let old: TrustedClock = serde_json::from_str(old).unwrap();
    assert_eq!(
        old.peek(&reading(t0() - TimeDelta::days(10), "b2", 1)),
        t0()
    );
    assert_eq!(old.last_hub_contact(), Some(t0()));
}

// ---- verifying the hub_time that sets the clock ---------------------------

/// A `hub_time` signed by `h`'s key stating `time`.
fn hub_time_at(h: &Hierarchy, version: u64, time: DateTime<Utc>) -> Vec<u8> {
    let doc = HubTime {
        version,
        issued_at: time,
        time,
    };
    envelope::sign_document(&doc, &h.signing).unwrap()
}

/// What the agent does with one `hub_time` (trust store, then rollback
/// guard, then clock); `None` when refused or already held.
fn take(
    h: &Hierarchy,
    guard: &mut RollbackGuard,
    clock: &mut TrustedClock,
    bytes: &[u8],
    at: &ClockReading,
) -> Option<DateTime<Utc>> {
    let verified = h.store.verify_hub_time(bytes).ok()?;
    match guard.accept(&Offer::of(&verified)) {
        Ok(Acceptance::New { .. }) => Some(clock.observe_hub_time(at, verified.payload().time)),
        Ok(Acceptance::AlreadyHeld) | Err(_) => None,
    }
}

/// S3, S6: a replayed `hub_time` (equal version) or an older one (lower
/// version, e.g. captured when the device was set back) never moves time.
#[test]
fn s3_s6_replayed_or_older_hub_time_is_refused_and_moves_nothing() {
    let h = Hierarchy::new();
    let mut guard = RollbackGuard::default();
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    let old = hub_time_at(&h, 10, t0() - TimeDelta::days(1));
    let new = hub_time_at(&h, 11, t0());
    assert_eq!(
        take(&h, &mut guard, &mut clock, &new, &reading(t0(), "b1", 0)),
        Some(t0())
    );
    let before = clock.clone();
    let later = reading(t0(), "b1", 600);
    assert_eq!(
        take(&h, &mut guard, &mut clock, &old, &later),
        None,
        "lower version"
    );
    assert_eq!(
        take(&h, &mut guard, &mut clock, &new, &later),
        None,
        "same version"
    );
    let conflicting = hub_time_at(&h, 11, t0() - TimeDelta::days(1));
    assert_eq!(
        take(&h, &mut guard, &mut clock, &conflicting, &later),
        None,
        "same version, other time"
    );
    assert_eq!(clock, before);
    assert_eq!(clock.peek(&later), t0() + secs(600));
}

/// S6: the key of a `hub_time` is checked at the time it states, so a
/// device whose trusted time is a year ahead (the key looks expired) or ten
/// days behind (the key looks not yet valid) still takes the `hub_time`
/// that corrects it.
#[test]
fn s6_a_hub_time_verifies_at_its_own_time_whatever_the_devices_time() {
    let h = Hierarchy::new(); // key valid t0 ± 30 days, trust issued at t0
    let bytes = hub_time_at(&h, 1, t0() + TimeDelta::days(1));
    for device_now in [
        t0() + TimeDelta::days(365),
        t0() - TimeDelta::days(10) - TimeDelta::days(30),
    ] {
        assert!(
            h.store.verify::<HubTime>(&bytes, device_now).is_err(),
            "the old check refuses"
        );
    }
    let verified = h.store.verify_hub_time(&bytes).unwrap();
    assert_eq!(verified.payload().time, t0() + TimeDelta::days(1));
}

/// S6: no hole — a `hub_time` stating a time outside its key's window (an
/// expired key moving time back, a key used before its window) or before
/// the root-signed trust document's issue time is refused; a tampered one
/// fails its signature.
#[test]
fn s6_a_hub_time_outside_its_keys_window_or_before_the_trust_document_is_refused() {
    let h = Hierarchy::new();
    let after_window = hub_time_at(&h, 1, t0() + TimeDelta::days(31));
    assert!(matches!(
        h.store.verify_hub_time(&after_window),
        Err(VerifyError::KeyExpired { .. })
    ));
    let before_trust = hub_time_at(&h, 1, t0() - TimeDelta::days(1));
    assert!(matches!(
        h.store.verify_hub_time(&before_trust),
        Err(VerifyError::HubTimeBeforeTrust { .. })
    ));
    // A key whose window starts later.
    let root = new_key();
    let future = new_key();
    let mut store = TrustStore::new(root.public_key());
    let trust = trust_doc(
        1,
        &root,
        vec![cert_window(
            &future,
            t0() + TimeDelta::days(1),
            t0() + TimeDelta::days(2),
        )],
    );
    store
        .apply_trust(&envelope::sign_document(&trust, &root).unwrap())
        .unwrap();
    let early = envelope::sign_document(
        &HubTime {
            version: 1,
            issued_at: t0(),
            time: t0(),
        },
        &future,
    )
    .unwrap();
    assert!(matches!(
        store.verify_hub_time(&early),
        Err(VerifyError::KeyNotYetValid { .. })
    ));
    // Tampered payload.
    let mut tampered = String::from_utf8(hub_time_at(&h, 2, t0())).unwrap();
    let at = tampered.find("\"sig\":\"").unwrap() + 7;
    let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    assert!(h.store.verify_hub_time(tampered.as_bytes()).is_err());
}

fn arb_step() -> impl Strategy<Value = (i64, bool, u64)> {
    // wall offset from t0 in seconds (±2 years), a reboot before this
    // reading, seconds of monotonic time since the previous reading.
    (
        -63_072_000i64..63_072_000,
        prop::bool::weighted(0.2),
        0u64..1_000_000,
    )
}

proptest! {
    /// S6: a hub time sets trusted time exactly; between hub times trusted
    /// time never goes back; after a reboot it is the later of the wall
    /// clock and the high-water mark.
    #[test]
    fn s6_only_a_hub_time_moves_trusted_time_back(
        steps in prop::collection::vec((arb_step(), prop::option::of(-86_400i64..86_400)), 1..60)
    ) {
        let mut clock = TrustedClock::new(&reading(t0(), "b0", 0));
        let mut last = clock.high_water();
        let (mut boot, mut since) = (0u32, 0u64);
        for ((wall_s, reboot, delta), hub) in steps {
            if reboot {
                boot += 1;
                since = delta;
            } else {
                since += delta;
            }
            let r = reading(t0() + TimeDelta::seconds(wall_s), &format!("b{boot}"), since);
            let high_water = clock.high_water();
            let now = match hub {
                Some(h) => {
                    let hub_time = t0() + TimeDelta::seconds(h);
                    let now = clock.observe_hub_time(&r, hub_time);
                    prop_assert_eq!(now, hub_time);
                    now
                }
                None => {
                    let now = clock.tick(&r);
                    prop_assert!(now >= last, "went back from {} to {}", last, now);
                    if reboot {
                        prop_assert_eq!(now, high_water.max(r.wall));
                    }
                    now
                }
            };
            prop_assert_eq!(now, clock.high_water());
            last = now;
        }
    }

    /// S6: within one boot, trusted time keeps monotonic pace whatever the
    /// wall clock does: exactly with a hub anchor, at least without one.
    #[test]
    fn s6_trusted_time_keeps_monotonic_pace(
        anchored in any::<bool>(),
        walls in prop::collection::vec(-63_072_000i64..63_072_000, 1..40),
    ) {
        let mut clock = TrustedClock::new(&reading(t0(), "b", 0));
        if anchored {
            clock.observe_hub_time(&reading(t0(), "b", 0), t0());
        }
        let mut prev = clock.high_water();
        for (i, wall_s) in walls.into_iter().enumerate() {
            let since = (i as u64 + 1) * 60;
            let now = clock.tick(&reading(t0() + TimeDelta::seconds(wall_s), "b", since));
            if anchored {
                prop_assert_eq!(now, t0() + TimeDelta::seconds(i64::try_from(since).unwrap()));
            } else {
                prop_assert!(now >= prev + TimeDelta::seconds(60));
            }
            prev = now;
        }
    }
}
