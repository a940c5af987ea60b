//! signet-agent: the daemon on every screen.
//!
//! Owns sync, the offline cache, enforcement, the player and reporting.
//! Calls `signet-common` for every rule; never depends on `signet-hub`.
//!
//! - [`config`]: the TOML configuration and its environment overrides.
//! - [`state`]: the durable state (sled) and the device's secret files.
//! - [`clock`]: reading the device clocks for the trusted clock.
//! - [`pairing`]: `signet-agent pair`.
//! - [`sync`]: the MQTT session — verification, durability, state.
//! - [`cache`]: the content-addressed cache and its resumable downloads.
//! - [`activate`]: what content is needed, and the atomic switch of playing
//!   manifests.
//! - [`player`]: playback, the play decision and proof of play.
//! - [`events`]: the durable proof-of-play queue and its upload.
//! - [`feeds`]: data feeds of text zones and their last good values.
//! - [`sensors`]: free disk and processor temperature for the state message.
//! - [`watch`]: file-system notifications on the cache and the config.
//! - [`daemon`]: `signet-agent run` — the tasks and their wiring.
//! - [`inspect`]: `signet-agent status` and `signet-agent verify`.
//! - [`systemd`]: readiness, status and stopping notifications to systemd.
//! - [`killpoint`]: named points where fault-injection tests stop the agent.
#![deny(missing_docs)]

pub mod activate;
pub mod cache;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod feeds;
pub mod inspect;
pub mod killpoint;
pub mod pairing;
pub mod player;
pub mod screenshot;
pub mod sensors;
pub mod state;
pub mod sync;
pub mod systemd;
pub mod watch;

/// The agent's version, as reported by `signet-agent --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
