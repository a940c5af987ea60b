//! Playlists and schedules (D5, T2, T4, A1, A7, S8): the HTTP routes and the
//! resolved schedule the publisher signs (`schedules::group_schedule`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{NaiveDate, NaiveTime, TimeZone as _, Utc, Weekday};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::ids::{AccessGroupId, EntryId, ItemId, NodeId};
use signet_common::schedule::{
    DateRange, Daypart, Layer, MergeMode, PlaylistItem, Schedule, ScheduleEntry,
};
use signet_hub::audit::{AUDIT, AuditEntry};
use signet_hub::content::{CONTENT, ContentItem};
use signet_hub::groups::GroupRef;
use signet_hub::schedules::{
    GROUP_SCHEDULES, PLAYLISTS, Playlist, SCHEDULES, group_schedule, playlists_using_item,
    schedules_defaulting_to, schedules_using_playlist,
};
use signet_hub::store::WriteBatch;
use support::{PASSWORD, TestHub, assert_error};

/// A structurally whole PNG of `len` bytes (S13: uploads are checked).
fn png(len: usize, seed: u8) -> Vec<u8> {
    support::png(len, seed)
}

async fn upload(
    hub: &TestHub,
    token: &str,
    node: &str,
    name: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    hub.upload(token, node, name, body).await
}

