//! The content service (T2, D2, A1–A3, C5, S13): uploads, replacements,
//! renames, deletions and copy-down of content items, their thumbnails and
//! the blobs devices fetch.
//!
//! Rules:
//! - an upload is streamed to disk and hashed as it arrives (never held in
//!   memory), cut off at `max_upload_bytes`; its type comes from the bytes;
//!   a refused or broken upload leaves no file and no record; duration and
//!   resolution come from GStreamer's discoverer where the media has them;
//! - identical bytes are stored once; each upload still gets its own item;
//! - Contributor and above upload and delete items at nodes inside their
//!   domain; actors see items inside their domain and at the nodes above
//!   it, which are usable there (T2) but changed only from above;
//! - replacing an item's bytes is a content change for approval (A3); a
//!   rename is not; every write obeys the restricted-node rule (A1);
//! - an item a template shows, an access group holds, a playlist plays or a
//!   schedule defaults to is not deleted; a blob goes when no item uses it;
//! - copy-down (A2): a Contributor+ who sees an approved item of a
//!   restricted node copies it into a non-restricted node strictly below
//!   it, inside their domain; the copy is active and names its source.
//!
//! Owns: these decisions, each in one store transaction with the reads it
//! rests on; the audit entries; writing blobs and thumbnails *before* the
//! record transaction (they are content-addressed, so an unused one is
//! removed, never wrong) and removing unused blobs after it. Must not: hold
//! a transaction across a blob write or a probe.

use std::path::PathBuf;

use axum::body::Bytes;
use futures_util::Stream;
use signet_common::approval::{Change, ItemApproval};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};
use signet_common::permissions::{NodeTree, Role};

use super::approval::{self, ApprovalError};
use super::blobs::Pin;
use super::inspect::{InspectError, inspect};
use super::media::{self, MediaInfo, ProbeError};
use super::range::{self, RangeAnswer};
use super::repo::{self, Items};
use super::view::UploadQuery;
use super::visibility::{Audience, GroupsRefused, Holders, Viewer, check_groups_in};
use super::{
    BlobError, BlobStore, ContentItem, MAX_ITEM_NAME_LEN, StagedBlob, items_with_hash, thumbnail,
};
use crate::app::Hub;
use crate::identity::{Actor, RoleTooLow, new_id};
use crate::store::{StoreError, Tx};
use crate::tenancy::restricted::{self, ItemChange, Restricted};
use crate::tenancy::{Node, load_tree_in};
use crate::values::{InvalidName, Name};

