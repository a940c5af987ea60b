//! The approval workflow and copy-down of items (A2–A6), shared by the
//! `/api/v1/content/{id}/…` and `/api/v1/templates/{id}/…` routes.
//!
//! Rules:
//! - **copy** (A2): a Contributor+ who sees an item of a restricted node
//!   copies it into a non-restricted node strictly below that node, inside
//!   their domain. Only approved (active) masters are copied; the copy is
//!   active, names its source and source revision, and belongs to the
//!   destination. Copying from a non-restricted node is refused: a copy
//!   starts active, so it would launder unapproved content.
//! - **request approval** (A5): a Contributor+ whose domain holds the item's
//!   node asks for the current version; the request e-mail goes to the
//!   content-manager address of the item's node, or of its nearest ancestor
//!   that has one. Asking again for the same version re-sends the same mail
//!   (same fields and time) and opens no second request.
//! - **approve / reject** (A6): holders of `approve_content` whose domain
//!   holds the item's node (the node or a node above it). Approval names the
//!   version reviewed (`content_hash`, default: the requested one); a
//!   rejection needs a reason, shown to the requester on the item.
//!
//! Every refusal is a clear error and changes nothing; every change is
//! audited.

use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use signet_common::approval::{
    ApprovalError, ApprovalEvent, ApprovalProfile, ItemApproval, RequestMail,
};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};
use signet_common::permissions::{Permission, Role};

use super::content::{ContentView, check_name, check_restriction, load_visible};
use super::{ApiError, AppState, Caller};
use crate::content::templates::{
    APPROVAL_REQUESTS, ApprovalRequest, TEMPLATES, load_template, request_mail,
};
use crate::content::{CONTENT, CONTENT_BY_HASH, ContentItem, CopySource, hash_key};
use crate::identity::new_id;
use crate::mail;
use crate::permission_groups::effective_permissions_of;
use crate::store::WriteBatch;
use crate::tenancy::restricted::ItemChange;
use crate::tenancy::{NODES, Node};

/// Which items a route acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Items {
    /// Any content item (`/api/v1/content/…`).
    Any,
    /// Templates only (`/api/v1/templates/…`); other items are 404 there.
    Templates,
}

impl Items {
    fn what(self) -> &'static str {
        match self {
            Items::Any => "content item",
            Items::Templates => "template",
        }
    }
}

/// Where to copy an item.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The destination: a non-restricted node below the source's node,
    /// inside the caller's domain.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// The copy's name; the source's name when absent.
    pub name: Option<String>,
}

/// The version an approver reviewed.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The hash of the version reviewed; the requested version when absent.
    /// Approval of another version than the one pending is refused (409).
    #[schema(value_type = Option<String>)]
    pub content_hash: Option<Sha256>,
}

/// Why a request is rejected.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Shown to the requester; not blank, at most 2000 characters.
    pub reason: String,
}

/// Loads an item of the right kind that the caller sees.
pub(super) fn load_item(
    state: &AppState,
    caller: &Caller,
    id: &str,
    items: Items,
) -> Result<ContentItem, ApiError> {
    let item = load_visible(state, caller, id).map_err(|_| ApiError::not_found(items.what()))?;
    if items == Items::Templates && item.kind != ItemKind::Template {
        return Err(ApiError::not_found(items.what()));
    }
    Ok(item)
}

/// Loads the node an item belongs to.
pub(super) fn node_of(state: &AppState, item: &ContentItem) -> Result<Node, ApiError> {
    state
        .store
        .get::<Node>(NODES, item.node.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))
}

/// The caller's approval profile (A3).
pub(super) fn profile(caller: &Caller) -> ApprovalProfile {
    ApprovalProfile {
        requires_approval: caller.user.requires_approval,
    }
}

/// Maps a refused approval event to 409 (or 400 for a bad reason).
pub(crate) fn approval_error(e: &ApprovalError) -> ApiError {
    match e {
        ApprovalError::EmptyRejectionReason | ApprovalError::RejectionReasonTooLong { .. } => {
            ApiError::bad_request("invalid_reason", e.to_string())
        }
        ApprovalError::InvalidTransition { .. } => {
            ApiError::conflict("invalid_transition", e.to_string())
        }
        ApprovalError::VersionMismatch { .. } => {
            ApiError::conflict("version_mismatch", e.to_string())
        }
    }
}

