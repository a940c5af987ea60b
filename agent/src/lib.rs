//! signet-agent: the daemon on every screen.
//!
//! Owns sync, the offline cache, enforcement, the player and reporting (each
//! arrives in its own module as the issues land). Calls `signet-common` for
//! every rule; never depends on `signet-hub`.
#![deny(missing_docs)]

/// The agent's version, as reported by `signet-agent --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
