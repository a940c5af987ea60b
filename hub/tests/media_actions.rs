//! Media actions over HTTP against the real hub (M3, M2, M1, P5, P2): share
//! links that play without a login until they expire, are revoked or
//! sharing is turned off, listed and revoked one by one, ratings (one per user), favorites, the moderators' feedback queue,
//! typed custom attributes defined per node, and an item's delete taking
//! all of these with it. Each action is refused when the item's publish
//! setting is off even for a user holding the permission, and is not found
//! for a Viewer outside the item's allowed groups.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::content::actions::{
    ATTRIBUTE_VALUES, FAVORITES, FAVORITES_BY_ITEM, FEEDBACK, OPEN_FEEDBACK, RATINGS, SHARES,
};
use signet_hub::mail::{OUTBOX, OutboxEntry};
use support::{TestHub, assert_error, gif};

const PUBLIC_URL: &str = "https://signage.example.test";

/// Acme (with a site below) and Globex; permission group `club` at Acme.
struct World {
    hub: TestHub,
    acme: String,
    site: String,
    club: String,
    /// A Viewer in `club`: id, token.
    member_id: String,
    member: String,
    /// A Viewer in no group.
    outsider: String,
    /// A Contributor in `club` (holds `share`).
    contributor: String,
    /// Acme's Moderator.
    moderator: String,
    /// Globex's Moderator and Admin.
    globex_moderator: String,
    globex_admin: String,
}

async fn world_with(public_url: Option<&str>) -> World {
    let public_url = public_url.map(str::to_owned);
    let hub = TestHub::start_with(|c| c.public_url = public_url).await;
    let acme = hub.node(&hub.admin, &hub.root, "Acme").await;
    let site = hub.node(&hub.admin, &acme, "Acme site").await;
    let globex = hub.node(&hub.admin, &hub.root, "Globex").await;
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": acme, "name": "club", "permissions": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let club = group["id"].as_str().unwrap().to_owned();
    let (member_id, member) = hub.user("member", "viewer", &[&acme]).await;
    let (_, outsider) = hub.user("outsider", "viewer", &[&acme]).await;
    let (contributor_id, contributor) = hub.user("contrib", "contributor", &[&acme]).await;
    let (_, moderator) = hub.user("moderator", "moderator", &[&acme]).await;
    let (_, globex_moderator) = hub.user("gmod", "moderator", &[&globex]).await;
    let (_, globex_admin) = hub.user("gadmin", "admin", &[&globex]).await;
    for user in [&member_id, &contributor_id] {
        let path = format!("/api/v1/permission-groups/{club}/members/users");
        let r = hub.post(&hub.admin, &path, json!({"user": user})).await;
        assert!(r.0.is_success(), "{}", r.1);
    }
    World {
        hub,
        acme,
        site,
        club,
        member_id,
        member,
        outsider,
        contributor,
        moderator,
        globex_moderator,
        globex_admin,
    }
}

async fn world() -> World {
    world_with(None).await
}

/// Uploads a GIF at `node` as the admin with `settings` (M2) and
/// `allowed_groups` (M1); returns its id.
async fn item(hub: &TestHub, node: &str, name: &str, settings: Value, groups: &[&str]) -> String {
    let r = hub.upload(&hub.admin, node, name, gif(name)).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let id = r.1["id"].as_str().unwrap().to_owned();
    let change = json!({"settings": settings, "allowed_groups": groups});
    let r = hub
        .patch(&hub.admin, &format!("/api/v1/content/{id}"), change)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    id
}

async fn put(hub: &TestHub, token: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    hub.call(Method::PUT, path, Some(token), body).await
}

/// Defines (or redefines) the custom attribute `key` at `node` as `token`.
async fn define_as(
    hub: &TestHub,
    token: &str,
    at: (&str, &str),
    body: Value,
) -> (StatusCode, Value) {
    let (node, key) = at;
    put(
        hub,
        token,
        &format!("/api/v1/nodes/{node}/attributes/{key}"),
        Some(body),
    )
    .await
}

