//! What committed batches changed since the fleet index last looked
//! ([`Changes`]): the [`super::index`]'s commit observer notes each write
//! here, and the next answer reads again, or patches, what it names.

use std::collections::HashSet;

use signet_common::envelope::DocumentKind;
use signet_common::ids::{DeviceId, NodeId};

use crate::access_groups::{GROUPS, ITEMS, MEMBER_GROUPS, MEMBERS};
use crate::devices::DEVICES;
use crate::fleet::DEVICE_STATES;
use crate::publish::SIGNED_DOCUMENTS;
use crate::store::Write;
use crate::tenancy::{NODE_DEVICES, NODES};

/// What committed batches changed since the index last looked.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Devices whose record or assignment changed: read again.
    pub(super) devices: HashSet<DeviceId>,
    /// Devices whose stored state changed: that record alone is read.
    pub(super) states: HashSet<DeviceId>,
    /// Attachments (`{node}/{device}` keys) written or removed.
    pub(super) attachments: HashSet<(DeviceId, NodeId)>,
    /// Groups with a new signed manifest.
    pub(super) groups: HashSet<String>,
    /// Access groups whose record (licence) or items were written: their
    /// device members' refusals may change, so those are read again.
    pub(super) access_groups: HashSet<String>,
    /// Access groups whose items alone were written.
    pub(super) items: HashSet<String>,
    /// A node was written: a device's view rests on its node's country
    /// (licence refusals), which is looked at again per node.
    pub(super) nodes: bool,
    /// Something changed that may touch every device: rebuild.
    pub(super) everything: bool,
}

impl Changes {
    /// Notes one write.
    pub(super) fn note(&mut self, write: &Write) {
        let (tree, key) = match write {
            Write::Put { tree, key, .. } | Write::Delete { tree, key } => (*tree, key),
        };
        let key = String::from_utf8_lossy(key);
        if tree == DEVICE_STATES {
            self.states.insert(DeviceId::from(key.as_ref()));
        } else if tree == DEVICES {
            self.devices.insert(DeviceId::from(key.as_ref()));
        } else if tree == NODE_DEVICES {
            if let Some((node, device)) = key.split_once('/') {
                self.attachments
                    .insert((DeviceId::from(device), NodeId::from(node)));
            }
        } else if tree == SIGNED_DOCUMENTS {
            if let Some((kind, subject)) = key.split_once('/') {
                if kind == DocumentKind::DeviceAssignment.as_str() {
                    self.devices.insert(DeviceId::from(subject));
                } else if kind == DocumentKind::GroupManifest.as_str() {
                    self.groups.insert(subject.to_owned());
                }
            }
        } else if tree == MEMBERS || tree == MEMBER_GROUPS {
            // A membership changes its member's refusals alone: a device's
            // own, or (a user's) no device's. A first play under a license
            // writes one (L2), so this comes with proof-of-play ingest.
            match membership_device(tree, &key) {
                Some(Some(device)) => {
                    self.devices.insert(device);
                }
                Some(None) => {}
                None => self.everything = true,
            }
        } else if tree == NODES {
            self.nodes = true;
        } else if tree == ITEMS && key.split_once('/').is_some_and(|(g, _)| !g.is_empty()) {
            // Items are refusals' only for members the licence refuses.
            let group = key.split_once('/').map_or("", |(group, _)| group);
            self.items.insert(group.to_owned());
        } else if tree == GROUPS || tree == ITEMS {
            // `{group}` or `{group}/{item}`: the group's device members
            // are read again (its licence and items are their refusals).
            let group = key.split_once('/').map_or(key.as_ref(), |(group, _)| group);
            if group.is_empty() {
                self.everything = true;
            } else {
                self.access_groups.insert(group.to_owned());
            }
        }
    }
}

/// The device whose membership a `MEMBERS` (`{group}/{member}`) or
/// `MEMBER_GROUPS` (`{member}/{group}`) key names: `Some(None)` for a
/// user's, `None` for a key of neither shape.
pub(super) fn membership_device(tree: &str, key: &str) -> Option<Option<DeviceId>> {
    let member = if tree == MEMBERS {
        key.split_once('/')?.1
    } else {
        key.split_once('/')?.0
    };
    if let Some(device) = member.strip_prefix("device:") {
        (!device.is_empty() && !device.contains('/')).then(|| Some(DeviceId::from(device)))
    } else {
        member.strip_prefix("user:").map(|_| None)
    }
}
