//! Building the unsigned payloads (U5, L3, S3, A8): one group's
//! [`GroupManifest`] and one device's [`DeviceAssignment`], from the store
//! as it is now.
//!
//! Owns: what a manifest lists and what an assignment says. Must not: sign,
//! version or store — [`super`] does that — nor change any record.
//!
//! Items deleted since they were scheduled are dropped: from the item list
//! and from the schedule (playlists and default item), and reported as
//! [`Built::dropped`]. A deleted item can never play, and refusing the
//! whole build would block every other change of the group (including the
//! removals L3 needs) on one stale playlist entry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;
use signet_common::digest::Sha256;
use signet_common::documents::{
    AccessMembership, DeviceAssignment, GroupManifest, Location, MAX_MANIFEST_ITEMS, ManifestItem,
};
use signet_common::ids::{DeviceId, ItemId, NodeId};
use signet_common::permissions::NodeTree;
use signet_common::schedule::{MergeMode, Schedule};

use super::PublishError;
use crate::access_groups::{self, AccessGroup, GROUPS, MemberRef};
use crate::content::{self, CONTENT, ContentItem};
use crate::groups::GroupRef;
use crate::schedules::group_schedule;
use crate::store::Store;
use crate::tenancy::{NODES, Node, inherited_locale};

/// An unsigned payload (version 0, times unset) and the hash of what it
/// says, which decides whether a new version is needed.
#[derive(Debug, Clone)]
pub struct Built<D> {
    /// The payload; the caller sets version and times.
    pub document: D,
    /// SHA-256 of the payload's content without version and times.
    pub content_hash: Sha256,
    /// Scheduled items that no longer exist and were left out.
    pub dropped: Vec<ItemId>,
}

/// An empty schedule: nothing plays but what entries a later version adds.
#[must_use]
pub fn empty_schedule() -> Schedule {
    Schedule {
        entries: Vec::new(),
        merge: MergeMode::default(),
        default_item: None,
    }
}

/// The device content URL of a blob (DESIGN §6).
#[must_use]
pub fn content_url(base: &str, sha256: &Sha256) -> String {
    format!("{base}/api/v1/device/content/{sha256}")
}

/// `group`'s manifest as the store says now: the items its schedule names
/// and, for an access group, its own items (L3), each with the media its
/// templates show; its schedule (or an empty one); and its license terms.
///
/// # Errors
/// [`PublishError::UnknownGroup`] when the group does not exist,
/// [`PublishError::InvalidManifest`] when it would list more than
/// [`MAX_MANIFEST_ITEMS`] items, or a store failure.
pub fn manifest(
    store: &Store,
    base_url: &str,
    group: &GroupRef,
) -> Result<Built<GroupManifest>, PublishError> {
    let access_group = match group {
        GroupRef::Node(id) => {
            if store.get::<Node>(NODES, id.as_str())?.is_none() {
                return Err(PublishError::UnknownGroup(group.clone()));
            }
            None
        }
        GroupRef::AccessGroup(id) => Some(
            store
                .get::<AccessGroup>(GROUPS, id.as_str())?
                .ok_or_else(|| PublishError::UnknownGroup(group.clone()))?,
        ),
    };
    let mut schedule = group_schedule(store, group)?.unwrap_or_else(empty_schedule);
    // Every item wanted, with its categories (access-group items only).
    let mut wanted: BTreeMap<ItemId, Vec<String>> = BTreeMap::new();
    for scheduled in schedule
        .entries
        .iter()
        .flat_map(|e| e.items.iter())
        .chain(schedule.default_item.iter())
    {
        wanted.entry(scheduled.item.clone()).or_default();
    }
    if let Some(access_group) = &access_group {
        for item in access_groups::items_of(store, &access_group.id)? {
            wanted.insert(item.id, item.categories);
        }
    }
    // Templates bring the media they show (bounded breadth-first walk).
    let mut queue: VecDeque<ItemId> = wanted.keys().cloned().collect();
    let mut seen: BTreeSet<ItemId> = wanted.keys().cloned().collect();
    let mut found: BTreeMap<ItemId, ContentItem> = BTreeMap::new();
    let mut dropped = Vec::new();
    while let Some(id) = queue.pop_front() {
        if seen.len() > MAX_MANIFEST_ITEMS {
            return Err(PublishError::InvalidManifest {
                group: group.id().to_owned(),
                reason: format!("more than {MAX_MANIFEST_ITEMS} items"),
            });
        }
        let Some(item) = store.get::<ContentItem>(CONTENT, id.as_str())? else {
            dropped.push(id);
            continue;
        };
        for source in content::template_sources(store, &item.id)? {
            if seen.insert(source.clone()) {
                queue.push_back(source);
            }
        }
        found.insert(id, item);
    }
    let gone: BTreeSet<&ItemId> = dropped.iter().collect();
    if !gone.is_empty() {
        for entry in &mut schedule.entries {
            entry.items.retain(|p| !gone.contains(&p.item));
        }
        if schedule
            .default_item
            .as_ref()
            .is_some_and(|p| gone.contains(&p.item))
        {
            schedule.default_item = None;
        }
    }
    let mut items: Vec<ManifestItem> = Vec::with_capacity(found.len());
    for item in found.values() {
        items.push(ManifestItem {
            id: item.id.clone(),
            kind: item.kind,
            sha256: item.sha256,
            size: item.size,
            url: content_url(base_url, &item.sha256),
            approval: item.approval.state(),
            approved_hash: item.approval.approved_hash().copied(),
            categories: wanted.get(&item.id).cloned().unwrap_or_default(),
            // M3: renditions of the current original, signed with it.
            renditions: content::renditions::manifest_entries(store, item, |sha256| {
                content_url(base_url, sha256)
            })?,
        });
    }
    // Renditions only where every receiving agent reads them (an older
    // agent refuses a manifest that lists one).
    if items.iter().any(|i| !i.renditions.is_empty())
        && !super::receivers::read_renditions(store, group)?
    {
        items.iter_mut().for_each(|i| i.renditions.clear());
    }
    let document = GroupManifest {
        version: 0,
        issued_at: DateTime::<Utc>::UNIX_EPOCH,
        expires_at: DateTime::<Utc>::UNIX_EPOCH,
        group_id: group.id().to_owned(),
        group_kind: group.kind(),
        items,
        schedule,
        license: access_group.map(|g| g.license),
    };
    let content_hash = hash_of(&(
        &document.group_id,
        document.group_kind,
        &document.items,
        &document.schedule,
        &document.license,
    ))?;
    dropped.sort();
    Ok(Built {
        document,
        content_hash,
        dropped,
    })
}

