//! Content items (T2, D2, A1–A8, S7): the content-addressed blob store, the
//! item records that name blobs, their services, and who may fetch a blob.
//!
//! Owns: the `content` and `content_by_hash` trees (written only by
//! [`repo`]), the blob files under `<data>/content/` ([`blobs`]), type
//! detection from the bytes ([`detect`]), media metadata and whether video
//! and audio can be read at all ([`media`]), thumbnails ([`thumbnail`]),
//! upload checks before decoding ([`inspect`]), `Range` decisions
//! ([`range`]), template documents and approval requests ([`templates`]),
//! the content, copy-down, approval and template services ([`service`],
//! [`copy`], [`approval`], [`template_service`]) with the data the API shows ([`view`]), and
//! [`device_may_fetch`]. Must not: know HTTP, or hold a whole upload or
//! download in memory.

pub mod approval;
pub mod blobs;
pub mod copy;
pub mod detect;
pub mod inspect;
pub mod media;
pub mod range;
pub mod repo;
pub mod service;
pub mod template_service;
pub mod templates;
pub mod thumbnail;
pub mod view;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::approval::ItemApproval;
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{DeviceId, ItemId, NodeId, UserId};

use crate::access_groups::{self, MemberRef};
use crate::store::{Store, StoreError};
use crate::tenancy::{NODE_DEVICES, load_tree};

pub use blobs::{BlobError, BlobStore, StagedBlob};
pub use repo::Items;
pub use view::{ContentView, TemplateView};

/// Tree of content items by id.
pub const CONTENT: &str = "content";
/// Index of items by blob, keyed `{sha256}/{item}` (value: the item id):
/// which records use a blob.
pub const CONTENT_BY_HASH: &str = "content_by_hash";
/// The longest item name, in bytes.
pub const MAX_ITEM_NAME_LEN: usize = 256;

/// A content item: a named use of one blob at one node (T2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentItem {
    /// Stable id (`c-…`), the id access groups and playlists refer to.
    pub id: ItemId,
    /// The node it belongs to; usable there and below (T2).
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// What the bytes are, detected from them.
    pub kind: ItemKind,
    /// The SHA-256 of the bytes: the blob's name (D2, A8).
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// The detected media type, e.g. `video/mp4`.
    pub media_type: String,
    /// Who uploaded it.
    pub created_by: UserId,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// Playing time, for media that have one.
    pub duration_ms: Option<u64>,
    /// Width in pixels, for images and video.
    pub width: Option<u32>,
    /// Height in pixels, for images and video.
    pub height: Option<u32>,
    /// Its approval record (A3): whether it may play, and which version.
    pub approval: ItemApproval,
    /// The hash approval is about (A8): the SHA-256 of the bytes for media;
    /// [`signet_common::approval::Template::content_hash`] for templates,
    /// which leaves data feeds out.
    pub approval_hash: Sha256,
    /// Counts saves, from 1; a copy names the revision it was made from (A2).
    pub revision: u64,
    /// Where it was copied from, if it is a copy (A2).
    pub source: Option<CopySource>,
    /// When it was last saved.
    pub updated_at: DateTime<Utc>,
    /// Who last saved it.
    pub updated_by: UserId,
    /// Whether its bytes have a thumbnail ([`thumbnail`], C5).
    #[serde(default)]
    pub thumbnail: bool,
}

/// The item and revision a copy was made from (A2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopySource {
    /// The source item.
    #[schema(value_type = String)]
    pub item: ItemId,
    /// Its revision when copied.
    pub revision: u64,
}

/// The media items a template item shows in its zones (`source`), which
/// must travel with it in every manifest that lists it; empty for media.
///
/// # Errors
/// When the store fails.
pub fn template_sources(store: &Store, item: &ItemId) -> Result<Vec<ItemId>, StoreError> {
    Ok(templates::load_template(store, item)?
        .map(|template| templates::sources_of(&template))
        .unwrap_or_default())
}

/// The ids of the items stored at `node`.
///
/// # Errors
/// When the store fails.
pub fn items_at(store: &Store, node: &NodeId) -> Result<Vec<ItemId>, StoreError> {
    Ok(store
        .scan::<ContentItem>(CONTENT, "")?
        .into_iter()
        .filter(|item| &item.node == node)
        .map(|item| item.id)
        .collect())
}

/// The key of an item's hash-index record.
#[must_use]
pub fn hash_key(sha256: &Sha256, item: &ItemId) -> String {
    format!("{sha256}/{item}")
}

/// The items whose bytes are the blob `sha256`.
///
/// # Errors
/// When the store fails.
pub fn items_with_hash(store: &Store, sha256: &Sha256) -> Result<Vec<ContentItem>, StoreError> {
    let ids: Vec<ItemId> = store.scan(CONTENT_BY_HASH, &format!("{sha256}/"))?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(item) = store.get::<ContentItem>(CONTENT, id.as_str())? {
            items.push(item);
        }
    }
    Ok(items)
}

/// The node `device` is attached to (the `node_devices` tree, keyed
/// `{node}/{device}`, filled by pairing), if any.
///
/// # Errors
/// When the store fails.
pub fn node_of_device(store: &Store, device: &DeviceId) -> Result<Option<NodeId>, StoreError> {
    let suffix = format!("/{device}");
    Ok(store
        .scan_keys(NODE_DEVICES, "")?
        .into_iter()
        .find_map(|key| key.strip_suffix(&suffix).map(NodeId::from)))
}

/// Whether the hub may serve the blob `sha256` to `device` at `now` (S7:
/// the hub serves content only to devices entitled to it). True iff some
/// item with those bytes is
/// - in one or more access groups, and the device holds a valid
///   entitlement at `now` in one of them (L2, L4, L5:
///   [`access_groups::entitled_to_item`] with the device as member), judged
///   in the country of the node it is attached to, inherited down the tree
///   ([`crate::tenancy::locale_at`], as its assignment states it); or
/// - in no access group, and belongs to the node the device is attached to
///   or one of its ancestors (T2).
///
/// Licensed content (in an access group) never reaches a device through the
/// node half.
///
/// # Errors
/// When the store fails.
pub fn device_may_fetch(
    store: &Store,
    device: &DeviceId,
    sha256: &Sha256,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let items = items_with_hash(store, sha256)?;
    if items.is_empty() {
        return Ok(false);
    }
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let node = node_of_device(store, device)?;
    let (tree, nodes) = load_tree(store)?;
    let country = (node.as_ref()).and_then(|n| crate::tenancy::locale_at(&tree, &nodes, n).country);
    for item in &items {
        let allowed = if access_groups::groups_holding(store, &item.id)?.is_empty() {
            node.as_ref().is_some_and(|n| tree.is_within(n, &item.node))
        } else {
            access_groups::entitled_to_item(store, &member, &item.id, country.as_deref(), now)?
        };
        if allowed {
            return Ok(true);
        }
    }
    Ok(false)
}
