//! Reading the device's clocks for the trusted clock (S6).
//!
//! Owns: taking a [`ClockReading`] — the wall clock, the boot id and the time
//! since boot (suspend included). Must not: decide what time to trust; that
//! is [`signet_common::clock::TrustedClock`]'s rule.
//!
//! On Linux the boot id is `/proc/sys/kernel/random/boot_id` and the time
//! since boot is the first field of `/proc/uptime` (the kernel's boot-time
//! clock, which counts suspend). Elsewhere, or if `/proc` is unreadable, the
//! process is its own "boot": a random id and the time since the process
//! started, which is safe (a restart loses the monotonic link, never more).
//!
//! # Seams for tests
//! - In the process: [`DeviceClock::from_source`] takes any
//!   [`ClockSource`] (readings a test makes up).
//! - For the real `signet-agent` process: the wall clock is read only
//!   through the C library's `clock_gettime(CLOCK_REALTIME)`
//!   ([`chrono::Utc::now`]), which an `LD_PRELOAD` shim such as libfaketime
//!   shifts (`FAKETIME_TIMESTAMP_FILE`, re-read on every call with
//!   `FAKETIME_NO_CACHE=1`), while the boot-time clock comes from
//!   `/proc/uptime`, which no such shim touches, and tokio's timers use
//!   `CLOCK_MONOTONIC` (left alone with `DONT_FAKE_MONOTONIC=1`). So a test
//!   moves the agent's wall clock — behind, ahead, set right — and nothing
//!   else, exactly as a Pi without a real-time clock sees it.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use signet_common::clock::ClockReading;

/// Where [`ClockReading`]s come from.
pub trait ClockSource: Send + Sync + std::fmt::Debug {
    /// Reads the clocks now.
    fn read(&self) -> ClockReading;
}

/// The device's own clocks.
#[derive(Debug)]
struct SystemClocks {
    /// The boot id (or a per-process id where there is none).
    boot_id: String,
    /// Whether `/proc/uptime` is used for the time since boot.
    proc_uptime: bool,
    /// When the process started, for the fallback.
    started: Instant,
}

impl SystemClocks {
    /// Finds the device's boot id and uptime source.
    fn new() -> Self {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty() && id.len() <= 64);
        let proc_uptime = boot_id.is_some() && read_uptime_ms().is_some();
        let boot_id = match boot_id {
            Some(id) if proc_uptime => id,
            _ => format!("process-{}", random_u64()),
        };
        Self {
            boot_id,
            proc_uptime,
            started: Instant::now(),
        }
    }
}

impl ClockSource for SystemClocks {
    fn read(&self) -> ClockReading {
        let since_boot_ms = if self.proc_uptime {
            read_uptime_ms()
        } else {
            None
        }
        .unwrap_or_else(|| u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
        ClockReading {
            wall: Utc::now(),
            boot_id: self.boot_id.clone(),
            since_boot_ms,
        }
    }
}

/// The source of [`ClockReading`]s for this device. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeviceClock {
    /// The clocks read.
    source: Arc<dyn ClockSource>,
}

impl DeviceClock {
    /// The device's own clocks.
    #[must_use]
    pub fn new() -> Self {
        Self::from_source(Arc::new(SystemClocks::new()))
    }

    /// Readings from `source` (a test's clocks).
    #[must_use]
    pub fn from_source(source: Arc<dyn ClockSource>) -> Self {
        Self { source }
    }

    /// Reads the clocks now.
    #[must_use]
    pub fn read(&self) -> ClockReading {
        self.source.read()
    }
}

impl Default for DeviceClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Milliseconds since boot from `/proc/uptime` ("12345.67 54321.00").
fn read_uptime_ms() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, "0"));
    let secs: u64 = secs.parse().ok()?;
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms: u64 = frac.parse().ok()?;
    secs.checked_mul(1000)?.checked_add(ms)
}

/// A random number from the system's random source (0 if it fails, which
/// only makes a jitter or an id less random, never unsafe).
#[must_use]
pub fn random_u64() -> u64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock a test sets.
    #[derive(Debug)]
    struct Fixed(ClockReading);

    impl ClockSource for Fixed {
        fn read(&self) -> ClockReading {
            self.0.clone()
        }
    }

    #[test]
    fn s6_a_device_clock_reads_its_source() {
        let reading = ClockReading {
            wall: "2026-01-01T00:00:00Z".parse().unwrap_or_default(),
            boot_id: "boot-a".into(),
            since_boot_ms: 42,
        };
        let clock = DeviceClock::from_source(Arc::new(Fixed(reading.clone())));
        assert_eq!(clock.clone().read(), reading);
    }

    #[test]
    fn s6_the_system_clock_counts_monotonic_time_within_one_boot() {
        let clock = DeviceClock::new();
        let (a, b) = (clock.read(), clock.read());
        assert_eq!(a.boot_id, b.boot_id);
        assert!(b.since_boot_ms >= a.since_boot_ms);
    }
}
