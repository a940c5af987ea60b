//! Permission groups over HTTP (P2–P4, P8, T4, S8): CRUD and filtering,
//! nested membership with cycle refusal, effective permissions, tenancy,
//! roles, bad input and the audit log.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestHub, assert_error};

const GROUPS: &str = "/api/v1/permission-groups";

/// Creates a group at `node` as `token`; returns its id.
async fn group(hub: &TestHub, token: &str, node: &str, name: &str, permissions: &[&str]) -> String {
    let (status, body) = hub
        .post(
            token,
            GROUPS,
            json!({"node": node, "name": name, "permissions": permissions}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "create group {name}: {body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn add_user(hub: &TestHub, token: &str, group: &str, user: &str) -> (StatusCode, Value) {
    hub.post(
        token,
        &format!("{GROUPS}/{group}/members/users"),
        json!({"user": user}),
    )
    .await
}

async fn add_group(hub: &TestHub, token: &str, parent: &str, child: &str) -> (StatusCode, Value) {
    hub.post(
        token,
        &format!("{GROUPS}/{parent}/members/groups"),
        json!({"group": child}),
    )
    .await
}

/// The user's effective permissions as the admin reads them.
async fn effective(hub: &TestHub, user: &str) -> Vec<String> {
    let (status, body) = hub
        .get(&hub.admin, &format!("/api/v1/users/{user}/permissions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    names(&body["effective"])
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn members(hub: &TestHub, group: &str) -> Value {
    let (status, body) = hub
        .get(&hub.admin, &format!("{GROUPS}/{group}/members"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// How many audit entries have exactly `action`.
async fn audited(hub: &TestHub, action: &str) -> usize {
    let (status, body) = hub
        .get(&hub.admin, &format!("/api/v1/audit?action={action}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().len()
}

#[tokio::test]
async fn p8_create_read_update_delete_and_filter_by_name_and_email() {
    let hub = TestHub::start().await;
    let (_, manager) = hub.user("mona", "manager", &[&hub.root]).await;
    let (status, created) = hub
        .post(
            &manager,
            GROUPS,
            json!({"node": hub.root, "name": "Night Editors", "email": "night@desk.example",
                "description": "late shift", "permissions": ["publish", "comment.delete_others"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let night = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Night Editors");
    assert_eq!(created["node"], hub.root.as_str());
    assert_eq!(
        names(&created["permissions"]),
        ["comment.delete_others", "publish"]
    );
    let day = group(&hub, &manager, &hub.root, "Day Editors", &[]).await;
    let (status, _) = hub
        .post(
            &manager,
            GROUPS,
            json!({"node": hub.root, "name": "Lobby Screens", "email": "lobby@facilities.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, all) = hub.get(&manager, GROUPS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, editors) = hub.get(&manager, &format!("{GROUPS}?q=EDITORS")).await;
    let mut found = ids(&editors);
    found.sort();
    let mut expected = vec![night.clone(), day.clone()];
    expected.sort();
    assert_eq!(found, expected, "filter by name ignores case");
    let (_, by_email) = hub.get(&manager, &format!("{GROUPS}?q=desk.example")).await;
    assert_eq!(
        ids(&by_email),
        std::slice::from_ref(&night),
        "filter by e-mail"
    );
    let (_, none) = hub
        .get(&manager, &format!("{GROUPS}?q=nothing-like-this"))
        .await;
    assert!(none.as_array().unwrap().is_empty());

    let (status, got) = hub.get(&manager, &format!("{GROUPS}/{night}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["email"], "night@desk.example");
    assert_eq!(got["description"], "late shift");

    let (status, patched) = hub
        .patch(
            &manager,
            &format!("{GROUPS}/{night}"),
            json!({"name": "Night Desk", "email": "", "permissions": ["download"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Night Desk");
    assert!(patched["email"].is_null());
    assert_eq!(patched["description"], "late shift");
    assert_eq!(names(&patched["permissions"]), ["download"]);
    let (_, got) = hub.get(&manager, &format!("{GROUPS}/{night}")).await;
    assert_eq!(got["name"], "Night Desk");

    // Names are unique per node, ignoring case.
    assert_error(
        &hub.patch(
            &manager,
            &format!("{GROUPS}/{day}"),
            json!({"name": "night desk"}),
        )
        .await,
        StatusCode::CONFLICT,
        "name_taken",
    );

    let (status, _) = hub.delete(&manager, &format!("{GROUPS}/{night}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &hub.get(&manager, &format!("{GROUPS}/{night}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.delete(&manager, &format!("{GROUPS}/{night}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, all) = hub.get(&manager, GROUPS).await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    assert_eq!(audited(&hub, "permission_group.create").await, 3);
    assert_eq!(audited(&hub, "permission_group.update").await, 1);
    assert_eq!(audited(&hub, "permission_group.delete").await, 1);
}

#[tokio::test]
async fn p3_membership_three_levels_deep_grants_transitively() {
    let hub = TestHub::start().await;
    let (viewer, _) = hub.user("vic", "viewer", &[&hub.root]).await;
    let top = group(&hub, &hub.admin, &hub.root, "Top", &["publish"]).await;
    let middle = group(&hub, &hub.admin, &hub.root, "Middle", &["learning_plans"]).await;
    let bottom = group(&hub, &hub.admin, &hub.root, "Bottom", &["approve_content"]).await;
    assert_eq!(
        add_group(&hub, &hub.admin, &top, &middle).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        add_group(&hub, &hub.admin, &middle, &bottom).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(
        !effective(&hub, &viewer)
            .await
            .contains(&"publish".to_owned())
    );
    assert_eq!(
        add_user(&hub, &hub.admin, &bottom, &viewer).await.0,
        StatusCode::NO_CONTENT
    );

    let (status, body) = hub
        .get(&hub.admin, &format!("/api/v1/users/{viewer}/permissions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let granted = names(&body["effective"]);
    for permission in ["publish", "learning_plans", "approve_content", "rate"] {
        assert!(
            granted.contains(&permission.to_owned()),
            "{permission}: {body}"
        );
    }
    assert_eq!(body["role"], "viewer");
    assert!(!names(&body["role_defaults"]).contains(&"publish".to_owned()));
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for g in groups {
        assert_eq!(g["direct"], g["id"] == bottom.as_str(), "{g}");
    }
    assert_eq!(body["hidden_groups"], 0);

    // The member list shows direct members only.
    let top_members = members(&hub, &top).await;
    assert_eq!(ids(&top_members["groups"]), std::slice::from_ref(&middle));
    assert!(top_members["users"].as_array().unwrap().is_empty());
    let bottom_members = members(&hub, &bottom).await;
    assert_eq!(ids(&bottom_members["users"]), std::slice::from_ref(&viewer));
    assert_eq!(bottom_members["users"][0]["name"], "vic");

    // Cutting the middle link ends the top group's grant at once.
    let (status, _) = hub
        .delete(
            &hub.admin,
            &format!("{GROUPS}/{top}/members/groups/{middle}"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let granted = effective(&hub, &viewer).await;
    assert!(!granted.contains(&"publish".to_owned()));
    assert!(granted.contains(&"learning_plans".to_owned()));
    // And removing the user ends the rest.
    let (status, _) = hub
        .delete(
            &hub.admin,
            &format!("{GROUPS}/{bottom}/members/users/{viewer}"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        !effective(&hub, &viewer)
            .await
            .contains(&"approve_content".to_owned())
    );
    assert_error(
        &hub.delete(
            &hub.admin,
            &format!("{GROUPS}/{bottom}/members/users/{viewer}"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(audited(&hub, "permission_group.member_add").await, 3);
    assert_eq!(audited(&hub, "permission_group.member_remove").await, 2);
}

#[tokio::test]
async fn p3_direct_indirect_and_self_cycles_are_409_and_change_nothing() {
    let hub = TestHub::start().await;
    let a = group(&hub, &hub.admin, &hub.root, "A", &[]).await;
    let b = group(&hub, &hub.admin, &hub.root, "B", &[]).await;
    let c = group(&hub, &hub.admin, &hub.root, "C", &[]).await;
    assert_eq!(
        add_group(&hub, &hub.admin, &a, &b).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        add_group(&hub, &hub.admin, &b, &c).await.0,
        StatusCode::NO_CONTENT
    );
    let before: Vec<Value> = vec![
        members(&hub, &a).await,
        members(&hub, &b).await,
        members(&hub, &c).await,
    ];
    let adds_before = audited(&hub, "permission_group.member_add").await;

    // Self: A in A. Direct: A in B while B is in A. Indirect: A in C.
    for (parent, child) in [(&a, &a), (&b, &a), (&c, &a)] {
        assert_error(
            &add_group(&hub, &hub.admin, parent, child).await,
            StatusCode::CONFLICT,
            "membership_cycle",
        );
    }
    let after: Vec<Value> = vec![
        members(&hub, &a).await,
        members(&hub, &b).await,
        members(&hub, &c).await,
    ];
    assert_eq!(before, after);
    assert_eq!(
        audited(&hub, "permission_group.member_add").await,
        adds_before
    );
    // Adding an existing member again is a no-op, not an error.
    assert_eq!(
        add_group(&hub, &hub.admin, &a, &b).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        audited(&hub, "permission_group.member_add").await,
        adds_before
    );
}

#[tokio::test]
async fn p4_truth_table_role_default_or_group_grant() {
    let hub = TestHub::start().await;
    let (viewer_out, _) = hub.user("v-out", "viewer", &[&hub.root]).await;
    let (viewer_in, _) = hub.user("v-in", "viewer", &[&hub.root]).await;
    let (contributor_out, _) = hub.user("c-out", "contributor", &[&hub.root]).await;
    let (contributor_in, _) = hub.user("c-in", "contributor", &[&hub.root]).await;
    let grants = group(&hub, &hub.admin, &hub.root, "Downloaders", &["download"]).await;
    let grants_nothing = group(&hub, &hub.admin, &hub.root, "Empty", &[]).await;
    for user in [&viewer_in, &contributor_in] {
        assert_eq!(
            add_user(&hub, &hub.admin, &grants, user).await.0,
            StatusCode::NO_CONTENT
        );
    }
    // A group cannot remove a role default: there are no deny rules.
    for user in [&viewer_out, &contributor_out] {
        assert_eq!(
            add_user(&hub, &hub.admin, &grants_nothing, user).await.0,
            StatusCode::NO_CONTENT
        );
    }
    // (role allows, group allows) -> granted
    let table = [
        (&viewer_out, false, false, false),
        (&viewer_in, false, true, true),
        (&contributor_out, true, false, true),
        (&contributor_in, true, true, true),
    ];
    for (user, role_allows, group_allows, granted) in table {
        let (status, body) = hub
            .get(&hub.admin, &format!("/api/v1/users/{user}/permissions"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let download = "download".to_owned();
        assert_eq!(
            names(&body["role_defaults"]).contains(&download),
            role_allows,
            "{body}"
        );
        let from_groups = body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| names(&g["permissions"]).contains(&download));
        assert_eq!(from_groups, group_allows, "{body}");
        assert_eq!(
            names(&body["effective"]).contains(&download),
            granted,
            "{body}"
        );
    }
}

#[tokio::test]
async fn p8_deleting_a_group_removes_its_grants_at_once() {
    let hub = TestHub::start().await;
    let (viewer, token) = hub.user("wes", "viewer", &[&hub.root]).await;
    let outer = group(&hub, &hub.admin, &hub.root, "Outer", &["publish"]).await;
    let inner = group(&hub, &hub.admin, &hub.root, "Inner", &["learning_plans"]).await;
    assert_eq!(
        add_group(&hub, &hub.admin, &outer, &inner).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        add_user(&hub, &hub.admin, &inner, &viewer).await.0,
        StatusCode::NO_CONTENT
    );
    // The user reads their own effective permissions with their own token.
    let (status, own) = hub
        .get(&token, &format!("/api/v1/users/{viewer}/permissions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let granted = names(&own["effective"]);
    assert!(
        granted.contains(&"publish".to_owned()) && granted.contains(&"learning_plans".to_owned())
    );

    // Deleting the inner group ends its own grant and the outer group's,
    // which the user held only through it; it also leaves the outer group.
    let (status, _) = hub.delete(&hub.admin, &format!("{GROUPS}/{inner}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, own) = hub
        .get(&token, &format!("/api/v1/users/{viewer}/permissions"))
        .await;
    let granted = names(&own["effective"]);
    assert!(!granted.contains(&"publish".to_owned()), "{own}");
    assert!(!granted.contains(&"learning_plans".to_owned()), "{own}");
    assert!(own["groups"].as_array().unwrap().is_empty());
    assert!(
        members(&hub, &outer).await["groups"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, outer_view) = hub.get(&hub.admin, &format!("{GROUPS}/{outer}")).await;
    assert_eq!(outer_view["member_groups"], 0);
    assert_eq!(audited(&hub, "permission_group.delete").await, 1);
}

#[tokio::test]
async fn t4_a_tenant_manager_cannot_reach_another_tenants_groups_or_users() {
    let hub = TestHub::start().await;
    let tenant_a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let tenant_b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (_, manager_a) = hub.user("ann", "manager", &[&tenant_a]).await;
    let (_, manager_b) = hub.user("ben", "manager", &[&tenant_b]).await;
    let (user_a, _) = hub.user("amy", "viewer", &[&tenant_a]).await;
    let (user_b, _) = hub.user("bob", "viewer", &[&tenant_b]).await;
    let group_a = group(&hub, &manager_a, &tenant_a, "A staff", &["publish"]).await;
    let group_b = group(&hub, &manager_b, &tenant_b, "B staff", &["publish"]).await;
    // A group inside tenant A's subtree is A's.
    let region = hub.node(&manager_a, &tenant_a, "Region A1").await;
    let group_region = group(&hub, &manager_a, &region, "A1 staff", &[]).await;

    let (status, listed) = hub.get(&manager_a, GROUPS).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = ids(&listed);
    seen.sort();
    let mut expected = vec![group_a.clone(), group_region.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    let (_, filtered) = hub.get(&manager_a, &format!("{GROUPS}?q=staff")).await;
    assert!(!ids(&filtered).contains(&group_b));

    let b_path = format!("{GROUPS}/{group_b}");
    for result in [
        hub.get(&manager_a, &b_path).await,
        hub.patch(&manager_a, &b_path, json!({"name": "mine now"}))
            .await,
        hub.get(&manager_a, &format!("{b_path}/members")).await,
        add_user(&hub, &manager_a, &group_b, &user_a).await,
        add_group(&hub, &manager_a, &group_b, &group_a).await,
        hub.delete(&manager_a, &format!("{b_path}/members/users/{user_b}"))
            .await,
        hub.delete(&manager_a, &b_path).await,
    ] {
        assert_error(&result, StatusCode::NOT_FOUND, "not_found");
    }
    // No cross-tenant membership: neither B's users nor B's groups join A's.
    assert_error(
        &add_user(&hub, &manager_a, &group_a, &user_b).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &add_group(&hub, &manager_a, &group_a, &group_b).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Nor can A create a group at B's node, or read B's users' permissions.
    assert_error(
        &hub.post(
            &manager_a,
            GROUPS,
            json!({"node": tenant_b, "name": "sneaky"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.get(&manager_a, &format!("/api/v1/users/{user_b}/permissions"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Inside its own tenant, A's manager works normally.
    assert_eq!(
        add_user(&hub, &manager_a, &group_a, &user_a).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        add_group(&hub, &manager_a, &group_a, &group_region).await.0,
        StatusCode::NO_CONTENT
    );

    // B's group is untouched.
    let (_, untouched) = hub.get(&manager_b, &b_path).await;
    assert_eq!(untouched["name"], "B staff");
    assert_eq!(untouched["member_users"], 0);
    assert_eq!(untouched["member_groups"], 0);

    // A root-level admin may put B's user into a root group; A's manager then
    // sees the effect but not the group (T4).
    let root_group = group(&hub, &hub.admin, &hub.root, "Everyone", &["learning_plans"]).await;
    assert_eq!(
        add_user(&hub, &hub.admin, &root_group, &user_a).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = hub
        .get(&manager_a, &format!("/api/v1/users/{user_a}/permissions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hidden_groups"], 1);
    assert!(!ids(&body["groups"]).contains(&root_group));
    assert!(names(&body["effective"]).contains(&"learning_plans".to_owned()));
}

#[tokio::test]
async fn p2_roles_below_manager_cannot_manage_or_read_groups() {
    let hub = TestHub::start().await;
    let existing = group(&hub, &hub.admin, &hub.root, "Existing", &[]).await;
    let (other, _) = hub.user("olga", "viewer", &[&hub.root]).await;
    for role in ["viewer", "contributor", "moderator"] {
        let (me, token) = hub.user(&format!("{role}-1"), role, &[&hub.root]).await;
        let path = format!("{GROUPS}/{existing}");
        for result in [
            hub.post(&token, GROUPS, json!({"node": hub.root, "name": "mine"}))
                .await,
            hub.patch(&token, &path, json!({"name": "renamed"})).await,
            hub.delete(&token, &path).await,
            add_user(&hub, &token, &existing, &me).await,
            hub.delete(&token, &format!("{path}/members/users/{me}"))
                .await,
            hub.get(&token, GROUPS).await,
            hub.get(&token, &path).await,
            hub.get(&token, &format!("{path}/members")).await,
        ] {
            assert_error(&result, StatusCode::FORBIDDEN, "forbidden");
        }
        // Their own effective permissions, yes; someone else's, no.
        let (status, own) = hub
            .get(&token, &format!("/api/v1/users/{me}/permissions"))
            .await;
        assert_eq!(status, StatusCode::OK, "{own}");
        assert_eq!(own["role"], role);
        assert_error(
            &hub.get(&token, &format!("/api/v1/users/{other}/permissions"))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let (_, all) = hub.get(&hub.admin, GROUPS).await;
    assert_eq!(ids(&all), [existing]);
    assert_eq!(audited(&hub, "permission_group.create").await, 1);
}

#[tokio::test]
async fn s8_bad_bodies_are_400_and_store_nothing() {
    let hub = TestHub::start().await;
    let long_name = "n".repeat(129);
    let long_description = "d".repeat(1025);
    let bad_bodies = [
        (
            json!({"node": hub.root, "name": "x", "colour": "red"}),
            "invalid_body",
        ),
        (json!({"name": "no node"}), "invalid_body"),
        (
            json!({"node": hub.root, "name": "x", "permissions": ["fly"]}),
            "unknown_permission",
        ),
        (
            json!({"node": hub.root, "name": "x", "permissions": "publish"}),
            "invalid_body",
        ),
        (json!({"node": hub.root, "name": "   "}), "invalid_name"),
        (json!({"node": hub.root, "name": long_name}), "invalid_name"),
        (
            json!({"node": hub.root, "name": "x", "description": long_description}),
            "invalid_description",
        ),
        (
            json!({"node": hub.root, "name": "x", "email": "not an address"}),
            "invalid_email",
        ),
    ];
    for (body, code) in bad_bodies {
        assert_error(
            &hub.post(&hub.admin, GROUPS, body.clone()).await,
            StatusCode::BAD_REQUEST,
            code,
        );
    }
    let response = hub
        .client
        .post(format!("{}{GROUPS}", hub.base))
        .bearer_auth(&hub.admin)
        .header("content-type", "application/json")
        .body("{\"node\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_body");
    assert_error(
        &hub.get(&hub.admin, &format!("{GROUPS}?q=x&colour=red"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    let (_, all) = hub.get(&hub.admin, GROUPS).await;
    assert!(all.as_array().unwrap().is_empty());

    // Updates and member changes: refused, nothing changed.
    let id = group(&hub, &hub.admin, &hub.root, "Stable", &["rate"]).await;
    let (user, _) = hub.user("uma", "viewer", &[&hub.root]).await;
    let path = format!("{GROUPS}/{id}");
    for (result, code) in [
        (
            hub.patch(&hub.admin, &path, json!({"name": "y", "owner": "me"}))
                .await,
            "invalid_body",
        ),
        (
            hub.patch(
                &hub.admin,
                &path,
                json!({"permissions": ["publish", "nope"]}),
            )
            .await,
            "unknown_permission",
        ),
        (
            hub.patch(&hub.admin, &path, json!({"name": ""})).await,
            "invalid_name",
        ),
        (
            hub.post(
                &hub.admin,
                &format!("{path}/members/users"),
                json!({"user": user, "role": "admin"}),
            )
            .await,
            "invalid_body",
        ),
        (
            hub.post(
                &hub.admin,
                &format!("{path}/members/groups"),
                json!({"groups": [id]}),
            )
            .await,
            "invalid_body",
        ),
    ] {
        assert_error(&result, StatusCode::BAD_REQUEST, code);
    }
    let (_, unchanged) = hub.get(&hub.admin, &path).await;
    assert_eq!(unchanged["name"], "Stable");
    assert_eq!(names(&unchanged["permissions"]), ["rate"]);
    assert_eq!(unchanged["member_users"], 0);
    assert_eq!(audited(&hub, "permission_group.create").await, 1);
    assert_eq!(audited(&hub, "permission_group.update").await, 0);
    assert_eq!(audited(&hub, "permission_group.member_add").await, 0);
    // Unknown targets are 404.
    assert_error(
        &add_user(&hub, &hub.admin, &id, "u-nobody").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &add_group(&hub, &hub.admin, &id, "pg-nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.post(
            &hub.admin,
            GROUPS,
            json!({"node": "n-nowhere", "name": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn p8_deleted_users_are_ignored_in_groups() {
    let hub = TestHub::start().await;
    let (gone, _) = hub.user("gone", "viewer", &[&hub.root]).await;
    let (kept, _) = hub.user("kept", "viewer", &[&hub.root]).await;
    let id = group(&hub, &hub.admin, &hub.root, "Mixed", &["publish"]).await;
    assert_eq!(
        add_user(&hub, &hub.admin, &id, &gone).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = hub
        .delete(&hub.admin, &format!("/api/v1/users/{gone}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The dangling id is not shown, and the group keeps working.
    assert!(
        members(&hub, &id).await["users"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        add_user(&hub, &hub.admin, &id, &kept).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ids(&members(&hub, &id).await["users"]),
        std::slice::from_ref(&kept)
    );
    // The next write of the group drops the dangling id from the record.
    let (_, view) = hub.get(&hub.admin, &format!("{GROUPS}/{id}")).await;
    assert_eq!(view["member_users"], 1);
    assert!(effective(&hub, &kept).await.contains(&"publish".to_owned()));
}

#[tokio::test]
async fn p8_routes_are_in_the_openapi_document() {
    let hub = TestHub::start().await;
    let (status, document) = hub.get(&hub.admin, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = &document["paths"];
    for path in [
        "/api/v1/permission-groups",
        "/api/v1/permission-groups/{id}",
        "/api/v1/permission-groups/{id}/members",
        "/api/v1/permission-groups/{id}/members/users",
        "/api/v1/permission-groups/{id}/members/users/{user}",
        "/api/v1/permission-groups/{id}/members/groups",
        "/api/v1/permission-groups/{id}/members/groups/{group}",
        "/api/v1/users/{id}/permissions",
    ] {
        assert!(paths.get(path).is_some(), "{path} missing");
    }
}

async fn group_granting(hub: &TestHub, node: &str, name: &str, permission: &str) -> String {
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": node, "name": name, "permissions": [permission]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn effective_of(hub: &TestHub, user: &str) -> Vec<String> {
    let (status, body) = hub
        .get(&hub.admin, &format!("/api/v1/users/{user}/permissions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["effective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// T4 with P4: a tenant's permission groups count only for users working
/// inside that tenant. A user moved to another tenant keeps no grant from
/// the old one (even though the membership record remains), while a group
/// placed at the root keeps counting everywhere.
#[tokio::test]
async fn t4_p4_a_user_moved_to_another_tenant_keeps_no_grant_from_the_old_one() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (user, _) = hub.user("mover", "viewer", &[&a]).await;
    let tenant_group = group_granting(&hub, &a, "A downloaders", "download").await;
    let root_group = group_granting(&hub, &hub.root, "Everyone shares", "share").await;
    for group in [&tenant_group, &root_group] {
        let r = hub
            .post(
                &hub.admin,
                &format!("/api/v1/permission-groups/{group}/members/users"),
                json!({"user": user}),
            )
            .await;
        assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    }
    let before = effective_of(&hub, &user).await;
    assert!(
        before.contains(&"download".to_owned()) && before.contains(&"share".to_owned()),
        "{before:?}"
    );

    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{user}"),
            json!({"domain": [b]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let after = effective_of(&hub, &user).await;
    assert!(
        !after.contains(&"download".to_owned()),
        "tenant A's grant still counts: {after:?}"
    );
    assert!(
        after.contains(&"share".to_owned()),
        "the root group's grant must still count: {after:?}"
    );
}
