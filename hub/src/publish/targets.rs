//! What a run touches (U5, L3, L4, P7, T4): the groups and devices of a
//! scope, read inside the run's transaction, and who may publish it.
//!
//! Owns: the scope rules of the module doc of [`super`] and the publish
//! permission check. Must not: build, sign or store documents.

use std::collections::BTreeSet;

use signet_common::ids::{AccessGroupId, DeviceId, NodeId};
use signet_common::permissions::{Domain, NodeTree, Permission};

use super::PublishError;
use crate::access_groups::{
    AccessGroup, GROUPS, MEMBERS, Member, MemberRef, group_prefix, member_key,
};
use crate::groups::GroupRef;
use crate::identity::User;
use crate::store::{Store, StoreError, Tx};

/// What a run touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The node whose subtree holds all of it.
    pub scope_node: NodeId,
    /// The groups whose manifests are built.
    pub groups: Vec<GroupRef>,
    /// The devices whose assignments are built, with their nodes.
    pub devices: Vec<(DeviceId, NodeId)>,
    /// Devices that follow the run's groups but whose assignments the run
    /// does not build (a change of the groups' own manifests, DESIGN §4):
    /// only the run's progress records name them ([`super::publications`]).
    pub followers: Vec<DeviceId>,
}

/// What `scope` touches (see the module doc of [`super`]) in `tree`, as
/// `store` reads it: the run's decision rests on these reads.
///
/// # Errors
/// [`PublishError::UnknownGroup`] when the scope does not exist; store errors.
pub fn targets_of(
    store: &mut Tx,
    tree: &NodeTree,
    nodes: &[crate::tenancy::Node],
    scope: &GroupRef,
) -> Result<Targets, PublishError> {
    let attached = crate::tenancy::attached_devices_in(store)?;
    match scope {
        GroupRef::Node(node) => {
            let groups = node_groups(store, tree, nodes, node)?;
            let devices = attached
                .into_iter()
                .filter(|(_, at)| tree.is_within(at, node))
                .collect();
            Ok(Targets {
                scope_node: node.clone(),
                groups,
                devices,
                followers: Vec::new(),
            })
        }
        GroupRef::AccessGroup(id) => {
            let group: AccessGroup = store
                .get(GROUPS, id.as_str())?
                .ok_or_else(|| PublishError::UnknownGroup(scope.clone()))?;
            // One range read of the group's member records (removed ones
            // included), not one read per attached device.
            let members: BTreeSet<String> = store
                .scan_keys(MEMBERS, &group_prefix(id))?
                .into_iter()
                .collect();
            let devices = attached
                .into_iter()
                .filter(|(device, at)| {
                    let member = MemberRef::Device {
                        device_id: device.clone(),
                    };
                    tree.is_within(at, &group.node) && members.contains(&member_key(id, &member))
                })
                .collect();
            Ok(Targets {
                scope_node: group.node,
                groups: vec![scope.clone()],
                devices,
                followers: Vec::new(),
            })
        }
    }
}

/// What a change of access group `id`'s own manifest touches (L3, DESIGN
/// §4: its items): that one manifest, and as followers the devices whose
/// assignments list the group — its current, active device members
/// attached inside its node's subtree, as [`super::build::assignment`]
/// lists them — for the run's progress records. No assignment is read or
/// built: nothing an assignment says depends on the manifest (its floors
/// are not its content), so the run signs one document whatever the
/// number of members. A change of what an assignment says (membership,
/// license window, node, country) goes through [`targets_of`].
///
/// # Errors
/// [`PublishError::UnknownGroup`] when the group does not exist; store errors.
pub fn manifest_targets(
    store: &mut Tx,
    tree: &NodeTree,
    id: &AccessGroupId,
) -> Result<Targets, PublishError> {
    let scope = GroupRef::AccessGroup(id.clone());
    let group: AccessGroup = store
        .get(GROUPS, id.as_str())?
        .ok_or_else(|| PublishError::UnknownGroup(scope.clone()))?;
    let members: BTreeSet<DeviceId> = store
        .scan::<Member>(MEMBERS, &group_prefix(id))?
        .into_iter()
        .filter(|m| m.is_current() && m.active)
        .filter_map(|m| match m.member {
            MemberRef::Device { device_id } => Some(device_id),
            MemberRef::User { .. } => None,
        })
        .collect();
    let followers = if members.is_empty() {
        Vec::new()
    } else {
        crate::tenancy::attached_devices_in(store)?
            .into_iter()
            .filter(|(device, at)| tree.is_within(at, &group.node) && members.contains(device))
            .map(|(device, _)| device)
            .collect()
    };
    Ok(Targets {
        scope_node: group.node,
        groups: vec![scope],
        devices: Vec::new(),
        followers,
    })
}