/// Every action of M3 on item `id` as `token`: (name, answer).
async fn every_action(hub: &TestHub, token: &str, id: &str) -> Vec<(&'static str, StatusCode)> {
    let base = format!("/api/v1/content/{id}");
    let mut answers = vec![
        (
            "share",
            hub.post(token, &format!("{base}/share"), json!({})).await.0,
        ),
        (
            "rate",
            put(
                hub,
                token,
                &format!("{base}/rating"),
                Some(json!({"value": "like"})),
            )
            .await
            .0,
        ),
        (
            "unrate",
            hub.delete(token, &format!("{base}/rating")).await.0,
        ),
        (
            "favorite",
            put(hub, token, &format!("{base}/favorite"), None).await.0,
        ),
        (
            "unfavorite",
            hub.delete(token, &format!("{base}/favorite")).await.0,
        ),
        (
            "feedback",
            hub.post(
                token,
                &format!("{base}/feedback"),
                json!({"reason": "question", "comment": "why?"}),
            )
            .await
            .0,
        ),
        (
            "attributes",
            hub.get(token, &format!("{base}/attributes")).await.0,
        ),
    ];
    let set = hub
        .patch(token, &format!("{base}/attributes"), json!({"values": {}}))
        .await;
    answers.push(("set_attributes", set.0));
    answers
}

#[tokio::test]
async fn m1_viewer_outside_allowed_groups_gets_404_for_every_action() {
    let w = world().await;
    let hub = &w.hub;
    let settings = json!({"allow_share": true, "allow_rating": true});
    let id = item(hub, &w.acme, "members only", settings, &[&w.club]).await;

    for token in [&w.outsider, &w.globex_admin, &w.globex_moderator] {
        for (action, status) in every_action(hub, token, &id).await {
            assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
        }
    }
    // The member (a Viewer in the group) may rate, favorite and report, but
    // holds neither share nor update_custom_attributes (P1).
    let answers = every_action(hub, &w.member, &id).await;
    let expected = [
        ("share", StatusCode::FORBIDDEN),
        ("rate", StatusCode::OK),
        ("unrate", StatusCode::OK),
        ("favorite", StatusCode::OK),
        ("unfavorite", StatusCode::OK),
        ("feedback", StatusCode::CREATED),
        ("attributes", StatusCode::OK),
        ("set_attributes", StatusCode::FORBIDDEN),
    ];
    assert_eq!(answers, expected);
    // A Moderator in no group views it (M1) and holds every media permission (P2).
    let answers = every_action(hub, &w.moderator, &id).await;
    assert!(answers.iter().all(|(_, s)| s.is_success()), "{answers:?}");
}

#[tokio::test]
async fn m2_each_action_refused_when_its_publish_setting_is_off_even_with_the_permission() {
    let w = world().await;
    let hub = &w.hub;
    let off = json!({"allow_share": false, "allow_rating": false});
    let id = item(hub, &w.acme, "closed", off, &[]).await;
    let base = format!("/api/v1/content/{id}");
    for token in [&hub.admin, &w.moderator, &w.contributor] {
        let r = hub.post(token, &format!("{base}/share"), json!({})).await;
        assert_error(&r, StatusCode::FORBIDDEN, "disabled_by_publish_settings");
        let like = Some(json!({"value": "like"}));
        let r = put(hub, token, &format!("{base}/rating"), like).await;
        assert_error(&r, StatusCode::FORBIDDEN, "disabled_by_publish_settings");
        let r = hub.delete(token, &format!("{base}/rating")).await;
        assert_error(&r, StatusCode::FORBIDDEN, "disabled_by_publish_settings");
    }
    // The item's actions say so: neither share nor rate is offered.
    let (_, view) = hub.get(&hub.admin, &format!("{base}/actions")).await;
    let allowed = view["allowed"].as_array().unwrap();
    assert!(!allowed.contains(&json!("share")) && !allowed.contains(&json!("rate")));
    assert!(allowed.contains(&json!("favorite")), "{view}");

    // Turned on, the same calls work.
    let on = json!({"settings": {"allow_share": true, "allow_rating": true}});
    assert_eq!(hub.patch(&hub.admin, &base, on).await.0, StatusCode::OK);
    let r = hub
        .post(&w.contributor, &format!("{base}/share"), json!({}))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let like = Some(json!({"value": "like"}));
    let r = put(hub, &w.contributor, &format!("{base}/rating"), like).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["likes"], 1);
}