/// Why a content action was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// Absent or not visible (404, T4).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Visible but not changeable by the actor (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The restricted-node rule refuses the change (403, A1).
    #[error(transparent)]
    Restricted(#[from] Restricted),
    /// The actor's role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// A name that is not one (400 `invalid_name`).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A request that is not acceptable as sent (400, with its code).
    #[error("{message}")]
    Invalid {
        /// The stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The change conflicts with the current state (409, with its code).
    #[error("{message}")]
    Conflict {
        /// The stable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// A template sent where media go (415 `unsupported_media_type`).
    #[error("{0}")]
    TemplateNotMedia(&'static str),
    /// The upload failed or was refused by the blob store (413, 415, 400).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The upload's header or structure was refused (400, S13).
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The media cannot be read (400, S13).
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// An approval transition was refused (A3).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// An action the caller may not take on an item it views (403, with
    /// its code: `permission_not_held`, `disabled_by_publish_settings`).
    #[error("{message}")]
    NotAllowed {
        /// The stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The hub failed in a way the client cannot fix (500).
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GroupsRefused> for ContentError {
    fn from(e: GroupsRefused) -> Self {
        let message = e.to_string();
        let invalid = |code| ContentError::Invalid { code, message };
        match e {
            GroupsRefused::NotFound(_) => ContentError::NotFound("permission group"),
            GroupsRefused::NotUsable { .. } => invalid("group_not_usable"),
            GroupsRefused::TooMany => invalid("too_many_groups"),
            GroupsRefused::WouldHide => invalid("would_hide_item"),
            GroupsRefused::Store(e) => ContentError::Store(e),
        }
    }
}

/// A thumbnail to answer (C5).
#[derive(Debug)]
pub struct ThumbnailFile {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
    /// The item's bytes' hash (its ETag).
    pub sha256: Sha256,
}

impl ThumbnailFile {
    /// The stored thumbnail of `item`, if it has one (in the shared
    /// directory, where every replica finds it, X5).
    ///
    /// # Errors
    /// [`ContentError::Internal`] when the file cannot be read.
    pub async fn of(hub: &Hub, item: &ContentItem) -> Result<Option<Self>, ContentError> {
        if !item.thumbnail {
            return Ok(None);
        }
        let found = thumbnail::read(hub.config.shared_dir(), &item.sha256).await;
        let found = found.map_err(|e| ContentError::Internal(e.to_string()))?;
        Ok(found.map(|(bytes, format)| Self {
            bytes,
            media_type: format.media_type(),
            sha256: item.sha256,
        }))
    }
}

/// What to answer for a blob request (D2).
#[derive(Debug)]
pub enum BlobSlice {
    /// The bytes to send.
    Bytes(BlobBytes),
    /// The `Range` lies outside the blob of `size` bytes (416).
    Unsatisfiable {
        /// The blob's size.
        size: u64,
    },
}

/// `len` bytes from `start` of a blob of `size` bytes, from an open file.
#[derive(Debug)]
pub struct BlobBytes {
    /// The open file, positioned at `start`.
    pub file: tokio::fs::File,
    /// The first byte.
    pub start: u64,
    /// How many bytes.
    pub len: u64,
    /// The blob's size.
    pub size: u64,
    /// Whether this answers a `Range` (206).
    pub partial: bool,
}

impl BlobBytes {
    /// The `Content-Range` of a partial answer.
    #[must_use]
    pub fn content_range(&self) -> Option<String> {
        let last = (self.start + self.len).saturating_sub(1);
        let (start, size) = (self.start, self.size);
        self.partial.then(|| format!("bytes {start}-{last}/{size}"))
    }
}

/// The items `actor` may view: inside its domain and above it (T2), as
/// [`super::visibility`] allows (M1, P6).
///
/// # Errors
/// When the store fails.
pub async fn list(hub: &Hub, actor: &Actor, items: Items) -> Result<Vec<ContentItem>, StoreError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            viewer.items_in(tx, &tree, items)
        })
        .await
}

/// The item `id` if `actor` may view it ([`super::visibility`]).
///
/// # Errors
/// [`ContentError::NotFound`] naming `items`, or a store failure.
pub async fn get(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    items: Items,
) -> Result<ContentItem, ContentError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let found = viewer.item_in(tx, &tree, id, items)?;
            found
                .map(|(item, _)| item)
                .ok_or(ContentError::NotFound(items.what()))
        })
        .await
}

/// The item `id` and its node, for a `change` by `actor` (resolved as
/// `viewer`): viewable (404, M1), at a node inside the actor's domain (403
/// `above`), allowed by A1.
///
/// # Errors
/// [`ContentError`] saying which of these fails.
pub fn changeable_in(
    tx: &mut Tx,
    tree: &NodeTree,
    (actor, viewer): (&Actor, &Viewer),
    id: &str,
    items: Items,
    change: ItemChange,
    above: &'static str,
) -> Result<(ContentItem, Node), ContentError> {
    let (item, _) = viewer
        .item_in(tx, tree, id, items)?
        .ok_or(ContentError::NotFound(items.what()))?;
    if !actor.sees(tree, &item.node) {
        return Err(ContentError::Forbidden(above));
    }
    let node = repo::node_in(tx, &item.node)?.ok_or(ContentError::NotFound("node"))?;
    check_restriction(tree, actor, &node, change)?;
    Ok((item, node))
}

/// The node `id` for adding an item by `actor`: inside the actor's domain
/// (404 otherwise) and allowed by A1.
///
/// # Errors
/// [`ContentError`] saying which of these fails.
pub fn add_target_in(
    tx: &mut Tx,
    tree: &NodeTree,
    actor: &Actor,
    id: &NodeId,
) -> Result<Node, ContentError> {
    let node = repo::node_in(tx, id)?
        .filter(|node| actor.sees(tree, &node.id))
        .ok_or(ContentError::NotFound("node"))?;
    check_restriction(tree, actor, &node, ItemChange::Add)?;
    Ok(node)
}

/// A1: refuses a change the restricted node does not allow.
pub(super) fn check_restriction(
    tree: &NodeTree,
    actor: &Actor,
    node: &Node,
    change: ItemChange,
) -> Result<(), Restricted> {
    restricted::check_item_change(tree, node, &actor.user.id, &actor.domain(), change)
}

