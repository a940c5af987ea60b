//! The member player (M6, feature row 38) against the real hub over HTTP:
//! a user member of an access group plays its items in a browser only
//! inside the licence window (L2, L4) and device limit (L5: a browser
//! counts as a device), through short-lived signed media URLs; every
//! playback is a play event the usage report shows under the user (U1, U3,
//! L8); the first playback starts the duration from first use (L2).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{TestHub, assert_error};

const GROUPS: &str = "/api/v1/access-groups";

fn now(hub: &TestHub) -> DateTime<Utc> {
    use signet_hub::app::Clock as _;
    hub.clock.now()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A hub with an access group (30 days from join, 1 hour from first use,
/// one device per member) holding one GIF item in category "News", and a
/// Viewer `member` of it: (hub, group, item, member id, member token).
async fn setup() -> (TestHub, String, String, String, String) {
    setup_with(|_| {}).await
}

/// [`setup`] on a hub configured by `configure`.
async fn setup_with(
    configure: impl FnOnce(&mut signet_hub::config::Config),
) -> (TestHub, String, String, String, String) {
    let hub = TestHub::start_with(configure).await;
    let license = json!({"duration_from_join_secs": 30 * 86_400,
        "duration_from_first_use_secs": 3600, "max_active_devices": 1,
        "allow_offline": false, "offline_grace_secs": 0, "allow_export": false});
    let (status, group) = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "Members", "license": license,
                "categories": ["News"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let (status, item) = hub
        .upload(&hub.admin, &hub.root, "Clip", support::gif("clip"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let item = item["id"].as_str().unwrap().to_owned();
    let items = json!({"items": [{"id": item, "categories": ["News"]}]});
    let r = hub
        .call(
            Method::PUT,
            &format!("{GROUPS}/{group}/items"),
            Some(hub.admin.as_str()),
            Some(items),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let (member, token) = hub.user("member", "viewer", &[&hub.root]).await;
    let r = hub
        .post(
            &hub.admin,
            &format!("{GROUPS}/{group}/members"),
            json!({"member": {"type": "user", "user_id": member}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    (hub, group, item, member, token)
}

/// The thumbnail of `item` as the content library serves it to the admin.
async fn library_thumbnail(hub: &TestHub, item: &str) -> axum::body::Bytes {
    let library = hub
        .client
        .get(format!("{}/api/v1/content/{item}/thumbnail", hub.base))
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(library.status(), StatusCode::OK);
    library.bytes().await.unwrap()
}

/// Registers a browser named `name` as `token`.
async fn register(hub: &TestHub, token: &str, name: &str) -> (StatusCode, Value) {
    hub.post(token, "/api/v1/my/devices", json!({"name": name}))
        .await
}

/// Starts playing `item` as `token` in the browser `device_token`.
async fn play(hub: &TestHub, token: &str, item: &str, device_token: &str) -> (StatusCode, Value) {
    hub.post(
        token,
        &format!("/api/v1/my/items/{item}/play"),
        json!({"device_token": device_token}),
    )
    .await
}

/// GETs a media URL (no login) with an optional `Range`.
async fn fetch(hub: &TestHub, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = hub.client.get(format!("{}{url}", hub.base));
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    request.send().await.unwrap()
}

/// M6, L5: a browser counts as a device — with one device allowed, a
/// second browser of the member is refused (409 `too_many_devices`) and
/// stores nothing, until the first is removed.
#[tokio::test]
async fn m6_l5_a_browser_beyond_max_devices_is_refused_until_one_is_removed() {
    let (hub, group, item, _, token) = setup().await;
    let (status, first) = register(&hub, &token, "Laptop").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["browser"]["groups"], json!([group]));
    let first_token = first["token"].as_str().unwrap();
    assert_eq!(
        play(&hub, &token, &item, first_token).await.0,
        StatusCode::OK
    );

    let refused = register(&hub, &token, "Phone").await;
    assert_error(&refused, StatusCode::CONFLICT, "too_many_devices");
    let (_, listed) = hub.get(&token, "/api/v1/my/devices").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    let id = first["browser"]["id"].as_str().unwrap();
    let r = hub
        .delete(&token, &format!("/api/v1/my/devices/{id}"))
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let gone = play(&hub, &token, &item, first_token).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "device_not_registered");
    let (status, second) = register(&hub, &token, "Phone").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_token = second["token"].as_str().unwrap();
    assert_eq!(
        play(&hub, &token, &item, second_token).await.0,
        StatusCode::OK
    );
}

/// M6, L2, L4: outside the member's window a playback is refused (403
/// `outside_licence_window`) and "My content" says so; a user who is not a
/// member gets 404 for the item, and cannot use another user's browser.
#[tokio::test]
async fn m6_l2_l4_playing_outside_the_licence_window_is_refused() {
    let (hub, _, item, _, token) = setup().await;
    let (_, browser) = register(&hub, &token, "Laptop").await;
    let device_token = browser["token"].as_str().unwrap();

    let (_, outsider) = hub.user("outsider", "viewer", &[&hub.root]).await;
    let (_, own) = register(&hub, &outsider, "Tablet").await;
    let r = play(&hub, &outsider, &item, own["token"].as_str().unwrap()).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = play(&hub, &outsider, &item, device_token).await;
    assert_error(&r, StatusCode::NOT_FOUND, "device_not_registered");

    hub.clock.advance(TimeDelta::days(31));
    let token = hub.login("member", support::PASSWORD).await;
    let r = play(&hub, &token, &item, device_token).await;
    assert_error(&r, StatusCode::FORBIDDEN, "outside_licence_window");
    let (status, mine) = hub.get(&token, "/api/v1/my/content").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["groups"][0]["in_window_now"], false, "{mine}");
    assert_eq!(mine["groups"][0]["items"][0]["id"], item.as_str());
}

/// M6: the media URL is signed and short-lived — it serves the bytes (with
/// their media type, and `Range`) without a login, refuses a changed
/// signature (403 `bad_signature`) and stops when it expires (410
/// `link_expired`).
#[tokio::test]
async fn m6_the_signed_media_url_serves_the_item_until_it_expires() {
    let (hub, _, item, _, token) = setup().await;
    let (_, browser) = register(&hub, &token, "Laptop").await;
    let (status, granted) = play(&hub, &token, &item, browser["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    let url = granted["url"].as_str().unwrap();
    let expires_at = time(&granted["expires_at"]);
    assert!(expires_at > now(&hub) && expires_at <= now(&hub) + TimeDelta::hours(1));

    let whole = fetch(&hub, url, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[header::CONTENT_TYPE], "image/gif");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), support::gif("clip"));
    let part = fetch(&hub, url, Some("bytes=0-5")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"GIF89a");

    let tampered = url.replace("signature=", "signature=0");
    let r = fetch(&hub, &tampered, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let later = url.replace("expires=", "expires=9");
    assert_eq!(
        fetch(&hub, &later, None).await.status(),
        StatusCode::FORBIDDEN
    );

    hub.clock.advance(expires_at - now(&hub));
    let expired = fetch(&hub, url, None).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"], "link_expired", "{body}");
}

/// M6, U1, U3, L8: a playback is a play event — under the user, the
/// browser as its device, the group and the item — with the duration the
/// page reports (never more than the time since it started); the usage
/// report filtered by the user shows it, and its CSV names the user.
#[tokio::test]
async fn m6_u1_l8_a_playback_is_recorded_in_the_usage_report_under_the_user() {
    let (hub, group, item, member, token) = setup().await;
    let (_, browser) = register(&hub, &token, "Laptop").await;
    let start = now(&hub);
    let (_, granted) = play(&hub, &token, &item, browser["token"].as_str().unwrap()).await;
    let play_id = granted["play_id"].as_str().unwrap();
    hub.clock.advance(TimeDelta::seconds(2));
    let progress = format!("/api/v1/my/plays/{play_id}");
    let r = hub
        .post(&token, &progress, json!({"played_ms": 1500}))
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let (_, other) = hub.user("other", "viewer", &[&hub.root]).await;
    let r = hub.post(&other, &progress, json!({"played_ms": 1})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let from = (start - TimeDelta::minutes(1)).to_rfc3339();
    let query = [("user", member.as_str()), ("from", from.as_str())];
    let response = hub
        .client
        .get(format!("{}/api/v1/reports/usage", hub.base))
        .query(&query)
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    let events = report["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{report}");
    let row = &events[0];
    assert_eq!(row["id"], play_id);
    assert_eq!(row["user"], member.as_str());
    assert_eq!(row["device"], browser["browser"]["id"]);
    assert_eq!(row["item"], item.as_str());
    assert_eq!(row["access_group"], group.as_str());
    assert_eq!(row["outcome"], "played");
    assert_eq!(row["duration_ms"], 1500);

    // Reporting more than the time since the start is cut to it.
    hub.post(&token, &progress, json!({"played_ms": 60_000}))
        .await;
    let csv = hub
        .client
        .get(format!("{}/api/v1/reports/usage", hub.base))
        .query(&[
            ("user", member.as_str()),
            ("from", from.as_str()),
            ("format", "csv"),
        ])
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",user"), "{csv}");
    let line = lines.next().unwrap();
    assert!(
        line.contains(",2000,played,") && line.ends_with(&member),
        "{csv}"
    );
}

/// L2: a user's first playback is their first use — it sets
/// `first_used_at`, once, and the window then ends an hour later (the
/// duration from first use), not 30 days after joining.
#[tokio::test]
async fn l2_a_users_first_playback_sets_first_used_at_and_shortens_the_window() {
    let (hub, group, item, member, token) = setup().await;
    let members = format!("{GROUPS}/{group}/members");
    let view = |body: Value| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|m| m["member"]["user_id"] == member.as_str())
            .unwrap()
            .clone()
    };
    let (_, before) = hub.get(&hub.admin, &members).await;
    let before = view(before);
    assert!(before["first_used_at"].is_null(), "{before}");
    let joined = time(&before["joined_at"]);
    assert_eq!(
        time(&before["window"]["ends_at"]),
        joined + TimeDelta::days(30)
    );

    let (_, browser) = register(&hub, &token, "Laptop").await;
    let device_token = browser["token"].as_str().unwrap();
    hub.clock.advance(TimeDelta::minutes(5));
    let first = now(&hub);
    let (status, granted) = play(&hub, &token, &item, device_token).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(
        time(&granted["window_ends_at"]),
        first + TimeDelta::hours(1)
    );
    let (_, after) = hub.get(&hub.admin, &members).await;
    let after = view(after);
    assert_eq!(time(&after["first_used_at"]), first, "{after}");
    assert_eq!(
        time(&after["window"]["ends_at"]),
        first + TimeDelta::hours(1)
    );

    // A later playback changes nothing; past the hour, playing is refused.
    hub.clock.advance(TimeDelta::minutes(30));
    assert_eq!(
        play(&hub, &token, &item, device_token).await.0,
        StatusCode::OK
    );
    let (_, again) = hub.get(&hub.admin, &members).await;
    assert_eq!(time(&view(again)["first_used_at"]), first);
    hub.clock.advance(TimeDelta::minutes(31));
    let r = play(&hub, &token, &item, device_token).await;
    assert_error(&r, StatusCode::FORBIDDEN, "outside_licence_window");
}

/// M6, C5: "My content" lists each item with a signed URL of its
/// thumbnail, which serves the content library's thumbnail without a login
/// (an `<img>` sends no token), refuses a changed signature (403
/// `bad_signature`) and stops working within two hours (410
/// `link_expired`).
#[tokio::test]
async fn m6_c5_my_content_lists_each_item_with_a_signed_thumbnail_url() {
    let (hub, _, item, _, token) = setup().await;
    let (status, mine) = hub.get(&token, "/api/v1/my/content").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let url = mine["groups"][0]["items"][0]["thumbnail_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no thumbnail URL: {mine}"))
        .to_owned();
    assert!(
        url.starts_with(&format!("/api/v1/my/thumbnails/{item}?")),
        "{url}"
    );
    let (_, again) = hub.get(&token, "/api/v1/my/content").await;
    assert_eq!(
        again["groups"][0]["items"][0]["thumbnail_url"], url,
        "the URL stays the same within the hour, for the browser's cache"
    );

    let served = fetch(&hub, &url, None).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()[header::CONTENT_TYPE], "image/png");
    let bytes = served.bytes().await.unwrap();
    assert_eq!(bytes, library_thumbnail(&hub, &item).await);

    let tampered = url.replace("signature=", "signature=0");
    let r = fetch(&hub, &tampered, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let other = url.replace(&item, "c-0123456789abcdef");
    assert_eq!(
        fetch(&hub, &other, None).await.status(),
        StatusCode::FORBIDDEN
    );

    hub.clock.advance(TimeDelta::hours(2));
    let expired = fetch(&hub, &url, None).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"], "link_expired", "{body}");
}

/// M6, C5, X5: with blobs in a shared directory apart from the data
/// directory (replicas), the member's signed thumbnail URL serves the
/// thumbnail rendered there — the same bytes as the library's.
#[tokio::test]
async fn m6_x5_member_thumbnails_come_from_the_shared_directory() {
    let shared = tempfile::tempdir().unwrap();
    let path = shared.path().to_owned();
    let (hub, _, item, _, token) = setup_with(|config| config.shared_dir = Some(path)).await;
    let (status, mine) = hub.get(&token, "/api/v1/my/content").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let url = mine["groups"][0]["items"][0]["thumbnail_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no thumbnail URL: {mine}"))
        .to_owned();
    let served = fetch(&hub, &url, None).await;
    assert_eq!(served.status(), StatusCode::OK);
    let bytes = served.bytes().await.unwrap();
    assert_eq!(bytes, library_thumbnail(&hub, &item).await);
}