/// The status, content type and bytes of the public `path`, with an
/// optional `Range`.
async fn fetch(hub: &TestHub, path: &str, range: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut request = hub.client.get(format!("{}{path}", hub.base));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let media_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, media_type, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn m3_share_link_plays_with_range_until_expiry_and_not_after() {
    let w = world().await;
    let hub = &w.hub;
    let on = json!({"allow_share": true});
    let id = item(hub, &w.acme, "shared", on, &[&w.club]).await;
    let share = format!("/api/v1/content/{id}/share");

    for bad in [
        json!({"expires_in_secs": 59}),
        json!({"expires_in_secs": 2_592_001}),
    ] {
        let r = hub.post(&w.contributor, &share, bad).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_expiry");
    }
    // Mail needs public_url, so the link in it opens.
    let r = hub
        .post(
            &w.contributor,
            &share,
            json!({"emails": ["friend@example.test"]}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "public_url_unset");

    let r = hub
        .post(&w.contributor, &share, json!({"expires_in_secs": 3600}))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let path = r.1["path"].as_str().unwrap().to_owned();
    assert!(path.starts_with("/api/v1/shared/"), "{path}");
    assert_eq!(r.1["url"], Value::Null);

    // Without a login: whole, and one range, as the item's media type.
    let (status, media_type, bytes) = fetch(hub, &path, None).await;
    assert_eq!(
        (status, media_type.as_str(), bytes),
        (StatusCode::OK, "image/gif", gif("shared"))
    );
    let (status, _, bytes) = fetch(hub, &path, Some("bytes=0-3")).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"GIF8"[..])
    );

    // A token whose expiry was stretched, or another item's id, is forged.
    let token = path.strip_prefix("/api/v1/shared/").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let stretched = format!(
        "/api/v1/shared/{}.{}.{}",
        parts[0],
        parts[1].parse::<i64>().unwrap() + 86_400,
        parts[2]
    );
    assert_eq!(fetch(hub, &stretched, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        fetch(hub, "/api/v1/shared/nonsense", None).await.0,
        StatusCode::NOT_FOUND
    );

    // One second before the end it plays; at the end it is refused.
    hub.clock.advance(TimeDelta::seconds(3599));
    assert_eq!(fetch(hub, &path, None).await.0, StatusCode::OK);
    hub.clock.advance(TimeDelta::seconds(1));
    let (status, _, body) = fetch(hub, &path, None).await;
    assert_eq!(status, StatusCode::GONE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "share_expired");

    // Audited.
    let (_, audit) = hub.get(&hub.admin, "/api/v1/audit").await;
    assert!(audit.to_string().contains("content.share"));
}

#[tokio::test]
async fn m2_share_link_refused_once_sharing_was_turned_off_since() {
    let w = world_with(Some(PUBLIC_URL)).await;
    let hub = &w.hub;
    let id = item(hub, &w.acme, "briefly", json!({"allow_share": true}), &[]).await;
    let base = format!("/api/v1/content/{id}");
    let r = hub
        .post(
            &w.contributor,
            &format!("{base}/share"),
            json!({"emails": ["friend@example.test"], "message": "Have a look"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["mailed"], 1);
    let url = r.1["url"].as_str().unwrap().to_owned();
    let path = r.1["path"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{PUBLIC_URL}{path}"));

    // The mail, queued in the outbox, carries the link under public_url.
    let outbox: Vec<OutboxEntry> = hub.state.store.scan(OUTBOX, "").unwrap();
    let mail = outbox
        .iter()
        .find(|e| e.mail.to == "friend@example.test")
        .expect("the share mail is queued");
    assert!(mail.mail.body.contains(&url), "{}", mail.mail.body);
    assert!(mail.mail.body.contains("Have a look"));
    assert_eq!(fetch(hub, &path, None).await.0, StatusCode::OK);

    // Sharing off: the link is revoked (410, as one revoked by hand), and
    // stays so when sharing is on again.
    let off = json!({"settings": {"allow_share": false}});
    assert_eq!(hub.patch(&hub.admin, &base, off).await.0, StatusCode::OK);
    assert_eq!(gone_code(hub, &path).await, "share_revoked");
    let on = json!({"settings": {"allow_share": true}});
    assert_eq!(hub.patch(&hub.admin, &base, on).await.0, StatusCode::OK);
    assert_eq!(gone_code(hub, &path).await, "share_revoked");
    let (status, listed) = hub.get(&w.moderator, &format!("{base}/shares")).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])), "none live");
    let r = hub
        .post(&w.contributor, &format!("{base}/share"), json!({}))
        .await;
    let fresh = r.1["path"].as_str().unwrap().to_owned();
    assert_eq!(fetch(hub, &fresh, None).await.0, StatusCode::OK);
}

/// The error code of a 410 answer to `path`, played without a login.
async fn gone_code(hub: &TestHub, path: &str) -> String {
    let (status, _, body) = fetch(hub, path, None).await;
    assert_eq!(status, StatusCode::GONE);
    let body: Value = serde_json::from_slice(&body).unwrap();
    body["error"].as_str().unwrap().to_owned()
}

/// The ids of a list of share links, in order.
fn link_ids(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect()
}

