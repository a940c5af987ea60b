//! The administration routes of issue 19 over HTTP: moving a node and
//! marking it restricted after creation (T1–T4, A1), one's own sessions
//! (C2, S8), the password-reset mail (S8, M5), the permission catalogue
//! (P7) and alert thresholds per node (U4).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use reqwest::StatusCode;
use serde_json::json;
use signet_common::ids::NodeId;
use signet_hub::fleet::alert_settings::Thresholds;
use signet_hub::mail::entries;
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::{PASSWORD, TestHub, assert_error};

#[tokio::test]
async fn t1_t2_a_node_moves_but_never_below_itself_under_devices_or_away_from_what_it_uses() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let north = hub.node(&hub.admin, &tenant, "North").await;
    let south = hub.node(&hub.admin, &tenant, "South").await;
    let lobby = hub.node(&hub.admin, &north, "Lobby").await;
    let path = format!("/api/v1/nodes/{north}");

    // Below itself: refused, nothing changes.
    let r = hub.patch(&hub.admin, &path, json!({"parent": lobby})).await;
    assert_error(&r, StatusCode::CONFLICT, "node_move_cycle");
    // Under a node holding devices (T1).
    let mut batch = WriteBatch::new();
    batch
        .put(
            NODE_DEVICES,
            &format!("{south}/dev-1"),
            &json!({"device": "dev-1"}),
        )
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{lobby}"),
            json!({"parent": south}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "node_has_devices");

    // Away from a node holding a permission group its subtree may use (T2).
    let (status, _) = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": north, "name": "Editors"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{lobby}"),
            json!({"parent": tenant}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "node_move_breaks_references");

    // Within what it keeps: allowed, and audited.
    let east = hub.node(&hub.admin, &north, "East").await;
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{lobby}"),
            json!({"parent": east}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parent"], east.as_str());
    let (_, node) = hub.get(&hub.admin, &format!("/api/v1/nodes/{lobby}")).await;
    assert_eq!(node["parent"], east.as_str());

    // A tenant admin cannot move their own domain root, nor move a node
    // outside their domain (T4: the other parent is not found).
    let (_, token) = hub.user("north-admin", "admin", &[&north]).await;
    let r = hub.patch(&token, &path, json!({"parent": east})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = hub
        .patch(
            &token,
            &format!("/api/v1/nodes/{east}"),
            json!({"parent": south}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a1_a_node_is_marked_restricted_after_creation_by_its_owner_or_from_above_only() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, owner) = hub.user("tenant-owner", "admin", &[&tenant]).await;
    let vault = hub.node(&owner, &tenant, "Vault").await;
    // A manager whose domain is the node itself is not above it (A1).
    let (_, other) = hub.user("tenant-other", "manager", &[&vault]).await;
    let path = format!("/api/v1/nodes/{vault}");

    let r = hub.patch(&other, &path, json!({"restricted": true})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = hub.patch(&owner, &path, json!({"restricted": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["restricted"], true);
    assert!(body["created_by"].is_string(), "the owner is shown");
    // The same value again changes nothing and is allowed to anyone who may edit.
    let (status, _) = hub
        .patch(
            &other,
            &path,
            json!({"restricted": true, "name": "Vault 2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The tenant's own root was made at the root: only the root changes it.
    let r = hub
        .patch(
            &owner,
            &format!("/api/v1/nodes/{tenant}"),
            json!({"restricted": true}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{tenant}"),
            json!({"restricted": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn c2_s8_own_sessions_are_listed_with_the_current_one_and_one_revoked_stops_at_once() {
    let hub = TestHub::start().await;
    let (_, first) = hub.user("many-sessions", "viewer", &[&hub.root]).await;
    let second = hub.login("many-sessions", PASSWORD).await;
    let (status, list) = hub.get(&first, "/api/v1/me/sessions").await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(list.iter().all(|s| s["from"] == "127.0.0.1"), "{list:?}");
    let other = list.iter().find(|s| s["current"] == false).unwrap();
    let id = other["id"].as_str().unwrap();
    // Nobody else's session is reachable by its id.
    let r = hub
        .delete(&hub.admin, &format!("/api/v1/me/sessions/{id}"))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = hub
        .delete(&first, &format!("/api/v1/me/sessions/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub.get(&second, "/api/v1/session").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the revoked session still works"
    );
    let (status, _) = hub.get(&first, "/api/v1/session").await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = hub.get(&first, "/api/v1/me/sessions").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn s8_m5_a_password_reset_mails_a_link_that_sets_the_password_once() {
    let hub = TestHub::start().await;
    let (user, token) = hub.user("forgetful", "viewer", &[&hub.root]).await;
    // Not below Manager, not oneself.
    let r = hub
        .post(
            &token,
            &format!("/api/v1/users/{user}/password-reset"),
            json!(null),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/users/{user}/password-reset"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mail = entries(&hub.state.store)
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.mail.to == "forgetful@example.test")
        .expect("a reset mail is queued");
    let reset = mail
        .mail
        .body
        .split("token: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    // The old password still works until the link is used.
    hub.login("forgetful", PASSWORD).await;
    let body = json!({"token": reset, "password": "a brand new password"});
    let (status, answer) = hub
        .call(
            reqwest::Method::POST,
            "/api/v1/password/set",
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    hub.login("forgetful", "a brand new password").await;
    let r = hub
        .call(
            reqwest::Method::POST,
            "/api/v1/password/set",
            None,
            Some(body),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "token_used");
}

#[tokio::test]
async fn p7_the_catalogue_lists_every_permission_with_its_family_and_role_default() {
    let hub = TestHub::start().await;
    let (_, viewer) = hub.user("reader", "viewer", &[&hub.root]).await;
    let (status, list) = hub.get(&viewer, "/api/v1/permissions").await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 24);
    let publish = list.iter().find(|e| e["name"] == "publish").unwrap();
    assert_eq!(publish["family"], "Screens");
    assert_eq!(publish["default_from"], "moderator");
    assert!(
        list.iter()
            .all(|e| !e["description"].as_str().unwrap().is_empty())
    );
    let comment = list.iter().find(|e| e["name"] == "comment.add").unwrap();
    assert_eq!(comment["family"], "Comments");
}

#[tokio::test]
async fn u4_alert_thresholds_are_set_per_node_inherited_below_and_bounded() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let (_, viewer) = hub.user("watcher", "viewer", &[&tenant]).await;
    let config = hub.state.config.clone();
    let at = |node: &str| {
        Thresholds::load(&hub.state.store, &config)
            .unwrap()
            .at(&NodeId::from(node))
    };
    assert_eq!(
        at(&site),
        (config.alert_offline_secs, config.alert_out_of_sync_secs)
    );

    let (status, _) = hub
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/alert-settings/{}", hub.root),
            Some(hub.admin.as_str()),
            Some(json!({"offline_secs": 120})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = hub
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/alert-settings/{tenant}"),
            Some(hub.admin.as_str()),
            Some(json!({"out_of_sync_secs": 900})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        at(&site),
        (120, 900),
        "each threshold from the nearest node setting it"
    );

    // Bounded, and a viewer may read but not set.
    let r = hub
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/alert-settings/{site}"),
            Some(hub.admin.as_str()),
            Some(json!({"offline_secs": 0})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_threshold");
    let r = hub
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/alert-settings/{site}"),
            Some(viewer.as_str()),
            Some(json!({"offline_secs": 60})),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (status, view) = hub.get(&viewer, "/api/v1/alert-settings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["nodes"].as_array().unwrap().len(), 2, "{view}");

    // Both absent: the node inherits again.
    let (status, _) = hub
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/alert-settings/{tenant}"),
            Some(hub.admin.as_str()),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(at(&site), (120, config.alert_out_of_sync_secs));
}
