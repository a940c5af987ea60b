//! Who views an item and what they may do with it, over HTTP (M1, M2, P2,
//! P5, P6, L4): items restricted to permission groups (nested), Moderator+
//! seeing all in their domain, access-group entitlements that expire,
//! publish settings that switch an action off even for a user holding its
//! permission, and bad input that changes nothing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::content::{CONTENT, ContentItem};
use signet_hub::store::WriteBatch;
use support::{TestHub, assert_error, gif};

/// Two tenants, permission groups `outer ⊃ inner` at Acme and users.
struct World {
    hub: TestHub,
    acme: String,
    globex: String,
    outer: String,
    inner: String,
    /// A Viewer in `inner` (so in `outer`, transitively): id, token.
    member_id: String,
    member: String,
    /// A Viewer in no group.
    outsider: String,
    /// A Contributor in `inner` (holds `download`).
    contributor: String,
    /// A Moderator in no group.
    moderator: String,
    /// Globex's admin.
    globex_admin: String,
}

async fn world() -> World {
    let hub = TestHub::start().await;
    let acme = hub.node(&hub.admin, &hub.root, "Acme").await;
    let globex = hub.node(&hub.admin, &hub.root, "Globex").await;
    let outer = permission_group(&hub, &acme, "outer").await;
    let inner = permission_group(&hub, &acme, "inner").await;
    let (member_id, member) = hub.user("member", "viewer", &[&acme]).await;
    let (_, outsider) = hub.user("outsider", "viewer", &[&acme]).await;
    let (contributor_id, contributor) = hub.user("contrib", "contributor", &[&acme]).await;
    let (_, moderator) = hub.user("moderator", "moderator", &[&acme]).await;
    let (_, globex_admin) = hub.user("gadmin", "admin", &[&globex]).await;
    let groups = "/api/v1/permission-groups";
    for (path, body) in [
        (
            format!("{groups}/{outer}/members/groups"),
            json!({"group": inner}),
        ),
        (
            format!("{groups}/{inner}/members/users"),
            json!({"user": member_id}),
        ),
        (
            format!("{groups}/{inner}/members/users"),
            json!({"user": contributor_id}),
        ),
    ] {
        let r = hub.post(&hub.admin, &path, body).await;
        assert!(r.0.is_success(), "{path}: {}", r.1);
    }
    World {
        hub,
        acme,
        globex,
        outer,
        inner,
        member_id,
        member,
        outsider,
        contributor,
        moderator,
        globex_admin,
    }
}

async fn permission_group(hub: &TestHub, node: &str, name: &str) -> String {
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": node, "name": name, "permissions": []}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_owned()
}

/// Uploads a GIF at `node` as the admin; returns its id.
async fn upload(hub: &TestHub, node: &str, name: &str) -> String {
    let r = hub.upload(&hub.admin, node, name, gif(name)).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_owned()
}

async fn patch(hub: &TestHub, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
    hub.patch(token, &format!("/api/v1/content/{id}"), body)
        .await
}