/// M3, P2, P5: an item's live share links are listed (who made each, when,
/// until when, mailed to how many; never a token) to those who may revoke
/// them — a Moderator whose domain holds the item's node sees all, others
/// their own — and a revoked link answers 410 `share_revoked` at once;
/// revoking is audited. Nobody else revokes (403), and another tenant's
/// Moderator finds neither the links nor the item (404).
#[tokio::test]
async fn m3_p2_share_links_are_listed_and_revoked_one_by_one() {
    let w = world_with(Some(PUBLIC_URL)).await;
    let hub = &w.hub;
    let id = item(hub, &w.acme, "linked", json!({"allow_share": true}), &[]).await;
    let (share, shares) = (
        format!("/api/v1/content/{id}/share"),
        format!("/api/v1/content/{id}/shares"),
    );
    let mailed = json!({"emails": ["a@example.test", "b@example.test"]});
    let mut made = Vec::new();
    for (token, body) in [
        (&w.contributor, mailed),
        (&w.moderator, json!({})),
        (&w.contributor, json!({"expires_in_secs": 600})),
    ] {
        hub.clock.advance(TimeDelta::seconds(1));
        let r = hub.post(token, &share, body).await;
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
        made.push((
            r.1["id"].as_str().unwrap().to_owned(),
            r.1["path"].as_str().unwrap().to_owned(),
            r.1["token"].as_str().unwrap().to_owned(),
        ));
    }
    let [
        (mine, mine_path, mine_token),
        (theirs, theirs_path, _),
        (short, short_path, _),
    ] = <[_; 3]>::try_from(made).unwrap();

    // The moderator lists all three, newest first; the contributor its own;
    // a Viewer who views the item none; another tenant nothing at all.
    let (status, all) = hub.get(&w.moderator, &shares).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(link_ids(&all), [short.as_str(), &theirs, &mine]);
    let first = &all[2];
    assert_eq!(
        (&first["created_by_name"], &first["mailed"]),
        (&json!("contrib"), &json!(2))
    );
    assert!(first["created_at"].is_string() && first["expires_at"].is_string());
    assert!(!all.to_string().contains(&mine_token), "never a token");
    let (status, own) = hub.get(&w.contributor, &shares).await;
    assert_eq!(
        (status, link_ids(&own)),
        (StatusCode::OK, vec![short.as_str(), &mine])
    );
    assert_eq!(
        hub.get(&w.outsider, &shares).await,
        (StatusCode::OK, json!([]))
    );
    let r = hub.get(&w.globex_moderator, &shares).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // Who may not revoke: a Viewer and the contributor (another's link)
    // are refused; another tenant's Moderator and Admin find nothing.
    let revoke = |share: &str| format!("/api/v1/shares/{share}");
    for token in [&w.outsider, &w.contributor] {
        let r = hub.delete(token, &revoke(&theirs)).await;
        assert_error(&r, StatusCode::FORBIDDEN, "not_own_share");
    }
    for token in [&w.globex_moderator, &w.globex_admin] {
        let r = hub.delete(token, &revoke(&mine)).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    let r = hub.delete(&w.moderator, &revoke("s-absent")).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    for path in [&mine_path, &theirs_path, &short_path] {
        assert_eq!(
            fetch(hub, path, None).await.0,
            StatusCode::OK,
            "refusals changed nothing"
        );
    }

    // The moderator revokes the contributor's link, the contributor its
    // own: each answers 410 share_revoked at once; the third still plays.
    assert_eq!(
        hub.delete(&w.moderator, &revoke(&mine)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(gone_code(hub, &mine_path).await, "share_revoked");
    assert_eq!(
        hub.delete(&w.contributor, &revoke(&short)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(gone_code(hub, &short_path).await, "share_revoked");
    assert_eq!(fetch(hub, &theirs_path, None).await.0, StatusCode::OK);
    // Again: nothing changes, and it stays revoked.
    assert_eq!(
        hub.delete(&w.contributor, &revoke(&short)).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, all) = hub.get(&w.moderator, &shares).await;
    assert_eq!(link_ids(&all), [theirs.as_str()]);
    assert_eq!(
        hub.get(&w.contributor, &shares).await,
        (StatusCode::OK, json!([]))
    );

    // Audited once per revocation, naming the link.
    let (_, audit) = hub.get(&hub.admin, "/api/v1/audit").await;
    let revoked: Vec<&Value> = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "content.share_revoked")
        .collect();
    assert_eq!(revoked.len(), 2, "{audit}");
    assert!(revoked.iter().any(|e| e.to_string().contains(&mine)));
}

#[tokio::test]
async fn m3_one_rating_per_user_and_the_item_shows_counts_and_ones_own() {
    let w = world().await;
    let hub = &w.hub;
    let id = item(hub, &w.acme, "rated", json!({}), &[&w.club]).await;
    let (base, rating) = (
        format!("/api/v1/content/{id}"),
        format!("/api/v1/content/{id}/rating"),
    );
    let like = || Some(json!({"value": "like"}));
    for _ in 0..3 {
        let r = put(hub, &w.member, &rating, like()).await;
        assert_eq!(
            (r.1["likes"].clone(), r.1["dislikes"].clone()),
            (json!(1), json!(0))
        );
    }
    let r = put(hub, &w.member, &rating, Some(json!({"value": "dislike"}))).await;
    assert_eq!(
        (r.1["likes"].clone(), r.1["dislikes"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(r.1["my_rating"], "dislike");
    let r = put(hub, &w.contributor, &rating, like()).await;
    assert_eq!(
        (r.1["likes"].clone(), r.1["dislikes"].clone()),
        (json!(1), json!(1))
    );

    let (_, view) = hub.get(&w.member, &format!("{base}/actions")).await;
    assert_eq!(view["likes"], 1);
    assert_eq!(view["dislikes"], 1);
    assert_eq!(view["my_rating"], "dislike");
    let (_, view) = hub.get(&w.moderator, &format!("{base}/actions")).await;
    assert_eq!(view["my_rating"], Value::Null);

    let r = hub.delete(&w.member, &rating).await;
    assert_eq!(
        (r.1["likes"].clone(), r.1["dislikes"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(r.1["my_rating"], Value::Null);
    let r = put(hub, &w.member, &rating, Some(json!({"value": "love"}))).await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
}

#[tokio::test]
async fn m1_m3_favorites_list_only_what_the_caller_can_still_view() {
    let w = world().await;
    let hub = &w.hub;
    let restricted = item(hub, &w.acme, "restricted", json!({}), &[&w.club]).await;
    let open = item(hub, &w.acme, "open", json!({}), &[]).await;
    for id in [&restricted, &open, &open] {
        let r = put(
            hub,
            &w.member,
            &format!("/api/v1/content/{id}/favorite"),
            None,
        )
        .await;
        assert_eq!(
            (r.0, r.1["favorite"].clone()),
            (StatusCode::OK, json!(true))
        );
        hub.clock.advance(TimeDelta::seconds(1));
    }
    let ids = |list: &Value| -> Vec<String> {
        (list.as_array().unwrap().iter())
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = hub.get(&w.member, "/api/v1/me/favorites").await;
    assert_eq!(
        ids(&list),
        [open.as_str(), restricted.as_str()],
        "newest first"
    );
    let (_, others) = hub.get(&w.contributor, "/api/v1/me/favorites").await;
    assert_eq!(others, json!([]));

    // Out of the group: the restricted item leaves the list.
    let path = format!(
        "/api/v1/permission-groups/{}/members/users/{}",
        w.club, w.member_id
    );
    assert!(hub.delete(&hub.admin, &path).await.0.is_success());
    let (_, list) = hub.get(&w.member, "/api/v1/me/favorites").await;
    assert_eq!(ids(&list), [open.as_str()]);

    let r = hub
        .delete(&w.member, &format!("/api/v1/content/{open}/favorite"))
        .await;
    assert_eq!(r.1["favorite"], false);
    let (_, list) = hub.get(&w.member, "/api/v1/me/favorites").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn m3_feedback_queue_visible_only_to_moderators_of_that_domain() {
    let w = world().await;
    let hub = &w.hub;
    let id = item(hub, &w.site, "reported", json!({}), &[]).await;
    let report = format!("/api/v1/content/{id}/feedback");
    let file = |reason: &str, comment: &str| {
        let body = json!({"reason": reason, "comment": comment});
        hub.post(&w.member, &report, body)
    };
    let r = file("offensive", "   ").await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_comment");
    let r = file("rude", "x").await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    let body = json!({"reason": "offensive", "comment": "Not for the lobby"});
    let r = hub.post(&w.member, &report, body.clone()).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let feedback = r.1["id"].as_str().unwrap().to_owned();
    assert_eq!(r.1["resolution"], Value::Null);
    let r = hub.post(&w.member, &report, body).await;
    assert_error(&r, StatusCode::CONFLICT, "feedback_open");

    let queue = |token: &str, query: &str| {
        let token = token.to_owned();
        let path = format!("/api/v1/feedback{query}");
        async move { hub.get(&token, &path).await }
    };
    let listed = |answer: &(StatusCode, Value)| {
        assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
        (answer.1.as_array().unwrap().iter()).any(|f| f["id"] == feedback.as_str())
    };
    assert!(listed(&queue(&w.moderator, "").await));
    assert!(listed(&queue(&hub.admin, "").await));
    assert!(!listed(&queue(&w.globex_moderator, "").await));
    assert!(!listed(&queue(&w.globex_admin, "").await));
    for below in [&w.member, &w.contributor] {
        assert_error(&queue(below, "").await, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_error(
        &queue(&w.moderator, "?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    );

    let resolve = format!("/api/v1/feedback/{feedback}/resolve");
    let note = json!({"note": "Moved to the staff room"});
    let r = hub.post(&w.globex_moderator, &resolve, note.clone()).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = hub.post(&w.contributor, &resolve, note.clone()).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = hub.post(&w.moderator, &resolve, note.clone()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["resolution"]["note"], "Moved to the staff room");
    assert_eq!(r.1["resolution"]["by_name"], "moderator");
    let r = hub.post(&w.moderator, &resolve, note).await;
    assert_error(&r, StatusCode::CONFLICT, "feedback_resolved");
    assert!(!listed(&queue(&w.moderator, "").await));
    assert!(listed(&queue(&w.moderator, "?status=resolved").await));
    assert!(listed(&queue(&w.moderator, "?status=all").await));

    // Resolved, the member may report again. Both steps are audited.
    let r = file("suggestion", "Shorter?").await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let (_, audit) = hub.get(&hub.admin, "/api/v1/audit").await;
    let audit = audit.to_string();
    assert!(audit.contains("content.feedback") && audit.contains("feedback.resolve"));
}

#[tokio::test]
async fn m3_custom_attributes_are_typed_inherited_and_validated() {
    let w = world().await;
    let hub = &w.hub;
    let define = |node: &str, key: &str| format!("/api/v1/nodes/{node}/attributes/{key}");
    let (_, manager) = hub.user("manager", "manager", &[&w.acme]).await;
    for (key, body) in [
        (
            "screen_size",
            json!({"label": "Screen size", "type": "number"}),
        ),
        (
            "season",
            json!({"label": "Season", "type": "enum", "values": ["summer", "winter"]}),
        ),
        ("live_from", json!({"label": "Live from", "type": "date"})),
        ("featured", json!({"label": "Featured", "type": "bool"})),
        ("notes", json!({"label": "Notes", "type": "string"})),
    ] {
        let r = put(hub, &manager, &define(&w.acme, key), Some(body)).await;
        assert_eq!(r.0, StatusCode::CREATED, "{key}: {}", r.1);
    }
    // Refused definitions change nothing.
    for (key, body, status, code) in [
        (
            "Bad-Key",
            json!({"label": "x", "type": "string"}),
            400,
            "invalid_attribute_key",
        ),
        (
            "e",
            json!({"label": "x", "type": "enum"}),
            400,
            "invalid_attribute_def",
        ),
        (
            "n",
            json!({"label": "x", "type": "number", "values": ["1"]}),
            400,
            "invalid_attribute_def",
        ),
    ] {
        let r = put(hub, &manager, &define(&w.acme, key), Some(body)).await;
        assert_error(&r, StatusCode::from_u16(status).unwrap(), code);
    }
    let body = json!({"label": "S", "type": "string"});
    let r = define_as(hub, &manager, (&w.site, "season"), body).await;
    assert_error(&r, StatusCode::CONFLICT, "attribute_defined_elsewhere");
    let body = json!({"label": "O", "type": "bool"});
    let r = define_as(hub, &w.moderator, (&w.acme, "other"), body).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let body = json!({"label": "X", "type": "bool"});
    let r = define_as(hub, &w.globex_admin, (&w.acme, "x"), body).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // Inherited by the site below: an item there has all five, unset.
    let (_, at_site) = hub
        .get(&w.member, &format!("/api/v1/nodes/{}/attributes", w.site))
        .await;
    assert_eq!(at_site.as_array().unwrap().len(), 5, "{at_site}");
    let id = item(hub, &w.site, "tagged", json!({}), &[]).await;
    let attributes = format!("/api/v1/content/{id}/attributes");
    let (_, list) = hub.get(&w.member, &attributes).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|a| a["value"].is_null()),
        "{list}"
    );

    let values = json!({"values": {"screen_size": 55, "season": "winter", "live_from": "2026-12-24",
        "featured": true, "notes": "Lobby, left wall"}});
    let r = hub.patch(&w.member, &attributes, values.clone()).await;
    assert_error(&r, StatusCode::FORBIDDEN, "permission_not_held");
    let r = hub.patch(&w.moderator, &attributes, values).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let value_of = |list: &Value, key: &str| {
        (list.as_array().unwrap().iter())
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
            .unwrap()
    };
    assert_eq!(value_of(&r.1, "screen_size"), json!(55));
    assert_eq!(value_of(&r.1, "season"), json!("winter"));
    assert_eq!(r.1[0]["key"], "featured", "by key: {}", r.1);
    assert_eq!(r.1[0]["type"], "bool", "{}", r.1);

    // A bad value is refused with its key, and the good ones beside it are
    // not written either.
    for (bad, code) in [
        (
            json!({"season": "spring", "featured": false}),
            "invalid_attribute_value",
        ),
        (
            json!({"live_from": "24.12.2026", "featured": false}),
            "invalid_attribute_value",
        ),
        (
            json!({"screen_size": "55", "featured": false}),
            "invalid_attribute_value",
        ),
        (
            json!({"colour": "red", "featured": false}),
            "unknown_attribute",
        ),
    ] {
        let r = hub
            .patch(&w.moderator, &attributes, json!({"values": bad}))
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, code);
    }
    let (_, list) = hub.get(&w.member, &attributes).await;
    assert_eq!(value_of(&list, "featured"), json!(true));

    // A redefinition the stored values do not fit is refused; clearing
    // (null) makes room; removing a definition removes its values.
    let body = json!({"label": "Size", "type": "bool"});
    let r = define_as(hub, &manager, (&w.acme, "screen_size"), body).await;
    assert_error(&r, StatusCode::CONFLICT, "attribute_in_use");
    let r = hub
        .patch(
            &w.moderator,
            &attributes,
            json!({"values": {"screen_size": null}}),
        )
        .await;
    assert_eq!(value_of(&r.1, "screen_size"), Value::Null);
    let body = json!({"label": "Size", "type": "bool"});
    let r = define_as(hub, &manager, (&w.acme, "screen_size"), body).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = hub.delete(&manager, &define(&w.acme, "season")).await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let (_, list) = hub.get(&w.member, &attributes).await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    let stored: Vec<Value> = hub
        .state
        .store
        .scan(ATTRIBUTE_VALUES, &format!("{id}/season"))
        .unwrap();
    assert!(stored.is_empty());
}

#[tokio::test]
async fn m3_deleting_an_item_removes_its_ratings_favorites_attributes_shares_and_open_feedback() {
    let w = world().await;
    let hub = &w.hub;
    let id = item(hub, &w.acme, "doomed", json!({"allow_share": true}), &[]).await;
    let base = format!("/api/v1/content/{id}");
    let r = put(
        hub,
        &hub.admin,
        "/api/v1/nodes/{node}/attributes/notes"
            .replace("{node}", &w.acme)
            .as_str(),
        Some(json!({"label": "Notes", "type": "string"})),
    )
    .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let calls = [
        put(
            hub,
            &w.member,
            &format!("{base}/rating"),
            Some(json!({"value": "like"})),
        )
        .await,
        put(hub, &w.member, &format!("{base}/favorite"), None).await,
        hub.patch(
            &w.moderator,
            &format!("{base}/attributes"),
            json!({"values": {"notes": "n"}}),
        )
        .await,
        hub.post(&w.contributor, &format!("{base}/share"), json!({}))
            .await,
        hub.post(
            &w.member,
            &format!("{base}/feedback"),
            json!({"reason": "other", "comment": "a"}),
        )
        .await,
        hub.post(
            &w.outsider,
            &format!("{base}/feedback"),
            json!({"reason": "other", "comment": "b"}),
        )
        .await,
    ];
    for (status, body) in &calls {
        assert!(status.is_success(), "{body}");
    }
    let share_path = calls[3].1["path"].as_str().unwrap().to_owned();
    let resolved = calls[5].1["id"].as_str().unwrap();
    let r = hub
        .post(
            &w.moderator,
            &format!("/api/v1/feedback/{resolved}/resolve"),
            json!({}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);

    assert_eq!(
        hub.delete(&hub.admin, &base).await.0,
        StatusCode::NO_CONTENT
    );
    let store = &hub.state.store;
    let prefix = format!("{id}/");
    for tree in [RATINGS, FAVORITES_BY_ITEM, ATTRIBUTE_VALUES, OPEN_FEEDBACK] {
        assert!(
            store.scan::<Value>(tree, &prefix).unwrap().is_empty(),
            "{tree}"
        );
    }
    let favorites: Vec<Value> = store.scan(FAVORITES, &format!("{}/", w.member_id)).unwrap();
    assert!(favorites.is_empty());
    assert!(store.scan::<Value>(SHARES, "").unwrap().is_empty());
    assert_eq!(fetch(hub, &share_path, None).await.0, StatusCode::NOT_FOUND);
    // The resolved report stays, for the record; the open one went.
    let reports: Vec<Value> = store.scan(FEEDBACK, "").unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["id"], resolved);
    let (_, list) = hub.get(&w.member, "/api/v1/me/favorites").await;
    assert_eq!(list, json!([]));
}

/// The `allowed` list of item `id`'s actions as `token` sees it, sorted.
async fn allowed(hub: &TestHub, token: &str, id: &str) -> Vec<String> {
    let (status, view) = hub
        .get(token, &format!("/api/v1/content/{id}/actions"))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let mut names: Vec<String> = (view["allowed"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The actions an item's page shows (P5, M2, M4): `allowed` names exactly
/// the permissions the caller holds that the item's settings allow,
/// `process_media` and every `comment.*` among them, so the console shows
/// no button that would answer 403.
#[tokio::test]
async fn p5_m4_item_actions_name_comment_and_process_permissions_as_held_and_allowed() {
    let w = world().await;
    let hub = &w.hub;
    let on = json!({"allow_share": true, "allow_download": true});
    let id = item(hub, &w.site, "offered", on, &[]).await;
    let viewer = ["comment.view", "favorite", "feedback", "rate"];
    assert_eq!(allowed(hub, &w.outsider, &id).await, viewer);
    let contributor = [
        "comment.add",
        "comment.delete_own",
        "comment.edit_own",
        "comment.view",
        "download",
        "favorite",
        "feedback",
        "rate",
        "share",
    ];
    assert_eq!(allowed(hub, &w.contributor, &id).await, contributor);
    let moderator = allowed(hub, &w.moderator, &id).await;
    for p in [
        "process_media",
        "comment.delete_others",
        "update_custom_attributes",
        "approve_content",
    ] {
        assert!(
            moderator.contains(&p.to_owned()),
            "{p} not in {moderator:?}"
        );
    }
    // Comments off: no comment.* for anyone, even the Moderator.
    let off = json!({"settings": {"allow_comments": false}});
    let r = hub
        .patch(&hub.admin, &format!("/api/v1/content/{id}"), off)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    for token in [&w.contributor, &w.moderator] {
        let names = allowed(hub, token, &id).await;
        assert!(
            !names.iter().any(|n| n.starts_with("comment.")),
            "{names:?}"
        );
    }
    assert!(
        allowed(hub, &w.moderator, &id)
            .await
            .contains(&"process_media".to_owned())
    );
}

/// M3, T1: the custom attributes defined at a node are deleted with it, in
/// the delete's own transaction: the store keeps no definition naming the
/// deleted node, one defined above it stays, and the audit entry counts
/// what went.
#[tokio::test]
async fn m3_a_deleted_node_takes_its_attribute_definitions_with_it() {
    let w = world().await;
    let hub = &w.hub;
    let branch = hub.node(&hub.admin, &w.acme, "Pop-up").await;
    for key in ["season", "featured"] {
        let r = put(
            hub,
            &hub.admin,
            &format!("/api/v1/nodes/{branch}/attributes/{key}"),
            Some(json!({"label": key, "type": "bool"})),
        )
        .await;
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    }
    // A definition above the node stays.
    let r = put(
        hub,
        &hub.admin,
        &format!("/api/v1/nodes/{}/attributes/region", w.acme),
        Some(json!({"label": "Region", "type": "string"})),
    )
    .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let (_, defined) = hub
        .get(&hub.admin, &format!("/api/v1/nodes/{branch}/attributes"))
        .await;
    assert_eq!(defined.as_array().unwrap().len(), 3, "{defined}");

    let (status, body) = hub
        .delete(&hub.admin, &format!("/api/v1/nodes/{branch}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let left: Vec<String> = hub
        .state
        .store
        .scan_keys(signet_hub::content::actions::ATTRIBUTE_DEFS, "")
        .unwrap();
    assert_eq!(left, [format!("{}/region", w.acme)]);
    let (status, _) = hub
        .get(&hub.admin, &format!("/api/v1/nodes/{branch}/attributes"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=node.delete")
        .await;
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == branch.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["detail"]["attribute_definitions"], 2, "{entry}");
}
