//! The trusted clock (S6): the time licenses are checked against.
//!
//! Owns: the persisted clock state and the pure rules that advance it. Must
//! not: read any clock itself — the agent passes a [`ClockReading`] (wall
//! clock, boot id, time since boot from `CLOCK_BOOTTIME`) on every tick, and
//! persists the state it gets back.
//!
//! # Rules
//! `trusted = max(high_water, wall + correction, high_water + monotonic elapsed)`
//! - **Never backwards**: the result is never below the persisted high-water
//!   mark, which every tick raises to the result.
//! - **Wall-clock steps back are corrected**: within one boot, trusted time
//!   advances by the monotonic time elapsed since the last tick, whatever the
//!   wall clock does. Setting the clock back a year changes nothing; time
//!   neither stops nor slows, so no license is extended.
//! - **Wall-clock steps forward are followed** (an NTP fix after a Pi without
//!   a real-time clock booted with a stale time): moving forward only ends
//!   licenses sooner, never later.
//! - **Signed hub time raises it**: a verified `hub_time` sets the correction
//!   to `hub − wall` and raises trusted time to the hub's if it is behind.
//!   A device whose trusted time runs *ahead* of the hub's keeps its lead —
//!   time never goes back — and reports the offset (U4).
//! - **Offline grace** is trusted time since the last verified `hub_time`.
//! - Across a reboot the monotonic clock restarts, so the downtime counts
//!   only as far as `wall + correction` shows it; a wall clock set back while
//!   the device was off loses the downtime, never more.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// One reading of the device's clocks, taken by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReading {
    /// The wall clock (untrusted: anyone with a shell can set it).
    pub wall: DateTime<Utc>,
    /// Identifies the boot (`/proc/sys/kernel/random/boot_id`): monotonic
    /// readings compare only within one boot.
    pub boot_id: String,
    /// Milliseconds since boot, suspend included (`CLOCK_BOOTTIME`).
    pub since_boot_ms: u64,
}

/// Where the monotonic clock stood at a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MonotonicMark {
    /// The boot the reading belongs to.
    boot_id: String,
    /// Milliseconds since that boot.
    since_boot_ms: u64,
}

/// The persisted state of the trusted clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedClock {
    /// The highest trusted time ever returned; never decreases.
    high_water: DateTime<Utc>,
    /// Hub time minus wall clock at the last verified `hub_time`, in ms.
    correction_ms: i64,
    /// The monotonic clock at the last tick, to measure elapsed time.
    last_mark: Option<MonotonicMark>,
    /// Trusted time when the last `hub_time` was verified.
    last_hub_contact: Option<DateTime<Utc>>,
}

impl TrustedClock {
    /// A clock started from its first reading (a newly paired device trusts
    /// its wall clock until the first `hub_time` arrives).
    #[must_use]
    pub fn new(first: &ClockReading) -> Self {
        Self {
            high_water: first.wall,
            correction_ms: 0,
            last_mark: Some(mark(first)),
            last_hub_contact: None,
        }
    }

    /// The trusted time for `reading`, without changing the state.
    #[must_use]
    pub fn peek(&self, reading: &ClockReading) -> DateTime<Utc> {
        let mut trusted = self.high_water;
        if let Some(estimate) = add_ms(reading.wall, self.correction_ms) {
            trusted = trusted.max(estimate);
        }
        if let Some(elapsed) = self.elapsed_ms(reading)
            && let Some(advanced) = add_ms(self.high_water, elapsed)
        {
            trusted = trusted.max(advanced);
        }
        trusted
    }

    /// Advances the clock to `reading` and returns the trusted time. Persist
    /// the state afterwards (periodically is enough: a lost tick only loses
    /// the time since the last persisted one).
    pub fn tick(&mut self, reading: &ClockReading) -> DateTime<Utc> {
        let trusted = self.peek(reading);
        self.high_water = trusted;
        self.last_mark = Some(mark(reading));
        trusted
    }

    /// Takes a verified `hub_time` received at `reading`: records the hub's
    /// offset from the wall clock, raises trusted time to the hub's if it is
    /// behind, and marks the hub contact that offline grace counts from.
    /// Returns the trusted time.
    pub fn observe_hub_time(
        &mut self,
        reading: &ClockReading,
        hub_time: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let trusted = self.tick(reading).max(hub_time);
        self.correction_ms = (hub_time - reading.wall).num_milliseconds();
        self.high_water = trusted;
        self.last_hub_contact = Some(trusted);
        trusted
    }

    /// The highest trusted time returned so far.
    #[must_use]
    pub fn high_water(&self) -> DateTime<Utc> {
        self.high_water
    }

    /// Trusted time at the last verified `hub_time`, if any arrived yet.
    #[must_use]
    pub fn last_hub_contact(&self) -> Option<DateTime<Utc>> {
        self.last_hub_contact
    }

    /// How long, in trusted time, since the last verified `hub_time`.
    #[must_use]
    pub fn offline_for(&self, now: DateTime<Utc>) -> Option<TimeDelta> {
        self.last_hub_contact.map(|contact| now - contact)
    }

    /// Whether trusted time `now` is within `grace` of the last verified
    /// `hub_time`. A device that never had hub contact is outside any grace.
    #[must_use]
    pub fn within_grace(&self, now: DateTime<Utc>, grace: TimeDelta) -> bool {
        self.offline_for(now)
            .is_some_and(|offline| offline <= grace)
    }

    /// Trusted time minus the wall clock: the clock offset a device reports
    /// (U4). Positive when the wall clock is behind.
    #[must_use]
    pub fn offset(&self, reading: &ClockReading) -> TimeDelta {
        self.peek(reading) - reading.wall
    }

    /// Monotonic milliseconds since the last tick, if in the same boot.
    fn elapsed_ms(&self, reading: &ClockReading) -> Option<i64> {
        let last = self.last_mark.as_ref()?;
        if last.boot_id != reading.boot_id {
            return None;
        }
        let elapsed = reading.since_boot_ms.checked_sub(last.since_boot_ms)?;
        i64::try_from(elapsed).ok()
    }
}

fn mark(reading: &ClockReading) -> MonotonicMark {
    MonotonicMark {
        boot_id: reading.boot_id.clone(),
        since_boot_ms: reading.since_boot_ms,
    }
}

/// `time + ms`, or `None` when it leaves chrono's range.
fn add_ms(time: DateTime<Utc>, ms: i64) -> Option<DateTime<Utc>> {
    time.checked_add_signed(TimeDelta::try_milliseconds(ms)?)
}
