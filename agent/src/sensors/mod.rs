//! The device's own readings for its state message (U4): the free space of
//! the file system holding the data dir (and so the content cache), and the
//! processor temperature from the Linux thermal zones.
//!
//! Owns: taking the two readings. Must not: fail its caller or publish
//! anything — a reading that cannot be taken (no thermal zone on a kiosk
//! PC, an unreadable file) is `None`, never an error; the state message
//! simply leaves it out.

use std::io::Read as _;
use std::path::Path;

/// Where the kernel's sysfs is mounted.
pub const SYSFS: &str = "/sys";
/// The most thermal zones looked at.
const MAX_ZONES: u32 = 64;
/// The largest thermal `temp` file read, in bytes (a number and a newline).
const MAX_TEMP_FILE: u64 = 32;
/// Readings outside this range (°C) are a broken sensor, not a temperature.
pub const PLAUSIBLE_CELSIUS: std::ops::RangeInclusive<f32> = -60.0..=150.0;

/// The device's readings at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Readings {
    /// Bytes an unprivileged process may still write on the data dir's file
    /// system.
    pub disk_free_bytes: Option<u64>,
    /// The processor temperature in °C.
    pub temperature_c: Option<f32>,
}

impl Readings {
    /// Reads both for `data_dir`, with sysfs under `sysfs` ([`SYSFS`]
    /// outside tests).
    #[must_use]
    pub fn take(data_dir: &Path, sysfs: &Path) -> Self {
        Self {
            disk_free_bytes: disk_free_bytes(data_dir),
            temperature_c: temperature_c(sysfs),
        }
    }
}

/// The bytes available to unprivileged writers on the file system holding
/// `path` (`statvfs`: available blocks × fragment size), if it can be read.
#[must_use]
pub fn disk_free_bytes(path: &Path) -> Option<u64> {
    match rustix::fs::statvfs(path) {
        Ok(stat) => stat.f_bavail.checked_mul(stat.f_frsize),
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "no free-disk reading");
            None
        }
    }
}

/// The processor temperature in °C from `{sysfs}/class/thermal`:
/// `thermal_zone0` (the SoC sensor on a Raspberry Pi), else the
/// lowest-numbered zone with a plausible reading. The kernel writes
/// millidegrees Celsius. `None` when no zone gives one.
#[must_use]
pub fn temperature_c(sysfs: &Path) -> Option<f32> {
    let thermal = sysfs.join("class/thermal");
    (0..MAX_ZONES).find_map(|zone| {
        let file = thermal.join(format!("thermal_zone{zone}/temp"));
        let mut text = String::new();
        std::fs::File::open(&file)
            .ok()?
            .take(MAX_TEMP_FILE)
            .read_to_string(&mut text)
            .ok()?;
        let millidegrees: i32 = text.trim().parse().ok()?;
        // Through f64, so 51234 becomes the f32 nearest 51.234.
        let celsius = (f64::from(millidegrees) / 1000.0) as f32;
        PLAUSIBLE_CELSIUS.contains(&celsius).then_some(celsius)
    })
}

/// Whether this device is a Raspberry Pi (its device tree says so): the
/// default decode limit follows (M3). `false` when unreadable.
#[must_use]
pub fn is_raspberry_pi() -> bool {
    let mut model = String::new();
    std::fs::File::open("/proc/device-tree/model")
        .and_then(|file| file.take(256).read_to_string(&mut model))
        .is_ok_and(|_| model.contains("Raspberry Pi"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn zone(sysfs: &Path, n: u32, temp: &str) {
        let dir = sysfs.join(format!("class/thermal/thermal_zone{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("temp"), temp).unwrap();
    }

    /// U4: the SoC sensor (zone 0) in millidegrees; a missing or broken
    /// zone 0 falls to the next plausible one; no zones, no reading.
    #[test]
    fn u4_temperature_from_a_fake_sysfs_tree() {
        let sysfs = tempfile::tempdir().unwrap();
        assert_eq!(temperature_c(sysfs.path()), None, "no thermal zones");
        zone(sysfs.path(), 1, "38500\n");
        assert_eq!(temperature_c(sysfs.path()), Some(38.5), "zone 0 missing");
        zone(sysfs.path(), 0, "51234\n");
        assert_eq!(temperature_c(sysfs.path()), Some(51.234));
        zone(sysfs.path(), 0, "not a number\n");
        assert_eq!(temperature_c(sysfs.path()), Some(38.5), "zone 0 broken");
        zone(sysfs.path(), 0, "999999\n");
        assert_eq!(
            temperature_c(sysfs.path()),
            Some(38.5),
            "999 °C is no reading"
        );
        zone(sysfs.path(), 0, "-5000\n");
        assert_eq!(temperature_c(sysfs.path()), Some(-5.0), "below zero");
        zone(sysfs.path(), 0, &"1".repeat(4096));
        assert_eq!(temperature_c(sysfs.path()), Some(38.5), "oversized file");
    }

    /// U4: the free-disk figure is the data dir's file system's as `df`
    /// (statvfs) reports it, within what other writers change meanwhile.
    #[test]
    fn u4_free_disk_of_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let reported = disk_free_bytes(dir.path()).unwrap();
        let df = std::process::Command::new("df")
            .args(["-B1", "--output=avail,size"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(df.status.success(), "{df:?}");
        let text = String::from_utf8(df.stdout).unwrap();
        let numbers: Vec<u64> = text
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let (available, size) = (numbers[0], numbers[1]);
        let tolerance = 256 * 1024 * 1024;
        assert!(
            reported.abs_diff(available) < tolerance,
            "reported {reported}, df says {available}"
        );
        assert!(reported > 0 && reported <= size);
        assert_eq!(disk_free_bytes(&dir.path().join("missing")), None);
    }
}
