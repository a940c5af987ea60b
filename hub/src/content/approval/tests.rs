//! The approval transitions and who may make them, on a real store (A3–A6).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use signet_common::approval::{ApprovalState, ContentHash};
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, UserId};

use super::*;
use crate::content::templates::APPROVAL_REQUESTS;
use crate::content::{CONTENT, ContentItem};
use crate::identity::User;
use crate::store::{SledStorage, WriteBatch};
use crate::tenancy::NODES;

const ROOT: &str = "n-root";
const STORE: &str = "n-store";

fn at(minute: u32) -> DateTime<Utc> {
    format!("2026-11-23T10:{minute:02}:00Z").parse().unwrap()
}

fn node(id: &str, parent: Option<&str>, manager: Option<&str>) -> Node {
    Node {
        id: NodeId::from(id),
        parent: parent.map(NodeId::from),
        name: id.to_owned(),
        restricted: false,
        created_by: None,
        created_at: at(0),
        content_manager_email: manager.map(str::to_owned),
        strict_feeds: false,
        created_at_root_level: false,
        locale: crate::tenancy::NodeLocale::default(),
    }
}

fn actor(name: &str, role: Role, domain: &str, requires_approval: bool) -> Actor {
    Actor {
        user: User {
            id: UserId::new(format!("u-{name}")),
            name: name.to_owned(),
            email: format!("{name}@example.com"),
            role,
            domain: vec![NodeId::from(domain)],
            requires_approval,
            disabled: false,
            password_hash: String::new(),
            created_at: at(0),
            created_by: None,
        },
        from: "127.0.0.1".into(),
    }
}

fn editor() -> Actor {
    actor("editor", Role::Contributor, STORE, true)
}

fn approver() -> Actor {
    actor("approver", Role::Admin, ROOT, false)
}

/// A store holding ROOT (with a content manager) above STORE, and one
/// image at STORE saved by an editor whose profile requires approval.
async fn store_with_item(manager: Option<&str>) -> (tempfile::TempDir, Store, ItemId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(Arc::new(SledStorage::open(dir.path()).unwrap()));
    let hash = ContentHash::of(b"v1");
    let item = ContentItem {
        id: ItemId::new("c-1"),
        node: NodeId::from(STORE),
        name: "Menu board".into(),
        kind: ItemKind::Image,
        sha256: hash,
        size: 2,
        media_type: "image/png".into(),
        created_by: editor().user.id,
        created_at: at(0),
        duration_ms: None,
        width: None,
        height: None,
        approval: ItemApproval::created(profile(&editor()), hash),
        approval_hash: hash,
        revision: 1,
        source: None,
        updated_at: at(0),
        updated_by: editor().user.id,
        thumbnail: false,
        allowed_groups: std::collections::BTreeSet::new(),
        settings: crate::content::visibility::Settings::default(),
    };
    let mut batch = WriteBatch::new();
    batch.put(NODES, ROOT, &node(ROOT, None, manager)).unwrap();
    batch
        .put(NODES, STORE, &node(STORE, Some(ROOT), None))
        .unwrap();
    batch.put(CONTENT, item.id.as_str(), &item).unwrap();
    store.apply(batch).await.unwrap();
    (dir, store, item.id)
}

/// `who` resolved as a viewer on `store` (no access-group entitlements).
fn viewer(store: &Store, who: &Actor) -> Viewer {
    let principal = crate::permission_groups::principal_of(store, &who.user, Default::default());
    Viewer::new(principal.unwrap())
}

async fn request(store: &Store, who: &Actor, minute: u32) -> Result<ContentItem, ApprovalError> {
    request_in_store(
        (store, &crate::config::Config::default()),
        (who, &viewer(store, who)),
        at(minute),
        "c-1",
        Items::Any,
    )
    .await
}

async fn approve(
    store: &Store,
    who: &Actor,
    hash: Option<Sha256>,
) -> Result<ContentItem, ApprovalError> {
    let decision = Decision::Approve { content_hash: hash };
    let who = (who, &viewer(store, who));
    decide_in_store(store, who, at(9), "c-1", Items::Any, decision, true).await
}

