//! The audit log (S8): who did what, when, from where.
//!
//! Owns: audit records and their keys, and who may read them ([`query`]:
//! Admins, entries scoped inside their domain). Every service adds its
//! audit record to the same transaction or [`WriteBatch`] as the change
//! itself, so a change and its record are durable together or not at all.
//! Must not: know HTTP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::{Domain, Role};

use crate::store::{Store, StoreError, Tx, WriteBatch};
use crate::tenancy::load_tree;
use crate::values::RoleTooLow;

/// A time-ordered audit id: zero-padded microseconds, then randomness.
pub use crate::values::ordered_id as audit_id;

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

    /// Adds this entry to the transaction `tx`.
    ///
    /// # Errors
    /// Never in practice (the entry always encodes).
    pub fn put(self, tx: &mut Tx) -> Result<(), StoreError> {
        tx.put(AUDIT, &self.id.clone(), &self)
    }
}

/// The most entries one query returns.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// Filters; all optional, combined with "and".
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only actions of this user id.
    pub actor: Option<String>,
    /// Only this action (e.g. `node.create`), or actions starting with it
    /// when it ends in `.` (e.g. `user.`).
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// At most this many of the newest matches (default and maximum 1000).
    pub limit: Option<usize>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.actor
            .as_deref()
            .is_none_or(|a| e.actor.as_ref().is_some_and(|x| x.as_str() == a))
            && self.action.as_deref().is_none_or(|a| {
                if a.ends_with('.') {
                    e.action.starts_with(a)
                } else {
                    e.action == a
                }
            })
            && self.since.is_none_or(|t| e.at >= t)
            && self.until.is_none_or(|t| e.at < t)
    }
}

/// Why the audit log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Only Admins read the log (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The entries a reader with `role` over `domain` may read that match
/// `filter`, oldest first: the newest `limit` of them. Admin role; entries
/// scoped inside the reader's domain (root-level admins also see unscoped
/// entries: logins) (S8).
///
/// # Errors
/// [`AuditError`].
pub fn query(
    store: &Store,
    role: Role,
    domain: &Domain,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, AuditError> {
    RoleTooLow::check(role, Role::Admin)?;
    let limit = filter
        .limit
        .unwrap_or(MAX_AUDIT_PAGE)
        .clamp(1, MAX_AUDIT_PAGE);
    let (tree, _) = load_tree(store)?;
    let root_level = domain.is_root_level(&tree);
    let entries: Vec<AuditEntry> = store.scan(AUDIT, "")?;
    let mut matching: Vec<AuditEntry> = entries
        .into_iter()
        .filter(|e| match &e.scope {
            Some(node) => domain.contains(&tree, node),
            None => root_level,
        })
        .filter(|e| filter.matches(e))
        .collect();
    let skip = matching.len().saturating_sub(limit);
    matching.drain(..skip);
    Ok(matching)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::testing::fixture;

    #[tokio::test]
    async fn s8_admins_read_the_entries_of_their_domain_only() {
        let f = fixture().await;
        let a = f.node("n-a", &f.root).await;
        let b = f.node("n-b", &f.root).await;
        let now = f.hub.now();
        f.hub
            .store
            .transact(|tx| {
                let entries = [("x", Some(&a)), ("y", Some(&b)), ("z", None)];
                for (at, (target, scope)) in (0..).zip(entries) {
                    let at = now + chrono::TimeDelta::seconds(at);
                    let detail = serde_json::Value::Null;
                    let scope = scope.cloned();
                    f.admin
                        .audit(at, "node.update", target, scope, detail)
                        .put(tx)?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let targets = |entries: Vec<AuditEntry>| -> Vec<String> {
            entries.into_iter().map(|e| e.target).collect()
        };
        let all = query(
            &f.hub.store,
            f.admin.user.role,
            &f.admin.domain(),
            &AuditFilter::default(),
        )
        .unwrap();
        assert_eq!(targets(all), ["x", "y", "z"]);
        let tenant = f.user("ada", Role::Admin, &[&a]).await;
        let own = query(
            &f.hub.store,
            tenant.user.role,
            &tenant.domain(),
            &AuditFilter::default(),
        )
        .unwrap();
        assert_eq!(targets(own), ["x"]);
        let newest = AuditFilter {
            action: Some("node.".into()),
            limit: Some(1),
            ..AuditFilter::default()
        };
        assert_eq!(
            targets(query(&f.hub.store, f.admin.user.role, &f.admin.domain(), &newest).unwrap()),
            ["z"]
        );
        let manager = f.user("mia", Role::Manager, &[&f.root]).await;
        assert!(matches!(
            query(
                &f.hub.store,
                manager.user.role,
                &manager.domain(),
                &AuditFilter::default()
            ),
            Err(AuditError::RoleTooLow(_))
        ));
    }
}
