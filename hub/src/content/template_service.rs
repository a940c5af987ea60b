//! The template service (D6, A1, A3, A4, A8): creating and saving template
//! layouts.
//!
//! Rules:
//! - a template is a content item of kind `template`; its document is
//!   validated on every write ([`Template::validate`], `invalid_template`
//!   with the exact reason), and every zone `source` must name a media item
//!   the actor may view (M1) that is usable at the template's node (T2);
//! - Contributor+ create and save templates at nodes inside their domain,
//!   subject to the restricted-node rule (A1);
//! - a save classifies the change (A3, A4): layout or content → the
//!   approval state follows the saver's profile; feed-only → the state is
//!   kept and a `template.feed_change` audit entry written (in strict mode a
//!   feed-URL change counts as content); nothing changed → nothing written;
//! - the stored bytes (served to devices by hash) always hold the current
//!   document, feeds included; the approval hash leaves feeds out (A8).
//!
//! Owns: these decisions, each in one transaction with the reads it rests
//! on, and their audit entries; the document's bytes are written to the
//! blob store before the transaction (content-addressed) and dropped after
//! it when unused. Deletion, copy-down and approval of templates are the
//! content and approval services' ([`super::service`], [`super::approval`]).

use axum::body::Bytes;
use signet_common::approval::{Change, ItemApproval, Template, classify_change};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};
use signet_common::permissions::{NodeTree, Role};

use super::approval::{self, ApprovalError};
use super::blobs::Pin;
use super::detect::MAX_TEMPLATE_BYTES;
use super::repo::{self, Items};
use super::service::{ContentError, add_target_in, changeable_in, item_name, settle_blobs};
use super::templates::{sources_of, template_bytes};
use super::view::{CreateTemplate, SaveTemplate, TemplateView};
use super::visibility::{Audience, Holders, Viewer, check_groups_in};
use super::{BlobStore, ContentItem};
use crate::app::Hub;
use crate::identity::{Actor, RoleTooLow, new_id};
use crate::store::{StoreError, Tx};
use crate::tenancy::load_tree_in;
use crate::tenancy::restricted::ItemChange;
use crate::values::InvalidName;

/// Why a template action was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The document is not a valid template here (400 `invalid_template`).
    #[error("{0}")]
    Invalid(String),
    /// Refused as any content item would be.
    #[error(transparent)]
    Content(#[from] ContentError),
}

impl From<StoreError> for TemplateError {
    fn from(e: StoreError) -> Self {
        Self::Content(e.into())
    }
}

impl From<RoleTooLow> for TemplateError {
    fn from(e: RoleTooLow) -> Self {
        Self::Content(e.into())
    }
}

impl From<InvalidName> for TemplateError {
    fn from(e: InvalidName) -> Self {
        Self::Content(e.into())
    }
}

impl From<ApprovalError> for TemplateError {
    fn from(e: ApprovalError) -> Self {
        Self::Content(e.into())
    }
}

/// The 403 message for changing a template from below its node (T2).
const CHANGED_FROM_ABOVE: &str = "a template above the caller's domain is changed from there (T2)";

/// The templates `actor` sees, with their current documents.
///
/// # Errors
/// When the store fails or a template has no document.
pub async fn list(hub: &Hub, actor: &Actor) -> Result<Vec<TemplateView>, TemplateError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let mut views = Vec::new();
            for item in viewer.items_in(tx, &tree, Items::Templates)? {
                let template = document_in(tx, &item)?;
                views.push(TemplateView::new(item, template));
            }
            Ok(views)
        })
        .await
}

/// The template `id` that `actor` sees, with its current document.
///
/// # Errors
/// [`ContentError::NotFound`] when absent or not visible.
pub async fn get(hub: &Hub, actor: &Actor, id: &str) -> Result<TemplateView, TemplateError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, _) = viewer
                .item_in(tx, &tree, id, Items::Templates)?
                .ok_or(ContentError::NotFound(Items::Templates.what()))?;
            let template = document_in(tx, &item)?;
            Ok(TemplateView::new(item, template))
        })
        .await
}

fn document_in(tx: &mut Tx, item: &ContentItem) -> Result<Template, TemplateError> {
    repo::template_in(tx, &item.id)?.ok_or_else(|| {
        ContentError::Internal(format!("template {} has no document", item.id)).into()
    })
}

