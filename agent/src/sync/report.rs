//! The device's retained state on `signet/v1/devices/{id}/state` (U4).
//!
//! Owns: building the [`DeviceState`] from what is held (applied documents
//! with version and envelope hash, agent version, OS, clock offset, last
//! error) and the status snapshot file `status.json` that
//! `signet-agent status` reads while the agent holds the database. Must not:
//! publish (the verifier does) or change any state.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr as _;

use signet_common::clock::ClockReading;
use signet_common::envelope::DocumentKind;
use signet_common::sync::{AppliedDocument, Checked as _, DeviceState, MAX_APPLIED, MAX_TEXT_LEN};

use super::apply::Held;

/// The status snapshot's file name in the data dir.
pub const SNAPSHOT_FILE: &str = "status.json";

/// The applied documents, `{kind}/{subject}` → version and envelope hash.
#[must_use]
pub fn applied(held: &Held) -> BTreeMap<String, AppliedDocument> {
    held.documents
        .iter()
        .filter_map(|(key, sha256)| {
            let (kind, subject) = key.split_once('/')?;
            let kind = DocumentKind::from_str(kind).ok()?;
            let version = if kind == DocumentKind::Trust {
                held.trust.version()?
            } else {
                held.guard.held(kind, subject)?.version
            };
            Some((
                key.clone(),
                AppliedDocument {
                    version,
                    sha256: *sha256,
                },
            ))
        })
        .take(MAX_APPLIED)
        .collect()
}

/// The state message's JSON bytes.
#[must_use]
pub fn device_state(
    held: &Held,
    reading: &ClockReading,
    os: &str,
    online: bool,
    last_error: Option<&str>,
) -> Vec<u8> {
    let state = DeviceState {
        device_id: held.device.clone(),
        online,
        at: held.clock.peek(reading),
        agent_version: crate::VERSION.to_owned(),
        os: os.to_owned(),
        applied: applied(held),
        now_playing: None,
        cache_bytes: 0,
        cache: None,
        disk_free_bytes: None,
        temperature_c: None,
        clock_offset_ms: held.clock.offset(reading).num_milliseconds(),
        last_error: last_error.map(str::to_owned),
    };
    if let Err(error) = state.check() {
        tracing::error!(%error, "the device state is out of its bounds");
    }
    serde_json::to_vec(&state).unwrap_or_default()
}

/// The operating system, e.g. `Debian GNU/Linux 12 (bookworm) (x86_64)`.
#[must_use]
pub fn os_name() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let name: String = format!("{pretty} ({})", std::env::consts::ARCH)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT_LEN / 4)
        .collect();
    name
}

/// Writes the status snapshot (write, sync, rename); failures are logged,
/// never fatal — the snapshot is informational.
pub async fn write_snapshot(dir: &Path, state: &[u8]) {
    let path = dir.join(SNAPSHOT_FILE);
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let bytes = state.to_vec();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not write the status snapshot"),
        Err(error) => tracing::warn!(%error, "status snapshot task failed"),
    }
}