async fn decide_as(
    store: &Store,
    who: &Actor,
    decision: Decision,
    approves: bool,
) -> Result<ContentItem, ApprovalError> {
    let who = (who, &viewer(store, who));
    decide_in_store(store, who, at(9), "c-1", Items::Any, decision, approves).await
}

fn stored(store: &Store, id: &ItemId) -> ContentItem {
    store.get(CONTENT, id.as_str()).unwrap().unwrap()
}

fn open_request(store: &Store, id: &ItemId) -> Option<ApprovalRequest> {
    store.get(APPROVAL_REQUESTS, id.as_str()).unwrap()
}

#[tokio::test]
async fn a3_an_item_saved_by_a_user_who_needs_approval_starts_inactive() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    assert_eq!(
        stored(&store, &id).approval.state(),
        ApprovalState::Inactive
    );
}

#[tokio::test]
async fn a5_request_makes_pending_and_queues_the_mail_to_the_nearest_content_manager() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    let item = request(&store, &editor(), 1).await.unwrap();
    assert_eq!(item.approval.state(), ApprovalState::Pending);
    assert_eq!(stored(&store, &id), item);
    let held = open_request(&store, &id).unwrap();
    assert_eq!((held.to.as_str(), held.sent), ("cm@example.com", 1));
    let outbox = crate::mail::entries(&store).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].mail.to, "cm@example.com");
    assert!(outbox[0].mail.body.contains("Item: Menu board\n"));
}

#[tokio::test]
async fn a5_asking_again_resends_the_same_request_and_opens_no_second() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    let item = request(&store, &editor(), 5).await.unwrap();
    assert_eq!(item.approval.state(), ApprovalState::Pending);
    let held = open_request(&store, &id).unwrap();
    assert_eq!((held.sent, held.requested_at), (2, at(1)));
    let outbox = crate::mail::entries(&store).unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].mail, outbox[1].mail, "a re-send is the same mail");
}

#[tokio::test]
async fn a5_without_a_content_manager_the_request_is_refused_and_nothing_changes() {
    let (_dir, store, id) = store_with_item(None).await;
    let refused = request(&store, &editor(), 1).await.unwrap_err();
    assert!(matches!(refused, ApprovalError::NoContentManager(node) if node.as_str() == STORE));
    assert_eq!(
        stored(&store, &id).approval.state(),
        ApprovalState::Inactive
    );
    assert!(open_request(&store, &id).is_none());
    assert!(crate::mail::entries(&store).unwrap().is_empty());
}

#[tokio::test]
async fn a5_only_contributors_inside_the_items_domain_request_approval() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    let viewer = actor("viewer", Role::Viewer, STORE, false);
    assert!(matches!(
        request(&store, &viewer, 1).await,
        Err(ApprovalError::RoleTooLow(_))
    ));
    // A contributor of a node below sees the item (T2) but asks from there.
    let mut batch = WriteBatch::new();
    batch
        .put(NODES, "n-till", &node("n-till", Some(STORE), None))
        .unwrap();
    store.apply(batch).await.unwrap();
    let below = actor("till", Role::Contributor, "n-till", true);
    assert!(matches!(
        request(&store, &below, 1).await,
        Err(ApprovalError::Forbidden(_))
    ));
    let outsider = actor("other", Role::Contributor, "n-elsewhere", true);
    assert!(matches!(
        request(&store, &outsider, 1).await,
        Err(ApprovalError::NotFound("content item"))
    ));
    assert_eq!(
        stored(&store, &id).approval.state(),
        ApprovalState::Inactive
    );
}

#[tokio::test]
async fn a5_the_templates_routes_see_no_media_item() {
    let (_dir, store, _id) = store_with_item(Some("cm@example.com")).await;
    let refused = request_in_store(
        (&store, &crate::config::Config::default()),
        (&editor(), &viewer(&store, &editor())),
        at(1),
        "c-1",
        Items::Templates,
    )
    .await;
    assert!(matches!(refused, Err(ApprovalError::NotFound("template"))));
}

#[tokio::test]
async fn a6_approve_activates_the_requested_version_and_closes_the_request() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    let item = approve(&store, &approver(), None).await.unwrap();
    assert_eq!(
        item.approval,
        ItemApproval::Active {
            approved_hash: ContentHash::of(b"v1")
        }
    );
    assert_eq!(stored(&store, &id), item);
    assert!(open_request(&store, &id).is_none());
}

