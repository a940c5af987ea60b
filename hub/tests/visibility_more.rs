//! The view rule on every other surface, over HTTP (M1, P6, M2): usage
//! reports, approval routes, template zone sources, playlist items,
//! schedules' playlists and default items, and playlists' own publish
//! settings. What a caller cannot view is left out, or not found (404), as
//! for other tenants.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::ids::DeviceId;
use signet_common::sync::{EventBatch, PlayEvent};
use signet_hub::app::Clock as _;
use signet_hub::fleet;
use support::{TestHub, assert_error, gif};

/// Acme with a permission group `insiders` holding a Contributor, an
/// outside Contributor and Viewer, an open image and an image restricted to
/// `insiders`.
struct World {
    hub: TestHub,
    acme: String,
    group: String,
    insider: String,
    outsider_id: String,
    outsider: String,
    viewer: String,
    open: String,
    hidden: String,
}

async fn world() -> World {
    let hub = TestHub::start().await;
    let acme = hub.node(&hub.admin, &hub.root, "Acme").await;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": acme, "name": "insiders", "permissions": []}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let group = r.1["id"].as_str().unwrap().to_owned();
    let (insider_id, insider) = hub.user("insider", "contributor", &[&acme]).await;
    let (outsider_id, outsider) = hub.user("outsider", "contributor", &[&acme]).await;
    let (_, viewer) = hub.user("viewer", "viewer", &[&acme]).await;
    let r = hub
        .post(
            &hub.admin,
            &format!("/api/v1/permission-groups/{group}/members/users"),
            json!({"user": insider_id}),
        )
        .await;
    assert!(r.0.is_success(), "{}", r.1);
    let open = upload(&hub, &acme, "open").await;
    let hidden = upload(&hub, &acme, "hidden").await;
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/content/{hidden}"),
            json!({"allowed_groups": [group]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    World {
        hub,
        acme,
        group,
        insider,
        outsider_id,
        outsider,
        viewer,
        open,
        hidden,
    }
}

async fn upload(hub: &TestHub, node: &str, name: &str) -> String {
    let r = hub.upload(&hub.admin, node, name, gif(name)).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_owned()
}

fn play(hub: &TestHub, device: &str, item: &str, group: Option<&str>, n: u32) -> PlayEvent {
    let start = hub.clock.now() - TimeDelta::minutes(10);
    support::events::played(n.into(), device, item, group.map(|g| (g, 1)), start)
}

fn items_of(page: &Value) -> Vec<&str> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn m1_reports_leave_out_items_the_caller_cannot_view() {
    let w = world().await;
    let hub = &w.hub;
    let site = hub.node(&hub.admin, &w.acme, "Site").await;
    support::register_device(hub, &site, "d-1", "report-secret").await;
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
    let events = vec![
        play(hub, "d-1", &w.open, Some(&group), 1),
        play(hub, "d-1", &w.hidden, Some(&group), 2),
        play(hub, "d-1", &w.hidden, Some(&group), 3),
    ];
    fleet::ingest_events(&hub.state, &DeviceId::from("d-1"), EventBatch { events })
        .await
        .unwrap();
    let now = hub.clock.now();
    let range = format!(
        "from={}&to={}",
        (now - TimeDelta::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + TimeDelta::days(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let usage = format!("/api/v1/reports/usage?{range}");

    // The admin and the insider see all three; the outsiders only the open item's.
    for token in [&hub.admin, &w.insider] {
        let (status, page) = hub.get(token, &usage).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(items_of(&page).len(), 3);
    }
    for token in [&w.outsider, &w.viewer] {
        let (status, page) = hub.get(token, &usage).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(items_of(&page), vec![w.open.as_str()]);
        // Not in the CSV either.
        let response = hub
            .client
            .get(format!("{}{usage}&format=csv", hub.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let csv = response.text().await.unwrap();
        assert!(csv.contains(&w.open) && !csv.contains(&w.hidden), "{csv}");
        // Naming the hidden item is 404, as for another tenant's.
        assert_error(
            &hub.get(token, &format!("{usage}&item={}", w.hidden)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        // The group summary counts and names only what they view.
        let (status, summary) = hub
            .get(
                token,
                &format!("/api/v1/reports/usage/access-groups/{group}?{range}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        assert_eq!(summary["played"], 1);
        assert_eq!(summary["items"].as_array().unwrap().len(), 1);
        assert_eq!(summary["items"][0]["item"], json!(w.open));
    }
    let (_, summary) = hub
        .get(
            &hub.admin,
            &format!("/api/v1/reports/usage/access-groups/{group}?{range}"),
        )
        .await;
    assert_eq!(summary["played"], 3);
}

#[tokio::test]
async fn m1_approval_routes_answer_404_for_an_item_the_caller_cannot_view() {
    let w = world().await;
    let hub = &w.hub;
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{}", w.acme),
            json!({"content_manager_email": "cm@example.test"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let request = format!("/api/v1/content/{}/request-approval", w.hidden);
    assert_error(
        &hub.post(&w.outsider, &request, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = hub.post(&w.insider, &request, json!({})).await;
    assert!(
        r.0 == StatusCode::OK || r.0 == StatusCode::CONFLICT,
        "an insider reaches the approval rules: {}",
        r.1
    );
    // An outsider who holds approve_content through a group still gets 404.
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": w.acme, "name": "approvers", "permissions": ["approve_content"]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let approvers = r.1["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(
            &hub.admin,
            &format!("/api/v1/permission-groups/{approvers}/members/users"),
            json!({"user": w.outsider_id}),
        )
        .await;
    assert!(r.0.is_success(), "{}", r.1);
    for (path, body) in [
        (format!("/api/v1/content/{}/approve", w.hidden), json!({})),
        (
            format!("/api/v1/content/{}/reject", w.hidden),
            json!({"reason": "no"}),
        ),
    ] {
        assert_error(
            &hub.post(&w.outsider, &path, body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

fn layout(image: &str) -> Value {
    json!({"canvas": {"width": 1280, "height": 720},
        "zones": [{"id": "main", "kind": "image",
            "rect": {"x": 0, "y": 0, "width": 1280, "height": 720}, "source": image}]})
}

#[tokio::test]
async fn m1_templates_playlists_and_schedules_never_reference_what_the_caller_cannot_view() {
    let w = world().await;
    let hub = &w.hub;
    // Template zone sources: a hidden item reads as absent (400, as before
    // for a missing one); the insider may use it.
    let template =
        |name: &str, image: &str| json!({"node": w.acme, "name": name, "template": layout(image)});
    assert_error(
        &hub.post(&w.outsider, "/api/v1/templates", template("t1", &w.hidden))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_template",
    );
    let r = hub
        .post(&w.insider, "/api/v1/templates", template("t2", &w.hidden))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);

    // Playlist items: 404 naming the hidden item, on create and on update.
    let items = |item: &str| json!([{"item": item, "duration_ms": 5000}]);
    let r = hub
        .post(
            &w.outsider,
            "/api/v1/playlists",
            json!({"node": w.acme, "name": "Bad", "items": items(&w.hidden)}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(r.1["message"].as_str().unwrap().contains(&w.hidden));
    let r = hub
        .post(
            &w.outsider,
            "/api/v1/playlists",
            json!({"node": w.acme, "name": "Good", "items": items(&w.open),
                "settings": {"allow_comments": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let good = r.1["id"].as_str().unwrap().to_owned();
    // M1, M2: playlists carry publish settings like media.
    assert_eq!(
        r.1["settings"],
        json!({"allow_download": false, "allow_share": false, "allow_comments": false,
            "allow_rating": true})
    );
    let path = format!("/api/v1/playlists/{good}");
    assert_error(
        &hub.patch(&w.outsider, &path, json!({"items": items(&w.hidden)}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = hub
        .patch(
            &w.outsider,
            &path,
            json!({"settings": {"allow_rating": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["settings"]["allow_comments"], false);
    assert_eq!(r.1["settings"]["allow_rating"], false);
    assert_eq!(hub.get(&w.viewer, &path).await.1["items"], items(&w.open));

    // A playlist the outsider cannot view, and schedules naming it.
    let r = hub
        .post(
            &w.insider,
            "/api/v1/playlists",
            json!({"node": w.acme, "name": "Inside", "items": items(&w.hidden),
                "allowed_groups": [w.group]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let inside = r.1["id"].as_str().unwrap().to_owned();
    let site = hub.node(&hub.admin, &w.acme, "Site").await;
    let entry = |playlist: &str| json!([{"id": "all-day", "playlist": playlist, "priority": 0}]);
    let r = hub
        .post(
            &w.outsider,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": site}, "entries": entry(&inside)}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert!(r.1["message"].as_str().unwrap().contains(&inside));
    let r = hub
        .post(
            &w.outsider,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": site}, "entries": entry(&good),
                "default_item": {"item": w.hidden, "duration_ms": 5000}}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = hub
        .post(
            &w.outsider,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": site}, "entries": entry(&good)}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let schedule = format!("/api/v1/schedules/{}", r.1["id"].as_str().unwrap());
    let r = hub
        .call(
            reqwest::Method::PUT,
            &schedule,
            Some(&w.outsider),
            Some(json!({"entries": entry(&inside)})),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    // The insider may schedule it.
    let r = hub
        .call(
            reqwest::Method::PUT,
            &schedule,
            Some(&w.insider),
            Some(json!({"entries": entry(&inside)})),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}