/// A2: copies the item `id` into `request.node`.
pub(super) async fn copy(
    state: &AppState,
    caller: &Caller,
    id: &str,
    items: Items,
    request: CopyRequest,
) -> Result<(StatusCode, Json<ContentView>), ApiError> {
    caller.require(Role::Contributor)?;
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    let _write = state.store.write_lock().await;
    let source = load_item(state, caller, id, items)?;
    let source_node = node_of(state, &source)?;
    if !source_node.restricted {
        return Err(ApiError::conflict(
            "source_not_restricted",
            "only items of restricted nodes are copied (A2); a copy starts approved",
        ));
    }
    let Some(approved) = source.approval.approved_hash().copied() else {
        return Err(ApiError::conflict(
            "source_not_approved",
            format!(
                "{} is {:?}: only approved masters are copied (A2, A3)",
                source.id,
                source.approval.state()
            ),
        ));
    };
    if approved != source.approval_hash {
        return Err(ApiError::conflict(
            "source_not_approved",
            format!("{}'s current version is not the approved one", source.id),
        ));
    }
    let destination = state
        .store
        .get::<Node>(NODES, request.node.as_str())?
        .filter(|node| caller.sees(&node.id))
        .ok_or_else(|| ApiError::not_found("destination node"))?;
    if destination.restricted {
        return Err(ApiError::bad_request(
            "destination_restricted",
            "copies go into a non-restricted node (A2)",
        ));
    }
    if destination.id == source_node.id || !caller.tree.is_within(&destination.id, &source_node.id)
    {
        return Err(ApiError::bad_request(
            "destination_not_below",
            format!(
                "copies go into a node below the restricted node {} (A2)",
                source_node.id
            ),
        ));
    }
    check_restriction(caller, &destination, ItemChange::Add)?;
    let template = if source.kind == ItemKind::Template {
        Some(load_template(&state.store, &source.id)?.ok_or_else(|| {
            ApiError::internal(&format!("template {} has no document", source.id))
        })?)
    } else {
        None
    };
    let now = state.clock.now();
    let copy = ContentItem {
        id: ItemId::new(new_id("c-")),
        node: destination.id.clone(),
        name: request
            .name
            .map_or_else(|| source.name.clone(), |name| name.trim().to_owned()),
        created_by: caller.user.id.clone(),
        created_at: now,
        approval: ItemApproval::copied(source.approval_hash),
        revision: 1,
        source: Some(CopySource {
            item: source.id.clone(),
            revision: source.revision,
        }),
        updated_at: now,
        updated_by: caller.user.id.clone(),
        ..source.clone()
    };
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, copy.id.as_str(), &copy)?;
    batch.put(CONTENT_BY_HASH, &hash_key(&copy.sha256, &copy.id), &copy.id)?;
    if let Some(template) = &template {
        batch.put(TEMPLATES, copy.id.as_str(), template)?;
    }
    caller
        .audit(
            state,
            "content.copy",
            copy.id.as_str(),
            Some(copy.node.clone()),
            serde_json::json!({"source": source.id, "source_revision": source.revision,
                "source_node": source.node, "name": copy.name}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(copy.into())))
}

/// The content-manager address for items at `node`: its own, or its nearest
/// ancestor's.
fn content_manager(state: &AppState, caller: &Caller, node: &Node) -> Result<String, ApiError> {
    for id in caller.tree.path_to_root(&node.id) {
        if let Some(email) = state
            .store
            .get::<Node>(NODES, id.as_str())?
            .and_then(|n| n.content_manager_email)
        {
            return Ok(email);
        }
    }
    Err(ApiError::conflict(
        "no_content_manager",
        format!(
            "neither node {} nor a node above it has a content-manager address (A5)",
            node.id
        ),
    ))
}

