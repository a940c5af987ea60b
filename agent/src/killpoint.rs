//! Named kill points for the fault-injection tests (D2, D3).
//!
//! Owns: one test-only switch. When the environment variable
//! `SIGNET_AGENT_KILL_POINT` names a point the agent reaches, the agent logs
//! `kill point {name} reached` and freezes the calling thread, so the test
//! can SIGKILL the process at exactly that step. Unset (always, outside
//! tests), [`reach`] costs one comparison. Must not: do anything else — the
//! agent's behaviour is the same with or without it until the point is hit.

use std::sync::OnceLock;

/// The environment variable naming the point to stop at.
pub const ENV: &str = "SIGNET_AGENT_KILL_POINT";

/// The points the agent names, in the order one download and switch passes
/// them.
pub const POINTS: &[&str] = &[
    "download.after_chunk",
    "download.before_rename",
    "download.after_rename",
    "apply.before_switch",
    "apply.after_switch",
];

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(ENV).ok().filter(|p| !p.is_empty()))
        .as_deref()
}

/// Marks that the agent reached `point`; freezes forever if the test armed
/// it.
pub fn reach(point: &str) {
    if armed() == Some(point) {
        tracing::warn!("kill point {point} reached");
        eprintln!("kill point {point} reached");
        loop {
            std::thread::park();
        }
    }
}