/// A name for an item (1 to [`MAX_ITEM_NAME_LEN`] bytes), trimmed.
///
/// # Errors
/// [`InvalidName`].
pub fn item_name(raw: &str) -> Result<String, InvalidName> {
    Ok(Name::parse(raw, MAX_ITEM_NAME_LEN)?
        .as_str()
        .trim()
        .to_owned())
}

/// Uploads a media item streamed from `body` (Contributor+): see the
/// module rules. Its approval state follows the uploader's profile (A3).
///
/// # Errors
/// [`ContentError`]; no file and no record are left then.
pub async fn upload<S, E>(
    hub: &Hub,
    actor: &Actor,
    upload: UploadQuery,
    declared_len: Option<u64>,
    body: S,
) -> Result<ContentItem, ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    actor.require(Role::Contributor)?;
    let name = item_name(&upload.name)?;
    let (wanted, settings) = upload.audience()?;
    let viewer = Viewer::load(hub, actor)?;
    let sees = |tx: &mut Tx| {
        let (tree, _) = load_tree_in(tx)?;
        if !actor.sees(&tree, &upload.node) {
            return Err(ContentError::NotFound("node"));
        }
        let allowed_groups = check_groups_in(tx, &tree, actor, &upload.node, &wanted)?;
        let audience = Audience {
            node: &upload.node,
            owner: &actor.user.id,
            allowed_groups: &allowed_groups,
        };
        viewer.keeps_sight(&tree, &audience, &Holders::new())?;
        Ok(allowed_groups)
    };
    let allowed_groups = hub.store.transact(sees).await?;
    let blobs = BlobStore::new(hub.config.shared_dir());
    let (staged, media) = stage_media(hub, &blobs, declared_len, body).await?;
    let thumbnail = render_thumbnail(hub, &staged, &media).await;
    let add_target = |tx: &mut Tx| {
        let (tree, _) = load_tree_in(tx)?;
        add_target_in(tx, &tree, actor, &upload.node)
    };
    hub.store.transact(add_target).await?;
    let (sha256, id, now) = (staged.sha256, ItemId::new(new_id("c-")), hub.now());
    let item = ContentItem {
        id,
        node: upload.node.clone(),
        name,
        kind: staged.detected.kind,
        sha256,
        size: staged.size,
        media_type: staged.detected.media_type.to_owned(),
        created_by: actor.user.id.clone(),
        created_at: now,
        duration_ms: media.duration_ms,
        width: media.width,
        height: media.height,
        approval: ItemApproval::created(approval::profile(actor), sha256),
        approval_hash: sha256,
        revision: 1,
        source: None,
        updated_at: now,
        updated_by: actor.user.id.clone(),
        thumbnail: false,
        allowed_groups,
        settings,
    };
    let pin = blobs.pin(&sha256);
    blobs.commit(staged).await?;
    let item = ContentItem {
        thumbnail: thumbnail::store(hub.config.shared_dir(), &sha256, thumbnail).await,
        ..item
    };
    let written = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            add_target_in(tx, &tree, actor, &item.node)?;
            check_groups_in(tx, &tree, actor, &item.node, &wanted)?;
            repo::put_item(tx, &item, None)?;
            let detail = serde_json::json!({"name": item.name, "sha256": item.sha256,
                "size": item.size, "media_type": item.media_type});
            repo::record_on(tx, actor, now, "content.upload", &item, detail)?;
            Ok::<_, ContentError>(((), None))
        })
        .await;
    settle_blobs(hub, pin, &sha256, written).await?;
    Ok(item)
}

/// Streams a media body into a staged blob (D2): refused early when its
/// declared length is over `max_upload_bytes`, cut off there when it lies,
/// refused when it is no known media type or a template (those are written
/// at `/api/v1/templates`, where they are validated, D6); then its pixel
/// count is checked and its duration and resolution read where the type has
/// them (S13). A refusal leaves no file.
async fn stage_media<S, E>(
    hub: &Hub,
    blobs: &BlobStore,
    declared_len: Option<u64>,
    body: S,
) -> Result<(StagedBlob, MediaInfo), ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let limit = hub.config.max_upload_bytes;
    if declared_len.is_some_and(|n| n > limit) {
        return Err(BlobError::TooLarge { limit }.into());
    }
    let staged = blobs.stage(body, limit).await?;
    if staged.detected.kind == ItemKind::Template {
        return Err(ContentError::TemplateNotMedia(
            "templates are created and saved at /api/v1/templates, where they are validated (D6)",
        ));
    }
    // S13: the pixel count from the header and the container structure,
    // before the discoverer decodes anything.
    if let Some(path) = staged.path() {
        let (path, media_type) = (path.to_owned(), staged.detected.media_type);
        let max_pixels = hub.config.max_image_pixels;
        tokio::task::spawn_blocking(move || inspect(&path, media_type, max_pixels))
            .await
            .map_err(|e| ContentError::Internal(e.to_string()))??;
    }
    // S13: video and audio the discoverer cannot read are refused.
    let media = match staged.path() {
        Some(path) => media::probe(path, staged.detected.kind, staged.size).await?,
        None => MediaInfo::default(),
    };
    Ok((staged, media))
}

