//! Restricted nodes (A1): who may add, edit or delete the items a node
//! holds, beyond the role and domain checks every write makes.
//!
//! Owns: the A1 rule as one function, [`check_item_change`], called by every
//! route that writes an item (content, templates, playlists) at a node.
//! Must not: check roles or domains (the caller's route does that first) or
//! read the store.
//!
//! | node | add / delete | edit in place |
//! |---|---|---|
//! | not restricted | anyone the route allows | anyone the route allows |
//! | restricted, made by a root-level user | root-level users only | nobody: copy it down (A2) |
//! | restricted, made below root | its creator, and users whose domain holds a node above it | the same |
//!
//! "Users with access to levels above it" are those whose domain holds a
//! strict ancestor of the restricted node; a user whose domain is the
//! restricted node itself (or a node below it) only sees and copies.

use signet_common::ids::UserId;
use signet_common::permissions::{Domain, NodeTree};

use super::Node;

/// What a write does to an item at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemChange {
    /// Create an item there (upload, new template or playlist, copy into it).
    Add,
    /// Change an item there in place.
    Edit,
    /// Delete an item there.
    Delete,
}

/// Why A1 refuses a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Restricted {
    /// Items of a root-made restricted node are never edited in place.
    #[error(
        "items of restricted node {0} are master copies: copy them into a node below to change them (A1, A2)"
    )]
    NeverEdited(String),
    /// Only root-level users add or delete items of a root-made restricted node.
    #[error("only root-level users add or delete items of restricted node {0} (A1)")]
    RootOnly(String),
    /// Only the creator and users above change a tenant-made restricted node.
    #[error("only the creator of restricted node {0} and users above it change its items (A1)")]
    CreatorOrAbove(String),
}

/// Checks A1 for `change` by `user` (with `domain`) to an item at `node`.
/// Non-restricted nodes always pass: the route's role and domain checks
/// decide there.
///
/// # Errors
/// [`Restricted`] saying who may make the change instead.
pub fn check_item_change(
    tree: &NodeTree,
    node: &Node,
    user: &UserId,
    domain: &Domain,
    change: ItemChange,
) -> Result<(), Restricted> {
    if !node.restricted {
        return Ok(());
    }
    let name = || node.id.to_string();
    if node.created_at_root_level {
        return match change {
            ItemChange::Edit => Err(Restricted::NeverEdited(name())),
            ItemChange::Add | ItemChange::Delete if domain.is_root_level(tree) => Ok(()),
            ItemChange::Add | ItemChange::Delete => Err(Restricted::RootOnly(name())),
        };
    }
    let is_creator = node.created_by.as_ref() == Some(user);
    let above = node
        .parent
        .as_ref()
        .is_some_and(|parent| domain.contains(tree, parent));
    if is_creator || above {
        Ok(())
    } else {
        Err(Restricted::CreatorOrAbove(name()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use signet_common::ids::NodeId;

    use super::*;

    fn tree() -> NodeTree {
        let mut tree = NodeTree::new(NodeId::new("root"));
        tree.add_node(NodeId::new("tenant"), &NodeId::new("root"))
            .unwrap();
        tree.add_node(NodeId::new("masters"), &NodeId::new("tenant"))
            .unwrap();
        tree
    }

    fn restricted(by_root: bool) -> Node {
        Node {
            id: NodeId::new("masters"),
            parent: Some(NodeId::new("tenant")),
            name: "Masters".into(),
            restricted: true,
            created_by: Some(UserId::new("owner")),
            created_at: Utc::now(),
            content_manager_email: None,
            strict_feeds: false,
            created_at_root_level: by_root,
            locale: crate::tenancy::NodeLocale::default(),
        }
    }

    /// A1: the creator of a tenant-made restricted node changes it even when
    /// their domain is the node itself; another user there does not.
    #[test]
    fn a1_creator_keeps_ownership_of_a_tenant_restricted_node() {
        let domain = Domain::new([NodeId::new("masters")]);
        let node = restricted(false);
        for change in [ItemChange::Add, ItemChange::Edit, ItemChange::Delete] {
            assert_eq!(
                check_item_change(&tree(), &node, &UserId::new("owner"), &domain, change),
                Ok(())
            );
            assert_eq!(
                check_item_change(&tree(), &node, &UserId::new("other"), &domain, change),
                Err(Restricted::CreatorOrAbove("masters".into()))
            );
        }
    }
}
