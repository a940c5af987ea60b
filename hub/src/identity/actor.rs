//! [`Actor`]: who is acting, as the services see it — the authenticated
//! user and where the request came from, without anything of HTTP.
//!
//! Owns: the role check and the domain checks every service makes, and
//! the audit entry of an action. Must not: read the store; the tenancy
//! tree a decision rests on is read by the service inside its
//! transaction ([`crate::tenancy::load_tree_in`]) and passed in.

use chrono::{DateTime, Utc};
use signet_common::ids::NodeId;
use signet_common::permissions::{Domain, NodeTree, Role};

use super::User;
use crate::audit::AuditEntry;
use crate::values::RoleTooLow;

/// An authenticated user acting from a client address.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user, as stored when the request was authenticated.
    pub user: User,
    /// The client address.
    pub from: String,
}

impl Actor {
    /// The actor's domain (T3).
    #[must_use]
    pub fn domain(&self) -> Domain {
        Domain::new(self.user.domain.iter().cloned())
    }

    /// Whether `node` is inside the actor's domain.
    #[must_use]
    pub fn sees(&self, tree: &NodeTree, node: &NodeId) -> bool {
        self.domain().contains(tree, node)
    }

    /// Whether things stored at `node` are visible to the actor: `node` is
    /// inside the actor's domain, or above it, where what is stored is
    /// usable inside the domain (T2) though changed only from there.
    #[must_use]
    pub fn sees_at_or_above(&self, tree: &NodeTree, node: &NodeId) -> bool {
        self.domain().reaches(tree, node)
    }

    /// Whether the actor may see `target`: themselves, or (Manager+) a user
    /// whose whole domain lies inside the actor's. The one rule for every
    /// operation that reaches a user.
    #[must_use]
    pub fn sees_user(&self, tree: &NodeTree, target: &User) -> bool {
        target.id == self.user.id
            || (self.user.role >= Role::Manager
                && !target.domain.is_empty()
                && target.domain.iter().all(|n| self.sees(tree, n)))
    }

    /// Whether the actor's domain includes the root (sees the whole tree).
    #[must_use]
    pub fn is_root_level(&self, tree: &NodeTree) -> bool {
        self.domain().is_root_level(tree)
    }

    /// Refuses unless the actor's role is at least `role`.
    ///
    /// # Errors
    /// [`RoleTooLow`] naming the role needed.
    pub fn require(&self, role: Role) -> Result<(), RoleTooLow> {
        RoleTooLow::check(self.user.role, role)
    }

    /// The audit entry of `action` on `target` by this actor at `at`.
    #[must_use]
    pub fn audit(
        &self,
        at: DateTime<Utc>,
        action: &str,
        target: &str,
        scope: Option<NodeId>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor: Some(self.user.id.clone()),
            actor_name: Some(self.user.name.clone()),
            scope,
            from: self.from.clone(),
            detail,
            ..AuditEntry::new(at, action, target)
        }
    }
}