/// The status and bytes of `GET path` with `token`, optionally a `Range`.
async fn raw(hub: &TestHub, token: &str, path: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut request = hub
        .client
        .get(format!("{}{path}", hub.base))
        .bearer_auth(token);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

/// The ids in a listing.
async fn listed(hub: &TestHub, token: &str, path: &str) -> Vec<String> {
    let (status, body) = hub.get(token, path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether `token` sees item `id` in the listing, by GET, and (for media)
/// its thumbnail: all three agree, and not seeing is exactly 404.
async fn sees(hub: &TestHub, token: &str, id: &str) -> bool {
    let in_list = listed(hub, token, "/api/v1/content")
        .await
        .contains(&id.to_owned());
    let (get, _) = hub.get(token, &format!("/api/v1/content/{id}")).await;
    let (thumbnail, _) = raw(hub, token, &format!("/api/v1/content/{id}/thumbnail"), None).await;
    if in_list {
        assert_eq!((get, thumbnail), (StatusCode::OK, StatusCode::OK));
    } else {
        assert_eq!(
            (get, thumbnail),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
        );
    }
    in_list
}

fn template_layout() -> Value {
    json!({"canvas": {"width": 1280, "height": 720},
        "zones": [{"id": "t", "kind": "text",
            "rect": {"x": 0, "y": 0, "width": 1280, "height": 720}, "text": "hello"}]})
}

#[tokio::test]
async fn m1_p6_viewer_outside_allowed_groups_gets_404_nested_member_sees() {
    let w = world().await;
    let hub = &w.hub;
    let id = upload(hub, &w.acme, "restricted").await;
    let r = patch(
        hub,
        &hub.admin,
        &id,
        json!({"allowed_groups": [w.outer], "settings": {"allow_download": true}}),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["allowed_groups"], json!([w.outer]));
    assert_eq!(r.1["settings"]["allow_download"], true);

    // Outside the groups: 404 for the item, its thumbnail and its download,
    // and absent from the listing; as for another tenant.
    assert!(!sees(hub, &w.outsider, &id).await);
    let download = format!("/api/v1/content/{id}/download");
    assert_eq!(
        raw(hub, &w.outsider, &download, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!sees(hub, &w.globex_admin, &id).await);
    assert_eq!(
        raw(hub, &w.globex_admin, &download, None).await.0,
        StatusCode::NOT_FOUND
    );

    // A member of `inner`, nested in `outer`, sees it; a Viewer does not
    // hold `download` (403), a Contributor in the group downloads it.
    assert!(sees(hub, &w.member, &id).await);
    assert_error(
        &hub.get(&w.member, &download).await,
        StatusCode::FORBIDDEN,
        "permission_not_held",
    );
    let (status, bytes) = raw(hub, &w.contributor, &download, None).await;
    assert_eq!((status, bytes), (StatusCode::OK, gif("restricted")));

    // A Moderator in no group sees every item in their domain (M1, P2).
    assert!(sees(hub, &w.moderator, &id).await);

    // Opening it again ([]) shows it to everyone at the node.
    let r = patch(hub, &hub.admin, &id, json!({"allowed_groups": []})).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert!(sees(hub, &w.outsider, &id).await);
    assert!(!sees(hub, &w.globex_admin, &id).await);
}

#[tokio::test]
async fn m1_templates_and_playlists_are_restricted_the_same_way() {
    let w = world().await;
    let hub = &w.hub;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": w.acme, "name": "Board", "template": template_layout(),
                "allowed_groups": [w.inner], "settings": {"allow_comments": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["settings"]["allow_comments"], false);
    assert_eq!(r.1["settings"]["allow_rating"], true);
    let template = r.1["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/templates/{template}");
    assert_eq!(hub.get(&w.outsider, &path).await.0, StatusCode::NOT_FOUND);
    assert!(
        !listed(hub, &w.outsider, "/api/v1/templates")
            .await
            .contains(&template)
    );
    assert_eq!(hub.get(&w.member, &path).await.0, StatusCode::OK);
    assert!(
        listed(hub, &w.member, "/api/v1/templates")
            .await
            .contains(&template)
    );
    assert_eq!(hub.get(&w.moderator, &path).await.0, StatusCode::OK);

    let r = hub
        .post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": w.acme, "name": "Mornings", "allowed_groups": [w.outer]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let playlist = r.1["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/playlists/{playlist}");
    assert_eq!(hub.get(&w.outsider, &path).await.0, StatusCode::NOT_FOUND);
    assert!(
        !listed(hub, &w.outsider, "/api/v1/playlists")
            .await
            .contains(&playlist)
    );
    assert_eq!(hub.get(&w.member, &path).await.0, StatusCode::OK);
    assert!(
        listed(hub, &w.moderator, "/api/v1/playlists")
            .await
            .contains(&playlist)
    );
    assert_eq!(
        hub.get(&w.globex_admin, &path).await.0,
        StatusCode::NOT_FOUND
    );
    let r = hub
        .patch(&hub.admin, &path, json!({"allowed_groups": []}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(hub.get(&w.outsider, &path).await.0, StatusCode::OK);
}

#[tokio::test]
async fn m1_p6_l4_access_group_entitlement_expiry_hides_the_item() {
    let w = world().await;
    let hub = &w.hub;
    let id = upload(hub, &w.acme, "licensed").await;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": w.acme, "name": "Licensed", "license": {"duration_from_join_secs": 3600,
                "allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let group = r.1["id"].as_str().unwrap().to_owned();
    let r = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{group}/items"),
            Some(&hub.admin),
            Some(json!({"items": [{"id": id}]})),
        )
        .await;
    assert!(r.0.is_success(), "{}", r.1);
    let r = hub
        .post(
            &hub.admin,
            &format!("/api/v1/access-groups/{group}/members"),
            json!({"member": {"type": "user", "user_id": w.member_id}}),
        )
        .await;
    assert!(r.0.is_success(), "{}", r.1);

    // Held by an access group: a Viewer needs a valid entitlement in it.
    assert!(sees(hub, &w.member, &id).await);
    assert!(!sees(hub, &w.outsider, &id).await);
    assert!(sees(hub, &w.moderator, &id).await);

    // The licence window ends an hour after joining: the item is gone for
    // the member, in the listing, by id and its thumbnail.
    hub.clock.advance(TimeDelta::hours(2));
    assert!(!sees(hub, &w.member, &id).await);
    assert!(sees(hub, &w.moderator, &id).await);
}

#[tokio::test]
async fn m2_p5_an_action_is_refused_while_its_publish_setting_is_off() {
    let w = world().await;
    let hub = &w.hub;
    let id = upload(hub, &w.acme, "settings").await;
    let download = format!("/api/v1/content/{id}/download");
    // Defaults (M2): download and share off, comments and rating on.
    let (_, item) = hub.get(&w.outsider, &format!("/api/v1/content/{id}")).await;
    assert_eq!(
        item["settings"],
        json!({"allow_download": false, "allow_share": false, "allow_comments": true,
            "allow_rating": true})
    );
    // Off: refused even for users holding `download` (Contributor, Admin).
    for token in [&w.contributor, &w.moderator, &hub.admin] {
        assert_error(
            &hub.get(token, &download).await,
            StatusCode::FORBIDDEN,
            "disabled_by_publish_settings",
        );
    }
    let r = patch(
        hub,
        &w.contributor,
        &id,
        json!({"settings": {"allow_download": true}}),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(
        r.1["settings"]["allow_comments"], true,
        "other settings stay"
    );
    let bytes = gif("settings");
    assert_eq!(
        raw(hub, &w.contributor, &download, None).await,
        (StatusCode::OK, bytes.clone())
    );
    let (status, part) = raw(hub, &hub.admin, &download, Some("bytes=0-5")).await;
    assert_eq!(
        (status, part.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &bytes[..6])
    );
    // Still never for a Viewer, who does not hold the permission (P4).
    assert_error(
        &hub.get(&w.outsider, &download).await,
        StatusCode::FORBIDDEN,
        "permission_not_held",
    );
    // Off again: refused again.
    let r = patch(
        hub,
        &hub.admin,
        &id,
        json!({"settings": {"allow_download": false}}),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_error(
        &hub.get(&hub.admin, &download).await,
        StatusCode::FORBIDDEN,
        "disabled_by_publish_settings",
    );
}

#[tokio::test]
async fn m1_m2_bad_input_changes_nothing() {
    let w = world().await;
    let hub = &w.hub;
    let id = upload(hub, &w.acme, "steady").await;
    let before = hub
        .get(&hub.admin, &format!("/api/v1/content/{id}"))
        .await
        .1;
    let globex_group = permission_group(hub, &w.globex, "globex staff").await;
    let north = hub.node(&hub.admin, &w.acme, "North").await;
    let south = hub.node(&hub.admin, &w.acme, "South").await;
    let south_group = permission_group(hub, &south, "south staff").await;
    let north_item = upload(hub, &north, "north item").await;

    let (_, acme_admin) = hub.user("acme-admin", "admin", &[&w.acme]).await;
    // Unknown group, another tenant's group: 404 (T4), with a new name that
    // is not applied either.
    for group in ["pg-missing", globex_group.as_str()] {
        let r = patch(
            hub,
            &acme_admin,
            &id,
            json!({"name": "Renamed", "allowed_groups": [group]}),
        )
        .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    // A group on another branch than the item's node can never reach it:
    // another tenant's (seen from the root) or a sibling node's.
    let r = patch(
        hub,
        &hub.admin,
        &id,
        json!({"allowed_groups": [globex_group]}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "group_not_usable");
    let r = patch(
        hub,
        &hub.admin,
        &north_item,
        json!({"allowed_groups": [south_group]}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "group_not_usable");
    // Unknown fields, wrong types.
    for body in [
        json!({"allowed_group": [w.outer]}),
        json!({"settings": {"allow_downloads": true}}),
        json!({"settings": {"allow_download": "yes"}}),
        json!({"allowed_groups": "everyone"}),
    ] {
        let r = patch(hub, &hub.admin, &id, body.clone()).await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "{body}: {}", r.1);
    }
    // A Contributor may not hide the item from themself.
    let others = permission_group(hub, &w.acme, "others").await;
    let r = patch(
        hub,
        &w.contributor,
        &id,
        json!({"allowed_groups": [others]}),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "would_hide_item");
    assert_eq!(
        hub.get(&hub.admin, &format!("/api/v1/content/{id}"))
            .await
            .1,
        before
    );

    // An upload naming a bad group stores nothing.
    let count = hub
        .state
        .store
        .scan::<ContentItem>(CONTENT, "")
        .unwrap()
        .len();
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[
            ("node", w.acme.as_str()),
            ("name", "bad"),
            ("allowed_groups", globex_group.as_str()),
        ])
        .bearer_auth(&acme_admin)
        .body(gif("bad upload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        hub.state
            .store
            .scan::<ContentItem>(CONTENT, "")
            .unwrap()
            .len(),
        count
    );
    // A playlist naming a bad group is not made.
    let r = hub
        .post(
            &acme_admin,
            "/api/v1/playlists",
            json!({"node": w.acme, "name": "Bad", "allowed_groups": [globex_group]}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(
        listed(hub, &hub.admin, "/api/v1/playlists")
            .await
            .is_empty()
    );
    // The group lists of templates are checked as well.
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": w.acme, "name": "Bad", "template": template_layout(),
                "allowed_groups": ["pg-missing"]}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn m1_m2_items_stored_before_read_as_open_with_default_settings() {
    let w = world().await;
    let hub = &w.hub;
    let id = upload(hub, &w.acme, "old").await;
    // Rewrite the record as the hub stored it before this change.
    let mut record: Value = hub.state.store.get(CONTENT, &id).unwrap().unwrap();
    let fields = record.as_object_mut().unwrap();
    assert!(fields.remove("allowed_groups").is_some());
    assert!(fields.remove("settings").is_some());
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, &id, &record).unwrap();
    hub.state.store.apply(batch).await.unwrap();

    assert!(sees(hub, &w.outsider, &id).await);
    let (_, item) = hub.get(&w.outsider, &format!("/api/v1/content/{id}")).await;
    assert_eq!(item["allowed_groups"], json!([]));
    assert_eq!(item["settings"]["allow_download"], false);
    assert_eq!(item["settings"]["allow_rating"], true);
}
