//! Moving a node and marking it restricted after creation (T1–T4, A1).
//!
//! Owns: the rules of both changes, decided inside the update's
//! transaction on the tree it read — a move keeps the node inside the
//! actor's domain, never puts it below itself or under a node holding
//! devices (T1), is made from above the node (a domain root is moved only
//! from above it), and never takes the subtree away from a node that holds
//! content, templates, playlists, schedules or groups: whatever the subtree
//! uses stays usable (T2). The restricted flag follows A1's ownership: a
//! node made at root level only from the root, otherwise by its creator or
//! from above it. Must not: know HTTP.

use signet_common::ids::NodeId;
use signet_common::permissions::NodeTree;

use super::{NodeError, conflict};
use crate::identity::Actor;
use crate::store::Tx;
use crate::tenancy::restricted::{ItemChange, check_item_change};
use crate::tenancy::{Node, holds_devices_in};

/// Checks moving `node` under `parent` (visible to the actor, read by the
/// caller in `tx`).
///
/// # Errors
/// [`NodeError::Forbidden`] for the root or a domain root of the actor;
/// [`NodeError::Conflict`] for a cycle, a parent holding devices, or a
/// node left behind that holds what the subtree may use.
pub(super) fn check_move(
    tx: &mut Tx,
    actor: &Actor,
    tree: &NodeTree,
    node: &Node,
    parent: &Node,
) -> Result<(), NodeError> {
    if node.parent.is_none() || actor.user.domain.contains(&node.id) {
        return Err(NodeError::Forbidden(
            "the root, or a root of your own domain, can only be moved from above it",
        ));
    }
    if tree.is_within(&parent.id, &node.id) {
        return Err(conflict(
            "node_move_cycle",
            format!(
                "{} is the node itself or below it: a node cannot move under itself",
                parent.name
            ),
        ));
    }
    if holds_devices_in(tx, &parent.id)? {
        return Err(conflict(
            "node_has_devices",
            format!(
                "{} holds devices: devices attach only to leaves (T1)",
                parent.name
            ),
        ));
    }
    for left in left_behind(tree, node, &parent.id) {
        if holds_usable(tx, &left)? {
            return Err(conflict(
                "node_move_breaks_references",
                format!(
                    "node {left} holds content, playlists, schedules or groups the subtree may use, \
                     and would no longer be above it (T2): move or copy them first, or move within it"
                ),
            ));
        }
    }
    Ok(())
}

/// The nodes above `node` now that would not be above it under `parent`.
fn left_behind(tree: &NodeTree, node: &Node, parent: &NodeId) -> Vec<NodeId> {
    let after: Vec<&NodeId> = tree.path_to_root(parent);
    node.parent
        .as_ref()
        .map(|old| tree.path_to_root(old))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !after.contains(n))
        .cloned()
        .collect()
}

/// Whether anything a node below `node` may use is stored at `node` (T2).
fn holds_usable(tx: &mut Tx, node: &NodeId) -> Result<bool, NodeError> {
    Ok(!crate::content::items_at_in(tx, node)?.is_empty()
        || !crate::schedules::playlists_at_in(tx, node)?.is_empty()
        || !crate::schedules::schedules_at_in(tx, node)?.is_empty()
        || !crate::permission_groups::groups_at_in(tx, node)?.is_empty()
        || !crate::access_groups::groups_at_in(tx, node)?.is_empty())
}

/// Checks that the actor may mark `node` restricted or not (A1): the same
/// people who may add items to it once it is restricted.
///
/// # Errors
/// [`NodeError::Forbidden`] saying who may.
pub(super) fn check_restricted_change(
    actor: &Actor,
    tree: &NodeTree,
    node: &Node,
) -> Result<(), NodeError> {
    let as_restricted = Node {
        restricted: true,
        ..node.clone()
    };
    check_item_change(
        tree,
        &as_restricted,
        &actor.user.id,
        &actor.domain(),
        ItemChange::Add,
    )
    .map_err(|_| {
        NodeError::Forbidden(if node.created_at_root_level {
            "only root-level users mark a node made at the root restricted or not (A1)"
        } else {
            "only the node's creator and users above it mark it restricted or not (A1)"
        })
    })
}