#[tokio::test]
async fn a6_approving_another_version_than_the_pending_one_is_refused() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    let refused = approve(&store, &approver(), Some(ContentHash::of(b"v2"))).await;
    assert!(matches!(
        refused,
        Err(ApprovalError::Transition(
            TransitionError::VersionMismatch { .. }
        ))
    ));
    assert_eq!(stored(&store, &id).approval.state(), ApprovalState::Pending);
    assert!(open_request(&store, &id).is_some());
}

#[tokio::test]
async fn a6_only_approve_content_holders_at_or_above_the_node_decide() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    let decision = || Decision::Approve { content_hash: None };
    let without = decide_as(&store, &approver(), decision(), false).await;
    assert!(matches!(without, Err(ApprovalError::Forbidden(m)) if m.contains("approve_content")));
    let mut batch = WriteBatch::new();
    batch
        .put(NODES, "n-till", &node("n-till", Some(STORE), None))
        .unwrap();
    store.apply(batch).await.unwrap();
    let below = actor("till-admin", Role::Admin, "n-till", false);
    let from_below = decide_as(&store, &below, decision(), true).await;
    assert!(
        matches!(from_below, Err(ApprovalError::Forbidden(m)) if m.contains("inside their domain"))
    );
    assert_eq!(stored(&store, &id).approval.state(), ApprovalState::Pending);
    let at_node = actor("store-admin", Role::Admin, STORE, false);
    let item = decide_as(&store, &at_node, decision(), true).await;
    assert_eq!(item.unwrap().approval.state(), ApprovalState::Active);
}

#[tokio::test]
async fn a3_reject_needs_a_reason_and_leaves_the_item_inactive_with_it() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    let reject = |reason: &str| Decision::Reject {
        reason: reason.to_owned(),
    };
    let blank = decide_as(&store, &approver(), reject("  "), true).await;
    assert!(matches!(
        blank,
        Err(ApprovalError::Transition(
            TransitionError::EmptyRejectionReason
        ))
    ));
    assert_eq!(stored(&store, &id).approval.state(), ApprovalState::Pending);
    let item = decide_as(&store, &approver(), reject("Typo"), true).await;
    let item = item.unwrap();
    assert!(matches!(
        item.approval,
        ItemApproval::Inactive { rejection_reason: Some(ref r) } if r == "Typo"
    ));
    assert!(open_request(&store, &id).is_none());
}

#[tokio::test]
async fn a3_only_a_pending_item_is_approved_or_rejected() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    let refused = approve(&store, &approver(), None).await;
    assert!(matches!(
        refused,
        Err(ApprovalError::Transition(
            TransitionError::InvalidTransition { .. }
        ))
    ));
    assert_eq!(
        stored(&store, &id).approval.state(),
        ApprovalState::Inactive
    );
}

#[tokio::test]
async fn a3_a_content_change_after_approval_deactivates_for_users_who_need_approval() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    approve(&store, &approver(), None).await.unwrap();
    let approved = stored(&store, &id);
    let v2 = ContentHash::of(b"v2");
    let change = saved(&approved, &editor(), Change::Content, v2, false).unwrap();
    assert_eq!(
        (change.from, change.to()),
        (ApprovalState::Active, ApprovalState::Inactive)
    );
    let trusted = saved(&approved, &approver(), Change::Content, v2, false).unwrap();
    assert_eq!(trusted.approval, ItemApproval::Active { approved_hash: v2 });
}

#[tokio::test]
async fn a4_a_feed_only_change_keeps_the_state_unless_strict_mode_and_a_new_url() {
    let (_dir, store, id) = store_with_item(Some("cm@example.com")).await;
    request(&store, &editor(), 1).await.unwrap();
    approve(&store, &approver(), None).await.unwrap();
    let approved = stored(&store, &id);
    let hash = approved.approval_hash;
    let url = Change::FeedOnly { url_changed: true };
    let relaxed = saved(&approved, &editor(), url, hash, false).unwrap();
    assert_eq!(relaxed.approval, approved.approval);
    assert!(relaxed.audit_feed_change);
    let strict = saved(&approved, &editor(), url, hash, true).unwrap();
    assert_eq!(strict.to(), ApprovalState::Inactive);
}
