//! Copy-down (A2): a Contributor+ who sees an approved item of a restricted
//! node copies it into a non-restricted node strictly below it, inside
//! their domain. The copy gets a new id, is active, names its source and
//! source revision, and belongs to the destination. Copying from a
//! non-restricted node is refused: a copy starts active, so it would
//! launder unapproved content.
//!
//! Owns: that decision, in one transaction with the reads it rests on, and
//! its audit entry. Must not: write records other than through
//! [`super::repo`].

use signet_common::approval::ItemApproval;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};
use signet_common::permissions::{NodeTree, Role};

use super::repo::{self, Items};
use super::service::{ContentError, check_restriction, item_name};
use super::view::CopyRequest;
use super::visibility::Viewer;
use super::{ContentItem, CopySource};
use crate::app::Hub;
use crate::identity::{Actor, new_id};
use crate::store::Tx;
use crate::tenancy::restricted::ItemChange;
use crate::tenancy::{Node, load_tree_in};

/// A2: copies item `id` (of `items`) into `request.node`: see the module
/// rules. The copy is active and names its source and revision.
///
/// # Errors
/// [`ContentError`]; nothing changed then.
pub async fn copy(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    items: Items,
    request: CopyRequest,
) -> Result<ContentItem, ContentError> {
    actor.require(Role::Contributor)?;
    let name = request.name.as_deref().map(item_name).transpose()?;
    let (copy_id, now) = (ItemId::new(new_id("c-")), hub.now());
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (source, _) = viewer
                .item_in(tx, &tree, id, items)?
                .ok_or(ContentError::NotFound(items.what()))?;
            let source_node =
                repo::node_in(tx, &source.node)?.ok_or(ContentError::NotFound("node"))?;
            check_copy_source(&source, &source_node)?;
            let destination = copy_destination_in(tx, &tree, actor, &request.node, &source_node)?;
            let template = match source.kind {
                ItemKind::Template => {
                    Some(repo::template_in(tx, &source.id)?.ok_or_else(|| {
                        ContentError::Internal(format!("template {} has no document", source.id))
                    })?)
                }
                _ => None,
            };
            let copy = ContentItem {
                id: copy_id.clone(),
                node: destination.id.clone(),
                name: name.clone().unwrap_or_else(|| source.name.clone()),
                created_by: actor.user.id.clone(),
                created_at: now,
                approval: ItemApproval::copied(source.approval_hash),
                revision: 1,
                source: Some(CopySource {
                    item: source.id.clone(),
                    revision: source.revision,
                }),
                updated_at: now,
                updated_by: actor.user.id.clone(),
                ..source.clone()
            };
            repo::put_item(tx, &copy, None)?;
            if let Some(template) = &template {
                repo::put_template(tx, &copy.id, template)?;
            }
            let detail = serde_json::json!({"source": source.id,
                "source_revision": source.revision, "source_node": source.node,
                "name": copy.name});
            repo::record_on(tx, actor, now, "content.copy", &copy, detail)?;
            Ok(copy)
        })
        .await
}

/// A2: only approved masters of restricted nodes are copied (a copy starts
/// active, so anything else would launder unapproved content).
fn check_copy_source(source: &ContentItem, node: &Node) -> Result<(), ContentError> {
    let not_approved = |message: String| ContentError::Conflict {
        code: "source_not_approved",
        message,
    };
    if !node.restricted {
        return Err(ContentError::Conflict {
            code: "source_not_restricted",
            message: "only items of restricted nodes are copied (A2); a copy starts approved"
                .into(),
        });
    }
    let Some(approved) = source.approval.approved_hash() else {
        return Err(not_approved(format!(
            "{} is {:?}: only approved masters are copied (A2, A3)",
            source.id,
            source.approval.state()
        )));
    };
    if *approved != source.approval_hash {
        return Err(not_approved(format!(
            "{}'s current version is not the approved one",
            source.id
        )));
    }
    Ok(())
}

/// A2: the destination of a copy — a non-restricted node strictly below the
/// source's node, inside the actor's domain, allowed by A1.
fn copy_destination_in(
    tx: &mut Tx,
    tree: &NodeTree,
    actor: &Actor,
    id: &NodeId,
    source_node: &Node,
) -> Result<Node, ContentError> {
    let destination = repo::node_in(tx, id)?
        .filter(|node| actor.sees(tree, &node.id))
        .ok_or(ContentError::NotFound("destination node"))?;
    if destination.restricted {
        return Err(ContentError::Invalid {
            code: "destination_restricted",
            message: "copies go into a non-restricted node (A2)".into(),
        });
    }
    if destination.id == source_node.id || !tree.is_within(&destination.id, &source_node.id) {
        return Err(ContentError::Invalid {
            code: "destination_not_below",
            message: format!(
                "copies go into a node below the restricted node {} (A2)",
                source_node.id
            ),
        });
    }
    check_restriction(tree, actor, &destination, ItemChange::Add)?;
    Ok(destination)
}
