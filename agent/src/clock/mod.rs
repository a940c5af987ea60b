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

use std::time::Instant;

use chrono::Utc;
use signet_common::clock::ClockReading;

/// The source of [`ClockReading`]s for this device.
#[derive(Debug, Clone)]
pub struct DeviceClock {
    /// The boot id (or a per-process id where there is none).
    boot_id: String,
    /// Whether `/proc/uptime` is used for the time since boot.
    proc_uptime: bool,
    /// When the process started, for the fallback.
    started: Instant,
}

impl DeviceClock {
    /// Finds the device's boot id and uptime source.
    #[must_use]
    pub fn new() -> Self {
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

    /// Reads the clocks now.
    #[must_use]
    pub fn read(&self) -> ClockReading {
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
