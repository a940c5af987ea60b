//! Templates, restricted nodes, copy-down and the approval workflow over
//! HTTP (D6, A1–A6), with request mail delivered to a real SMTP listener.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::approval::{ApprovalState, Template};
use signet_common::digest::Sha256;
use signet_common::documents::GroupManifest;
use signet_common::ids::ItemId;
use signet_hub::app::Clock as _;
use signet_hub::content::templates::TEMPLATES;
use signet_hub::content::{BlobStore, CONTENT, ContentItem};
use signet_hub::mail::sender::{MailSender, SenderOptions};
use support::signed::{device_trust, verify_all};
use support::smtp::{SmtpSink, smtp_to};
use support::{TestHub, assert_error};
use tokio_util::sync::CancellationToken;

/// A structurally whole PNG (S13: uploads are checked).
fn png(seed: u8) -> Vec<u8> {
    support::png(2013, seed)
}

async fn upload(
    hub: &TestHub,
    token: &str,
    node: &str,
    name: &str,
    seed: u8,
) -> (StatusCode, Value) {
    hub.upload(token, node, name, png(seed)).await
}

/// A full-screen image with a price line bound to a feed.
fn layout(image: &str, headline: &str, feed_url: &str, refresh_secs: u32) -> Value {
    json!({
        "canvas": {"width": 1920, "height": 1080},
        "zones": [
            {"id": "bg", "kind": "image",
             "rect": {"x": 0, "y": 0, "width": 1920, "height": 1080}, "source": image},
            {"id": "headline", "kind": "text",
             "rect": {"x": 100, "y": 100, "width": 1200, "height": 120}, "text": headline},
            {"id": "price", "kind": "ticker",
             "rect": {"x": 0, "y": 980, "width": 1920, "height": 100},
             "feed": {"url": feed_url, "json_pointer": "/price", "refresh_secs": refresh_secs,
                      "last_value": null}}
        ]
    })
}

async fn put(hub: &TestHub, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    hub.call(reqwest::Method::PUT, path, Some(token), Some(body))
        .await
}

