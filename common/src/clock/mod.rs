//! The trusted clock (S6): the time licenses are checked against.
//!
//! Owns: the persisted clock state and the pure rules that advance it. Must
//! not: read any clock itself — the agent passes a [`ClockReading`] (wall
//! clock, boot id and time since boot from `CLOCK_BOOTTIME`) on every tick,
//! and persists the state it gets back — nor judge whether a `hub_time` may
//! be used: the caller verifies its signature (see
//! [`crate::trust::TrustStore::verify_hub_time`]) and its version (the
//! rollback guard, S3) before [`TrustedClock::observe_hub_time`].
//!
//! # Rules (DESIGN §4 "Trusted clock")
//! - **A newer verified `hub_time` sets trusted time, in either direction**,
//!   and records the monotonic reading taken when it arrived (the *hub
//!   anchor*). A device whose clock was wrong — a Raspberry Pi without a
//!   real-time clock that booted days behind, or a clock once set a year
//!   ahead — is right again at the next `hub_time`; a clock that is wrong
//!   cannot keep itself wrong.
//! - **Between hub contacts, within the boot of the anchor**:
//!   `trusted = hub_time + (since_boot_now − since_boot_at_hub_time)`. The
//!   wall clock is not looked at: setting it back or forward by hand (or an
//!   NTP step) changes nothing; time advances at the pace of `CLOCK_BOOTTIME`,
//!   which counts suspend and never stops, so no license is extended.
//! - **Without an anchor in this boot** (after a reboot, before the first
//!   `hub_time`, or on a device that never had one):
//!   `trusted = max(wall, high_water + since_boot elapsed since the last
//!   tick of this boot)`, which is `max(wall, high_water)` at the first
//!   reading after a boot. It never goes below the persisted high-water mark;
//!   within the boot it keeps monotonic pace whatever the wall clock does (a
//!   clock set back by hand neither stops nor slows it), and a wall clock
//!   that steps forward (NTP late) is followed. A wall clock set back while
//!   the device was off loses the downtime, never more.
//! - **The high-water mark** is the last trusted time returned by a tick (and
//!   persisted by the agent); a `hub_time` that sets time back lowers it to
//!   the hub's time, so a clock that ran ahead once does not stay ahead across
//!   reboots.
//! - **Offline grace** is trusted time since the last verified `hub_time`
//!   ([`TrustedClock::offline_for`]).
//!
//! Hence: setting the device clock back never extends a license (trusted time
//! ignores it within a boot and never drops below the high-water mark across
//! one), and setting it forward darkens a device at most until the next
//! `hub_time` once the hub is reachable.
//!
//! # Why a `hub_time` may move time back without opening a hole
//! Only a `hub_time` can move trusted time back, and it is taken only when
//! (1) its signature verifies under a signing key certified by the pinned
//! root, (2) its version is above the held one (the rollback guard: a
//! replayed or older `hub_time` — equal or lower version — changes nothing),
//! and (3) its stated time lies in that key's validity window and is not
//! before the issue time of the root-signed trust document held. The key's
//! window is checked at the time the `hub_time` states, not at the device's
//! trusted time: the device's time is exactly what may be wrong (a year
//! ahead, a signing key looks expired; days behind, a fresh key looks not yet
//! valid), and checking against it would refuse forever the one document that
//! corrects it. What an attacker gains: nothing without a signing key. With
//! a key the root still lists, they could sign any manifest anyway; with a
//! key that has expired but is still listed, time can be moved back only into
//! that key's window and not before the trust document's issue time — and the
//! hub removes a retired key from the trust document, which also makes the
//! device forget the versions it vouched for. A delayed legitimate `hub_time`
//! (a retained one published while the hub was down) sets trusted time to
//! when it was signed: a device that had not seen it loses at most the age of
//! that message, and the hub publishes a fresh one on every connect and every
//! interval.

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

