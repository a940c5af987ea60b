//! Device members in bulk (L1, L4, L5): many devices added to and removed
//! from one group in one request, one transaction and one audit entry, so
//! a fleet joins a group with one publication instead of one per device.
//!
//! Owns: the rules of a bulk change — the same as one member's (a device
//! added must be visible and attached below the group's node, T2; the
//! group-full rule; the device-slot rule, L5), decided for the whole
//! request at once: any refusal refuses all of it. Adding a current member
//! or removing a device that is not one changes nothing and is reported
//! as unchanged. What follows the commit (broker access, the group's
//! publication) is the caller's, as for one member
//! ([`crate::publish::after::device_members_changed`]). Must not: import
//! devices or publishing, or know HTTP.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, DeviceId, MAX_ID_LEN, NodeId};
use signet_common::license::check_activation;
use signet_common::permissions::{NodeTree, Role};

use super::error::AccessGroupError;
use super::service::joined;
use super::{AccessGroup, MAX_MEMBERS, Member, MemberRef, MemberSource, repo};
use crate::app::Hub;
use crate::identity::Actor;
use crate::store::{StoreError, Tx};
use crate::tenancy::NODE_DEVICES;

/// Device members to add and to remove, by device id.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceMembers {
    /// Devices to add (each paired, attached inside the caller's domain and
    /// below the group's node; each is activated, L5).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub add: Vec<DeviceId>,
    /// Devices to remove (their access ends at once, L4).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub remove: Vec<DeviceId>,
}

/// What a bulk change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceMembersChanged {
    /// The group.
    #[schema(value_type = String)]
    pub group: AccessGroupId,
    /// Devices that became members.
    #[schema(value_type = Vec<String>)]
    pub added: Vec<DeviceId>,
    /// Devices whose membership ended.
    #[schema(value_type = Vec<String>)]
    pub removed: Vec<DeviceId>,
    /// Devices already as asked (a current member to add, or a device that
    /// is no current member to remove).
    #[schema(value_type = Vec<String>)]
    pub unchanged: Vec<DeviceId>,
}

impl DeviceMembersChanged {
    /// Every device whose membership changed.
    pub fn changed(&self) -> impl Iterator<Item = &DeviceId> {
        self.added.iter().chain(&self.removed)
    }
}

/// The checks of the request alone: at least one and at most
/// [`MAX_MEMBERS`] ids, each well formed and named once.
fn check_request(request: &DeviceMembers) -> Result<(), AccessGroupError> {
    let count = request.add.len() + request.remove.len();
    if count == 0 || count > MAX_MEMBERS {
        return Err(AccessGroupError::invalid(
            "invalid_devices",
            format!("name 1 to {MAX_MEMBERS} devices to add or remove"),
        ));
    }
    let mut seen = BTreeSet::new();
    for device in request.add.iter().chain(&request.remove) {
        let id = device.as_str();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(AccessGroupError::invalid(
                "invalid_devices",
                format!("a device id holds 1 to {MAX_ID_LEN} bytes"),
            ));
        }
        if !seen.insert(id) {
            return Err(AccessGroupError::invalid(
                "invalid_devices",
                format!("device {id} is named twice"),
            ));
        }
    }
    Ok(())
}

