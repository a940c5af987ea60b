//! The device's retained state on `signet/v1/devices/{id}/state` (U4).
//!
//! Owns: building the [`DeviceState`] from what is held (applied documents
//! with version and envelope hash, agent version, OS, clock offset, last
//! error), what the player and content task report (now playing, cache
//! use and progress) and the device's readings (free disk, temperature),
//! and signing it with the device key (S11: the hub accepts only a state
//! signed by the key registered at pairing). Must not: publish (the
//! verifier does) or change any state.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use signet_common::clock::ClockReading;
use signet_common::documents::DOCUMENT_FEATURES;
use signet_common::envelope::{DocumentKind, SigningKey};
use signet_common::sync::signed::sign_report;
use signet_common::sync::{
    AppliedDocument, Checked as _, DeviceState, MAX_APPLIED, MAX_TEXT_LEN, RefusedDocument,
    clip_text,
};

use super::apply::Held;

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

/// What the device reports about itself: the state message, signed with
/// the device key.
#[derive(Clone, Copy)]
pub struct Reporter<'a> {
    /// The device key from pairing (`device.key`).
    pub key: &'a SigningKey,
    /// The operating system named in every state.
    pub os: &'a str,
}

/// The state message: a signed `device_state` envelope (S11) of the
/// device's state; `refused` is the latest refusal per document key (kept
/// by the verifier until that document is accepted). A state too large to
/// sign whole is sent without its per-document maps and says so in
/// `last_error`.
#[must_use]
pub fn device_state(
    reporter: Reporter<'_>,
    held: &Held,
    reading: &ClockReading,
    online: bool,
    last_error: Option<&str>,
    local: &super::LocalReport,
    refused: &BTreeMap<String, RefusedDocument>,
) -> Vec<u8> {
    let state = DeviceState {
        device_id: held.device.clone(),
        online,
        at: held.clock.peek(reading),
        agent_version: crate::VERSION.to_owned(),
        os: reporter.os.to_owned(),
        applied: applied(held),
        activated: local.activated.clone(),
        pending: local.pending.clone(),
        refused: refused.clone(),
        now_playing: local.now_playing.clone(),
        cache_bytes: local.cache_bytes,
        cache: local.cache.clone(),
        disk_free_bytes: local.readings.disk_free_bytes,
        temperature_c: local.readings.temperature_c,
        clock_offset_ms: held.clock.offset(reading).num_milliseconds(),
        last_error: match (last_error, local.player_problem.as_deref()) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(clip_text(one)),
            (Some(sync), Some(player)) => Some(clip_text(&format!("{sync}; {player}"))),
        },
        // The optional document fields this build reads: the hub includes
        // them only in documents every receiving device declared them for.
        document_features: DOCUMENT_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
    };
    if let Err(error) = state.check() {
        tracing::error!(%error, "the device state is out of its bounds");
    }
    match sign_report(&state, reporter.key) {
        Ok(signed) => signed,
        Err(error) => {
            tracing::error!(%error, "the device state is too large to report whole");
            let slim = DeviceState {
                applied: BTreeMap::new(),
                activated: BTreeMap::new(),
                pending: BTreeMap::new(),
                refused: BTreeMap::new(),
                last_error: Some(clip_text(&format!("state too large to report: {error}"))),
                ..state
            };
            // Without the maps the state is a few hundred bytes: it signs.
            // An empty message would be ignored by the hub, never misread.
            sign_report(&slim, reporter.key).unwrap_or_default()
        }
    }
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
