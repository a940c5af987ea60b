//! M1 inside playlists, over HTTP: a playlist the caller may view never
//! reveals the ids of items they may not view — in its detail, the
//! listing, or a schedule preview — while Moderator and above, and members
//! of the item's permission group, see every id; a save that sends the
//! placeholder back is refused and changes nothing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestHub, gif};

/// The item ids of playlist `id` as `token` reads it, by GET and in the
/// listing (which must agree).
async fn items_seen(hub: &TestHub, token: &str, id: &str) -> Vec<String> {
    let (status, playlist) = hub.get(token, &format!("/api/v1/playlists/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{playlist}");
    let (status, all) = hub.get(token, "/api/v1/playlists").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let listed = all
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap();
    assert_eq!(listed["items"], playlist["items"]);
    ids(&playlist["items"])
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap().to_owned())
        .collect()
}

/// M1, P6, T2: an item restricted to a permission group sits in an open
/// playlist with an open item. A Viewer outside the group sees the
/// playlist with the open item's id and `hidden` in the restricted item's
/// place (position and duration kept), also in the schedule preview; the
/// group's member and a Moderator see both ids. Saving the playlist back
/// with the placeholder is refused (404) and the stored list is unchanged.
#[tokio::test]
async fn m1_a_playlist_never_shows_the_ids_of_items_the_caller_cannot_view() {
    let hub = TestHub::start().await;
    let shop = hub.node(&hub.admin, &hub.root, "Shop").await;
    let (member_id, member) = hub.user("member", "viewer", &[&shop]).await;
    let (_, outsider) = hub.user("outsider", "contributor", &[&shop]).await;
    let (_, moderator) = hub.user("moderator", "moderator", &[&shop]).await;
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": shop, "name": "staff", "permissions": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let (status, body) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/permission-groups/{group}/members/users"),
            json!({"user": member_id}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let mut items = Vec::new();
    for name in ["open", "staff only"] {
        let (status, item) = hub.upload(&hub.admin, &shop, name, gif(name)).await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        items.push(item["id"].as_str().unwrap().to_owned());
    }
    let (open, restricted) = (items[0].clone(), items[1].clone());
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/content/{restricted}"),
            json!({"allowed_groups": [group]}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, playlist) = hub
        .post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": shop, "name": "Loop", "items": [
                {"item": open, "duration_ms": 1_000},
                {"item": restricted, "duration_ms": 2_000}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{playlist}");
    let id = playlist["id"].as_str().unwrap().to_owned();

    assert_eq!(
        items_seen(&hub, &outsider, &id).await,
        [open.as_str(), "hidden"]
    );
    let (_, seen) = hub.get(&outsider, &format!("/api/v1/playlists/{id}")).await;
    assert_eq!(seen["items"][1]["duration_ms"], 2_000);
    assert!(!seen.to_string().contains(&restricted), "{seen}");
    for token in [&member, &moderator, &hub.admin] {
        assert_eq!(
            items_seen(&hub, token, &id).await,
            [open.as_str(), restricted.as_str()]
        );
    }

    // The schedule preview hides it the same way.
    let (status, schedule) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": shop},
                "entries": [{"id": "all-day", "playlist": id, "priority": 0}]}),
        )
        .await;
    assert!(status.is_success(), "{schedule}");
    let schedule = schedule["id"].as_str().unwrap().to_owned();
    let mut shown = Vec::new();
    for second in 0..3 {
        let at = format!("2030-01-01T00:00:0{second}Z");
        let path = format!("/api/v1/schedules/{schedule}/preview?at={at}");
        let (status, preview) = hub.get(&outsider, &path).await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        assert!(!preview.to_string().contains(&restricted), "{preview}");
        shown.push(preview["main"]["item"].as_str().unwrap().to_owned());
        let (_, full) = hub.get(&moderator, &path).await;
        assert_ne!(full["main"]["item"], "hidden", "{full}");
    }
    assert!(shown.contains(&"hidden".to_owned()), "{shown:?}");

    // Sending the placeholder back is refused; nothing changes.
    let (status, body) = hub
        .patch(
            &outsider,
            &format!("/api/v1/playlists/{id}"),
            json!({"items": seen["items"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        items_seen(&hub, &moderator, &id).await,
        [open.as_str(), restricted.as_str()]
    );
}
