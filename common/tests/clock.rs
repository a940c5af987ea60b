//! The trusted clock (S6): never backwards, wall-clock steps back corrected,
//! raised by signed hub time, offline grace in trusted time.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use signet_common::clock::{ClockReading, TrustedClock};
use support::t0;

fn reading(wall: DateTime<Utc>, boot: &str, since_boot_s: u64) -> ClockReading {
    ClockReading {
        wall,
        boot_id: boot.to_string(),
        since_boot_ms: since_boot_s * 1000,
    }
}

#[test]
fn s6_wall_clock_set_back_a_year_does_not_stop_or_slow_trusted_time() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 100));
    assert_eq!(
        clock.tick(&reading(t0() + TimeDelta::hours(1), "b1", 3700)),
        t0() + TimeDelta::hours(1)
    );
    // Someone sets the wall clock back one year; an hour of real time passes.
    let year_ago = t0() - TimeDelta::days(365);
    let now = clock.tick(&reading(year_ago + TimeDelta::hours(1), "b1", 7300));
    assert_eq!(now, t0() + TimeDelta::hours(2));
    let now = clock.tick(&reading(
        year_ago + TimeDelta::hours(25),
        "b1",
        7300 + 86_400,
    ));
    assert_eq!(
        now,
        t0() + TimeDelta::hours(26),
        "trusted time keeps real pace"
    );
}

#[test]
fn s6_a_license_ends_at_its_trusted_end_even_with_the_clock_set_back() {
    let license_end = t0() + TimeDelta::days(2);
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    // Day 1: the owner sets the clock back 30 days to stretch the license.
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
    assert_eq!(
        ended_at,
        Some(2 * 86_400),
        "the license ended after two real days"
    );
}

#[test]
fn s6_wall_clock_step_forward_is_followed() {
    // A Pi without an RTC boots with a stale time, then NTP fixes it.
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 10));
    let fixed = t0() + TimeDelta::days(3);
    assert_eq!(clock.tick(&reading(fixed, "b1", 70)), fixed);
    assert_eq!(
        clock.tick(&reading(fixed + TimeDelta::seconds(60), "b1", 130)),
        fixed + TimeDelta::seconds(60)
    );
}

#[test]
fn s6_reboot_with_the_clock_set_back_loses_only_the_downtime() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    clock.tick(&reading(t0() + TimeDelta::hours(5), "b1", 5 * 3600));
    // Powered off, clock set back a year, booted again: monotonic restarts.
    let boot_wall = t0() - TimeDelta::days(365);
    assert_eq!(
        clock.tick(&reading(boot_wall, "b2", 20)),
        t0() + TimeDelta::hours(5)
    );
    assert_eq!(
        clock.tick(&reading(boot_wall + TimeDelta::minutes(10), "b2", 620)),
        t0() + TimeDelta::hours(5) + TimeDelta::minutes(10)
    );
}

#[test]
fn s6_signed_hub_time_raises_trusted_time_and_corrects_a_slow_wall_clock() {
    let slow_wall = t0() - TimeDelta::minutes(10);
    let mut clock = TrustedClock::new(&reading(slow_wall, "b1", 0));
    assert_eq!(
        clock.observe_hub_time(&reading(slow_wall, "b1", 0), t0()),
        t0()
    );
    assert_eq!(
        clock.offset(&reading(slow_wall, "b1", 0)),
        TimeDelta::minutes(10)
    );
    // After a reboot (no monotonic continuity) the learned correction holds.
    assert_eq!(
        clock.tick(&reading(slow_wall + TimeDelta::hours(1), "b2", 5)),
        t0() + TimeDelta::hours(1)
    );
}

#[test]
fn s6_hub_time_behind_trusted_time_never_moves_it_back() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    let now = clock.observe_hub_time(&reading(t0(), "b1", 0), t0() - TimeDelta::hours(1));
    assert_eq!(now, t0());
    assert_eq!(
        clock.tick(&reading(t0(), "b1", 60)),
        t0() + TimeDelta::seconds(60)
    );
}

#[test]
fn s6_offline_grace_is_measured_in_trusted_time_since_the_last_hub_time() {
    let grace = TimeDelta::hours(48);
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    assert!(
        !clock.within_grace(t0(), grace),
        "no hub contact yet: outside any grace"
    );
    clock.observe_hub_time(&reading(t0(), "b1", 0), t0());
    // The wall clock is set back; 47 h of real time pass.
    let back = t0() - TimeDelta::days(100);
    let now = clock.tick(&reading(back, "b1", 47 * 3600));
    assert_eq!(clock.offline_for(now), Some(TimeDelta::hours(47)));
    assert!(clock.within_grace(now, grace));
    let now = clock.tick(&reading(back, "b1", 48 * 3600 + 1));
    assert!(!clock.within_grace(now, grace));
}

#[test]
fn s6_clock_state_survives_a_json_round_trip() {
    let mut clock = TrustedClock::new(&reading(t0(), "b1", 0));
    clock.observe_hub_time(&reading(t0(), "b1", 1), t0() + TimeDelta::seconds(30));
    let restored: TrustedClock =
        serde_json::from_str(&serde_json::to_string(&clock).unwrap()).unwrap();
    assert_eq!(restored, clock);
}

fn arb_reading() -> impl Strategy<Value = (i64, u8, u64)> {
    // wall offset from t0 in seconds (±2 years), boot number, seconds since boot.
    (-63_072_000i64..63_072_000, 0u8..3, 0u64..10_000_000)
}

proptest! {
    /// S6: whatever the readings and hub times, trusted time never goes back,
    /// and the hub's time is never above what it then returns.
    #[test]
    fn s6_trusted_time_never_goes_backwards(
        steps in prop::collection::vec((arb_reading(), prop::option::of(-86_400i64..86_400)), 1..60)
    ) {
        let mut clock = TrustedClock::new(&reading(t0(), "b0", 0));
        let mut last = clock.high_water();
        for ((wall_s, boot, since), hub) in steps {
            let r = reading(t0() + TimeDelta::seconds(wall_s), &format!("b{boot}"), since);
            let now = match hub {
                Some(h) => {
                    let hub_time = t0() + TimeDelta::seconds(h);
                    let now = clock.observe_hub_time(&r, hub_time);
                    prop_assert!(now >= hub_time);
                    now
                }
                None => clock.tick(&r),
            };
            prop_assert!(now >= last, "went back from {} to {}", last, now);
            prop_assert_eq!(now, clock.high_water());
            last = now;
        }
    }

    /// S6: within one boot, trusted time advances at least as fast as the
    /// monotonic clock, whatever the wall clock does.
    #[test]
    fn s6_trusted_time_keeps_monotonic_pace(walls in prop::collection::vec(-63_072_000i64..63_072_000, 1..40)) {
        let mut clock = TrustedClock::new(&reading(t0(), "b", 0));
        let mut prev = clock.high_water();
        for (i, wall_s) in walls.into_iter().enumerate() {
            let since = (i as u64 + 1) * 60;
            let now = clock.tick(&reading(t0() + TimeDelta::seconds(wall_s), "b", since));
            prop_assert!(now >= prev + TimeDelta::seconds(60));
            prev = now;
        }
    }
}