/// Where the monotonic clock stood at a moment the clock remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MonotonicMark {
    /// The boot the reading belongs to.
    boot_id: String,
    /// Milliseconds since that boot.
    since_boot_ms: u64,
}

impl MonotonicMark {
    /// Milliseconds from this mark to `reading`, if in the same boot and not
    /// before it.
    fn elapsed_ms(&self, reading: &ClockReading) -> Option<i64> {
        if self.boot_id != reading.boot_id {
            return None;
        }
        let elapsed = reading.since_boot_ms.checked_sub(self.since_boot_ms)?;
        i64::try_from(elapsed).ok()
    }
}

/// The last verified `hub_time` and the monotonic reading when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HubAnchor {
    /// The time the `hub_time` stated.
    time: DateTime<Utc>,
    /// The monotonic clock when it was taken.
    mark: MonotonicMark,
}

/// The persisted state of the trusted clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedClock {
    /// The trusted time of the last tick (persisted by the agent): the floor
    /// after a reboot without hub contact.
    high_water: DateTime<Utc>,
    /// The monotonic clock at the last tick, to advance `high_water` within
    /// a boot without a hub anchor.
    last_mark: Option<MonotonicMark>,
    /// The last verified `hub_time`, which trusted time counts from within
    /// its boot. Absent in state written before anchors existed.
    #[serde(default)]
    hub_anchor: Option<HubAnchor>,
    /// Trusted time when the last `hub_time` was verified (the time it
    /// stated).
    last_hub_contact: Option<DateTime<Utc>>,
}

impl TrustedClock {
    /// A clock started from its first reading (a newly paired device trusts
    /// its wall clock until the first `hub_time` arrives).
    #[must_use]
    pub fn new(first: &ClockReading) -> Self {
        Self {
            high_water: first.wall,
            last_mark: Some(mark(first)),
            hub_anchor: None,
            last_hub_contact: None,
        }
    }

    /// The trusted time for `reading`, without changing the state.
    #[must_use]
    pub fn peek(&self, reading: &ClockReading) -> DateTime<Utc> {
        if let Some(anchor) = &self.hub_anchor
            && let Some(elapsed) = anchor.mark.elapsed_ms(reading)
            && let Some(trusted) = add_ms(anchor.time, elapsed)
        {
            return trusted;
        }
        let advanced = self
            .last_mark
            .as_ref()
            .and_then(|last| last.elapsed_ms(reading))
            .and_then(|elapsed| add_ms(self.high_water, elapsed))
            .unwrap_or(self.high_water);
        advanced.max(reading.wall)
    }

    /// Advances the clock to `reading` and returns the trusted time, which
    /// becomes the high-water mark. Persist the state afterwards
    /// (periodically is enough: a lost tick only loses the time since the
    /// last persisted one, and only across a reboot).
    pub fn tick(&mut self, reading: &ClockReading) -> DateTime<Utc> {
        let trusted = self.peek(reading);
        self.high_water = trusted;
        self.last_mark = Some(mark(reading));
        trusted
    }

    /// Takes a `hub_time` stating `hub_time`, received at `reading`, which
    /// the caller verified (signature, key window at its own time, version
    /// above the held one): trusted time becomes the hub's, in either
    /// direction, counted on from this reading's monotonic clock; it is the
    /// hub contact that offline grace counts from. Returns the trusted time.
    pub fn observe_hub_time(
        &mut self,
        reading: &ClockReading,
        hub_time: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let at = mark(reading);
        self.hub_anchor = Some(HubAnchor {
            time: hub_time,
            mark: at.clone(),
        });
        self.high_water = hub_time;
        self.last_mark = Some(at);
        self.last_hub_contact = Some(hub_time);
        hub_time
    }

    /// The trusted time of the last tick: what trusted time never goes
    /// below after a reboot until the next `hub_time`.
    #[must_use]
    pub fn high_water(&self) -> DateTime<Utc> {
        self.high_water
    }

    /// The time the last verified `hub_time` stated, if any arrived yet.
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
