//! Which devices receive a group's manifest, for the optional document
//! fields only some agents read (M3 renditions; see
//! [`signet_common::documents`]): a node's manifest reaches every device
//! attached in its subtree, an access group's every device member (current
//! or not: counting too many only keeps a field out).
//!
//! Owns: that reading of the scope rules of [`super`], for
//! [`super::build::manifest`]. Must not: write.

use signet_common::ids::DeviceId;

use crate::access_groups::MEMBERS;
use crate::content::renditions::readers;
use crate::groups::GroupRef;
use crate::store::{Store, StoreError};
use crate::tenancy::{NODE_DEVICES, load_tree};

/// The devices that receive `group`'s manifest.
///
/// # Errors
/// When the store fails.
pub fn receivers(store: &Store, group: &GroupRef) -> Result<Vec<DeviceId>, StoreError> {
    match group {
        GroupRef::Node(node) => {
            let (tree, _) = load_tree(store)?;
            Ok(store
                .scan_keys(NODE_DEVICES, "")?
                .into_iter()
                .filter_map(|key| {
                    let (at, device) = key.split_once('/')?;
                    tree.is_within(&at.into(), node)
                        .then(|| DeviceId::from(device))
                })
                .collect())
        }
        GroupRef::AccessGroup(id) => Ok(store
            .scan_keys(MEMBERS, &format!("{id}/device:"))?
            .into_iter()
            .filter_map(|key| {
                key.rsplit_once("/device:")
                    .map(|(_, device)| DeviceId::from(device))
            })
            .collect()),
    }
}

/// Whether every device that receives `group`'s manifest reads renditions
/// ([`readers`]); a manifest lists them only then.
///
/// # Errors
/// When the store fails.
pub fn read_renditions(store: &Store, group: &GroupRef) -> Result<bool, StoreError> {
    readers::all_read(store, &receivers(store, group)?)
}