/// What an assignment needs beyond the store: the tree with its nodes, the
/// latest manifest version per group id, and the device-wide offline grace.
pub struct AssignmentInputs<'a> {
    /// The tenancy tree.
    pub tree: &'a NodeTree,
    /// Every node record (for time zones and locations).
    pub nodes: &'a [Node],
    /// The latest signed manifest version per group id.
    pub floors: &'a BTreeMap<String, u64>,
    /// [`crate::config::Config::device_offline_grace_secs`].
    pub offline_grace_secs: u64,
}

/// The assignment of `device`, attached at `node`: the chain root → node,
/// its current access-group memberships with their windows (removed or
/// deactivated memberships are absent: L4, L5), the latest manifest version
/// of each of those groups as its floor (S3), and the time zone and
/// location inherited down the chain (UTC when none is set), and the
/// device's feed variables (D6). Its content hash leaves the floors out:
/// they are raised whenever the assignment is re-issued, and a manifest's
/// new version alone does not re-issue it (DESIGN §4).
///
/// # Errors
/// [`PublishError::InvalidAssignment`] when the node is not in the tree, or
/// a store failure.
pub fn assignment(
    store: &Store,
    inputs: &AssignmentInputs<'_>,
    device: &DeviceId,
    node: &NodeId,
) -> Result<Built<DeviceAssignment>, PublishError> {
    if !inputs.tree.contains(node) {
        return Err(PublishError::InvalidAssignment {
            device: device.to_string(),
            reason: format!("it is attached to {node}, which is not in the tenancy tree"),
        });
    }
    let mut node_chain: Vec<NodeId> = inputs
        .tree
        .path_to_root(node)
        .into_iter()
        .cloned()
        .collect();
    node_chain.reverse();
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let mut access: Vec<AccessMembership> = access_groups::memberships_of(store, &member)?
        .into_iter()
        .filter(|(_, record)| record.is_current() && record.active)
        .map(|(group, record)| AccessMembership {
            window: access_groups::window(&group, &record),
            group_id: group.id,
        })
        .collect();
    access.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let min_manifest_versions: BTreeMap<String, u64> = node_chain
        .iter()
        .map(NodeId::as_str)
        .chain(access.iter().map(|m| m.group_id.as_str()))
        .filter_map(|id| inputs.floors.get(id).map(|v| (id.to_owned(), *v)))
        .collect();
    let variables = crate::devices::device(store, device.as_str())?
        .map(|d| d.variables)
        .unwrap_or_default();
    let locale = inherited_locale(node_chain.iter(), inputs.nodes);
    let document = DeviceAssignment {
        version: 0,
        issued_at: DateTime::<Utc>::UNIX_EPOCH,
        device_id: device.clone(),
        node_chain,
        access_groups: access,
        min_manifest_versions,
        time_zone: locale.time_zone.unwrap_or(chrono_tz::UTC),
        location: Location {
            country: locale.country,
            region: locale.region,
        },
        offline_grace_secs: inputs.offline_grace_secs,
        variables,
    };
    // The floors are not content (DESIGN §4): a group's new manifest is one
    // signed document, not a new assignment for every member. An assignment
    // re-issued for anything else carries the floors of that moment.
    let content_hash = hash_of(&DeviceAssignment {
        min_manifest_versions: BTreeMap::new(),
        ..document.clone()
    })?;
    Ok(Built {
        document,
        content_hash,
        dropped: Vec::new(),
    })
}

fn hash_of(value: &impl Serialize) -> Result<Sha256, PublishError> {
    serde_json::to_vec(value)
        .map(|bytes| Sha256::of(&bytes))
        .map_err(|e| PublishError::Sign(e.to_string()))
}