/// The groups a publish of `node` signs: the nodes of its subtree and the
/// access groups living at them, sorted.
fn node_groups(
    store: &mut Tx,
    tree: &NodeTree,
    nodes: &[crate::tenancy::Node],
    node: &NodeId,
) -> Result<Vec<GroupRef>, PublishError> {
    if !tree.contains(node) {
        return Err(PublishError::UnknownGroup(GroupRef::Node(node.clone())));
    }
    let mut groups: Vec<GroupRef> = nodes
        .iter()
        .filter(|n| tree.is_within(&n.id, node))
        .map(|n| GroupRef::Node(n.id.clone()))
        .collect();
    let access: Vec<AccessGroup> = store.scan(GROUPS, "")?;
    groups.extend(
        access
            .into_iter()
            .filter(|g| tree.is_within(&g.node, node))
            .map(|g| GroupRef::AccessGroup(g.id)),
    );
    groups.sort();
    Ok(groups)
}

/// What newly attached `devices` at `node` need (S7, issue 20), or devices
/// there whose groups changed without any group to publish (a deleted
/// access group, L4): the groups a publish of `node` signs, and their own
/// assignments only — not the assignment of every other device there, so
/// that pairing N screens at one node costs O(1) each, not O(N). One point
/// read of each attachment (no device when it was detached meanwhile), so
/// concurrent approvals at one node do not conflict.
///
/// # Errors
/// [`PublishError::UnknownGroup`] when `node` does not exist; store errors.
pub fn devices_targets(
    store: &mut Tx,
    tree: &NodeTree,
    nodes: &[crate::tenancy::Node],
    node: &NodeId,
    devices: &[DeviceId],
) -> Result<Targets, PublishError> {
    let groups = node_groups(store, tree, nodes, node)?;
    let mut attached = Vec::with_capacity(devices.len());
    for device in devices {
        if store.contains(crate::tenancy::NODE_DEVICES, &format!("{node}/{device}"))? {
            attached.push((device.clone(), node.clone()));
        }
    }
    Ok(Targets {
        scope_node: node.clone(),
        groups,
        devices: attached,
        followers: Vec::new(),
    })
}

/// Why a user may not publish a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// They lack the `publish` permission (P7): 403.
    NoPermission,
    /// The scope lies outside their domain (T4): 404.
    OutsideDomain,
}

/// Whether `user` may publish a scope living at `scope_node`: `publish` in
/// their effective permissions (P7) and the node inside their domain.
///
/// # Errors
/// When the store fails.
pub fn authorize(
    store: &Store,
    user: &User,
    tree: &NodeTree,
    scope_node: &NodeId,
) -> Result<Result<(), Refused>, StoreError> {
    if !may_publish(store, user)? {
        return Ok(Err(Refused::NoPermission));
    }
    if !Domain::new(user.domain.iter().cloned()).contains(tree, scope_node) {
        return Ok(Err(Refused::OutsideDomain));
    }
    Ok(Ok(()))
}

/// Whether `user` holds `publish` (P7) and is enabled.
///
/// # Errors
/// When the store fails.
pub fn may_publish(store: &Store, user: &User) -> Result<bool, StoreError> {
    Ok(!user.disabled
        && crate::permission_groups::effective_permissions_of(store, user)?
            .contains(Permission::Publish))
}