/// Validates `template` for the node `node`: its own rules, and every zone
/// source a media item `viewer` may view (M1), usable at `node` (T2).
fn check_template_in(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    node: &NodeId,
    template: &Template,
) -> Result<(), TemplateError> {
    template
        .validate()
        .map_err(|e| TemplateError::Invalid(e.to_string()))?;
    for source in sources_of(template) {
        let usable = viewer
            .item_in(tx, tree, source.as_str(), Items::Any)?
            .map(|(item, _)| item)
            .filter(|item| tree.is_within(node, &item.node));
        match usable {
            None => {
                return Err(TemplateError::Invalid(format!(
                    "zone source {source} is not a content item usable at node {node} (T2)"
                )));
            }
            Some(item) if item.kind == ItemKind::Template => {
                return Err(TemplateError::Invalid(format!(
                    "zone source {source} is a template; zones show media"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Stores the template's bytes as a blob; returns their hash and size.
/// The returned [`Pin`] keeps the blob until the record naming it is written.
async fn store_bytes(hub: &Hub, template: &Template) -> Result<(Sha256, u64, Pin), TemplateError> {
    let bytes = template_bytes(template).map_err(|e| ContentError::Internal(e.to_string()))?;
    if bytes.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::Invalid(format!(
            "the template encodes to more than {MAX_TEMPLATE_BYTES} bytes"
        )));
    }
    let blobs = BlobStore::new(hub.config.shared_dir());
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    let staged = blobs
        .stage(body, MAX_TEMPLATE_BYTES as u64)
        .await
        .map_err(ContentError::from)?;
    let stored = (staged.sha256, staged.size, blobs.pin(&staged.sha256));
    blobs.commit(staged).await.map_err(ContentError::from)?;
    Ok(stored)
}

/// Creates a template (Contributor+); its approval state follows the
/// creator's profile (A3).
///
/// # Errors
/// [`TemplateError`]; nothing is left then.
pub async fn create(
    hub: &Hub,
    actor: &Actor,
    request: CreateTemplate,
) -> Result<TemplateView, TemplateError> {
    actor.require(Role::Contributor)?;
    let name = item_name(&request.name)?;
    let viewer = Viewer::load(hub, actor)?;
    let checks = |tx: &mut Tx| {
        let (tree, _) = load_tree_in(tx)?;
        let node = add_target_in(tx, &tree, actor, &request.node)?;
        check_template_in(tx, &tree, &viewer, &node.id, &request.template)?;
        let allowed_groups = check_groups_in(tx, &tree, actor, &node.id, &request.allowed_groups)
            .map_err(ContentError::from)?;
        let audience = Audience {
            node: &node.id,
            owner: &actor.user.id,
            allowed_groups: &allowed_groups,
        };
        (viewer.keeps_sight(&tree, &audience, &Holders::new())).map_err(ContentError::from)?;
        Ok::<_, TemplateError>(allowed_groups)
    };
    let allowed_groups = hub.store.transact(checks).await?;
    let (sha256, size, pin) = store_bytes(hub, &request.template).await?;
    let approval_hash = request.template.content_hash();
    let (id, now) = (ItemId::new(new_id("c-")), hub.now());
    let item = ContentItem {
        id,
        node: request.node.clone(),
        name,
        kind: ItemKind::Template,
        sha256,
        size,
        media_type: "application/json".into(),
        created_by: actor.user.id.clone(),
        created_at: now,
        duration_ms: None,
        width: Some(request.template.canvas.width),
        height: Some(request.template.canvas.height),
        approval: ItemApproval::created(approval::profile(actor), approval_hash),
        approval_hash,
        revision: 1,
        source: None,
        updated_at: now,
        updated_by: actor.user.id.clone(),
        thumbnail: false,
        allowed_groups,
        settings: request.settings,
    };
    let written = hub
        .store
        .transact(|tx| {
            checks(tx)?;
            repo::put_item(tx, &item, None)?;
            repo::put_template(tx, &item.id, &request.template)?;
            let detail = serde_json::json!({"name": item.name, "sha256": item.sha256,
                "approval_hash": item.approval_hash, "state": item.approval.state()});
            repo::record_on(tx, actor, now, "template.create", &item, detail)?;
            Ok::<_, TemplateError>(((), None))
        })
        .await;
    settle_blobs(hub, pin, &sha256, written).await?;
    Ok(TemplateView::new(item, request.template))
}

/// What a save would change: the item, its current document and the
/// classified change (A3, A4).
fn classify_in(
    tx: &mut Tx,
    (actor, viewer): (&Actor, &Viewer),
    id: &str,
    request: &SaveTemplate,
) -> Result<(ContentItem, bool, Template, Change), TemplateError> {
    let (tree, _) = load_tree_in(tx)?;
    let (item, node) = changeable_in(
        tx,
        &tree,
        (actor, viewer),
        id,
        Items::Templates,
        ItemChange::Edit,
        CHANGED_FROM_ABOVE,
    )?;
    check_template_in(tx, &tree, viewer, &item.node, &request.template)?;
    let old = document_in(tx, &item)?;
    let change = classify_change(&old, &request.template);
    Ok((item, node.strict_feeds, old, change))
}

/// Saves a new version of template `id` (Contributor+, inside the actor's
/// domain, A1); the approval state follows A3/A4 (see the module rules).
///
/// # Errors
/// [`TemplateError`]; the template is unchanged then.
pub async fn save(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: SaveTemplate,
) -> Result<TemplateView, TemplateError> {
    actor.require(Role::Contributor)?;
    let name = request.name.as_deref().map(item_name).transpose()?;
    let viewer = Viewer::load(hub, actor)?;
    let (item, _, old, change) = hub
        .store
        .transact(|tx| classify_in(tx, (actor, &viewer), id, &request))
        .await?;
    if change == Change::None && name.as_ref().is_none_or(|name| *name == item.name) {
        return Ok(TemplateView::new(item, old));
    }
    let (sha256, size, pin) = store_bytes(hub, &request.template).await?;
    let now = hub.now();
    let written = hub
        .store
        .transact(|tx| {
            let (old_item, strict, old, change) = classify_in(tx, (actor, &viewer), id, &request)?;
            let approval_hash = request.template.content_hash();
            let transition = approval::saved(&old_item, actor, change, approval_hash, strict)?;
            let mut item = ContentItem {
                approval: transition.approval.clone(),
                name: name.clone().unwrap_or_else(|| old_item.name.clone()),
                approval_hash,
                revision: old_item.revision.saturating_add(1),
                updated_at: now,
                updated_by: actor.user.id.clone(),
                ..old_item.clone()
            };
            if change != Change::None {
                item.sha256 = sha256;
                item.size = size;
                item.width = Some(request.template.canvas.width);
                item.height = Some(request.template.canvas.height);
                repo::put_template(tx, &item.id, &request.template)?;
            }
            if !matches!(item.approval, ItemApproval::Pending { .. }) {
                repo::close_request(tx, &item.id);
            }
            repo::put_item(tx, &item, Some(&old_item))?;
            let detail = serde_json::json!({"change": change, "revision": item.revision,
                "approval": {"from": transition.from, "to": item.approval.state()},
                "sha256": item.sha256, "approval_hash": item.approval_hash});
            repo::record_on(tx, actor, now, "template.save", &item, detail)?;
            if transition.audit_feed_change {
                let detail = serde_json::json!({"revision": item.revision, "strict_mode": strict,
                    "feeds": feed_changes(&old, &request.template)});
                repo::record_on(tx, actor, now, "template.feed_change", &item, detail)?;
            }
            let replaced = (item.sha256 != old_item.sha256).then_some(old_item.sha256);
            Ok::<_, TemplateError>((item, replaced))
        })
        .await;
    let item = settle_blobs(hub, pin, &sha256, written).await?;
    Ok(TemplateView::new(item, request.template))
}

/// The feed settings that differ between two versions, per zone (A4 audit).
fn feed_changes(old: &Template, new: &Template) -> Vec<serde_json::Value> {
    new.zones
        .iter()
        .filter_map(|zone| {
            let before = old.zones.iter().find(|z| z.id == zone.id)?;
            (before.feed != zone.feed).then(|| {
                serde_json::json!({
                    "zone": zone.id,
                    "url": {"from": before.feed.as_ref().map(|f| &f.url),
                            "to": zone.feed.as_ref().map(|f| &f.url)},
                    "refresh_secs": {"from": before.feed.as_ref().map(|f| f.refresh_secs),
                                     "to": zone.feed.as_ref().map(|f| f.refresh_secs)},
                    "json_pointer": {"from": before.feed.as_ref().map(|f| &f.json_pointer),
                                     "to": zone.feed.as_ref().map(|f| &f.json_pointer)},
                    "value_changed": before.feed.as_ref().map(|f| &f.last_value)
                        != zone.feed.as_ref().map(|f| &f.last_value),
                })
            })
        })
        .collect()
}
