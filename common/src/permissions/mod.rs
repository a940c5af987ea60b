//! Roles, permissions, permission groups, the tenancy tree and media access
//! (T1–T4, P1–P9).
//!
//! Owns: the permission catalogue and role defaults, the permission-group
//! graph with transitive membership, effective permissions, the tenancy tree
//! and users' domains, and the view/permission decisions on media. Must not:
//! load or store anything, authenticate anyone, or compute license
//! entitlements — callers pass in what they resolved (the groups graph, the
//! tree, the access groups a user is entitled in).
//!
//! # Rules
//! - E(u) = defaults(role) ∪ ⋃ perms(g) over u's groups, transitively (P4);
//!   there are no deny rules.
//! - view(u, m) = node in domain ∧ (open to all ∨ in an allowed group) ∧
//!   (no access groups ∨ entitled in one) (P6).
//! - can(u, p, m) = view(u, m) ∧ p ∈ E(u) ∧ publish gate (P5) ∧ for
//!   own-media permissions, a role that can upload and media u owns (P9).

mod access;
mod catalogue;
mod describe;
mod groups;
mod role;
mod tenancy;

pub use access::{
    Access, Denial, MediaAccess, Principal, PublishSettings, can, permission_access, view,
    view_access,
};
pub use catalogue::{Permission, PermissionSet, PublishGate};
pub use groups::{
    GroupDetails, MAX_GROUP_DESCRIPTION_CHARS, MAX_GROUP_EMAIL_CHARS, MAX_GROUP_NAME_CHARS,
    PermissionGroup, PermissionGroups, effective_permissions,
};
pub use role::{Role, role_defaults};
pub use tenancy::{Domain, NodeTree};

use crate::ids::{NodeId, PermissionGroupId};

/// Why a change to groups or the tree, or a permission name, was refused.
/// Nothing changes on error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    /// A name that is not in the P7 catalogue.
    #[error("unknown permission {name:?}")]
    UnknownPermission {
        /// The name given (at most 64 characters of it).
        name: String,
    },
    /// A permission group id that does not exist.
    #[error("unknown permission group {group}")]
    UnknownGroup {
        /// The id given.
        group: PermissionGroupId,
    },
    /// A permission group id that is already taken.
    #[error("permission group {group} already exists")]
    DuplicateGroup {
        /// The id given.
        group: PermissionGroupId,
    },
    /// Making `child` a member of `parent` would make a group a member of
    /// itself (P3, 409).
    #[error("adding group {child} to group {parent} would make a cycle")]
    Cycle {
        /// The group that would gain the member.
        parent: PermissionGroupId,
        /// The group that would become a member.
        child: PermissionGroupId,
    },
    /// A group name that is empty or only whitespace.
    #[error("a permission group needs a name")]
    EmptyGroupName,
    /// A text field longer than its bound.
    #[error("{field} is longer than {max} characters")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its bound, in characters.
        max: usize,
    },
    /// A node id that is not in the tree.
    #[error("unknown node {node}")]
    UnknownNode {
        /// The id given.
        node: NodeId,
    },
    /// A node id that is already in the tree.
    #[error("node {node} already exists")]
    DuplicateNode {
        /// The id given.
        node: NodeId,
    },
    /// Removing the root or a node that still has children.
    #[error("node {node} is the root or has children")]
    NodeHasChildren {
        /// The id given.
        node: NodeId,
    },
    /// Stored parent links that do not form one tree (a cycle, or a parent
    /// for the root).
    #[error("node {node} does not lead to the root")]
    NotATree {
        /// A node on the offending path.
        node: NodeId,
    },
}
