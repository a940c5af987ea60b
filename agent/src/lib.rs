//! signet-agent: the daemon on every screen.
//!
//! Owns sync, the offline cache, enforcement, the player and reporting.
//! Calls `signet-common` for every rule; never depends on `signet-hub`.
//!
//! The modules follow the data flow sync → verify → state → cache → decide
//! → play → report; a module uses only those before it (and the helpers),
//! never one after it:
//!
//! - [`config`]: the TOML configuration and its environment overrides.
//! - [`clock`]: reading the device clocks for the trusted clock.
//! - [`retry`]: the one backoff policy every retrying task uses.
//! - [`killpoint`]: named points where fault-injection tests stop the agent.
//! - [`sensors`]: free disk and processor temperature for the state message.
//! - [`state`]: the durable state (sled), the device's secret files and the
//!   typed view of the accepted documents ([`state::Documents`]).
//! - [`pairing`]: `signet-agent pair`.
//! - [`sync`]: the MQTT session — verification, durability, state.
//! - [`cache`]: the content-addressed cache and its resumable downloads.
//! - [`activate`]: what content is needed, and the atomic switch of playing
//!   manifests.
//! - [`decide`]: what may play now, and why not (D4).
//! - [`status`]: the status report of `signet-agent status` and
//!   `status.txt`.
//! - [`events`]: the durable proof-of-play queue and its upload.
//! - [`feeds`]: data feeds of text zones and their last good values.
//! - [`player`]: playback — the pure plan and its executor — and proof of
//!   play.
//! - [`screenshot`]: screenshots on request (D8).
//! - [`watch`]: file-system notifications on the cache and the config.
//! - [`inspect`]: `signet-agent status` and `signet-agent verify`.
//! - [`systemd`]: readiness, status and stopping notifications to systemd.
//! - [`daemon`]: `signet-agent run` — the tasks and their wiring.
#![deny(missing_docs)]

pub mod activate;
pub mod cache;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod events;
pub mod feeds;
pub mod inspect;
pub mod killpoint;
pub mod pairing;
pub mod player;
pub mod retry;
pub mod screenshot;
pub mod sensors;
pub mod state;
pub mod status;
pub mod sync;
pub mod systemd;
pub mod watch;

/// The agent's version, as reported by `signet-agent --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