/// A5: requests approval of the item's current version.
pub(super) async fn request_approval(
    state: &AppState,
    caller: &Caller,
    id: &str,
    items: Items,
) -> Result<Json<ContentView>, ApiError> {
    caller.require(Role::Contributor)?;
    let _write = state.store.write_lock().await;
    let mut item = load_item(state, caller, id, items)?;
    if !caller.sees(&item.node) {
        return Err(ApiError::forbidden(
            "approval of an item above the caller's domain is requested from there",
        ));
    }
    let node = node_of(state, &item)?;
    let transition = item
        .approval
        .apply(
            &ApprovalEvent::RequestApproval {
                content_hash: item.approval_hash,
            },
            profile(caller),
        )
        .map_err(|e| approval_error(&e))?;
    let now = state.clock.now();
    let held: Option<ApprovalRequest> = state.store.get(APPROVAL_REQUESTS, item.id.as_str())?;
    let request = match (transition.request_mail, held) {
        (Some(RequestMail::Resend), Some(held)) if held.content_hash == item.approval_hash => {
            ApprovalRequest {
                sent: held.sent.saturating_add(1),
                ..held
            }
        }
        _ => ApprovalRequest {
            content_hash: item.approval_hash,
            requested_by: caller.user.id.clone(),
            requested_by_name: caller.user.name.clone(),
            requested_at: now,
            to: content_manager(state, caller, &node)?,
            sent: 1,
        },
    };
    let mail = request_mail(&request, &item.name, &node.name);
    mail.check()
        .map_err(|e| ApiError::conflict("invalid_content_manager", e.to_string()))?;
    item.approval = transition.approval;
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    batch.put(APPROVAL_REQUESTS, item.id.as_str(), &request)?;
    mail::enqueue(&mut batch, mail, now)?;
    caller
        .audit(
            state,
            "content.request_approval",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"content_hash": request.content_hash, "to": request.to,
                "resend": request.sent > 1}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    state.mail_wake.notify_one();
    Ok(Json(item.into()))
}

/// A6: the caller must hold `approve_content` and see the item's node.
fn require_approver(state: &AppState, caller: &Caller, item: &ContentItem) -> Result<(), ApiError> {
    if !caller.sees(&item.node) {
        return Err(ApiError::forbidden(
            "approvers act on items at nodes inside their domain (A6)",
        ));
    }
    if !effective_permissions_of(&state.store, &caller.user)?.contains(Permission::ApproveContent) {
        return Err(ApiError::forbidden(
            "needs the approve_content permission (A6)",
        ));
    }
    Ok(())
}

/// A6: approves the pending version of an item.
pub(super) async fn approve(
    state: &AppState,
    caller: &Caller,
    id: &str,
    items: Items,
    request: ApproveRequest,
) -> Result<Json<ContentView>, ApiError> {
    decide(state, caller, id, items, |item| {
        let reviewed = match (request.content_hash, &item.approval) {
            (Some(hash), _) => hash,
            (None, ItemApproval::Pending { requested_hash }) => *requested_hash,
            (None, _) => item.approval_hash,
        };
        (
            ApprovalEvent::Approve {
                approved_hash: reviewed,
            },
            "content.approve",
            serde_json::json!({"approved_hash": reviewed}),
        )
    })
    .await
}

/// A6: rejects the pending version of an item, with a reason.
pub(super) async fn reject(
    state: &AppState,
    caller: &Caller,
    id: &str,
    items: Items,
    request: RejectRequest,
) -> Result<Json<ContentView>, ApiError> {
    decide(state, caller, id, items, |_| {
        let detail = serde_json::json!({"reason": request.reason.trim()});
        (
            ApprovalEvent::Reject {
                reason: request.reason,
            },
            "content.reject",
            detail,
        )
    })
    .await
}

/// An approver's decision on the item `id` (A6): `decision` names the event,
/// the audit action and its detail; the open request is closed.
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    items: Items,
    decision: impl FnOnce(&ContentItem) -> (ApprovalEvent, &'static str, serde_json::Value),
) -> Result<Json<ContentView>, ApiError> {
    let _write = state.store.write_lock().await;
    let mut item = load_item(state, caller, id, items)?;
    require_approver(state, caller, &item)?;
    let (event, action, detail) = decision(&item);
    let transition = item
        .approval
        .apply(&event, profile(caller))
        .map_err(|e| approval_error(&e))?;
    item.approval = transition.approval;
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    batch.delete(APPROVAL_REQUESTS, item.id.as_str());
    caller
        .audit(
            state,
            action,
            item.id.as_str(),
            Some(item.node.clone()),
            detail,
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(item.into()))
}