/// Adds and removes device members of group `id` (Manager+) as one change:
/// every added device is activated (L5); nothing changes when any device
/// is refused. Returns what changed, for the caller to follow (broker
/// access and the group's publication).
///
/// # Errors
/// `RoleTooLow`, `Invalid` (`invalid_devices`, `device_outside_group`),
/// `NotFound` (the group), `Unknown` (`device_not_found`), `Conflict`
/// (`group_full`, `too_many_devices`), or the store's error.
pub async fn change_device_members(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: DeviceMembers,
) -> Result<DeviceMembersChanged, AccessGroupError> {
    actor.require(Role::Manager)?;
    check_request(&request)?;
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (group, tree) = repo::visible_group(tx, actor, id)?;
            let members: BTreeMap<String, Member> = repo::members(tx, &group.id)?
                .into_iter()
                .map(|m| (m.member.key(), m))
                .collect();
            let mut changed = DeviceMembersChanged {
                group: group.id.clone(),
                added: Vec::new(),
                removed: Vec::new(),
                unchanged: Vec::new(),
            };
            let attached = attached_nodes(tx)?;
            let mut writes = Vec::new();
            for device in &request.add {
                let who = MemberRef::Device {
                    device_id: device.clone(),
                };
                check_device(actor, &tree, &group, &attached, device)?;
                if members.get(&who.key()).is_some_and(Member::is_current) {
                    changed.unchanged.push(device.clone());
                    continue;
                }
                let by = actor.user.id.clone();
                let mut member =
                    joined(&group, who, now, None, None, MemberSource::Operator { by });
                member.active = true;
                writes.push(member);
                changed.added.push(device.clone());
            }
            for device in &request.remove {
                let who = MemberRef::Device {
                    device_id: device.clone(),
                };
                let Some(mut member) = members.get(&who.key()).filter(|m| m.is_current()).cloned()
                else {
                    changed.unchanged.push(device.clone());
                    continue;
                };
                member.membership.removed_at = Some(now);
                member.active = false;
                writes.push(member);
                changed.removed.push(device.clone());
            }
            check_limits(&group, &members, &changed)?;
            for member in &writes {
                repo::put_member(tx, member)?;
            }
            if !writes.is_empty() {
                let detail = serde_json::json!({"added": changed.added,
                    "removed": changed.removed, "unchanged": changed.unchanged.len()});
                let by = (actor, now);
                repo::audit(tx, by, "access_group.device_members", &group, detail)?;
            }
            Ok(changed)
        })
        .await
}

/// Every attached device's node (one read of the node index).
fn attached_nodes(tx: &mut Tx) -> Result<BTreeMap<DeviceId, NodeId>, StoreError> {
    Ok(tx
        .scan_keys(NODE_DEVICES, "")?
        .into_iter()
        .filter_map(|key| {
            key.split_once('/')
                .map(|(node, device)| (DeviceId::from(device), NodeId::from(node)))
        })
        .collect())
}

/// Refuses a device to add that the actor does not see or that is attached
/// outside the group's node (T2), as adding it alone would.
fn check_device(
    actor: &Actor,
    tree: &NodeTree,
    group: &AccessGroup,
    attached: &BTreeMap<DeviceId, NodeId>,
    device: &DeviceId,
) -> Result<(), AccessGroupError> {
    let node = attached
        .get(device)
        .filter(|node| actor.sees(tree, node))
        .ok_or_else(|| AccessGroupError::Unknown {
            code: "device_not_found",
            message: format!("device {device} is not paired, or not visible to you"),
        })?;
    if !super::usable_at(tree, &group.node, node) {
        return Err(AccessGroupError::invalid(
            "device_outside_group",
            format!(
                "device {device} is attached at {node}, which is not below the group's node {}",
                group.node
            ),
        ));
    }
    Ok(())
}

/// The group-full rule and the device-slot rule (L5) after the change.
fn check_limits(
    group: &AccessGroup,
    members: &BTreeMap<String, Member>,
    changed: &DeviceMembersChanged,
) -> Result<(), AccessGroupError> {
    let current = members.values().filter(|m| m.is_current()).count();
    if (current + changed.added.len()).saturating_sub(changed.removed.len()) > MAX_MEMBERS {
        return Err(AccessGroupError::conflict(
            "group_full",
            format!("a group holds at most {MAX_MEMBERS} members"),
        ));
    }
    let removed: BTreeSet<&DeviceId> = changed.removed.iter().collect();
    let active = members
        .values()
        .filter(|m| m.active && m.is_current())
        .filter(|m| match &m.member {
            MemberRef::Device { device_id } => !removed.contains(device_id),
            MemberRef::User { .. } => false,
        })
        .count();
    // The last device added must still find a slot.
    if !changed.added.is_empty()
        && check_activation(&group.license, active + changed.added.len() - 1, false).is_err()
    {
        let max = group.license.max_active_devices.unwrap_or_default();
        return Err(AccessGroupError::conflict(
            "too_many_devices",
            format!(
                "the license allows {max} active devices; {active} are active and {} more were asked",
                changed.added.len()
            ),
        ));
    }
    Ok(())
}