/// The thumbnail of a staged upload (C5), rendered before any transaction
/// (it may take seconds); `None` when there is none.
async fn render_thumbnail(
    hub: &Hub,
    staged: &StagedBlob,
    media: &MediaInfo,
) -> Option<thumbnail::Thumbnail> {
    let path = staged.path()?;
    thumbnail::render(
        hub.config.shared_dir(),
        &staged.sha256,
        path,
        staged.size,
        staged.detected.kind,
        staged.detected.media_type,
        media,
    )
    .await
}

/// Removes the blob `sha256` when no item uses it any more.
///
/// # Errors
/// When the store or the disk fails.
pub async fn drop_unused_blob(hub: &Hub, sha256: &Sha256) -> Result<(), ContentError> {
    let (store, hash) = (hub.store.clone(), *sha256);
    let unused = move || Ok::<_, ContentError>(items_with_hash(&store, &hash)?.is_empty());
    BlobStore::new(hub.config.shared_dir())
        .remove_unused(sha256, unused)
        .await
}

/// Ends a write that names blob `staged`, made while `pin` kept the blob
/// from a concurrent clean-up: unpins it, then removes the blob no record
/// names any more — `staged` when the write failed (its error is returned),
/// the blob the write replaced (`Some`) when it succeeded.
///
/// # Errors
/// The write's own error, or the store's or the disk's while cleaning up.
pub async fn settle_blobs<T, E: From<ContentError>>(
    hub: &Hub,
    pin: Pin,
    staged: &Sha256,
    written: Result<(T, Option<Sha256>), E>,
) -> Result<T, E> {
    drop(pin); // the record names the blob now, or never will
    match written {
        Ok((value, replaced)) => {
            if let Some(old) = replaced.filter(|old| old != staged) {
                drop_unused_blob(hub, &old).await?;
            }
            Ok(value)
        }
        Err(e) => {
            drop_unused_blob(hub, staged).await?;
            Err(e)
        }
    }
}

/// The 403 message for changing an item from below its node (T2).
pub(super) const CHANGED_FROM_ABOVE: &str =
    "an item above the caller's domain is changed from there (T2)";

/// Replaces the bytes of media item `id` (Contributor+, inside the
/// actor's domain, A1), streamed like an upload. New bytes are a content
/// change (A3); the same bytes change nothing.
///
/// # Errors
/// [`ContentError`]; the item is unchanged then.
pub async fn replace<S, E>(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    declared_len: Option<u64>,
    body: S,
) -> Result<ContentItem, ContentError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    actor.require(Role::Contributor)?;
    if get(hub, actor, id, Items::Any).await?.kind == ItemKind::Template {
        return Err(ContentError::TemplateNotMedia(
            "templates are saved at /api/v1/templates/{id}, where they are validated (D6)",
        ));
    }
    let viewer = Viewer::load(hub, actor)?;
    let blobs = BlobStore::new(hub.config.shared_dir());
    let (staged, media) = stage_media(hub, &blobs, declared_len, body).await?;
    let thumbnail = render_thumbnail(hub, &staged, &media).await;
    let changeable = |tx: &mut Tx| {
        let (tree, _) = load_tree_in(tx)?;
        changeable_in(
            tx,
            &tree,
            (actor, &viewer),
            id,
            Items::Any,
            ItemChange::Edit,
            CHANGED_FROM_ABOVE,
        )
    };
    let (current, _) = hub.store.transact(changeable).await?;
    if staged.sha256 == current.sha256 {
        return Ok(current);
    }
    let (sha256, kind, media_type, size) = (
        staged.sha256,
        staged.detected.kind,
        staged.detected.media_type,
        staged.size,
    );
    let pin = blobs.pin(&sha256);
    blobs.commit(staged).await?;
    let has_thumbnail = thumbnail::store(hub.config.shared_dir(), &sha256, thumbnail).await;
    let now = hub.now();
    let written = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (old, node) = changeable_in(
                tx,
                &tree,
                (actor, &viewer),
                id,
                Items::Any,
                ItemChange::Edit,
                CHANGED_FROM_ABOVE,
            )?;
            if old.sha256 == sha256 {
                return Ok((old, None));
            }
            let transition =
                approval::saved(&old, actor, Change::Content, sha256, node.strict_feeds)?;
            let item = ContentItem {
                approval: transition.approval,
                kind,
                media_type: media_type.to_owned(),
                sha256,
                approval_hash: sha256,
                size,
                duration_ms: media.duration_ms,
                width: media.width,
                height: media.height,
                revision: old.revision.saturating_add(1),
                updated_at: now,
                updated_by: actor.user.id.clone(),
                thumbnail: has_thumbnail,
                ..old.clone()
            };
            repo::put_item(tx, &item, Some(&old))?;
            repo::close_request(tx, &item.id);
            let detail = serde_json::json!({"sha256": {"from": old.sha256, "to": item.sha256},
                "size": item.size, "media_type": item.media_type, "revision": item.revision,
                "approval": {"from": transition.from, "to": item.approval.state()}});
            repo::record_on(tx, actor, now, "content.replace", &item, detail)?;
            Ok::<_, ContentError>((item, Some(old.sha256)))
        })
        .await;
    settle_blobs(hub, pin, &sha256, written).await
}

