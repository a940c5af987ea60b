//! The approval service (A3–A6): the approval transitions of content items
//! and templates, and who may make them.
//!
//! The state machine itself is [`ItemApproval::apply`] in `signet-common`
//! (copy → active; content change → inactive or active by the saver's
//! profile; request → pending; approve → active; reject → inactive). This
//! service decides who may fire which event:
//! - **request approval** (A5): a Contributor+ whose domain holds the item's
//!   node asks for the current version; the request e-mail goes to the
//!   content-manager address of the item's node, or of its nearest ancestor
//!   that has one. Asking again for the same version re-sends the same mail
//!   (same fields and time) and opens no second request.
//! - **approve / reject** (A6): holders of `approve_content` whose domain
//!   holds the item's node (the node or a node above it). Approval names the
//!   version reviewed (`content_hash`, default: the requested one); a
//!   rejection needs a reason, shown to the requester on the item.
//! - **save** (A3, A4): [`saved`], fired by the content and template
//!   services when an item's bytes or layout change.
//!
//! Every route answers 404 for an item the actor may not view (M1), as
//! for other tenants.
//!
//! Owns: these decisions, their audit entries, the request mail (queued in
//! the same transaction) and waking the mail sender after commit. Must not:
//! write item records other than through [`super::repo`], or refuse
//! anything by changing something.

use chrono::{DateTime, Utc};
use signet_common::approval::{
    ApprovalError as TransitionError, ApprovalEvent, ApprovalProfile, Change, ItemApproval,
    RequestMail, Transition,
};
use signet_common::digest::Sha256;
use signet_common::ids::NodeId;
use signet_common::permissions::{NodeTree, Permission, Role};

use super::ContentItem;
use super::repo::{self, Items};
use super::templates::{ApprovalRequest, request_mail};
use super::view::ApprovalQueue;
use super::visibility::Viewer;
use crate::app::Hub;
use crate::config::Config;
use crate::identity::{Actor, RoleTooLow};
use crate::permission_groups::effective_permissions_of_in;
use crate::store::{Store, StoreError, Tx};
use crate::tenancy::{Node, inherited_locale, load_tree_in};
use chrono_tz::Tz;

/// Why an approval action was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The item (or its node) is absent or not visible (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor may not make this transition here (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The actor's role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// The state machine refuses the event: wrong state, another version,
    /// or a bad rejection reason (409, 400).
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Neither the item's node nor one above it has a content-manager
    /// address to send the request to (409, A5).
    #[error("neither node {0} nor a node above it has a content-manager address (A5)")]
    NoContentManager(NodeId),
    /// The content-manager address cannot be mailed (409).
    #[error("{0}")]
    InvalidContentManager(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An approver's decision on a pending version (A6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve the version reviewed; the requested one when `None`.
    Approve {
        /// The hash of the version the approver reviewed.
        content_hash: Option<Sha256>,
    },
    /// Reject, with a reason shown to the requester.
    Reject {
        /// Why.
        reason: String,
    },
}

/// The approval profile of `actor` (A3).
#[must_use]
pub fn profile(actor: &Actor) -> ApprovalProfile {
    ApprovalProfile {
        requires_approval: actor.user.requires_approval,
    }
}

/// A3, A4: the transition of `item` saved by `actor` with `change`, whose
/// new approval hash is `content_hash`, at a node in `strict_mode` or not.
///
/// # Errors
/// [`ApprovalError::Transition`] when the state machine refuses.
pub fn saved(
    item: &ContentItem,
    actor: &Actor,
    change: Change,
    content_hash: Sha256,
    strict_mode: bool,
) -> Result<Transition, ApprovalError> {
    let event = ApprovalEvent::Saved {
        change,
        content_hash,
        strict_mode,
    };
    Ok(item.approval.apply(&event, profile(actor))?)
}

/// A5: who may request approval of `item` — a Contributor+ whose domain
/// holds the item's node (not one that only sees it from below).
///
/// # Errors
/// [`ApprovalError::RoleTooLow`] or [`ApprovalError::Forbidden`].
pub fn may_request(
    actor: &Actor,
    tree: &NodeTree,
    item: &ContentItem,
) -> Result<(), ApprovalError> {
    actor.require(Role::Contributor)?;
    if !actor.sees(tree, &item.node) {
        return Err(ApprovalError::Forbidden(
            "approval of an item above the caller's domain is requested from there",
        ));
    }
    Ok(())
}

