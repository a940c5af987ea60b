//! The audit log (S8): who did what, when, from where.
//!
//! Owns: audit records and their keys. Every write handler adds its audit
//! record to the same [`WriteBatch`] as the change itself, so a change and
//! its record are durable together or not at all. Must not: decide who may
//! read the log (the API does, by role and domain).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{NodeId, UserId};

use crate::identity::new_id;
use crate::store::{StoreError, WriteBatch};

/// Tree of audit records, keyed by time so a scan is chronological.
pub const AUDIT: &str = "audit";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Unique id (also the record's key): time-ordered.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it; `None` for the system or an anonymous request (login).
    #[schema(value_type = Option<String>)]
    pub actor: Option<UserId>,
    /// The login name of the actor or of the attempted login.
    pub actor_name: Option<String>,
    /// What was done, e.g. `node.create`.
    pub action: String,
    /// The id of what it was done to.
    pub target: String,
    /// The node whose subtree the action belongs to: who may read the entry.
    #[schema(value_type = Option<String>)]
    pub scope: Option<NodeId>,
    /// The client address the request came from.
    pub from: String,
    /// What changed, for a human (`null` when there is nothing to add).
    #[schema(value_type = Option<Object>)]
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// An entry for `action` on `target` at `at`, with a fresh time-ordered
    /// id; callers fill in who, where from and what changed with struct
    /// update syntax (`AuditEntry { actor, ..AuditEntry::new(..) }`).
    #[must_use]
    pub fn new(at: DateTime<Utc>, action: &str, target: &str) -> Self {
        Self {
            id: audit_id(at),
            at,
            actor: None,
            actor_name: None,
            action: action.to_owned(),
            target: target.to_owned(),
            scope: None,
            from: String::new(),
            detail: serde_json::Value::Null,
        }
    }

    /// Adds this entry to `batch`.
    ///
    /// # Errors
    /// Never in practice (the entry always encodes).
    pub fn record(self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let key = self.id.clone();
        batch.put(AUDIT, &key, &self)?;
        Ok(())
    }
}

/// A time-ordered audit id: zero-padded microseconds, then randomness.
#[must_use]
pub fn audit_id(at: DateTime<Utc>) -> String {
    format!("{:020}-{}", at.timestamp_micros().max(0), new_id(""))
}
