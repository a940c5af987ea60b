//! signet-hub: the operator side of Signet.
//!
//! Owns the tenancy tree, identity, permission and access groups, content and
//! templates, approval, schedules, publishing and fleet status (each arrives in
//! its own module as the issues land). Calls `signet-common` for every rule;
//! never depends on `signet-agent`.
//!
//! Modules: [`config`] (TOML + environment), [`keys`] (key files),
//! [`store`] (sled behind a trait), [`identity`] (users, sessions),
//! [`tenancy`] (nodes), [`content`] (content items and blobs), [`publish`]
//! (signed manifests and assignments), [`audit`] (the audit log), [`api`] (HTTP),
//! [`metrics`] (what `/metrics` shows), [`init`], [`serve`] and [`demo`]
//! (the subcommands), [`systemd`] (readiness and watchdog notifications).
#![deny(missing_docs)]

pub mod access_groups;
pub mod api;
pub mod app;
pub mod audit;
pub mod background;
pub mod cluster;
pub mod config;
pub mod console;
pub mod content;
pub mod demo;
pub mod devices;
pub mod fleet;
pub mod groups;
pub mod identity;
pub mod init;
pub mod keys;
pub mod login;
pub mod mail;
pub mod member;
pub mod metrics;
pub mod mqtt;
pub mod nodes;
pub mod permission_groups;
pub mod publish;
pub mod schedules;
pub mod screenshots;
pub mod serve;
pub mod store;
pub mod systemd;
pub mod tenancy;
pub mod values;

/// The hub's version, as reported by `signet-hub --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
