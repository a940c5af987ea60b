//! Signet's pure core, shared by the hub and the agent.
//!
//! Owns the rules: signed documents and their verification, the key
//! hierarchy, the rollback guard, the trusted clock, permissions, licenses,
//! schedules and the approval workflow. Must not: do file or network I/O, spawn
//! tasks, or depend on tokio, sled, reqwest, rumqttc or gstreamer. Every
//! function here is deterministic given its inputs (key generation, which
//! draws from the system's random source, is the one exception), so the hub
//! and the agent can both call it and it can be tested exhaustively alone.
#![deny(missing_docs)]
// The security-critical crate holds itself to clippy pedantic (STYLE.md).
#![warn(clippy::pedantic)]

pub mod approval;
pub mod clock;
pub mod digest;
pub mod documents;
pub mod envelope;
pub mod ids;
pub mod license;
pub mod log_style;
pub mod members_csv;
pub mod permissions;
pub mod play;
pub mod rollback;
pub mod schedule;
pub mod sync;
pub mod trust;
