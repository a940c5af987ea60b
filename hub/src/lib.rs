//! signet-hub: the operator side of Signet.
//!
//! Owns the tenancy tree, identity, permission and access groups, content and
//! templates, approval, schedules, publishing and fleet status (each arrives in
//! its own module as the issues land). Calls `signet-common` for every rule;
//! never depends on `signet-agent`.
#![deny(missing_docs)]

/// The hub's version, as reported by `signet-hub --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