/// A6: who may approve or reject `item` — a holder of `approve_content`
/// whose domain holds the item's node.
///
/// # Errors
/// [`ApprovalError::Forbidden`] saying which half is missing.
pub fn may_decide(
    actor: &Actor,
    tree: &NodeTree,
    item: &ContentItem,
    approves_content: bool,
) -> Result<(), ApprovalError> {
    if !actor.sees(tree, &item.node) {
        return Err(ApprovalError::Forbidden(
            "approvers act on items at nodes inside their domain (A6)",
        ));
    }
    if !approves_content {
        return Err(ApprovalError::Forbidden(
            "needs the approve_content permission (A6)",
        ));
    }
    Ok(())
}

/// A6, C8: the approval queue of `actor` — exactly the pending items they
/// may decide now: viewable (M1), at a node inside their domain, and
/// `approve_content` held (by role or permission group, P4), oldest save
/// first. Whoever lacks the permission gets an empty queue.
///
/// # Errors
/// Store failures.
pub async fn queue(hub: &Hub, actor: &Actor) -> Result<ApprovalQueue, ApprovalError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let approves =
                effective_permissions_of_in(tx, &actor.user)?.contains(Permission::ApproveContent);
            if !approves {
                return Ok(ApprovalQueue {
                    may_approve: false,
                    items: Vec::new(),
                });
            }
            let (tree, _) = load_tree_in(tx)?;
            let mut items: Vec<ContentItem> = viewer
                .items_in(tx, &tree, Items::Any)?
                .into_iter()
                .filter(|i| matches!(i.approval, ItemApproval::Pending { .. }))
                .filter(|i| may_decide(actor, &tree, i, approves).is_ok())
                .collect();
            items.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
            Ok(ApprovalQueue {
                may_approve: true,
                items: items.into_iter().map(Into::into).collect(),
            })
        })
        .await
}

/// A5: requests approval of the current version of the item `id`, queues
/// the request mail and wakes the mail sender.
///
/// # Errors
/// [`ApprovalError`]; nothing changed then.
pub async fn request_approval(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    items: Items,
) -> Result<ContentItem, ApprovalError> {
    let viewer = Viewer::load(hub, actor)?;
    let at = (&hub.store, &*hub.config);
    let item = request_in_store(at, (actor, &viewer), hub.now(), id, items).await?;
    hub.mail_wake.notify_one();
    Ok(item)
}

/// [`request_approval`] on `store` at `now` by `actor` resolved as
/// `viewer`, without waking the sender; the mail's link is under
/// `config`'s `public_url` (M5).
///
/// # Errors
/// As [`request_approval`].
pub async fn request_in_store(
    (store, config): (&Store, &Config),
    (actor, viewer): (&Actor, &Viewer),
    now: DateTime<Utc>,
    id: &str,
    items: Items,
) -> Result<ContentItem, ApprovalError> {
    actor.require(Role::Contributor)?;
    store
        .transact(|tx| {
            let (tree, nodes) = load_tree_in(tx)?;
            let (mut item, _) = viewer
                .item_in(tx, &tree, id, items)?
                .ok_or(ApprovalError::NotFound(items.what()))?;
            may_request(actor, &tree, &item)?;
            let chain = tree.path_to_root(&item.node).into_iter().rev();
            let zone = inherited_locale(chain, &nodes).time_zone.unwrap_or(Tz::UTC);
            let node = repo::node_in(tx, &item.node)?.ok_or(ApprovalError::NotFound("node"))?;
            let event = ApprovalEvent::RequestApproval {
                content_hash: item.approval_hash,
            };
            let transition = item.approval.apply(&event, profile(actor))?;
            let request = match (transition.request_mail, repo::request_in(tx, &item.id)?) {
                (Some(RequestMail::Resend), Some(held))
                    if held.content_hash == item.approval_hash =>
                {
                    ApprovalRequest {
                        sent: held.sent.saturating_add(1),
                        ..held
                    }
                }
                _ => ApprovalRequest {
                    content_hash: item.approval_hash,
                    requested_by: actor.user.id.clone(),
                    requested_by_name: actor.user.name.clone(),
                    requested_at: now,
                    to: content_manager_in(tx, &tree, &node)?,
                    sent: 1,
                },
            };
            let about = (item.id.as_str(), item.name.as_str());
            let mail = request_mail(&request, about, (&node.name, zone), config);
            mail.check()
                .map_err(|e| ApprovalError::InvalidContentManager(e.to_string()))?;
            item.approval = transition.approval;
            repo::put_item(tx, &item, None)?;
            repo::put_request(tx, &item.id, &request)?;
            crate::mail::enqueue_in(tx, mail, now)?;
            let detail = serde_json::json!({"content_hash": request.content_hash,
                "to": request.to, "resend": request.sent > 1});
            repo::record_on(tx, actor, now, "content.request_approval", &item, detail)?;
            Ok(item)
        })
        .await
}

