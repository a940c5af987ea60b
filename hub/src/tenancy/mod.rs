//! The tenancy tree (T1–T4): node records and the tree they form.
//!
//! Owns: node records (written only by [`put_node`]), building the
//! [`NodeTree`] from them, the facts the T1 rules need (does a node hold
//! devices) and the node views. The service that changes nodes by the
//! T1–T4 rules is [`crate::nodes`], above the domains it asks. Must not:
//! know HTTP, or import the domains above it (identity included).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::permissions::NodeTree;

use crate::store::{Store, StoreError, Tx};

pub mod restricted;
pub mod views;

pub use views::{CreateNode, NodeView, UpdateNode};

/// Tree of nodes by id.
pub const NODES: &str = "nodes";
/// Tree of the devices attached to each node, keyed `{node}/{device}`
/// (filled by pairing, issue 5; read by the T1 rule now).
pub const NODE_DEVICES: &str = "node_devices";
/// Tree of paired devices by id (their records, written by
/// `crate::devices`, which re-exports it); named here so the attachment
/// look-up below reads a device's node by key, not by scanning
/// [`NODE_DEVICES`] (issue 20).
pub const DEVICES: &str = "devices";
/// The longest node name, in bytes.
pub const MAX_NODE_NAME_LEN: usize = 128;

/// A node of the tenancy tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Stable id.
    pub id: NodeId,
    /// The parent; `None` only for the one root (T1).
    pub parent: Option<NodeId>,
    /// Display name.
    pub name: String,
    /// Restricted nodes hold master content that can only be copied (A1).
    pub restricted: bool,
    /// Who created it: the owner of a restricted node (A1).
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where approval requests for content at this node go (A5).
    pub content_manager_email: Option<String>,
    /// Strict mode: a feed-URL change deactivates a template too (A4).
    pub strict_feeds: bool,
    /// Whether its creator was a root-level user when they created it: a
    /// restricted node created from the root is changed only from the root
    /// (A1).
    #[serde(default)]
    pub created_at_root_level: bool,
    /// Time zone and location of devices at this node and below, each
    /// field unless a nearer node sets it (D5, L2, U1); stored flat in the
    /// node record.
    #[serde(default, flatten)]
    pub locale: NodeLocale,
}

/// The longest region name, in bytes.
pub const MAX_REGION_LEN: usize = 128;

/// Where devices at a node stand and which clock they read, inherited down
/// the tree: each field from the nearest node on the chain that sets it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeLocale {
    /// The IANA time zone schedules are evaluated in (D5); UTC when no node
    /// on the chain sets one.
    #[serde(default)]
    pub time_zone: Option<Tz>,
    /// ISO 3166-1 alpha-2 country code, upper case (L2, U1).
    #[serde(default)]
    pub country: Option<String>,
    /// Region or state, free text (U1).
    #[serde(default)]
    pub region: Option<String>,
}

/// The locale of devices at the end of `chain` (root first): each field from
/// the nearest node that sets it. Nodes missing from `nodes` are skipped.
#[must_use]
pub fn inherited_locale<'a>(
    chain: impl DoubleEndedIterator<Item = &'a NodeId>,
    nodes: &[Node],
) -> NodeLocale {
    let mut locale = NodeLocale::default();
    for id in chain.rev() {
        let Some(node) = nodes.iter().find(|n| &n.id == id) else {
            continue;
        };
        let own = &node.locale;
        if locale.time_zone.is_none() {
            locale.time_zone = own.time_zone;
        }
        if locale.country.is_none() {
            locale.country.clone_from(&own.country);
        }
        if locale.region.is_none() {
            locale.region.clone_from(&own.region);
        }
    }
    locale
}

/// The locale of devices attached at `node` (L2, U1): [`inherited_locale`]
/// over its chain from the root; the default when `node` is not in `tree`.
/// What the content route and the fleet view judge a device's country by,
/// as its assignment states it.
#[must_use]
pub fn locale_at(tree: &NodeTree, nodes: &[Node], node: &NodeId) -> NodeLocale {
    // Leaf first; `inherited_locale` takes the chain root first.
    let chain = tree.path_to_root(node);
    inherited_locale(chain.into_iter().rev(), nodes)
}

/// [`locale_at`] as the store says now.
///
/// # Errors
/// When the store fails or the stored nodes do not form one tree.
pub fn locale_of(store: &Store, node: &NodeId) -> Result<NodeLocale, StoreError> {
    let (tree, nodes) = load_tree(store)?;
    Ok(locale_at(&tree, &nodes, node))
}

/// The country code as stored: two ASCII letters, upper case; `None` when
/// `country` is not one.
#[must_use]
pub fn normalize_country(country: &str) -> Option<String> {
    let country = country.trim();
    (country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| country.to_ascii_uppercase())
}

/// Loads every node and builds the tree.
///
/// # Errors
/// When the store fails or the stored nodes do not form one tree.
pub fn load_tree(store: &Store) -> Result<(NodeTree, Vec<Node>), StoreError> {
    let nodes: Vec<Node> = store.scan(NODES, "")?;
    build_tree(nodes)
}

/// [`load_tree`] inside a transaction: a decision that rests on the tree
/// (who sees what, where a node hangs) commits only if the tree is
/// unchanged when it does.
///
/// # Errors
/// When the store fails or the stored nodes do not form one tree.
pub fn load_tree_in(tx: &mut Tx) -> Result<(NodeTree, Vec<Node>), StoreError> {
    let nodes: Vec<Node> = tx.scan(NODES, "")?;
    build_tree(nodes)
}

