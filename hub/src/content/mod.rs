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
//! [`copy`], [`approval`], [`template_service`]) with the data the API shows ([`view`]),
//! who views an item and may act on it ([`visibility`], P5, P6, M1, M2),
//! comments on items ([`comments`], M4), the media actions on it — share,
//! rate, favorite, feedback, custom attributes ([`actions`], M3) — and
//! the item-references index the modules above write when they refer to an
//! item ([`refs`]), and renditions of video made by a background job
//! ([`renditions`], M3). Must not: know HTTP, import the modules that refer to
//! items (access groups, schedules: they write [`refs`]), or hold a whole
//! upload or download in memory. Whether a device may fetch a blob is
//! [`crate::access_groups::device_may_fetch`]'s (it rests on entitlements).

pub mod actions;
pub mod approval;
pub mod blobs;
pub mod comments;
pub mod copy;
pub mod detect;
pub mod inspect;
pub mod media;
pub mod range;
pub mod refs;
pub mod renditions;
pub mod repo;
pub mod service;
pub mod settings;
pub mod subjects;
pub mod template_service;
pub mod templates;
pub mod thumbnail;
pub mod view;
pub mod visibility;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::approval::ItemApproval;
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId, PermissionGroupId, UserId};

use crate::store::{Store, StoreError, Tx};

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
    /// Who below Moderator may view it (M1, P6): empty (and for items
    /// stored before this existed) means everyone at its node; otherwise the
    /// members, transitively, of these permission groups.
    #[serde(default)]
    pub allowed_groups: BTreeSet<PermissionGroupId>,
    /// Its publish settings (M2, P5); defaults for items stored before.
    #[serde(default)]
    pub settings: visibility::Settings,
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

/// The ids of the items stored at `node`, read in `tx` (a node holding
/// any is not deleted: T2).
///
/// # Errors
/// When the store fails.
pub fn items_at_in(tx: &mut Tx, node: &NodeId) -> Result<Vec<ItemId>, StoreError> {
    Ok(tx
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
