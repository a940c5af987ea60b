//! The agent's side of systemd's service protocol (O1): `READY=1` once the
//! state is open and the tasks run, `STATUS=` lines an operator sees in
//! `systemctl status signet-agent` (what plays, how the cache is), and
//! `STOPPING=1` on shutdown; the `WATCHDOG=1` pings come from the daemon's
//! health tick, at [`watchdog_period`].
//!
//! Owns: the wording of the status line and the sending. Must not: decide
//! health or stop anything. Without `NOTIFY_SOCKET` (not started by systemd)
//! every notification is a no-op.

use std::time::Duration;

pub use sd_notify::NotifyState;

use crate::sync::LocalReport;

/// Sends `states` to the service manager; a no-op without `NOTIFY_SOCKET`.
/// A failure to send is logged, never fatal: the agent plays either way.
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}

/// How often the health tick runs: half of systemd's `WATCHDOG_USEC`, so
/// one late tick is not yet a restart; `None` when no watchdog is set.
#[must_use]
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|timeout| timeout / 2)
        .filter(|period| !period.is_zero())
}

/// The `STATUS=` line for `device` from what the player and the content
/// task report: what plays since when, cache use, pending downloads.
#[must_use]
pub fn status_line(device: &str, report: &LocalReport) -> String {
    let playing = match &report.now_playing {
        Some(now) => format!(
            "playing {} since {}",
            now.item,
            now.since.format("%H:%M:%S")
        ),
        None => "nothing to play".to_owned(),
    };
    let mib = report.cache_bytes / (1024 * 1024);
    let mut line = format!("device {device}: {playing}; cache {mib} MiB");
    if let Some(progress) = &report.cache {
        let missing = progress.items_needed.saturating_sub(progress.items_cached);
        if missing > 0 {
            line.push_str(&format!(
                ", {missing} of {} items to fetch",
                progress.items_needed
            ));
        }
        if let Some(refusal) = &progress.refusal {
            line.push_str(&format!(", cache refuses: {refusal}"));
        }
    }
    line
}
