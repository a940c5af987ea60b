//! The demo's live status: one line per device, made from the hub's fleet
//! view (U4) — online, in sync, and what the agent reports playing — and
//! shown in place on a terminal, or as changed lines otherwise.
//!
//! Owns: the wording of those lines and the "all playing" test. Must not:
//! believe anything the fleet view does not say: "playing" is the agent's
//! own now-playing report.

use std::collections::BTreeMap;
use std::io::Write as _;

use crate::fleet::{DocumentSync, FleetDevice};

/// The widest status line drawn on a terminal, in characters.
const TERMINAL_COLUMNS: usize = 79;

/// What the demo knows about one of its agents besides the fleet view.
pub struct AgentSummary<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its device id, once paired.
    pub device: Option<&'a str>,
    /// How its process ended, if it did.
    pub exited: Option<String>,
}

/// Whether `view` is online, in sync, and playing something.
#[must_use]
pub fn is_playing_in_sync(view: &FleetDevice) -> bool {
    view.online && view.in_sync && view.now_playing.is_some()
}

/// The line `N devices online, in sync, playing`.
#[must_use]
pub fn all_playing_line(count: usize) -> String {
    format!("{count} devices online, in sync, playing")
}

/// One line for `agent`, from its fleet entry (if the hub lists it) and
/// the names of the demo's items by id.
#[must_use]
pub fn device_line(
    agent: &AgentSummary<'_>,
    view: Option<&FleetDevice>,
    item_names: &BTreeMap<String, String>,
) -> String {
    let name = agent.name;
    if let Some(exited) = &agent.exited {
        return format!("{name:<10} agent process exited ({exited})");
    }
    let Some(view) = view else {
        return format!("{name:<10} not in the fleet view yet");
    };
    let online = if view.online { "online" } else { "offline" };
    let sync = if view.in_sync {
        "in sync".to_owned()
    } else {
        let behind: Vec<&DocumentSync> = view.documents.iter().filter(|d| !d.in_sync).collect();
        match (&view.sync_note, behind.first()) {
            (Some(note), _) => format!("not in sync ({note})"),
            (None, Some(first)) => format!(
                "not in sync ({} of {} documents; {})",
                behind.len(),
                view.documents.len(),
                first.status.label()
            ),
            (None, None) => "not in sync".to_owned(),
        }
    };
    let playing = match &view.now_playing {
        Some(now) => {
            let item = now.item.as_str();
            let shown = item_names.get(item).map_or(item, String::as_str);
            format!("playing {shown}")
        }
        None => "nothing playing".to_owned(),
    };
    format!("{name:<10} {online:<7} {sync:<12} {playing}")
}

/// Where status lines go: redrawn in place on a terminal; elsewhere (a
/// pipe, a log) only printed when they change.
pub struct StatusBoard {
    /// Whether stdout is a terminal.
    terminal: bool,
    /// The lines shown last.
    shown: Vec<String>,
    /// How many lines of the shown block are on screen below the cursor's
    /// line start (terminal only).
    on_screen: usize,
}

impl StatusBoard {
    /// A board on stdout.
    #[must_use]
    pub fn new() -> Self {
        Self {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            shown: Vec::new(),
            on_screen: 0,
        }
    }

    /// Shows `lines` as the current status.
    pub fn show(&mut self, lines: Vec<String>) {
        let mut out = std::io::stdout().lock();
        if self.terminal {
            if self.on_screen > 0 {
                let _ = write!(out, "\x1b[{}A", self.on_screen);
            }
            for line in &lines {
                // One screen row each, or the redraw would miscount.
                let row: String = line.chars().take(TERMINAL_COLUMNS).collect();
                let _ = writeln!(out, "\x1b[2K{row}");
            }
            self.on_screen = lines.len();
        } else if lines != self.shown {
            for line in &lines {
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = out.flush();
        self.shown = lines;
    }

    /// Prints a message above the status (which is drawn anew below it).
    pub fn message(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.terminal && self.on_screen > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.on_screen);
            self.on_screen = 0;
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        self.shown.clear();
    }
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Connection;
    use signet_common::ids::{DeviceId, ItemId, NodeId};
    use signet_common::sync::NowPlaying;

    fn view(online: bool, in_sync: bool, playing: Option<&str>) -> FleetDevice {
        FleetDevice {
            device_id: DeviceId::from("d-1"),
            node: NodeId::from("n-1"),
            connection: if online {
                Connection::Online
            } else {
                Connection::Offline
            },
            online,
            since: None,
            last_heartbeat: None,
            reported_at: None,
            agent_version: None,
            os: None,
            now_playing: playing.map(|item| NowPlaying {
                item: ItemId::from(item),
                entry: None,
                since: chrono::DateTime::UNIX_EPOCH,
            }),
            cache_bytes: None,
            cache: None,
            disk_free_bytes: None,
            temperature_c: None,
            clock_offset_ms: None,
            last_error: None,
            documents: Vec::new(),
            licence_refusals: Vec::new(),
            in_sync,
            sync_note: None,
            out_of_sync_since: None,
        }
    }

    /// U4 (demo, O2): the line says what the fleet view says, with the
    /// item's name, and "playing" only when the agent reports an item.
    #[test]
    fn u4_device_lines_follow_the_fleet_view() {
        let names = BTreeMap::from([("c-1".to_owned(), "Test pattern: ball".to_owned())]);
        let agent = AgentSummary {
            name: "screen-1",
            device: Some("d-1"),
            exited: None,
        };
        let playing = view(true, true, Some("c-1"));
        let line = device_line(&agent, Some(&playing), &names);
        assert!(
            line.contains("online") && line.contains("in sync"),
            "{line}"
        );
        assert!(line.ends_with("playing Test pattern: ball"), "{line}");
        assert!(is_playing_in_sync(&playing));

        let idle = view(true, true, None);
        assert!(device_line(&agent, Some(&idle), &names).ends_with("nothing playing"));
        assert!(!is_playing_in_sync(&idle));
        let offline = view(false, false, Some("c-1"));
        let line = device_line(&agent, Some(&offline), &names);
        assert!(
            line.contains("offline") && line.contains("not in sync"),
            "{line}"
        );
        assert!(!is_playing_in_sync(&offline));

        let dead = AgentSummary {
            exited: Some("exit status: 1".into()),
            ..agent
        };
        assert!(device_line(&dead, Some(&playing), &names).contains("exited"));
        assert_eq!(all_playing_line(3), "3 devices online, in sync, playing");
    }
}
