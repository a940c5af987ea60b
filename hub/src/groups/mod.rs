//! The two kinds of group a device receives a signed manifest for (DESIGN
//! §3): the nodes on its chain and the access groups it is a member of.
//!
//! Owns: [`GroupRef`], the name schedules, publishing and the sync layer use
//! for "a group". Must not: hold the groups themselves (see
//! [`crate::tenancy`] and [`crate::access_groups`]).

use serde::{Deserialize, Serialize};
use signet_common::documents::GroupKind;
use signet_common::ids::{AccessGroupId, NodeId};

/// A node or an access group. Ids of the two kinds never collide (`n-…`,
/// `ag-…`), so [`GroupRef::id`] alone names a group on the wire
/// (`signet/v1/groups/{group_id}/manifest`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum GroupRef {
    /// A node of the tenancy tree.
    Node(NodeId),
    /// An access group.
    AccessGroup(AccessGroupId),
}

impl GroupRef {
    /// The group's id as the manifest and its topic carry it.
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            GroupRef::Node(id) => id.as_str(),
            GroupRef::AccessGroup(id) => id.as_str(),
        }
    }

    /// Which kind of group it is, as the manifest carries it.
    #[must_use]
    pub fn kind(&self) -> GroupKind {
        match self {
            GroupRef::Node(_) => GroupKind::Node,
            GroupRef::AccessGroup(_) => GroupKind::AccessGroup,
        }
    }
}

impl std::fmt::Display for GroupRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
