//! The tenancy tree (T1) and users' domains (T2–T4).
//!
//! Owns: which node lies inside which, and whether a node is inside a user's
//! domain. Must not: know devices, content or permissions; refusing children
//! under nodes that hold devices (T1) is the hub's check, using
//! [`NodeTree::is_leaf`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::PermissionError;
use crate::ids::NodeId;

/// The tenancy tree: exactly one root and a parent for every other node
/// (T1). Acyclic by construction; checked again when deserialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "UncheckedTree")]
pub struct NodeTree {
    /// The one node without a parent.
    root: NodeId,
    /// Every other node, mapped to its parent.
    parents: BTreeMap<NodeId, NodeId>,
}

/// The stored form before its invariants are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedTree {
    /// The one node without a parent.
    root: NodeId,
    /// Every other node, mapped to its parent.
    parents: BTreeMap<NodeId, NodeId>,
}

impl TryFrom<UncheckedTree> for NodeTree {
    type Error = PermissionError;

    fn try_from(unchecked: UncheckedTree) -> Result<Self, Self::Error> {
        let UncheckedTree { root, parents } = unchecked;
        if parents.contains_key(&root) {
            return Err(PermissionError::NotATree { node: root });
        }
        // Walk up from every node until the root or a node already known to
        // reach it; a walk longer than the node count is a cycle. Each node is
        // marked once, so the whole check is linear.
        let mut reaches_root: BTreeSet<&NodeId> = BTreeSet::from([&root]);
        for start in parents.keys() {
            let mut path = Vec::new();
            let mut current = start;
            while !reaches_root.contains(current) {
                if path.len() > parents.len() {
                    return Err(PermissionError::NotATree {
                        node: start.clone(),
                    });
                }
                path.push(current);
                current = parents
                    .get(current)
                    .ok_or_else(|| PermissionError::UnknownNode {
                        node: current.clone(),
                    })?;
            }
            reaches_root.extend(path);
        }
        Ok(Self { root, parents })
    }
}

impl NodeTree {
    /// A tree holding only its root.
    #[must_use]
    pub fn new(root: NodeId) -> Self {
        Self {
            root,
            parents: BTreeMap::new(),
        }
    }

    /// The root node.
    #[must_use]
    pub fn root(&self) -> &NodeId {
        &self.root
    }

    /// Whether `node` is in the tree.
    #[must_use]
    pub fn contains(&self, node: &NodeId) -> bool {
        *node == self.root || self.parents.contains_key(node)
    }

    /// How many nodes the tree holds, root included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.parents.len() + 1
    }

    /// Always false: a tree holds at least its root.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every node of the tree: the root, then the others in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        std::iter::once(&self.root).chain(self.parents.keys())
    }

    /// The parent of `node`; `None` for the root and for unknown nodes.
    #[must_use]
    pub fn parent(&self, node: &NodeId) -> Option<&NodeId> {
        self.parents.get(node)
    }

    /// The direct children of `node`.
    pub fn children<'a>(&'a self, node: &'a NodeId) -> impl Iterator<Item = &'a NodeId> + 'a {
        self.parents
            .iter()
            .filter(move |(_, parent)| *parent == node)
            .map(|(child, _)| child)
    }

    /// Whether `node` is in the tree and has no children (devices attach only
    /// to leaves, T1).
    #[must_use]
    pub fn is_leaf(&self, node: &NodeId) -> bool {
        self.contains(node) && self.children(node).next().is_none()
    }

    /// Adds `node` below `parent`.
    ///
    /// # Errors
    /// [`PermissionError::DuplicateNode`] or [`PermissionError::UnknownNode`].
    pub fn add_node(&mut self, node: NodeId, parent: &NodeId) -> Result<(), PermissionError> {
        if self.contains(&node) {
            return Err(PermissionError::DuplicateNode { node });
        }
        if !self.contains(parent) {
            return Err(PermissionError::UnknownNode {
                node: parent.clone(),
            });
        }
        self.parents.insert(node, parent.clone());
        Ok(())
    }

    /// Removes a leaf node.
    ///
    /// # Errors
    /// [`PermissionError::UnknownNode`], or [`PermissionError::NodeHasChildren`]
    /// for the root or any node with children.
    pub fn remove_leaf(&mut self, node: &NodeId) -> Result<(), PermissionError> {
        if !self.contains(node) {
            return Err(PermissionError::UnknownNode { node: node.clone() });
        }
        if *node == self.root || !self.is_leaf(node) {
            return Err(PermissionError::NodeHasChildren { node: node.clone() });
        }
        self.parents.remove(node);
        Ok(())
    }

    /// `node`, its parent, and so on up to the root; empty if `node` is not
    /// in the tree. The walk is bounded by the node count.
    #[must_use]
    pub fn path_to_root<'a>(&'a self, node: &'a NodeId) -> Vec<&'a NodeId> {
        let mut path = Vec::new();
        if !self.contains(node) {
            return path;
        }
        let mut current = node;
        path.push(current);
        while let Some(parent) = self.parents.get(current) {
            if path.len() > self.parents.len() {
                break;
            }
            path.push(parent);
            current = parent;
        }
        path
    }

    /// Whether `node` is `ancestor` or lies below it (T2). False when either
    /// is not in the tree.
    #[must_use]
    pub fn is_within(&self, node: &NodeId, ancestor: &NodeId) -> bool {
        self.contains(ancestor) && self.path_to_root(node).contains(&ancestor)
    }
}

/// The nodes whose subtrees a user sees and acts in (T3). A user whose domain
/// holds the root sees the whole tree.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The top nodes of the subtrees the user may act in.
    pub nodes: BTreeSet<NodeId>,
}

impl Domain {
    /// A domain of the given nodes' subtrees.
    pub fn new(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            nodes: nodes.into_iter().collect(),
        }
    }

    /// Whether `node` lies in one of the domain's subtrees (T2, T3). Domain
    /// nodes that are no longer in the tree cover nothing.
    #[must_use]
    pub fn contains(&self, tree: &NodeTree, node: &NodeId) -> bool {
        tree.path_to_root(node)
            .into_iter()
            .any(|on_path| self.nodes.contains(on_path))
    }

    /// Whether what is stored at `node` is reached from the domain: `node`
    /// lies inside it, or above one of its nodes, where what is stored is
    /// usable inside the domain (T2) though changed only from there.
    #[must_use]
    pub fn reaches(&self, tree: &NodeTree, node: &NodeId) -> bool {
        self.contains(tree, node) || self.nodes.iter().any(|top| tree.is_within(top, node))
    }

    /// Whether the domain covers the whole tree (it holds the root).
    #[must_use]
    pub fn is_root_level(&self, tree: &NodeTree) -> bool {
        self.nodes.contains(tree.root())
    }
}