/// Uploads an image at `node` as `token`; returns its id.
async fn item_as(hub: &TestHub, token: &str, node: &str, name: &str) -> String {
    let (status, body) = upload(hub, token, node, name, png(64, name.len() as u8)).await;
    assert_eq!(status, StatusCode::CREATED, "upload {name}: {body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Uploads an image at `node` as the admin; returns its id.
async fn item(hub: &TestHub, node: &str, name: &str) -> String {
    item_as(hub, &hub.admin, node, name).await
}

/// Gives a stored item a media duration, as the media probe does for video.
async fn set_media_duration(hub: &TestHub, item: &str, ms: u64) {
    let mut stored: ContentItem = hub.state.store.get(CONTENT, item).unwrap().unwrap();
    stored.duration_ms = Some(ms);
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item, &stored).unwrap();
    hub.state.store.apply(batch).await.unwrap();
}

/// Creates a playlist; returns its id.
async fn playlist(hub: &TestHub, token: &str, node: &str, items: Value) -> String {
    let (status, body) = hub
        .post(
            token,
            "/api/v1/playlists",
            json!({"node": node, "name": "Loop", "items": items}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "create playlist: {body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A schedule of one all-day entry playing `playlist` at node `node`.
fn simple_schedule(node: &str, playlist: &str) -> Value {
    json!({"target": {"kind": "node", "id": node},
        "entries": [{"id": "all-day", "playlist": playlist, "priority": 0}]})
}

async fn put(hub: &TestHub, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    hub.call(Method::PUT, path, Some(token), Some(body)).await
}

fn audit_actions(hub: &TestHub) -> Vec<String> {
    let entries: Vec<AuditEntry> = hub.state.store.scan(AUDIT, "").unwrap();
    entries.into_iter().map(|e| e.action).collect()
}

/// D5, S8: a playlist is created, read, listed, changed and deleted, and
/// each write is audited.
#[tokio::test]
async fn d5_playlist_create_read_update_delete_audited() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, editor) = hub.user("editor", "contributor", &[&tenant]).await;
    let a = item(&hub, &tenant, "a").await;
    let b = item(&hub, &tenant, "b").await;

    let (status, created) = hub
        .post(
            &editor,
            "/api/v1/playlists",
            json!({"node": tenant, "name": " Lobby ", "items": [
                {"item": a, "duration_ms": 5000}, {"item": b, "duration_ms": 8000},
                {"item": a, "duration_ms": 1000}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["name"], "Lobby");
    assert_eq!(created["node"], tenant.as_str());
    let items: Vec<&str> = created["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, [a.as_str(), b.as_str(), a.as_str()], "order kept");

    let (status, fetched) = hub.get(&editor, &format!("/api/v1/playlists/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);
    let (_, listed) = hub.get(&editor, "/api/v1/playlists").await;
    assert_eq!(listed, json!([created]));

    let (status, updated) = hub
        .patch(
            &editor,
            &format!("/api/v1/playlists/{id}"),
            json!({"items": [{"item": b, "duration_ms": 3000}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Lobby", "absent fields stay");
    assert_eq!(updated["items"], json!([{"item": b, "duration_ms": 3000}]));
    // The item index follows the change: `a` is no longer in a playlist.
    let store = &hub.state.store;
    assert!(
        playlists_using_item(store, &ItemId::new(a.clone()))
            .unwrap()
            .is_empty()
    );
    let using_b = playlists_using_item(store, &ItemId::new(b.clone())).unwrap();
    assert_eq!(using_b.len(), 1);
    assert_eq!(using_b[0].id.as_str(), id);

    let (status, _) = hub
        .delete(&editor, &format!("/api/v1/playlists/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub.get(&editor, &format!("/api/v1/playlists/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        playlists_using_item(store, &ItemId::new(b))
            .unwrap()
            .is_empty()
    );
    let actions = audit_actions(&hub);
    for action in ["playlist.create", "playlist.update", "playlist.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited");
    }
}

/// P1: viewers read playlists but never write them.
#[tokio::test]
async fn p1_viewers_cannot_write_playlists() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, viewer) = hub.user("viewer", "viewer", &[&tenant]).await;
    let a = item(&hub, &tenant, "a").await;
    let result = hub
        .post(
            &viewer,
            "/api/v1/playlists",
            json!({"node": tenant, "name": "x", "items": [{"item": a, "duration_ms": 1}]}),
        )
        .await;
    assert_error(&result, StatusCode::FORBIDDEN, "forbidden");
    let id = playlist(&hub, &hub.admin, &tenant, json!([])).await;
    let (status, _) = hub.get(&viewer, &format!("/api/v1/playlists/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}

/// T2: a playlist may hold items of its own node and of the nodes above it;
/// an item of a sibling node or of a node below is refused, naming the item.
#[tokio::test]
async fn t2_playlist_items_must_be_usable_at_its_node() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let sibling = hub.node(&hub.admin, &tenant, "Sibling").await;
    let below = hub.node(&hub.admin, &site, "Below").await;
    let (_, editor) = hub.user("editor", "contributor", &[&tenant]).await;
    let at_root = item(&hub, &hub.root, "root item").await;
    let at_tenant = item(&hub, &tenant, "tenant item").await;
    let at_site = item(&hub, &site, "site item").await;
    let at_sibling = item(&hub, &sibling, "sibling item").await;
    let at_below = item(&hub, &below, "below item").await;

    // Own node and every ancestor: accepted (the root's item is above the
    // editor's domain, still usable in it).
    let items = json!([{"item": at_site, "duration_ms": 1000},
        {"item": at_tenant, "duration_ms": 1000}, {"item": at_root, "duration_ms": 1000}]);
    playlist(&hub, &editor, &site, items).await;

    for refused in [&at_sibling, &at_below] {
        let result = hub
            .post(
                &editor,
                "/api/v1/playlists",
                json!({"node": site, "name": "x",
                    "items": [{"item": at_site, "duration_ms": 1}, {"item": refused, "duration_ms": 1}]}),
            )
            .await;
        assert_error(&result, StatusCode::BAD_REQUEST, "item_not_usable");
        assert!(
            result.1["message"]
                .as_str()
                .unwrap()
                .contains(refused.as_str()),
            "names the item: {}",
            result.1
        );
    }
    // An unknown item is 404, naming it.
    let result = hub
        .post(
            &editor,
            "/api/v1/playlists",
            json!({"node": site, "name": "x", "items": [{"item": "c-nope", "duration_ms": 1}]}),
        )
        .await;
    assert_error(&result, StatusCode::NOT_FOUND, "not_found");
    assert!(result.1["message"].as_str().unwrap().contains("c-nope"));
    // Bad input changed nothing: only the accepted playlist is stored.
    let stored: Vec<Playlist> = hub.state.store.scan(PLAYLISTS, "").unwrap();
    assert_eq!(stored.len(), 1);

    // An update is held to the same rule.
    let id = stored[0].id.as_str();
    let result = hub
        .patch(
            &editor,
            &format!("/api/v1/playlists/{id}"),
            json!({"items": [{"item": at_sibling, "duration_ms": 1}]}),
        )
        .await;
    assert_error(&result, StatusCode::BAD_REQUEST, "item_not_usable");
    let after: Playlist = hub.state.store.get(PLAYLISTS, id).unwrap().unwrap();
    assert_eq!(after, stored[0], "refused update changed nothing");
}

/// D5: `duration_ms` may be left out only for items with a media duration;
/// given, it must be 1 ms to 24 h. Item count is bounded.
#[tokio::test]
async fn d5_playlist_durations_and_bounds() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let image = item(&hub, &tenant, "image").await;
    let video = item(&hub, &tenant, "video").await;
    set_media_duration(&hub, &video, 7_000).await;

    let create = |items: Value| {
        hub.post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": tenant, "name": "x", "items": items}),
        )
    };
    let result = create(json!([{"item": image}])).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "duration_required");
    assert!(result.1["message"].as_str().unwrap().contains(&image));
    for bad in [0, 24 * 3600 * 1000 + 1] {
        let result = create(json!([{"item": image, "duration_ms": bad}])).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "invalid_duration");
    }
    let too_many: Vec<Value> = (0..=signet_common::schedule::MAX_ITEMS_PER_ENTRY)
        .map(|_| json!({"item": image, "duration_ms": 1}))
        .collect();
    let result = create(Value::Array(too_many)).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "too_many_items");
    for name in ["", "   ", &"n".repeat(129)] {
        let result = hub
            .post(
                &hub.admin,
                "/api/v1/playlists",
                json!({"node": tenant, "name": name, "items": []}),
            )
            .await;
        assert_error(&result, StatusCode::BAD_REQUEST, "invalid_name");
    }
    let result = hub
        .post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": tenant, "name": "x", "items": [], "extra": 1}),
        )
        .await;
    assert_error(&result, StatusCode::BAD_REQUEST, "invalid_body");
    assert!(
        hub.state
            .store
            .scan::<Playlist>(PLAYLISTS, "")
            .unwrap()
            .is_empty()
    );

    // The video's media duration stands in for a missing duration_ms.
    let (status, body) =
        create(json!([{"item": video}, {"item": image, "duration_ms": 2000}])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// T4: another tenant's playlists and schedules do not exist for a caller;
/// its nodes, items and playlists cannot be used.
#[tokio::test]
async fn t4_other_tenants_playlists_and_schedules_are_404() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "A").await;
    let b = hub.node(&hub.admin, &hub.root, "B").await;
    let (_, editor) = hub.user("a-editor", "manager", &[&a]).await;
    let item_a = item(&hub, &a, "a item").await;
    let item_b = item(&hub, &b, "b item").await;
    let list_b = playlist(
        &hub,
        &hub.admin,
        &b,
        json!([{"item": item_b, "duration_ms": 1000}]),
    )
    .await;
    let (status, schedule_b) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            simple_schedule(&b, &list_b),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule_b}");
    let schedule_b = schedule_b["id"].as_str().unwrap();

    for path in [
        format!("/api/v1/playlists/{list_b}"),
        format!("/api/v1/schedules/{schedule_b}"),
        format!("/api/v1/schedules/{schedule_b}/preview"),
    ] {
        assert_error(
            &hub.get(&editor, &path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let (_, listed) = hub.get(&editor, "/api/v1/playlists").await;
    assert_eq!(listed, json!([]));
    let (_, listed) = hub.get(&editor, "/api/v1/schedules").await;
    assert_eq!(listed, json!([]));
    assert_error(
        &hub.patch(
            &editor,
            &format!("/api/v1/playlists/{list_b}"),
            json!({"name": "mine"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.delete(&editor, &format!("/api/v1/playlists/{list_b}"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &put(
            &hub,
            &editor,
            &format!("/api/v1/schedules/{schedule_b}"),
            json!({"entries": []}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.delete(&editor, &format!("/api/v1/schedules/{schedule_b}"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Writing into B, or using B's things from A: 404.
    let result = hub
        .post(
            &editor,
            "/api/v1/playlists",
            json!({"node": b, "name": "x", "items": []}),
        )
        .await;
    assert_error(&result, StatusCode::NOT_FOUND, "not_found");
    let result = hub
        .post(
            &editor,
            "/api/v1/playlists",
            json!({"node": a, "name": "x", "items": [{"item": item_b, "duration_ms": 1}]}),
        )
        .await;
    assert_error(&result, StatusCode::NOT_FOUND, "not_found");
    let result = hub
        .post(&editor, "/api/v1/schedules", simple_schedule(&a, &list_b))
        .await;
    assert_error(&result, StatusCode::NOT_FOUND, "not_found");
    let list_a = playlist(
        &hub,
        &editor,
        &a,
        json!([{"item": item_a, "duration_ms": 1000}]),
    )
    .await;
    let result = hub
        .post(&editor, "/api/v1/schedules", simple_schedule(&b, &list_a))
        .await;
    assert_error(&result, StatusCode::NOT_FOUND, "not_found");
    // B's things are untouched.
    let stored: Playlist = hub.state.store.get(PLAYLISTS, &list_b).unwrap().unwrap();
    assert_eq!(stored.node.as_str(), b);
    assert!(
        group_schedule(&hub.state.store, &GroupRef::Node(NodeId::new(b.clone())))
            .unwrap()
            .is_some()
    );
}

/// T2: a playlist above the caller's domain is visible and usable there,
/// but changed only from above (403).
#[tokio::test]
async fn t2_playlists_above_the_domain_are_read_only() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, editor) = hub.user("editor", "contributor", &[&tenant]).await;
    let shared = item(&hub, &hub.root, "shared").await;
    let above = playlist(
        &hub,
        &hub.admin,
        &hub.root,
        json!([{"item": shared, "duration_ms": 1000}]),
    )
    .await;
    let (status, _) = hub
        .get(&editor, &format!("/api/v1/playlists/{above}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &hub.patch(
            &editor,
            &format!("/api/v1/playlists/{above}"),
            json!({"name": "mine"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &hub.delete(&editor, &format!("/api/v1/playlists/{above}"))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Usable in the domain: a schedule at the tenant may play it.
    let (status, body) = hub
        .post(
            &editor,
            "/api/v1/schedules",
            simple_schedule(&tenant, &above),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A1: playlists at a restricted node made from the root are added and
/// deleted only by root-level users and never edited in place; a
/// tenant-made restricted node is changed by its creator only.
#[tokio::test]
async fn a1_restricted_nodes_limit_playlist_changes() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (status, masters) = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": tenant, "name": "Masters", "restricted": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{masters}");
    let masters = masters["id"].as_str().unwrap().to_owned();
    let (_, manager) = hub.user("manager", "manager", &[&tenant]).await;
    let image = item(&hub, &tenant, "image").await;
    let items = json!([{"item": image, "duration_ms": 1000}]);

    let result = hub
        .post(
            &manager,
            "/api/v1/playlists",
            json!({"node": masters, "name": "x", "items": items}),
        )
        .await;
    assert_error(&result, StatusCode::FORBIDDEN, "forbidden");
    assert!(result.1["message"].as_str().unwrap().contains("A1"));
    let id = playlist(&hub, &hub.admin, &masters, items.clone()).await;
    let result = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/playlists/{id}"),
            json!({"name": "edited"}),
        )
        .await;
    assert_error(&result, StatusCode::FORBIDDEN, "forbidden");
    let result = hub
        .delete(&manager, &format!("/api/v1/playlists/{id}"))
        .await;
    assert_error(&result, StatusCode::FORBIDDEN, "forbidden");
    let stored: Playlist = hub.state.store.get(PLAYLISTS, &id).unwrap().unwrap();
    assert_eq!(stored.name, "Loop", "refused changes changed nothing");
    let (status, _) = hub
        .delete(&hub.admin, &format!("/api/v1/playlists/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A restricted node the tenant manager made: theirs to change; another
    // contributor of the tenant may not.
    let (status, own) = hub
        .post(
            &manager,
            "/api/v1/nodes",
            json!({"parent": tenant, "name": "Own masters", "restricted": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let own = own["id"].as_str().unwrap().to_owned();
    let (_, other) = hub.user("other", "contributor", &[&own]).await;
    let id = playlist(&hub, &manager, &own, items.clone()).await;
    let (status, _) = hub
        .patch(
            &manager,
            &format!("/api/v1/playlists/{id}"),
            json!({"name": "edited"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let result = hub
        .patch(
            &other,
            &format!("/api/v1/playlists/{id}"),
            json!({"name": "not mine"}),
        )
        .await;
    assert_error(&result, StatusCode::FORBIDDEN, "forbidden");
}

/// A7: inactive and pending items may be placed in playlists and schedules;
/// the resolved schedule carries them (the device skips them).
#[tokio::test]
async fn a7_inactive_items_are_accepted_in_playlists_and_schedules() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/users",
            json!({"name": "needs-approval", "email": "na@example.test", "password": PASSWORD,
                "role": "contributor", "domain": [tenant], "requires_approval": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = hub.login("needs-approval", PASSWORD).await;
    let inactive = item_as(&hub, &token, &tenant, "draft").await;
    let stored: ContentItem = hub.state.store.get(CONTENT, &inactive).unwrap().unwrap();
    assert_eq!(
        stored.approval.state(),
        signet_common::approval::ApprovalState::Inactive,
        "the fixture item is inactive"
    );
    let list = playlist(
        &hub,
        &token,
        &tenant,
        json!([{"item": inactive, "duration_ms": 4000}]),
    )
    .await;
    let mut schedule = simple_schedule(&tenant, &list);
    schedule["default_item"] = json!({"item": inactive, "duration_ms": 1000});
    let (status, body) = hub.post(&token, "/api/v1/schedules", schedule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let resolved = group_schedule(&hub.state.store, &GroupRef::Node(NodeId::new(tenant)))
        .unwrap()
        .unwrap();
    assert_eq!(
        resolved.entries[0].items,
        [PlaylistItem {
            item: ItemId::new(inactive.clone()),
            duration_ms: 4000
        }]
    );
    assert_eq!(
        schedules_defaulting_to(&hub.state.store, &ItemId::new(inactive))
            .unwrap()
            .len(),
        1
    );
}

/// D5: at most one schedule per group (409), for nodes and access groups.
#[tokio::test]
async fn d5_one_schedule_per_group() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, editor) = hub.user("editor", "contributor", &[&tenant]).await;
    let image = item(&hub, &tenant, "image").await;
    let list = playlist(
        &hub,
        &editor,
        &tenant,
        json!([{"item": image, "duration_ms": 1000}]),
    )
    .await;
    let (status, first) = hub
        .post(
            &editor,
            "/api/v1/schedules",
            simple_schedule(&tenant, &list),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let result = hub
        .post(
            &editor,
            "/api/v1/schedules",
            simple_schedule(&tenant, &list),
        )
        .await;
    assert_error(&result, StatusCode::CONFLICT, "schedule_exists");
    assert!(
        result.1["message"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap())
    );

    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Licensed",
                "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let target = json!({"kind": "access_group", "id": group["id"]});
    let body = json!({"target": target, "entries": [{"id": "e", "playlist": list, "priority": 1}]});
    let (status, made) = hub.post(&editor, "/api/v1/schedules", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["target"], target);
    assert_eq!(made["node"], tenant.as_str());
    let result = hub.post(&editor, "/api/v1/schedules", body).await;
    assert_error(&result, StatusCode::CONFLICT, "schedule_exists");
    let (_, listed) = hub.get(&editor, "/api/v1/schedules").await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // An unknown group is 404.
    let result = hub
        .post(
            &editor,
            "/api/v1/schedules",
            json!({"target": {"kind": "access_group", "id": "ag-nope"}, "entries": []}),
        )
        .await;
    assert_error(&result, StatusCode::NOT_FOUND, "not_found");
}

/// D5: a schedule common's rules refuse is 400 `invalid_schedule` with the
/// reason, on create and on replace, and nothing is stored.
#[tokio::test]
async fn d5_invalid_schedules_are_refused_and_change_nothing() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let image = item(&hub, &tenant, "image").await;
    let list = playlist(
        &hub,
        &hub.admin,
        &tenant,
        json!([{"item": image, "duration_ms": 1000}]),
    )
    .await;
    let entry = |id: &str| json!({"id": id, "playlist": list, "priority": 0});
    let mut empty_range = entry("dates");
    empty_range["dates"] = json!({"first": "2026-03-02", "last": "2026-03-01"});
    let mut twice_monday = entry("weekdays");
    twice_monday["weekdays"] = json!(["Mon", "Tue", "Mon"]);
    let cases = [
        (
            json!({"entries": [entry("x"), entry("x")]}),
            "entry id x is used more than once",
        ),
        (json!({"entries": [empty_range]}), "empty date range"),
        (json!({"entries": [twice_monday]}), "more than once"),
        (
            json!({"entries": [entry("x")], "merge": {"mode": "interleave", "n": 0}}),
            "interleave",
        ),
    ];
    let target = json!({"kind": "node", "id": tenant});
    for (body, reason) in &cases {
        let mut create = body.clone();
        create["target"] = target.clone();
        let result = hub.post(&hub.admin, "/api/v1/schedules", create).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "invalid_schedule");
        assert!(
            result.1["message"].as_str().unwrap().contains(reason),
            "{reason}: {}",
            result.1
        );
    }
    let store = &hub.state.store;
    assert!(store.scan_keys(SCHEDULES, "").unwrap().is_empty());
    assert!(store.scan_keys(GROUP_SCHEDULES, "").unwrap().is_empty());
    assert!(
        schedules_using_playlist(store, &signet_hub::schedules::PlaylistId::new(list.clone()))
            .unwrap()
            .is_empty()
    );
    let result = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": target, "entries": [{"id": "", "playlist": list, "priority": 0}]}),
        )
        .await;
    assert_error(&result, StatusCode::BAD_REQUEST, "invalid_entry_id");

    // Replacing a good schedule with a bad one keeps the good one.
    let (status, good) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            simple_schedule(&tenant, &list),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{good}");
    let path = format!("/api/v1/schedules/{}", good["id"].as_str().unwrap());
    for (body, _) in cases {
        let result = put(&hub, &hub.admin, &path, body).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "invalid_schedule");
    }
    let (_, after) = hub.get(&hub.admin, &path).await;
    assert_eq!(after, good);
}

/// T2: a schedule's playlists and default item must be usable at its
/// group's node: from the node or above, not from a sibling or below.
#[tokio::test]
async fn t2_schedule_playlists_and_default_item_must_be_usable() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let sibling = hub.node(&hub.admin, &tenant, "Sibling").await;
    let below = hub.node(&hub.admin, &site, "Below").await;
    let (_, editor) = hub.user("editor", "contributor", &[&tenant]).await;
    let mut lists = Vec::new();
    let mut items = Vec::new();
    for node in [&tenant, &sibling, &below] {
        let image = item(&hub, node, "image").await;
        lists.push(
            playlist(
                &hub,
                &editor,
                node,
                json!([{"item": image, "duration_ms": 1000}]),
            )
            .await,
        );
        items.push(image);
    }
    let [from_tenant, from_sibling, from_below] = [&lists[0], &lists[1], &lists[2]];
    for refused in [from_sibling, from_below] {
        let result = hub
            .post(
                &editor,
                "/api/v1/schedules",
                simple_schedule(&site, refused),
            )
            .await;
        assert_error(&result, StatusCode::BAD_REQUEST, "playlist_not_usable");
        assert!(
            result.1["message"]
                .as_str()
                .unwrap()
                .contains(refused.as_str())
        );
    }
    let mut body = simple_schedule(&site, from_tenant);
    body["default_item"] = json!({"item": items[1], "duration_ms": 1000});
    let result = hub.post(&editor, "/api/v1/schedules", body.clone()).await;
    assert_error(&result, StatusCode::BAD_REQUEST, "item_not_usable");
    assert!(hub.state.store.scan_keys(SCHEDULES, "").unwrap().is_empty());
    body["default_item"] = json!({"item": items[0], "duration_ms": 1000});
    let (status, made) = hub.post(&editor, "/api/v1/schedules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
}

/// D5: a playlist a schedule uses is not deleted (409 naming the
/// schedule); once the schedule is gone it is.
#[tokio::test]
async fn d5_a_playlist_in_use_is_not_deleted() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, editor) = hub.user("editor", "contributor", &[&tenant]).await;
    let image = item(&hub, &tenant, "image").await;
    let list = playlist(
        &hub,
        &editor,
        &tenant,
        json!([{"item": image, "duration_ms": 1000}]),
    )
    .await;
    let (_, schedule) = hub
        .post(
            &editor,
            "/api/v1/schedules",
            simple_schedule(&tenant, &list),
        )
        .await;
    let schedule = schedule["id"].as_str().unwrap();
    let result = hub
        .delete(&editor, &format!("/api/v1/playlists/{list}"))
        .await;
    assert_error(&result, StatusCode::CONFLICT, "playlist_in_use");
    assert!(result.1["message"].as_str().unwrap().contains(schedule));
    // Changing the playlist is fine: the schedule plays the new items.
    let other = item(&hub, &tenant, "other").await;
    let (status, _) = hub
        .patch(
            &editor,
            &format!("/api/v1/playlists/{list}"),
            json!({"items": [{"item": other, "duration_ms": 2500}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let resolved = group_schedule(&hub.state.store, &GroupRef::Node(NodeId::new(tenant)))
        .unwrap()
        .unwrap();
    assert_eq!(
        resolved.entries[0].items,
        [PlaylistItem {
            item: ItemId::new(other),
            duration_ms: 2500
        }]
    );
    let (status, _) = hub
        .delete(&editor, &format!("/api/v1/schedules/{schedule}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub
        .delete(&editor, &format!("/api/v1/playlists/{list}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let actions = audit_actions(&hub);
    for action in ["schedule.create", "schedule.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited");
    }
}

/// D5: `group_schedule` turns the stored schedule into common's
/// `Schedule`: each entry's playlist becomes its items in order, missing
/// durations come from the media, every other field is carried over, and
/// the result validates. Groups without a schedule get `None`.
#[tokio::test]
async fn d5_group_schedule_resolves_playlists_into_entries() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let image = item(&hub, &hub.root, "image").await;
    let video = item(&hub, &tenant, "video").await;
    set_media_duration(&hub, &video, 12_345).await;
    let fallback = item(&hub, &site, "fallback").await;
    let morning = playlist(
        &hub,
        &hub.admin,
        &tenant,
        json!([{"item": video}, {"item": image, "duration_ms": 3000}, {"item": video, "duration_ms": 500}]),
    )
    .await;
    let news = playlist(
        &hub,
        &hub.admin,
        &site,
        json!([{"item": image, "duration_ms": 9000}]),
    )
    .await;
    let body = json!({
    "target": {"kind": "node", "id": site},
    "merge": {"mode": "interleave", "n": 2},
    "default_item": {"item": fallback, "duration_ms": 10000},
    "entries": [
        {"id": "morning", "playlist": morning, "priority": 1,
         "dayparts": [{"start": "08:00:00", "end": "12:00:00"}],
         "weekdays": ["Mon", "Fri"],
         "dates": {"first": "2026-01-01", "last": "2026-12-31"}},
        {"id": "news", "playlist": news, "priority": 5, "layer": "interrupt",
         "dayparts": [{"start": "22:00:00", "end": "06:00:00"}]},
        {"id": "ticker", "playlist": news, "priority": 0, "layer": "overlay"}
    ]});
    let (status, made) = hub.post(&hub.admin, "/api/v1/schedules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");

    let time = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let items = |pairs: &[(&str, u64)]| -> Vec<PlaylistItem> {
        pairs
            .iter()
            .map(|(item, ms)| PlaylistItem {
                item: ItemId::new(*item),
                duration_ms: *ms,
            })
            .collect()
    };
    let news_items = items(&[(&image, 9000)]);
    let expected = Schedule {
        entries: vec![
            ScheduleEntry {
                id: EntryId::new("morning"),
                items: items(&[(&video, 12_345), (&image, 3000), (&video, 500)]),
                dayparts: vec![Daypart {
                    start: time(8, 0),
                    end: time(12, 0),
                }],
                weekdays: vec![Weekday::Mon, Weekday::Fri],
                dates: Some(DateRange {
                    first: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                    last: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
                }),
                priority: 1,
                layer: Layer::Main,
            },
            ScheduleEntry {
                id: EntryId::new("news"),
                items: news_items.clone(),
                dayparts: vec![Daypart {
                    start: time(22, 0),
                    end: time(6, 0),
                }],
                weekdays: vec![],
                dates: None,
                priority: 5,
                layer: Layer::Interrupt,
            },
            ScheduleEntry {
                id: EntryId::new("ticker"),
                items: news_items,
                dayparts: vec![],
                weekdays: vec![],
                dates: None,
                priority: 0,
                layer: Layer::Overlay,
            },
        ],
        merge: MergeMode::Interleave { n: 2 },
        default_item: Some(PlaylistItem {
            item: ItemId::new(fallback),
            duration_ms: 10000,
        }),
    };
    let store = &hub.state.store;
    let resolved = group_schedule(store, &GroupRef::Node(NodeId::new(site.clone())))
        .unwrap()
        .unwrap();
    assert_eq!(resolved, expected);
    resolved.validate().unwrap();
    assert_eq!(
        group_schedule(store, &GroupRef::Node(NodeId::new(tenant))).unwrap(),
        None
    );
    assert_eq!(
        group_schedule(store, &GroupRef::AccessGroup(AccessGroupId::new("ag-none"))).unwrap(),
        None
    );

    // Replacing it is seen by the next resolution.
    let path = format!("/api/v1/schedules/{}", made["id"].as_str().unwrap());
    let (status, replaced) = put(
        &hub,
        &hub.admin,
        &path,
        json!({"entries": [{"id": "only", "playlist": news, "priority": 0}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["target"], made["target"]);
    let resolved = group_schedule(store, &GroupRef::Node(NodeId::new(site)))
        .unwrap()
        .unwrap();
    assert_eq!(resolved.entries.len(), 1);
    assert_eq!(resolved.merge, MergeMode::Sequence);
    assert_eq!(resolved.default_item, None);
    assert!(
        schedules_using_playlist(store, &signet_hub::schedules::PlaylistId::new(morning))
            .unwrap()
            .is_empty(),
        "the index forgets a playlist the schedule no longer names"
    );
}

/// D5: the preview runs common's `evaluate` on the resolved schedule in the
/// given zone: inside the daypart the entry's playlist plays, outside it
/// the default item; an unknown zone is 400.
#[tokio::test]
async fn d5_preview_shows_what_plays_and_the_next_change() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let image = item(&hub, &tenant, "image").await;
    let fallback = item(&hub, &tenant, "fallback").await;
    let list = playlist(
        &hub,
        &hub.admin,
        &tenant,
        json!([{"item": image, "duration_ms": 60000}]),
    )
    .await;
    let (status, made) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": tenant},
                "default_item": {"item": fallback, "duration_ms": 10000},
                "entries": [{"id": "day", "playlist": list, "priority": 0,
                    "dayparts": [{"start": "09:00:00", "end": "17:00:00"}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap();
    // 10:00 in Berlin (UTC+1 in January).
    let (status, preview) = hub
        .get(
            &hub.admin,
            &format!("/api/v1/schedules/{id}/preview?at=2026-01-15T09:00:00Z&tz=Europe/Berlin"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["main"]["item"], image.as_str());
    assert_eq!(preview["main"]["entry"], "day");
    assert_eq!(preview["tz"], "Europe/Berlin");
    let next: chrono::DateTime<Utc> =
        serde_json::from_value(preview["next_change"].clone()).unwrap();
    assert!(next > Utc.with_ymd_and_hms(2026, 1, 15, 9, 0, 0).unwrap());
    assert!(next <= Utc.with_ymd_and_hms(2026, 1, 15, 9, 1, 0).unwrap());
    // 08:30 in Berlin: before the window, the default item.
    let (_, preview) = hub
        .get(
            &hub.admin,
            &format!("/api/v1/schedules/{id}/preview?at=2026-01-15T07:30:00Z&tz=Europe/Berlin"),
        )
        .await;
    assert_eq!(preview["main"]["item"], fallback.as_str());
    assert_eq!(preview["main"]["entry"], Value::Null);
    let result = hub
        .get(
            &hub.admin,
            &format!("/api/v1/schedules/{id}/preview?tz=Mars/Olympus"),
        )
        .await;
    assert_error(&result, StatusCode::BAD_REQUEST, "invalid_tz");
}

/// D5: resolution leaves out items deleted since the playlist was saved (a
/// manifest cannot list them) and gives an item whose media duration is no
/// longer known 0 ms, which evaluation never plays.
#[tokio::test]
async fn d5_resolution_drops_deleted_items_and_zeroes_unknown_durations() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let kept = item(&hub, &tenant, "kept").await;
    let gone = item(&hub, &tenant, "gone").await;
    let video = item(&hub, &tenant, "video").await;
    set_media_duration(&hub, &video, 5_000).await;
    let list = playlist(
        &hub,
        &hub.admin,
        &tenant,
        json!([{"item": kept, "duration_ms": 1000}, {"item": gone, "duration_ms": 2000},
            {"item": video}]),
    )
    .await;
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            simple_schedule(&tenant, &list),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut stored: ContentItem = hub.state.store.get(CONTENT, &video).unwrap().unwrap();
    stored.duration_ms = None;
    let mut batch = WriteBatch::new();
    batch.delete(CONTENT, &gone);
    batch.put(CONTENT, &video, &stored).unwrap();
    hub.state.store.apply(batch).await.unwrap();

    let resolved = group_schedule(&hub.state.store, &GroupRef::Node(NodeId::new(tenant)))
        .unwrap()
        .unwrap();
    assert_eq!(
        resolved.entries[0].items,
        [
            PlaylistItem {
                item: ItemId::new(kept),
                duration_ms: 1000
            },
            PlaylistItem {
                item: ItemId::new(video),
                duration_ms: 0
            }
        ]
    );
    resolved.validate().unwrap();
}

/// Bounds (DESIGN §7): a resolved schedule holds at most
/// `MAX_SCHEDULED_ITEMS` playlist items, so its manifest stays small; a
/// schedule over it is refused (400), and so is a playlist change that
/// would push a schedule using it over it (409). Neither changes anything.
#[tokio::test]
async fn d5_scheduled_items_are_bounded_on_schedule_and_playlist_writes() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let image = item(&hub, &tenant, "image").await;
    let half = signet_hub::schedules::MAX_SCHEDULED_ITEMS / 2;
    let items = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|_| json!({"item": image, "duration_ms": 1000}))
                .collect(),
        )
    };
    let list = playlist(&hub, &hub.admin, &tenant, items(half)).await;
    let entry = |id: &str| json!({"id": id, "playlist": list, "priority": 0});
    let target = json!({"kind": "node", "id": tenant});
    let result = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": target, "entries": [entry("a"), entry("b"), entry("c")]}),
        )
        .await;
    assert_error(&result, StatusCode::BAD_REQUEST, "schedule_too_large");
    assert!(hub.state.store.scan_keys(SCHEDULES, "").unwrap().is_empty());
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": target, "entries": [entry("a"), entry("b")]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let result = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/playlists/{list}"),
            json!({"items": items(half + 1)}),
        )
        .await;
    assert_error(&result, StatusCode::CONFLICT, "schedule_too_large");
    let stored: Playlist = hub.state.store.get(PLAYLISTS, &list).unwrap().unwrap();
    assert_eq!(stored.items.len(), half);
}

/// T2, D5: nothing is deleted from under a playlist or schedule: an item a
/// playlist plays or a schedule defaults to is refused (409 naming the
/// user), and so is a node that still holds items, playlists or
/// schedules. An access group's schedule goes with the group.
#[tokio::test]
async fn d5_items_and_nodes_in_use_are_not_deleted() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let played = item(&hub, &tenant, "played").await;
    let fallback = item(&hub, &tenant, "fallback").await;
    let list = playlist(
        &hub,
        &hub.admin,
        &tenant,
        json!([{"item": played, "duration_ms": 1000}]),
    )
    .await;
    let mut schedule = simple_schedule(&site, &list);
    schedule["default_item"] = json!({"item": fallback, "duration_ms": 5000});
    let (status, body) = hub.post(&hub.admin, "/api/v1/schedules", schedule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let schedule_id = body["id"].as_str().unwrap().to_owned();

    let r = hub
        .delete(&hub.admin, &format!("/api/v1/content/{played}"))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "item_in_use");
    assert!(r.1["message"].as_str().unwrap().contains(&list), "{}", r.1);
    let r = hub
        .delete(&hub.admin, &format!("/api/v1/content/{fallback}"))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "item_in_use");
    assert!(
        r.1["message"].as_str().unwrap().contains(&schedule_id),
        "{}",
        r.1
    );
    let r = hub
        .delete(&hub.admin, &format!("/api/v1/nodes/{site}"))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "node_in_use");
    assert_eq!(
        hub.get(&hub.admin, &format!("/api/v1/schedules/{schedule_id}"))
            .await
            .0,
        StatusCode::OK
    );

    // Once the schedule and playlist are gone, so can the rest be.
    let path = format!("/api/v1/schedules/{schedule_id}");
    assert_eq!(
        hub.delete(&hub.admin, &path).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hub.delete(&hub.admin, &format!("/api/v1/nodes/{site}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let path = format!("/api/v1/playlists/{list}");
    assert_eq!(
        hub.delete(&hub.admin, &path).await.0,
        StatusCode::NO_CONTENT
    );
    for item in [&played, &fallback] {
        let path = format!("/api/v1/content/{item}");
        assert_eq!(
            hub.delete(&hub.admin, &path).await.0,
            StatusCode::NO_CONTENT
        );
    }

    // An access group's schedule is deleted with the group.
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Members",
                "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let shown = item(&hub, &tenant, "shown").await;
    let list = playlist(
        &hub,
        &hub.admin,
        &tenant,
        json!([{"item": shown, "duration_ms": 1000}]),
    )
    .await;
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": {"kind": "access_group", "id": group_id},
                "entries": [{"id": "all-day", "playlist": list, "priority": 0}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let group_ref = GroupRef::AccessGroup(signet_common::ids::AccessGroupId::new(group_id.clone()));
    assert!(
        group_schedule(&hub.state.store, &group_ref)
            .unwrap()
            .is_some()
    );
    let path = format!("/api/v1/access-groups/{group_id}");
    assert_eq!(
        hub.delete(&hub.admin, &path).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(
        group_schedule(&hub.state.store, &group_ref)
            .unwrap()
            .is_none()
    );
    let path = format!("/api/v1/playlists/{list}");
    assert_eq!(
        hub.delete(&hub.admin, &path).await.0,
        StatusCode::NO_CONTENT
    );
}