fn build_tree(nodes: Vec<Node>) -> Result<(NodeTree, Vec<Node>), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: NODES,
        key: String::new(),
        reason,
    };
    let root = nodes
        .iter()
        .find(|n| n.parent.is_none())
        .ok_or_else(|| corrupt("no root node".into()))?;
    let mut tree = NodeTree::new(root.id.clone());
    // Parents before children: repeat passes until every node is placed
    // (bounded: each pass places at least one node or the data is corrupt).
    let mut pending: Vec<&Node> = nodes.iter().filter(|n| n.parent.is_some()).collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|node| match &node.parent {
            Some(parent) if tree.contains(parent) => {
                tree.add_node(node.id.clone(), parent).is_err()
            }
            _ => true,
        });
        if pending.len() == before {
            return Err(corrupt(format!(
                "{} nodes do not reach the root",
                pending.len()
            )));
        }
    }
    Ok((tree, nodes))
}

/// Whether any device is attached to `node`.
///
/// # Errors
/// When the store fails.
pub fn holds_devices(store: &Store, node: &NodeId) -> Result<bool, StoreError> {
    let prefix = format!("{node}/");
    Ok(!store
        .scan::<serde_json::Value>(NODE_DEVICES, &prefix)?
        .is_empty())
}

/// [`holds_devices`] inside a transaction.
///
/// # Errors
/// When the store fails.
pub fn holds_devices_in(tx: &mut Tx, node: &NodeId) -> Result<bool, StoreError> {
    Ok(!tx.scan_keys(NODE_DEVICES, &format!("{node}/"))?.is_empty())
}

/// The node `device` is attached to ([`NODE_DEVICES`], keyed
/// `{node}/{device}`, filled by pairing), if any.
///
/// O(1) reads for a device with a record: its [`DEVICES`] record's node,
/// verified against its [`NODE_DEVICES`] entry (the devices repo writes and
/// deletes both in one transaction). Only a device without a record (an
/// unknown id, or one attached by writing [`NODE_DEVICES`] alone, as tests,
/// benches and the fleet fixture do) costs a scan of every attachment.
///
/// # Errors
/// When the store fails.
pub fn node_of_device(store: &Store, device: &DeviceId) -> Result<Option<NodeId>, StoreError> {
    if let Some(record) = store.get::<AttachedAt>(DEVICES, device.as_str())? {
        let Some(key) = attachment_key(&record.node, device) else {
            return Ok(None);
        };
        let attached = store
            .get::<serde::de::IgnoredAny>(NODE_DEVICES, &key)?
            .is_some();
        return Ok(attached.then_some(record.node));
    }
    Ok(scan_for(store.scan_keys(NODE_DEVICES, "")?, device))
}

/// [`node_of_device`] read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn node_of_device_in(tx: &mut Tx, device: &DeviceId) -> Result<Option<NodeId>, StoreError> {
    if let Some(record) = tx.get::<AttachedAt>(DEVICES, device.as_str())? {
        let Some(key) = attachment_key(&record.node, device) else {
            return Ok(None);
        };
        let attached = tx.contains(NODE_DEVICES, &key)?;
        return Ok(attached.then_some(record.node));
    }
    Ok(scan_for(tx.scan_keys(NODE_DEVICES, "")?, device))
}

/// What [`node_of_device`] reads of a device record: where it is attached
/// (the other fields are the devices module's).
#[derive(Deserialize)]
struct AttachedAt {
    /// The node it is attached to.
    node: NodeId,
}

/// The [`NODE_DEVICES`] key of `device` at `node`; `None` for a node id
/// that cannot name an entry (empty, or with a `/`).
fn attachment_key(node: &NodeId, device: &DeviceId) -> Option<String> {
    let node = node.as_str();
    (!node.is_empty() && !node.contains('/')).then(|| format!("{node}/{device}"))
}

/// The node of the [`NODE_DEVICES`] key among `keys` that names `device`:
/// the fallback for a device without a record, O(N).
fn scan_for(keys: Vec<String>, device: &DeviceId) -> Option<NodeId> {
    let suffix = format!("/{device}");
    keys.into_iter()
        .find_map(|key| key.strip_suffix(&suffix).map(NodeId::from))
}

/// Every attached device with its node ([`NODE_DEVICES`] keys
/// `{node}/{device}`), by device id.
///
/// # Errors
/// When the store fails.
pub fn attached_devices(store: &Store) -> Result<Vec<(DeviceId, NodeId)>, StoreError> {
    Ok(attachments(store.scan_keys(NODE_DEVICES, "")?))
}

/// [`attached_devices`] read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn attached_devices_in(tx: &mut Tx) -> Result<Vec<(DeviceId, NodeId)>, StoreError> {
    Ok(attachments(tx.scan_keys(NODE_DEVICES, "")?))
}

/// The devices and nodes [`NODE_DEVICES`] keys name, by device id.
fn attachments(keys: Vec<String>) -> Vec<(DeviceId, NodeId)> {
    let mut devices: Vec<(DeviceId, NodeId)> = (keys.into_iter())
        .filter_map(|key| {
            key.split_once('/')
                .map(|(node, device)| (DeviceId::from(device), NodeId::from(node)))
        })
        .collect();
    devices.sort();
    devices
}

/// Stores `node`: the one writer of node records.
///
/// # Errors
/// Never in practice (a node always encodes).
pub fn put_node(tx: &mut Tx, node: &Node) -> Result<(), StoreError> {
    tx.put(NODES, node.id.as_str(), node)
}
