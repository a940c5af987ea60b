//! signet-agent: the daemon on every screen.
//!
//! Owns sync, the offline cache, enforcement, the player and reporting (each
//! arrives in its own module as the issues land). Calls `signet-common` for
//! every rule; never depends on `signet-hub`.
//!
//! - [`config`]: the TOML configuration and its environment overrides.
//! - [`state`]: the durable state (sled) and the device's secret files.
//! - [`clock`]: reading the device clocks for the trusted clock.
//! - [`pairing`]: `signet-agent pair`.
//! - [`sync`]: `signet-agent run` — MQTT, verification, durability, state.
//! - [`events`]: the durable proof-of-play queue and its upload to the hub.
//! - [`watch`]: file-system notifications for the cache and the config.
//! - [`inspect`]: `signet-agent status` and `signet-agent verify`.
//! - [`killpoint`]: named points where fault-injection tests stop the agent.
#![deny(missing_docs)]

pub mod clock;
pub mod config;
pub mod events;
pub mod inspect;
pub mod killpoint;
pub mod pairing;
pub mod state;
pub mod sync;
pub mod watch;

/// The agent's version, as reported by `signet-agent --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