/// Deletes item `id` (media or template, as `items` says) for `actor`:
/// Contributor+, inside the actor's domain, allowed by A1, used by nothing
/// (409); the blob goes when no other item uses it, and so do its
/// renditions ([`super::renditions`]).
///
/// # Errors
/// [`ContentError`]; nothing changed then.
pub async fn delete(hub: &Hub, actor: &Actor, id: &str, items: Items) -> Result<(), ContentError> {
    actor.require(Role::Contributor)?;
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    let above = "an item above the caller's domain can only be deleted from there (T2)";
    let (sha256, renditions) = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let who = (actor, &viewer);
            let (item, _) = changeable_in(tx, &tree, who, id, items, ItemChange::Delete, above)?;
            let users = repo::users_of_in(tx, &item.id)?;
            if !users.is_empty() {
                return Err(ContentError::Conflict {
                    code: "item_in_use",
                    message: format!(
                        "{} is still used by {}: remove it there first",
                        item.id,
                        users.join(", ")
                    ),
                });
            }
            repo::remove_item(tx, &item)?;
            let renditions = super::renditions::repo::remove_of_item_in(tx, &item.id)?;
            let detail = serde_json::json!({"name": item.name, "sha256": item.sha256});
            repo::record_on(tx, actor, now, "content.delete", &item, detail)?;
            Ok((item.sha256, renditions))
        })
        .await?;
    for rendition in &renditions {
        drop_unused_blob(hub, rendition).await?;
    }
    drop_unused_blob(hub, &sha256).await
}

/// The thumbnail of item `id` that `actor` sees (C5).
///
/// # Errors
/// [`ContentError::NotFound`] when the item is not visible or has none.
pub async fn thumbnail(hub: &Hub, actor: &Actor, id: &str) -> Result<ThumbnailFile, ContentError> {
    let item = get(hub, actor, id, Items::Any).await?;
    ThumbnailFile::of(hub, &item)
        .await?
        .ok_or(ContentError::NotFound("thumbnail"))
}

/// The blob `sha256`, whole or the one `Range` asked for (D2); the bytes
/// are then streamed from the file.
///
/// # Errors
/// [`ContentError::NotFound`] when the blob is absent; disk failures.
pub async fn open_blob(
    blobs: &BlobStore,
    sha256: &Sha256,
    range: Option<&str>,
) -> Result<BlobSlice, ContentError> {
    use tokio::io::AsyncSeekExt as _;
    let path: PathBuf = blobs.path_of(sha256);
    let internal = |e: std::io::Error| ContentError::Internal(e.to_string());
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ContentError::NotFound("content"));
        }
        Err(e) => return Err(internal(e)),
    };
    let size = file.metadata().await.map_err(internal)?.len();
    let (start, len, partial) = match range::answer(range, size) {
        RangeAnswer::Full => (0, size, false),
        RangeAnswer::Partial { start, end } => (start, end - start + 1, true),
        RangeAnswer::Unsatisfiable => return Ok(BlobSlice::Unsatisfiable { size }),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(internal)?;
    }
    Ok(BlobSlice::Bytes(BlobBytes {
        file,
        start,
        len,
        size,
        partial,
    }))
}