/// The content-manager address for items at `node`: its own, or its
/// nearest ancestor's (A5).
fn content_manager_in(tx: &mut Tx, tree: &NodeTree, node: &Node) -> Result<String, ApprovalError> {
    for id in tree.path_to_root(&node.id) {
        if let Some(email) = repo::node_in(tx, id)?.and_then(|n| n.content_manager_email) {
            return Ok(email);
        }
    }
    Err(ApprovalError::NoContentManager(node.id.clone()))
}

/// A6: an approver's decision on the pending version of the item `id`; the
/// open request is closed. Whether the actor holds `approve_content` is
/// read in the decision's transaction.
///
/// # Errors
/// [`ApprovalError`]; nothing changed then.
pub async fn decide(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    items: Items,
    decision: Decision,
) -> Result<ContentItem, ApprovalError> {
    let approves = |tx: &mut Tx| {
        Ok(effective_permissions_of_in(tx, &actor.user)?.contains(Permission::ApproveContent))
    };
    let viewer = Viewer::load(hub, actor)?;
    decide_in(
        &hub.store,
        (actor, &viewer),
        hub.now(),
        (id, items),
        decision,
        approves,
    )
    .await
}

/// [`decide`] on `store` at `now`, for an actor (resolved as `viewer`)
/// who holds `approve_content` (`approves`) or not.
///
/// # Errors
/// As [`decide`].
pub async fn decide_in_store(
    store: &Store,
    who: (&Actor, &Viewer),
    now: DateTime<Utc>,
    id: &str,
    items: Items,
    decision: Decision,
    approves: bool,
) -> Result<ContentItem, ApprovalError> {
    decide_in(store, who, now, (id, items), decision, |_| Ok(approves)).await
}

/// [`decide`], with `approves` telling inside the transaction whether the
/// actor holds `approve_content`.
async fn decide_in(
    store: &Store,
    (actor, viewer): (&Actor, &Viewer),
    now: DateTime<Utc>,
    (id, items): (&str, Items),
    decision: Decision,
    approves: impl Fn(&mut Tx) -> Result<bool, StoreError>,
) -> Result<ContentItem, ApprovalError> {
    store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (mut item, _) = viewer
                .item_in(tx, &tree, id, items)?
                .ok_or(ApprovalError::NotFound(items.what()))?;
            may_decide(actor, &tree, &item, approves(tx)?)?;
            let (event, action, detail) = match &decision {
                Decision::Approve { content_hash } => {
                    let reviewed = match (content_hash, &item.approval) {
                        (Some(hash), _) => *hash,
                        (None, ItemApproval::Pending { requested_hash }) => *requested_hash,
                        (None, _) => item.approval_hash,
                    };
                    let detail = serde_json::json!({"approved_hash": reviewed});
                    let event = ApprovalEvent::Approve {
                        approved_hash: reviewed,
                    };
                    (event, "content.approve", detail)
                }
                Decision::Reject { reason } => {
                    let detail = serde_json::json!({"reason": reason.trim()});
                    let event = ApprovalEvent::Reject {
                        reason: reason.clone(),
                    };
                    (event, "content.reject", detail)
                }
            };
            item.approval = item.approval.apply(&event, profile(actor))?.approval;
            repo::put_item(tx, &item, None)?;
            repo::close_request(tx, &item.id);
            repo::record_on(tx, actor, now, action, &item, detail)?;
            Ok(item)
        })
        .await
}

#[cfg(test)]
mod tests;
