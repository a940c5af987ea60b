//! The status report (D4, DESIGN §6): what the device holds, what plays and
//! why anything else is skipped, in the words an operator reads — the text
//! of `signet-agent status` and of the running agent's `status.txt`.
//!
//! Owns: the report's wording, the status file's name and writing it
//! (atomically) and reading it back. Must not: decide anything — the
//! answers come from [`crate::decide`] — or change the state. Both the
//! player (which keeps `status.txt` current) and `signet-agent status` use it,
//! so neither depends on the other.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::ids::ItemId;
use signet_common::play::Cached;

use crate::decide::Decider;
use crate::state::Documents;

/// The status report file in the data dir, for `signet-agent status` while
/// the agent runs.
pub const STATUS_FILE: &str = "status.txt";

/// The status report (shared by `signet-agent status` and the running
/// agent's `status.txt`): trusted time and offline grace, the playing
/// manifests, the licenses and until when they hold, the cache, what plays
/// now, and for every scheduled item whether it may play now and if not
/// why (D4).
pub fn report(
    device: &str,
    documents: &Documents,
    clock: &TrustedClock,
    reading: &ClockReading,
    decider: &mut Decider,
    now_playing: Option<(&ItemId, DateTime<Utc>)>,
) -> String {
    let now = clock.peek(reading);
    let mut out = String::new();
    let _ = writeln!(out, "device: {device}");
    let _ = writeln!(
        out,
        "trusted time: {} (wall clock offset {} ms)",
        now.to_rfc3339(),
        clock.offset(reading).num_milliseconds()
    );
    let _ = match clock.last_hub_contact() {
        None => writeln!(
            out,
            "last hub time: never (licensed content may not play until a signed hub time arrives)"
        ),
        Some(contact) => {
            let verdict = match &documents.assignment {
                None => String::new(),
                Some(a) => {
                    let grace =
                        TimeDelta::seconds(i64::try_from(a.offline_grace_secs).unwrap_or(i64::MAX));
                    if clock.within_grace(now, grace) {
                        format!("; within the offline grace of {} s", grace.num_seconds())
                    } else {
                        format!(
                            "; the offline grace of {} s is EXCEEDED",
                            grace.num_seconds()
                        )
                    }
                }
            };
            writeln!(
                out,
                "last hub time: {} ({} s ago{verdict})",
                contact.to_rfc3339(),
                (now - contact).num_seconds()
            )
        }
    };
    let Some(assignment) = &documents.assignment else {
        let _ = writeln!(out, "assignment: none yet, so nothing may play");
        return out;
    };
    let _ = writeln!(
        out,
        "assignment: version {}, time zone {}, offline grace {} s",
        assignment.version, assignment.time_zone, assignment.offline_grace_secs
    );
    let _ = writeln!(out, "playing manifests:");
    for group in documents.group_order() {
        let playing = documents.playing.get(&group).map(|h| &h.manifest);
        let accepted = documents.accepted.get(&group).map(|h| &h.manifest);
        let line = match (playing, accepted) {
            (Some(p), Some(a)) if a.version > p.version => format!(
                "version {} (version {} accepted, waiting for its content)",
                p.version, a.version
            ),
            (Some(p), _) => format!(
                "version {}, expires {}",
                p.version,
                p.expires_at.to_rfc3339()
            ),
            (None, Some(a)) => format!(
                "none yet (version {} accepted, waiting for its content)",
                a.version
            ),
            (None, None) => "none received yet".to_owned(),
        };
        let _ = writeln!(out, "  {group}: {line}");
    }
    let licensed: Vec<_> = documents
        .playing_in_order()
        .into_iter()
        .filter_map(|m| m.license.as_ref().map(|terms| (m, terms)))
        .collect();
    if !licensed.is_empty() {
        let _ = writeln!(out, "licenses:");
    }
    for (manifest, terms) in licensed {
        let window = assignment
            .access_groups
            .iter()
            .find(|m| m.group_id.as_str() == manifest.group_id)
            .map(|m| m.window);
        let grace = signet_common::play::offline_grace(assignment, terms);
        let text = match window {
            None => "this device is not a member".to_owned(),
            Some(window) => format!(
                "from {} until {}{}; offline grace {} s",
                window.starts_at.to_rfc3339(),
                window
                    .ends_at
                    .map_or_else(|| "no end".to_owned(), |e| e.to_rfc3339()),
                window
                    .ended_by
                    .map_or_else(String::new, |l| format!(" (ended by {l})")),
                grace.num_seconds()
            ),
        };
        let _ = writeln!(out, "  {}: {text}", manifest.group_id);
    }
    let mut cached = 0u64;
    let mut cached_bytes = 0u64;
    let mut listed = 0u64;
    for manifest in documents.playing_in_order() {
        for item in &manifest.items {
            listed += 1;
            if !matches!(decider.cached(item), Cached::Missing) {
                cached += 1;
                cached_bytes = cached_bytes.saturating_add(item.size);
            }
        }
    }
    let _ = writeln!(
        out,
        "cache: {cached} of the {listed} listed items present ({cached_bytes} bytes)"
    );
    let _ = match now_playing {
        Some((item, since)) => writeln!(out, "now playing: {item} since {}", since.to_rfc3339()),
        None => writeln!(out, "now playing: nothing"),
    };
    let scheduled = signet_common::play::scheduled_items(&documents.playing_in_order());
    if scheduled.is_empty() {
        let _ = writeln!(out, "scheduled items: none");
    } else {
        let _ = writeln!(out, "scheduled items:");
    }
    for (item, groups) in scheduled {
        let answer = match decider.decide(documents, clock, now, &item) {
            Ok(permit) => format!(
                "may play (group {}{})",
                permit.group,
                permit
                    .until
                    .map_or_else(String::new, |u| format!(", until {}", u.to_rfc3339()))
            ),
            Err(reason) => format!("SKIPPED: {reason}"),
        };
        let _ = writeln!(out, "  {item} [{}]: {answer}", groups.join(", "));
    }
    out
}

/// `signet-agent status` while the agent runs: the report it keeps in
/// `dir`, with its age.
///
/// # Errors
/// When there is no report to read.
pub fn read_running(dir: &Path) -> Result<String, String> {
    let path = dir.join(STATUS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(String::new, |age| format!(" ({} s ago)", age.as_secs()));
    Ok(format!(
        "the agent is running and holds the state; its latest report{age}:\n{text}"
    ))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader sees the old report or the new one, never half of one.
///
/// # Errors
/// When writing or renaming fails.
pub fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