/// Creates a node; `restricted` as asked.
async fn node(hub: &TestHub, token: &str, parent: &str, name: &str, restricted: bool) -> String {
    let (status, body) = hub
        .post(
            token,
            "/api/v1/nodes",
            json!({"parent": parent, "name": name, "restricted": restricted}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "create node {name}: {body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn template(
    hub: &TestHub,
    token: &str,
    node: &str,
    name: &str,
    image: &str,
) -> (StatusCode, Value) {
    hub.post(
        token,
        "/api/v1/templates",
        json!({"node": node, "name": name,
               "template": layout(image, "Fresh today", "https://feeds.test/price", 60)}),
    )
    .await
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

async fn audit_actions(hub: &TestHub, target: &str) -> Vec<Value> {
    let (status, entries) = hub.get(&hub.admin, "/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK);
    entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == target)
        .cloned()
        .collect()
}

async fn set_requires_approval(hub: &TestHub, user: &str) {
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{user}"),
            json!({"requires_approval": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn spawn_sender(hub: &TestHub) -> MailSender {
    let options = SenderOptions {
        poll_interval: Duration::from_millis(20),
        smtp_timeout: Duration::from_secs(5),
        ..SenderOptions::default()
    };
    MailSender::spawn(hub.state.clone(), options, CancellationToken::new())
}

/// Waits (at most 10 s) until the sink holds `n` messages.
async fn received(sink: &SmtpSink, n: usize) -> Vec<support::smtp::Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = sink.received();
        if got.len() >= n || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The approval scenario of the issue, end to end over HTTP (A2–A6, A8):
/// copy from a restricted node → active; edit layout → inactive; edit only
/// a feed → unchanged state and an audit entry; request approval → exactly
/// one e-mail with the four fields; approve → the next signed manifest
/// carries the approved hash; edit again → inactive, and the manifest marks
/// it so. Manifests are verified against the hub's `root.pub` as an agent
/// does.
#[tokio::test]
async fn a2_a3_a4_a5_a6_approval_scenario() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(sink.addr))).await;
    let _sender = spawn_sender(&hub);
    let (status, tenant) = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": hub.root, "name": "Acme", "content_manager_email": "cm@acme.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let tenant = id(&tenant);
    let masters = node(&hub, &hub.admin, &tenant, "Masters", true).await;
    let store = node(&hub, &hub.admin, &masters, "Store 12", false).await;
    let (_, image) = upload(&hub, &hub.admin, &masters, "Background", 1).await;
    let image = id(&image);
    let (status, master) = template(&hub, &hub.admin, &masters, "Menu board", &image).await;
    assert_eq!(status, StatusCode::CREATED, "{master}");
    assert_eq!(master["approval_state"], "active");
    let master = id(&master);

    let (editor, editor_token) = hub.user("editor", "contributor", &[&store]).await;
    set_requires_approval(&hub, &editor).await;
    let (_, approver_token) = hub.user("approver", "moderator", &[&tenant]).await;

    // Copy → active, linked to its source and revision, owned by the store.
    let (status, copy) = hub
        .post(
            &editor_token,
            &format!("/api/v1/templates/{master}/copy"),
            json!({"node": store}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_eq!(copy["approval_state"], "active");
    assert_eq!(copy["node"], store);
    assert_eq!(copy["source"], json!({"item": master, "revision": 1}));
    assert_ne!(copy["id"], master);
    let copy_id = id(&copy);
    let path = format!("/api/v1/templates/{copy_id}");
    let (_, got) = hub.get(&editor_token, &path).await;
    let as_template = |v: &Value| serde_json::from_value::<Template>(v.clone()).unwrap();
    assert_eq!(
        as_template(&got["template"]),
        as_template(&layout(
            &image,
            "Fresh today",
            "https://feeds.test/price",
            60
        ))
    );

    // The store plays it (A7: whatever its state; the device decides).
    let (status, playlist) = hub
        .post(
            &editor_token,
            "/api/v1/playlists",
            json!({"node": store, "name": "Menu loop",
                "items": [{"item": copy_id, "duration_ms": 10_000}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{playlist}");
    let (status, schedule) = hub
        .post(
            &editor_token,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": store},
                "entries": [{"id": "all-day", "playlist": playlist["id"], "priority": 0}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");

    // Edit the layout → inactive.
    let (status, saved) = put(
        &hub,
        &editor_token,
        &path,
        json!({"template": layout(&image, "Half price", "https://feeds.test/price", 60)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["approval_state"], "inactive");
    assert_eq!(saved["revision"], 2);
    let edited_hash = saved["approval_hash"].clone();

    // Edit only a feed (URL and interval) → state unchanged, audited (A4).
    let (status, saved) = put(
        &hub,
        &editor_token,
        &path,
        json!({"template": layout(&image, "Half price", "https://feeds.test/v2/price", 30)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["approval_state"], "inactive");
    assert_eq!(saved["approval_hash"], edited_hash, "feeds are not content");
    assert_ne!(
        saved["sha256"], copy["sha256"],
        "the stored bytes carry the feed"
    );
    let feed_audits: Vec<Value> = audit_actions(&hub, &copy_id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "template.feed_change")
        .collect();
    assert_eq!(feed_audits.len(), 1, "{feed_audits:?}");
    assert_eq!(feed_audits[0]["detail"]["feeds"][0]["zone"], "price");
    assert_eq!(
        feed_audits[0]["detail"]["feeds"][0]["url"]["to"],
        "https://feeds.test/v2/price"
    );

    // The served bytes are the current document (A8: devices hash them).
    let item: ContentItem = hub.state.store.get(CONTENT, &copy_id).unwrap().unwrap();
    let blob = std::fs::read(BlobStore::new(&hub.state.config.data).path_of(&item.sha256)).unwrap();
    assert_eq!(Sha256::of(&blob), item.sha256);
    let served: Template = serde_json::from_slice(&blob).unwrap();
    assert_eq!(
        served.content_hash().to_string(),
        edited_hash.as_str().unwrap()
    );

    // Request approval → pending, exactly one mail with the four fields.
    let before = chrono::Utc::now();
    let (status, pending) = hub
        .post(
            &editor_token,
            &format!("{path}/request-approval"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["approval_state"], "pending");
    let mails = received(&sink, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.received().len(), 1, "exactly one request mail");
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["cm@acme.test".to_owned()]);
    let body = mail.body();
    assert!(body.contains("Item: Menu board\n"), "{body}");
    assert!(body.contains("Node: Store 12\n"), "{body}");
    assert!(body.contains("Requested by: editor\n"), "{body}");
    let sent = body.lines().find_map(|l| l.strip_prefix("Sent: ")).unwrap();
    // In the node's zone (UTC: none set) with its offset, then in UTC (A5).
    let sent = sent.split(" (").next().unwrap();
    let sent_at = chrono::DateTime::parse_from_rfc3339(sent).unwrap();
    assert!(sent.ends_with("+00:00"), "ISO-8601 with offset: {sent}");
    assert!(
        (sent_at.with_timezone(&chrono::Utc) - before)
            .num_seconds()
            .abs()
            < 60
    );

    // The requester cannot approve; the approver above can (A6).
    let denied = hub
        .post(&editor_token, &format!("{path}/approve"), json!({}))
        .await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden");
    let (status, approved) = hub
        .post(&approver_token, &format!("{path}/approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approval_state"], "active");
    assert_eq!(approved["approved_hash"], edited_hash);

    // The next signed manifest carries the approved hash (A8), and the
    // bytes it names hash to it once parsed, feeds left out.
    let manifest = publish_store(&hub, &approver_token, &store).await;
    let listed = manifest.item(&ItemId::new(copy_id.clone())).unwrap();
    assert_eq!(listed.approval, ApprovalState::Active);
    assert_eq!(
        listed.approved_hash.map(|h| h.to_string()),
        edited_hash.as_str().map(str::to_owned)
    );
    assert_eq!(listed.sha256, item.sha256);
    assert_eq!(listed.check_approved(&served.content_hash()), Ok(()));
    assert_eq!(manifest.schedule.entries[0].items[0].item.as_str(), copy_id);
    // The image the template shows travels with it (D6).
    let shown = manifest.item(&ItemId::new(image.clone())).unwrap();
    assert_eq!(shown.approval, ApprovalState::Active);
    assert_eq!(shown.approved_hash, Some(shown.sha256));

    // Edit again → inactive.
    let (status, saved) = put(
        &hub,
        &editor_token,
        &path,
        json!({"template": layout(&image, "Sold out", "https://feeds.test/v2/price", 30)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["approval_state"], "inactive");
    assert_eq!(saved["approved_hash"], Value::Null);
    assert_eq!(sink.received().len(), 1, "no mail without a request");
    // ... and the next manifest marks it so: the device skips it (A7).
    let manifest = publish_store(&hub, &approver_token, &store).await;
    let listed = manifest.item(&ItemId::new(copy_id.clone())).unwrap();
    assert_eq!(listed.approval, ApprovalState::Inactive);
    assert_eq!(listed.approved_hash, None);
    assert!(listed.check_approved(&served.content_hash()).is_err());
}

/// Publishes the node `store` now and returns its signed manifest, as an
/// agent verifies it against the hub's `root.pub`.
async fn publish_store(hub: &TestHub, token: &str, store: &str) -> GroupManifest {
    hub.publisher.take();
    let (status, run) = hub
        .post(
            token,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": store}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let (manifests, _) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    manifests.get(store).cloned().unwrap()
}

/// A5: asking again for the same version re-sends the same request (same
/// fields, same time) and opens no second one; a new version after a
/// rejection is a new request. A6: a rejection needs a reason, which the
/// requester then sees.
#[tokio::test]
async fn a5_a6_resend_reject_with_reason_and_rerequest() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(sink.addr))).await;
    let _sender = spawn_sender(&hub);
    let (status, tenant) = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": hub.root, "name": "Acme", "content_manager_email": "cm@acme.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let tenant = id(&tenant);
    let (editor, editor_token) = hub.user("editor", "contributor", &[&tenant]).await;
    set_requires_approval(&hub, &editor).await;
    let (_, approver_token) = hub.user("approver", "moderator", &[&tenant]).await;
    let (status, item) = upload(&hub, &editor_token, &tenant, "Poster", 7).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["approval_state"], "inactive", "A3: needs approval");
    let path = format!("/api/v1/content/{}", id(&item));

    // Approving what was never requested is refused and changes nothing.
    let refused = hub
        .post(&approver_token, &format!("{path}/approve"), json!({}))
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "invalid_transition");

    for _ in 0..2 {
        let (status, pending) = hub
            .post(
                &editor_token,
                &format!("{path}/request-approval"),
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{pending}");
        assert_eq!(pending["approval_state"], "pending");
    }
    let mails = received(&sink, 2).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails[0].body(),
        mails[1].body(),
        "a re-send is the same request"
    );
    let requests = audit_actions(&hub, &id(&item)).await;
    assert_eq!(
        requests
            .iter()
            .filter(|e| e["action"] == "content.request_approval")
            .count(),
        2
    );

    // Approval of another version than the pending one is refused.
    let other = hub
        .post(
            &approver_token,
            &format!("{path}/approve"),
            json!({"content_hash": Sha256::of(b"other").to_string()}),
        )
        .await;
    assert_error(&other, StatusCode::CONFLICT, "version_mismatch");

    let blank = hub
        .post(
            &approver_token,
            &format!("{path}/reject"),
            json!({"reason": "  "}),
        )
        .await;
    assert_error(&blank, StatusCode::BAD_REQUEST, "invalid_reason");
    let (status, rejected) = hub
        .post(
            &approver_token,
            &format!("{path}/reject"),
            json!({"reason": "Logo is outdated"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["approval_state"], "inactive");
    let (_, seen) = hub.get(&editor_token, &path).await;
    assert_eq!(seen["rejection_reason"], "Logo is outdated");

    // Asking again after the rejection is a new request, sent at its time.
    let (status, _) = hub
        .post(
            &editor_token,
            &format!("{path}/request-approval"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(received(&sink, 3).await.len(), 3);
}

/// A5: without a content-manager address on the node or above, a request
/// is refused and nothing changes.
#[tokio::test]
async fn a5_request_without_content_manager_is_refused() {
    let hub = TestHub::start().await;
    let (editor, token) = hub.user("editor", "contributor", &[&hub.root]).await;
    set_requires_approval(&hub, &editor).await;
    let (_, item) = upload(&hub, &token, &hub.root, "Poster", 3).await;
    let path = format!("/api/v1/content/{}", id(&item));
    let refused = hub
        .post(&token, &format!("{path}/request-approval"), json!(null))
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "no_content_manager");
    let (_, after) = hub.get(&token, &path).await;
    assert_eq!(after["approval_state"], "inactive");
}

/// A6: approve_content on the item's node or above; a moderator of a
/// sibling tenant does not even see the item, and a contributor (without
/// approve_content) is refused.
#[tokio::test]
async fn a6_only_approvers_on_the_node_or_above_decide() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(sink.addr))).await;
    let (_, a) = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": hub.root, "name": "A", "content_manager_email": "cm@a.test"}),
        )
        .await;
    let a = id(&a);
    let b = hub.node(&hub.admin, &hub.root, "B").await;
    let site = node(&hub, &hub.admin, &a, "Site", false).await;
    let (editor, editor_token) = hub.user("editor", "contributor", &[&site]).await;
    set_requires_approval(&hub, &editor).await;
    let (_, peer_token) = hub.user("peer", "contributor", &[&site]).await;
    let (_, sibling_token) = hub.user("sibling", "moderator", &[&b]).await;
    let (_, below_token) = hub.user("site-moderator", "moderator", &[&site]).await;
    let (_, item) = upload(&hub, &editor_token, &site, "Poster", 4).await;
    let path = format!("/api/v1/content/{}", id(&item));
    let (status, _) = hub
        .post(
            &editor_token,
            &format!("{path}/request-approval"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let r = hub
        .post(&sibling_token, &format!("{path}/approve"), json!({}))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = hub
        .post(&peer_token, &format!("{path}/approve"), json!({}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (_, still) = hub.get(&editor_token, &path).await;
    assert_eq!(still["approval_state"], "pending");
    // A moderator whose domain is the item's own node approves (A6: "on the
    // item's node or any node above it").
    let (status, approved) = hub
        .post(&below_token, &format!("{path}/approve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approval_state"], "active");
    assert_eq!(approved["approved_hash"], item["sha256"]);
}

/// The ids in an approval queue, in order.
fn queued(queue: &Value) -> Vec<String> {
    queue["items"].as_array().unwrap().iter().map(id).collect()
}

/// A6, P4, C8: the approval queue lists exactly what the caller may decide,
/// by the `approve_content` permission, not by role: a Contributor granted
/// it by a permission group sees the pending items of its domain (and
/// approves them), a Contributor without it sees none, a Moderator (who
/// holds it by role, P1) only those inside its domain; inactive items
/// never wait there.
#[tokio::test]
async fn a6_p4_the_approval_queue_lists_what_the_caller_may_decide() {
    let hub = TestHub::start().await;
    let mut tops = Vec::new();
    for name in ["A", "B"] {
        let cm = format!("cm@{name}.test");
        let body = json!({"parent": hub.root, "name": name, "content_manager_email": cm});
        tops.push(id(&hub.post(&hub.admin, "/api/v1/nodes", body).await.1));
    }
    let (a, b) = (&tops[0], &tops[1]);
    let site = node(&hub, &hub.admin, a, "Site", false).await;
    let (editor, editor_token) = hub.user("editor", "contributor", &[&site]).await;
    let (b_editor, b_editor_token) = hub.user("b-editor", "contributor", &[b]).await;
    let (reviewer, reviewer_token) = hub.user("reviewer", "contributor", &[a]).await;
    let (_, peer_token) = hub.user("peer", "contributor", &[a]).await;
    let (_, b_moderator_token) = hub.user("b-moderator", "moderator", &[b]).await;
    let group = json!({"node": a, "name": "approvers", "permissions": ["approve_content"]});
    let (status, group) = hub
        .post(&hub.admin, "/api/v1/permission-groups", group)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let members = format!("/api/v1/permission-groups/{}/members/users", id(&group));
    let r = hub
        .post(&hub.admin, &members, json!({"user": reviewer}))
        .await;
    assert!(r.0.is_success(), "{}", r.1);

    let mut items = Vec::new();
    for (user, token, at, seed) in [
        (&editor, &editor_token, &site, 11),
        (&editor, &editor_token, &site, 12),
        (&b_editor, &b_editor_token, b, 13),
    ] {
        set_requires_approval(&hub, user).await;
        // One second apart: the queue lists the oldest save first.
        hub.clock.advance(chrono::TimeDelta::seconds(1));
        let (status, item) = upload(&hub, token, at, &format!("Poster {seed}"), seed).await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        items.push(id(&item));
    }
    // The first and third wait for approval; the second stays inactive.
    for (token, item) in [(&editor_token, &items[0]), (&b_editor_token, &items[2])] {
        let path = format!("/api/v1/content/{item}/request-approval");
        let r = hub.post(token, &path, json!(null)).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    }

    let queue = |token: String| {
        let hub = &hub;
        async move {
            let (status, queue) = hub.get(&token, "/api/v1/approvals").await;
            assert_eq!(status, StatusCode::OK, "{queue}");
            (queue["may_approve"].as_bool().unwrap(), queued(&queue))
        }
    };
    let reviewer_queue = queue(reviewer_token.clone()).await;
    assert_eq!(reviewer_queue, (true, vec![items[0].clone()]));
    assert_eq!(queue(peer_token.clone()).await, (false, vec![]));
    assert_eq!(queue(editor_token.clone()).await, (false, vec![]));
    assert_eq!(
        queue(b_moderator_token).await,
        (true, vec![items[2].clone()])
    );
    assert_eq!(
        queue(hub.admin.clone()).await,
        (true, vec![items[0].clone(), items[2].clone()])
    );

    // What the queue lists, the caller decides; what it does not, not.
    let approve = |item: &str| format!("/api/v1/content/{item}/approve");
    let r = hub.post(&peer_token, &approve(&items[0]), json!({})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = hub
        .post(&reviewer_token, &approve(&items[2]), json!({}))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = hub
        .post(&reviewer_token, &approve(&items[0]), json!({}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["approval_state"], "active");
    assert_eq!(queue(reviewer_token).await, (true, vec![]));
}

/// A4 strict mode: on a strict node a feed-URL change deactivates like a
/// content change, while a refresh-interval change still does not.
#[tokio::test]
async fn a4_strict_mode_makes_a_feed_url_change_deactivate() {
    let hub = TestHub::start().await;
    let (status, strict) = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": hub.root, "name": "Strict", "strict_feeds": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{strict}");
    let strict = id(&strict);
    let (_, image) = upload(&hub, &hub.admin, &strict, "Bg", 5).await;
    let image = id(&image);
    let (editor, token) = hub.user("editor", "contributor", &[&strict]).await;
    let (status, created) = template(&hub, &token, &strict, "Board", &image).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["approval_state"], "active",
        "no approval needed yet"
    );
    set_requires_approval(&hub, &editor).await;
    let path = format!("/api/v1/templates/{}", id(&created));

    let (_, saved) = put(
        &hub,
        &token,
        &path,
        json!({"template": layout(&image, "Fresh today", "https://feeds.test/price", 120)}),
    )
    .await;
    assert_eq!(saved["approval_state"], "active", "interval only: {saved}");
    let (_, saved) = put(
        &hub,
        &token,
        &path,
        json!({"template": layout(&image, "Fresh today", "https://other.test/price", 120)}),
    )
    .await;
    assert_eq!(
        saved["approval_state"], "inactive",
        "strict URL change: {saved}"
    );
}

/// D6: a template is validated on every write with a precise error, and
/// nothing is stored when it is refused; zone sources must be usable at
/// the template's node (T2), and are not deleted while a template shows them.
#[tokio::test]
async fn d6_invalid_templates_are_refused_precisely_and_change_nothing() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "A").await;
    let b = hub.node(&hub.admin, &hub.root, "B").await;
    let (_, image_a) = upload(&hub, &hub.admin, &a, "A bg", 1).await;
    let (_, image_b) = upload(&hub, &hub.admin, &b, "B bg", 2).await;
    let image_a = id(&image_a);

    let mut outside = layout(&image_a, "x", "https://feeds.test/p", 60);
    outside["zones"][1]["rect"]["x"] = json!(1900);
    let refused = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": a, "name": "Bad", "template": outside}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_template");
    assert!(
        refused.1["message"].as_str().unwrap().contains("headline"),
        "names the zone: {}",
        refused.1
    );
    let refused = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": a, "name": "Bad", "template": layout(&id(&image_b), "x", "https://feeds.test/p", 60)}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_template");
    let refused = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": a, "name": "Bad", "template": layout(&image_a, "x", "ftp://feeds.test/p", 60)}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_template");
    let refused = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": a, "name": "Bad", "template": {"canvas": {"width": 0, "height": 10}, "zones": []}}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_template");
    let templates: Vec<Template> = hub.state.store.scan(TEMPLATES, "").unwrap();
    assert!(templates.is_empty());
    let items: Vec<ContentItem> = hub.state.store.scan(CONTENT, "").unwrap();
    assert_eq!(items.len(), 2, "only the two images");

    // A valid one, then an invalid save that leaves it as it was.
    let (status, created) = template(&hub, &hub.admin, &a, "Good", &image_a).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/api/v1/templates/{}", id(&created));
    let mut bad = layout(&image_a, "x", "https://feeds.test/p", 1);
    bad["zones"][0]["id"] = json!("");
    let refused = put(&hub, &hub.admin, &path, json!({"template": bad})).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_template");
    let (_, after) = hub.get(&hub.admin, &path).await;
    assert_eq!(after["revision"], 1);
    assert_eq!(after["sha256"], created["sha256"]);
    // The image a template shows is not deleted from under it; once the
    // template is gone, it is.
    let refused = hub
        .delete(&hub.admin, &format!("/api/v1/content/{image_a}"))
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "item_in_use");
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains(&id(&created))
    );
    let (status, _) = hub.delete(&hub.admin, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        hub.state
            .store
            .scan::<Template>(TEMPLATES, "")
            .unwrap()
            .is_empty()
    );
    let (status, _) = hub
        .delete(&hub.admin, &format!("/api/v1/content/{image_a}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A media item is not a template at the template routes.
    let r = hub
        .get(&hub.admin, &format!("/api/v1/templates/{image_a}"))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

/// A2: only approved items of restricted nodes are copied, only into a
/// non-restricted node below the restricted one, inside the caller's
/// domain; media copies share the blob.
#[tokio::test]
async fn a2_copy_down_rules() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Acme").await;
    let masters = node(&hub, &hub.admin, &tenant, "Masters", true).await;
    let site = node(&hub, &hub.admin, &masters, "Site", false).await;
    let locked = node(&hub, &hub.admin, &masters, "Locked", true).await;
    let beside = hub.node(&hub.admin, &tenant, "Beside").await;
    let (_, open_item) = upload(&hub, &hub.admin, &tenant, "Open", 1).await;
    let (status, master) = upload(&hub, &hub.admin, &masters, "Master", 2).await;
    assert_eq!(status, StatusCode::CREATED, "{master}");
    let (editor, token) = hub.user("editor", "contributor", &[&site]).await;
    let copy_path = format!("/api/v1/content/{}/copy", id(&master));

    let r = hub
        .post(
            &token,
            &format!("/api/v1/content/{}/copy", id(&open_item)),
            json!({"node": site}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "source_not_restricted");
    let r = hub
        .post(&hub.admin, &copy_path, json!({"node": locked}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "destination_restricted");
    let r = hub
        .post(&hub.admin, &copy_path, json!({"node": beside}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "destination_not_below");
    let r = hub.post(&token, &copy_path, json!({"node": beside})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let count = || {
        hub.state
            .store
            .scan::<ContentItem>(CONTENT, "")
            .unwrap()
            .len()
    };
    assert_eq!(count(), 2, "refusals change nothing");

    let (status, copy) = hub
        .post(
            &token,
            &copy_path,
            json!({"node": site, "name": "Site poster"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_eq!(copy["name"], "Site poster");
    assert_eq!(copy["approval_state"], "active");
    assert_eq!(copy["approved_hash"], master["sha256"]);
    assert_eq!(copy["sha256"], master["sha256"]);
    assert_eq!(copy["source"], json!({"item": master["id"], "revision": 1}));
    assert_eq!(copy["created_by"], editor);
    assert_eq!(copy["node"], site, "the copy belongs to the destination");
    assert_eq!(count(), 3);

    // An unapproved master is not copied: a copy would start active.
    let (requester, requester_token) = hub.user("lead", "contributor", &[&hub.root]).await;
    set_requires_approval(&hub, &requester).await;
    let (_, unapproved) = upload(&hub, &requester_token, &masters, "Draft", 3).await;
    assert_eq!(unapproved["approval_state"], "inactive");
    let r = hub
        .post(
            &token,
            &format!("/api/v1/content/{}/copy", id(&unapproved)),
            json!({"node": site}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "source_not_approved");
}

/// Who does what to items of restricted nodes (A1), as a table: a node
/// restricted by a root-level user and one restricted by a tenant manager,
/// for users of each role inside, above and at root, and the creator.
#[tokio::test]
async fn a1_restricted_node_rules_table() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Acme").await;
    let plain = hub.node(&hub.admin, &tenant, "Plain").await;
    let root_made = node(&hub, &hub.admin, &tenant, "Root masters", true).await;
    let (owner, owner_token) = hub.user("owner", "manager", &[&tenant]).await;
    let tenant_made = node(&hub, &owner_token, &tenant, "Tenant masters", true).await;
    // The owner keeps ownership after moving into the restricted node.
    let (status, _) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{owner}"),
            json!({"domain": [tenant_made]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut tokens = std::collections::BTreeMap::new();
    tokens.insert("admin", hub.admin.clone());
    tokens.insert("owner", owner_token);
    for (name, role, domain) in [
        ("viewer_above", "viewer", &tenant),
        ("contributor_above", "contributor", &tenant),
        ("moderator_above", "moderator", &tenant),
        ("manager_above", "manager", &tenant),
        ("admin_above", "admin", &tenant),
        ("contributor_in_root_made", "contributor", &root_made),
        ("manager_in_root_made", "manager", &root_made),
        ("contributor_in_tenant_made", "contributor", &tenant_made),
        ("manager_in_tenant_made", "manager", &tenant_made),
    ] {
        let (_, token) = hub.user(name, role, &[domain.as_str()]).await;
        tokens.insert(name, token);
    }
    let (_, image_root) = upload(&hub, &hub.admin, &root_made, "bg", 90).await;
    let (_, image_tenant) = upload(&hub, &hub.admin, &tenant_made, "bg", 91).await;
    let (_, image_plain) = upload(&hub, &hub.admin, &plain, "bg", 92).await;
    let image_of = |node: &str| {
        id(if node == root_made {
            &image_root
        } else if node == tenant_made {
            &image_tenant
        } else {
            &image_plain
        })
    };

    use StatusCode as S;
    let ok_add = S::CREATED;
    let ok_edit = S::OK;
    let ok_delete = S::NO_CONTENT;
    let no = S::FORBIDDEN;
    // (who, node, action, expected)
    let table: Vec<(&str, &String, &str, StatusCode)> = vec![
        // Restricted by a root-level user: only root-level users add or
        // delete; nobody edits in place.
        ("admin", &root_made, "add", ok_add),
        ("admin", &root_made, "edit", no),
        ("admin", &root_made, "delete", ok_delete),
        ("admin_above", &root_made, "add", no),
        ("admin_above", &root_made, "delete", no),
        ("manager_above", &root_made, "add", no),
        ("moderator_above", &root_made, "edit", no),
        ("contributor_above", &root_made, "delete", no),
        ("viewer_above", &root_made, "add", no),
        ("contributor_in_root_made", &root_made, "add", no),
        ("manager_in_root_made", &root_made, "edit", no),
        ("manager_in_root_made", &root_made, "delete", no),
        // Restricted by a tenant user: the creator and users above it add,
        // edit and delete; users inside it do not.
        ("admin", &tenant_made, "add", ok_add),
        ("admin", &tenant_made, "edit", ok_edit),
        ("admin", &tenant_made, "delete", ok_delete),
        ("owner", &tenant_made, "add", ok_add),
        ("owner", &tenant_made, "edit", ok_edit),
        ("owner", &tenant_made, "delete", ok_delete),
        ("contributor_above", &tenant_made, "add", ok_add),
        ("moderator_above", &tenant_made, "edit", ok_edit),
        ("manager_above", &tenant_made, "delete", ok_delete),
        ("viewer_above", &tenant_made, "edit", no),
        ("contributor_in_tenant_made", &tenant_made, "add", no),
        ("contributor_in_tenant_made", &tenant_made, "edit", no),
        ("manager_in_tenant_made", &tenant_made, "delete", no),
        // A plain node: the role and domain decide.
        ("contributor_above", &plain, "add", ok_add),
        ("contributor_above", &plain, "edit", ok_edit),
        ("contributor_above", &plain, "delete", ok_delete),
        ("viewer_above", &plain, "add", no),
    ];
    let mut failures = Vec::new();
    for (n, (who, node, action, expected)) in table.into_iter().enumerate() {
        let token = &tokens[who];
        let seed = u8::try_from(n).unwrap();
        let got = match action {
            "add" => upload(&hub, token, node, "new", seed).await.0,
            "edit" | "delete" => {
                // A fresh target made by the admin (who may add everywhere).
                let (status, target) =
                    template(&hub, &hub.admin, node, "target", &image_of(node)).await;
                assert_eq!(status, S::CREATED, "{target}");
                let path = format!("/api/v1/templates/{}", id(&target));
                if action == "edit" {
                    put(
                        &hub,
                        token,
                        &path,
                        json!({"template": layout(&image_of(node), &format!("edit {n}"), "https://feeds.test/price", 60)}),
                    )
                    .await
                    .0
                } else {
                    hub.delete(token, &path).await.0
                }
            }
            _ => unreachable!(),
        };
        if got != expected {
            failures.push(format!(
                "{who} {action} at {node}: got {got}, expected {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

async fn replace(hub: &TestHub, token: &str, item: &str, seed: u8) -> (StatusCode, Value) {
    let response = hub
        .client
        .put(format!("{}/api/v1/content/{item}", hub.base))
        .bearer_auth(token)
        .body(png(seed))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A3 for media: new bytes are a content change (inactive for a user whose
/// profile requires approval, active with the new hash otherwise), the same
/// bytes change nothing, and a rename keeps the state. The old blob goes
/// when nothing uses it.
#[tokio::test]
async fn a3_replacing_media_bytes_is_a_content_change() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let (editor, token) = hub.user("editor", "contributor", &[&site]).await;
    let (_, item) = upload(&hub, &token, &site, "Poster", 1).await;
    assert_eq!(item["approval_state"], "active");
    let item_id = id(&item);
    let blobs = BlobStore::new(&hub.state.config.data);

    let (status, same) = replace(&hub, &token, &item_id, 1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["revision"], 1, "same bytes: nothing changed");

    let (status, replaced) = replace(&hub, &token, &item_id, 2).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["approval_state"], "active");
    assert_eq!(replaced["approved_hash"], Sha256::of(&png(2)).to_string());
    assert_eq!(replaced["revision"], 2);
    let old: Sha256 = item["sha256"].as_str().unwrap().parse().unwrap();
    assert!(!blobs.path_of(&old).exists(), "the unused old blob is gone");

    set_requires_approval(&hub, &editor).await;
    let (_, replaced) = replace(&hub, &token, &item_id, 3).await;
    assert_eq!(replaced["approval_state"], "inactive");
    assert_eq!(replaced["approved_hash"], Value::Null);
    assert_eq!(replaced["sha256"], Sha256::of(&png(3)).to_string());

    let (status, renamed) = hub
        .patch(
            &token,
            &format!("/api/v1/content/{item_id}"),
            json!({"name": "Poster v3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Poster v3");
    assert_eq!(renamed["approval_state"], "inactive");
    assert_eq!(renamed["revision"], 3);

    // A template's bytes are not replaced here.
    let (_, tpl) = template(&hub, &hub.admin, &site, "Board", &item_id).await;
    let r = replace(&hub, &token, &id(&tpl), 4).await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}
