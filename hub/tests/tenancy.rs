//! Nodes and users over HTTP (T1–T4, S8): the tree rules, tenant isolation,
//! delegation limits, bad input, and audit scoping.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::{NODE_DEVICES, NODES, Node};
use support::{TestHub, assert_error};

async fn node_count(hub: &TestHub) -> usize {
    hub.state.store.scan::<Node>(NODES, "").unwrap().len()
}

#[tokio::test]
async fn t1_no_child_under_a_node_that_holds_devices() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let mut batch = WriteBatch::new();
    batch
        .put(
            NODE_DEVICES,
            &format!("{site}/dev-1"),
            &json!({"device": "dev-1"}),
        )
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
    let before = node_count(&hub).await;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": site, "name": "below a screen"}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "node_has_devices");
    assert_eq!(node_count(&hub).await, before);
    // A node holding devices cannot be deleted either.
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/nodes/{site}"))
            .await,
        StatusCode::CONFLICT,
        "node_not_empty",
    );
}

#[tokio::test]
async fn t4_a_tenant_never_reads_or_changes_another_tenant() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let b_site = hub.node(&hub.admin, &b, "B site").await;
    let (_, a_admin) = hub.user("a-admin", "admin", &[&a]).await;
    let (b_user, _) = hub.user("b-viewer", "viewer", &[&b]).await;

    // Listings show only the own subtree.
    let (_, nodes) = hub.get(&a_admin, "/api/v1/nodes").await;
    let ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str()]);
    let (_, users) = hub.get(&a_admin, "/api/v1/users").await;
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["name"] != "b-viewer")
    );

    // Everything about B is "not found", read or write.
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/nodes/{b}"), None),
        (
            Method::PATCH,
            format!("/api/v1/nodes/{b_site}"),
            Some(json!({"name": "taken over"})),
        ),
        (Method::DELETE, format!("/api/v1/nodes/{b_site}"), None),
        (Method::GET, format!("/api/v1/users/{b_user}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{b_user}"),
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{b_user}"), None),
        (
            Method::POST,
            format!("/api/v1/users/{b_user}/revoke-sessions"),
            Some(json!(null)),
        ),
    ] {
        let r = hub.call(method.clone(), &path, Some(&a_admin), body).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    let r = hub
        .post(
            &a_admin,
            "/api/v1/nodes",
            json!({"parent": b, "name": "inside B"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = hub
        .post(
            &a_admin,
            "/api/v1/users",
            json!({"name": "spy", "email": "spy@example.test", "password": "a long password!", "role": "viewer", "domain": [b]}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_domain");
    // Nothing of B changed.
    let (_, b_node) = hub
        .get(&hub.admin, &format!("/api/v1/nodes/{b_site}"))
        .await;
    assert_eq!(b_node["name"], "B site");
}

#[tokio::test]
async fn p1_s8_delegation_never_exceeds_the_delegators_role_or_domain() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let (manager_id, manager) = hub.user("a-manager", "manager", &[&a]).await;
    let create = |role: &str| {
        json!({"name": format!("new-{role}"), "email": "n@example.test", "password": "a long password!",
            "role": role, "domain": [a]})
    };
    assert_error(
        &hub.post(&manager, "/api/v1/users", create("admin")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = hub
        .post(&manager, "/api/v1/users", create("contributor"))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let r = hub
        .patch(
            &manager,
            &format!("/api/v1/users/{manager_id}"),
            json!({"role": "admin"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = hub
        .patch(
            &manager,
            &format!("/api/v1/users/{manager_id}"),
            json!({"domain": [hub.root]}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_error(
        &hub.delete(&manager, &format!("/api/v1/users/{manager_id}"))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // A manager cannot delete the root of their own domain; the admin above can
    // once it is empty and unused.
    assert_error(
        &hub.delete(&manager, &format!("/api/v1/nodes/{a}")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Viewers cannot create nodes or users, and cannot list users.
    let (_, viewer) = hub.user("a-viewer", "viewer", &[&a]).await;
    assert_error(
        &hub.post(&viewer, "/api/v1/nodes", json!({"parent": a, "name": "x"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &hub.get(&viewer, "/api/v1/users").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Everyone may change their own password.
    let (_, me) = hub.get(&viewer, "/api/v1/session").await;
    let r = hub
        .patch(
            &viewer,
            &format!("/api/v1/users/{}", me["user"]["id"].as_str().unwrap()),
            json!({"password": "another long password"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    hub.login("a-viewer", "another long password").await;
}

#[tokio::test]
async fn t1_node_deletion_rules() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let site = hub.node(&hub.admin, &a, "Site").await;
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/nodes/{a}")).await,
        StatusCode::CONFLICT,
        "node_not_empty",
    );
    hub.user("site-user", "viewer", &[&site]).await;
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/nodes/{site}"))
            .await,
        StatusCode::CONFLICT,
        "node_in_use",
    );
    // A node where a permission group or an access group lives is in use.
    let grouped = hub.node(&hub.admin, &a, "Grouped").await;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": grouped, "name": "Editors"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/nodes/{grouped}"))
            .await,
        StatusCode::CONFLICT,
        "node_in_use",
    );
    let licensed = hub.node(&hub.admin, &a, "Licensed").await;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": licensed, "name": "Season pass", "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/nodes/{licensed}"))
            .await,
        StatusCode::CONFLICT,
        "node_in_use",
    );
    let empty = hub.node(&hub.admin, &a, "Empty").await;
    assert_eq!(
        hub.delete(&hub.admin, &format!("/api/v1/nodes/{empty}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hub.get(&hub.admin, &format!("/api/v1/nodes/{empty}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let root = hub.root.clone();
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/nodes/{root}"))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

#[tokio::test]
async fn design_7_bad_input_gets_a_json_error_and_changes_nothing() {
    let hub = TestHub::start_with(|c| c.max_body_bytes = 2048).await;
    let before = node_count(&hub).await;
    let url = format!("{}/api/v1/nodes", hub.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        hub.client
            .post(&url)
            .bearer_auth(&hub.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            "malformed",
            b"{\"parent\": ".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "unknown field",
            serde_json::to_vec(&json!({"parent": hub.root, "name": "x", "owner": "me"})).unwrap(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "wrong type",
            serde_json::to_vec(&json!({"parent": hub.root, "name": 5})).unwrap(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "oversized",
            serde_json::to_vec(&json!({"parent": hub.root, "name": "x".repeat(4096)})).unwrap(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "not json",
            b"parent=x".to_vec(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "empty name",
            serde_json::to_vec(&json!({"parent": hub.root, "name": "  "})).unwrap(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
    ];
    for (name, body, content_type, status, code) in cases {
        let response = send(body, content_type).await.unwrap();
        assert_eq!(response.status(), status, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{name}: {body}");
    }
    assert_eq!(node_count(&hub).await, before, "nothing stored");
    // No token, a malformed header, an unknown token.
    for header in [None, Some("Basic abc"), Some("Bearer not-a-token")] {
        let mut request = hub.client.get(format!("{}/api/v1/nodes", hub.base));
        if let Some(h) = header {
            request = request.header("authorization", h);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn s8_every_write_is_audited_and_admins_read_only_their_tenant() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (_, a_admin) = hub.user("a-admin", "admin", &[&a]).await;
    let a_site = hub.node(&a_admin, &a, "A site").await;
    hub.node(&hub.admin, &b, "B site").await;

    let (status, entries) = hub
        .get(&hub.admin, "/api/v1/audit?action=node.create")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entries.as_array().unwrap().len(), 4);
    let (_, mine) = hub.get(&a_admin, "/api/v1/audit?action=node.").await;
    let mine = mine.as_array().unwrap();
    // The entries inside A's subtree (A's own creation and A site), none of B.
    let mut targets: Vec<&str> = mine.iter().map(|e| e["target"].as_str().unwrap()).collect();
    targets.sort_unstable();
    let mut expected = [a.as_str(), a_site.as_str()];
    expected.sort_unstable();
    assert_eq!(targets, expected, "{mine:?}");
    let by_a = mine
        .iter()
        .find(|e| e["target"] == a_site.as_str())
        .unwrap();
    assert_eq!(by_a["actor_name"], "a-admin");
    assert_eq!(by_a["from"], "127.0.0.1");
    assert!(by_a["at"].is_string());
    let (_, a_manager) = hub.user("a-manager", "manager", &[&a]).await;
    assert_error(
        &hub.get(&a_manager, "/api/v1/audit").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}
