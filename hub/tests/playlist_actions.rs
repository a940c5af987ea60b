//! Comments, rating, favorites and custom attributes on playlists over
//! HTTP (M3, M4, P7, M1, M2), by the same rules as on content items: each
//! action by its permission and the playlist's publish settings, only on
//! playlists the caller views (404 otherwise, as for other tenants), own
//! versus others' comments, audited, and removed with their playlist.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::content::actions::{ATTRIBUTE_VALUES, FAVORITES, FAVORITES_BY_ITEM, RATINGS};
use signet_hub::content::comments::COMMENTS;
use support::{TestHub, assert_error, gif};

/// A tenant with a Viewer, two Contributors and a Moderator, and a
/// playlist of one image made by the admin.
struct World {
    hub: TestHub,
    acme: String,
    playlist: String,
    viewer: String,
    writer_id: String,
    writer: String,
    other_writer: String,
    moderator: String,
}

async fn world() -> World {
    let hub = TestHub::start().await;
    let acme = hub.node(&hub.admin, &hub.root, "Acme").await;
    let r = hub.upload(&hub.admin, &acme, "poster", gif("poster")).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let item = r.1["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": acme, "name": "Lobby",
                "items": [{"item": item, "duration_ms": 5_000}]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let playlist = r.1["id"].as_str().unwrap().to_owned();
    let (_, viewer) = hub.user("viewer", "viewer", &[&acme]).await;
    let (writer_id, writer) = hub.user("writer", "contributor", &[&acme]).await;
    let (_, other_writer) = hub.user("other", "contributor", &[&acme]).await;
    let (_, moderator) = hub.user("moderator", "moderator", &[&acme]).await;
    World {
        hub,
        acme,
        playlist,
        viewer,
        writer_id,
        writer,
        other_writer,
        moderator,
    }
}

/// A template of one image zone at Acme showing the world's first item;
/// returns the template's id and that image's.
async fn layout_template(w: &World) -> (String, String) {
    let hub = &w.hub;
    let (_, items) = hub.get(&hub.admin, "/api/v1/content").await;
    let image = items[0]["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/templates",
            json!({"node": w.acme, "name": "Layout", "template": {
                "canvas": {"width": 1280, "height": 720},
                "zones": [{"id": "main", "kind": "image",
                    "rect": {"x": 0, "y": 0, "width": 1280, "height": 720},
                    "source": image}]}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    (r.1["id"].as_str().unwrap().to_owned(), image)
}

fn path(playlist: &str, tail: &str) -> String {
    format!("/api/v1/playlists/{playlist}/{tail}")
}

/// Adds a comment as `token`; returns its id.
async fn add(hub: &TestHub, token: &str, playlist: &str, body: &str) -> String {
    let r = hub
        .post(token, &path(playlist, "comments"), json!({"body": body}))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_owned()
}

/// The bodies of the first page, newest first.
async fn bodies(hub: &TestHub, token: &str, playlist: &str) -> Vec<String> {
    let (status, page) = hub.get(token, &path(playlist, "comments")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn put(hub: &TestHub, token: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    hub.call(Method::PUT, path, Some(token), body).await
}

async fn audit(hub: &TestHub, action: &str) -> Vec<Value> {
    let (status, entries) = hub
        .get(&hub.admin, &format!("/api/v1/audit?action={action}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    entries.as_array().unwrap().clone()
}

async fn patch_playlist(hub: &TestHub, playlist: &str, body: Value) {
    let r = hub
        .patch(&hub.admin, &format!("/api/v1/playlists/{playlist}"), body)
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

/// M4, P7 on a playlist: a Viewer reads but cannot add; Contributors add;
/// only the author edits; a Contributor deletes their own but not
/// another's, a Moderator deletes others'; each change is audited with the
/// playlist and its node.
#[tokio::test]
async fn m4_p7_playlist_comments_view_add_edit_own_delete_own_and_others_audited() {
    let w = world().await;
    let (hub, pl) = (&w.hub, w.playlist.as_str());
    assert!(bodies(hub, &w.viewer, pl).await.is_empty());
    assert_error(
        &hub.post(&w.viewer, &path(pl, "comments"), json!({"body": "hi"}))
            .await,
        StatusCode::FORBIDDEN,
        "permission_not_held",
    );
    let first = add(hub, &w.writer, pl, "  First!  ").await;
    let second = add(hub, &w.other_writer, pl, "Second").await;
    assert_eq!(bodies(hub, &w.viewer, pl).await, vec!["Second", "First!"]);
    let (_, page) = hub.get(&w.viewer, &path(pl, "comments")).await;
    assert_eq!(page["comments"][1]["author"], json!(w.writer_id));
    assert_eq!(page["comments"][1]["item"], json!(pl));

    let mine = path(pl, &format!("comments/{first}"));
    let theirs = path(pl, &format!("comments/{second}"));
    let r = hub
        .patch(&w.writer, &mine, json!({"body": "First, edited"}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["body"], "First, edited");
    for token in [&w.other_writer, &w.moderator, &hub.admin] {
        assert_error(
            &hub.patch(token, &mine, json!({"body": "mine now"})).await,
            StatusCode::FORBIDDEN,
            "not_own_comment",
        );
    }
    for token in [&w.writer, &w.viewer] {
        assert_error(
            &hub.delete(token, &theirs).await,
            StatusCode::FORBIDDEN,
            "permission_not_held",
        );
    }
    let r = hub.delete(&w.writer, &mine).await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let r = hub.delete(&w.moderator, &theirs).await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    assert!(bodies(hub, &w.viewer, pl).await.is_empty());
    assert_error(
        &hub.delete(&w.moderator, &theirs).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let added = audit(hub, "comment.add").await;
    assert_eq!(added.len(), 2, "{added:?}");
    let entry = added.iter().find(|e| e["target"] == json!(first)).unwrap();
    assert_eq!(entry["detail"]["item"], json!(pl));
    assert_eq!(entry["detail"]["body"], "First!");
    assert_eq!(entry["scope"], json!(w.acme));
    let edited = audit(hub, "comment.edit").await;
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0]["detail"]["body"]["to"], "First, edited");
    let deleted = audit(hub, "comment.delete").await;
    assert_eq!(deleted.len(), 2);
    let entry = deleted
        .iter()
        .find(|e| e["target"] == json!(second))
        .unwrap();
    assert_eq!(entry["actor_name"], "moderator");
    assert_eq!(entry["detail"]["author_name"], "other");
}

/// M2, P5 on a playlist: with `allow_comments` off every comment action is
/// refused, and with `allow_rating` off rating is, even for the admin who
/// holds every permission; the item page stops offering them; favorites
/// have no setting and still work. On again, the old comment is there.
#[tokio::test]
async fn m2_p5_playlist_settings_off_refuse_comments_and_rating_even_with_the_permission() {
    let w = world().await;
    let (hub, pl) = (&w.hub, w.playlist.as_str());
    let kept = add(hub, &w.writer, pl, "before the switch").await;
    patch_playlist(
        hub,
        pl,
        json!({"settings": {"allow_comments": false, "allow_rating": false}}),
    )
    .await;
    let one = path(pl, &format!("comments/{kept}"));
    let like = Some(json!({"value": "like"}));
    // A Viewer holds comment.view and rate: refused by the settings too.
    let viewer = &w.viewer;
    let refused = [
        hub.get(viewer, &path(pl, "comments")).await,
        put(hub, viewer, &path(pl, "rating"), like.clone()).await,
        hub.delete(viewer, &path(pl, "rating")).await,
    ];
    for answer in &refused {
        assert_error(
            answer,
            StatusCode::FORBIDDEN,
            "disabled_by_publish_settings",
        );
    }
    for token in [&w.writer, &w.moderator, &hub.admin] {
        let refused = [
            hub.get(token, &path(pl, "comments")).await,
            hub.post(token, &path(pl, "comments"), json!({"body": "hello"}))
                .await,
            hub.patch(token, &one, json!({"body": "edit"})).await,
            hub.delete(token, &one).await,
            put(hub, token, &path(pl, "rating"), like.clone()).await,
            hub.delete(token, &path(pl, "rating")).await,
        ];
        for answer in &refused {
            assert_error(
                answer,
                StatusCode::FORBIDDEN,
                "disabled_by_publish_settings",
            );
        }
    }
    // Custom attributes have no publish setting: a Moderator+ keeps them.
    let attributes = json!(["favorite", "update_custom_attributes"]);
    for (token, allowed) in [
        (viewer, json!(["favorite"])),
        (&w.writer, json!(["favorite"])),
        (&w.moderator, attributes.clone()),
        (&hub.admin, attributes),
    ] {
        let r = put(hub, token, &path(pl, "favorite"), None).await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
        assert_eq!(r.1["favorite"], true);
        assert_eq!(r.1["allowed"], allowed, "{}", r.1);
    }
    assert_eq!(audit(hub, "comment.").await.len(), 1, "only the first add");
    patch_playlist(
        hub,
        pl,
        json!({"settings": {"allow_comments": true, "allow_rating": true}}),
    )
    .await;
    assert_eq!(bodies(hub, &w.viewer, pl).await, vec!["before the switch"]);
    let (status, view) = hub.get(&w.viewer, &path(pl, "actions")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        view["allowed"],
        json!(["rate", "favorite", "comment.view"]),
        "a Viewer's defaults, and nothing about media bytes: {view}"
    );
}

/// M1 on a playlist: restricted to a permission group, a Viewer outside it
/// (and another tenant's admin) gets 404 on every comment, rating,
/// favorite and actions route, as for an absent playlist; the group's
/// member and a Moderator use them.
#[tokio::test]
async fn m1_viewer_outside_a_restricted_playlists_groups_gets_404() {
    let w = world().await;
    let (hub, pl) = (&w.hub, w.playlist.as_str());
    let (member_id, member) = hub.user("member", "viewer", &[&w.acme]).await;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": w.acme, "name": "insiders", "permissions": []}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let group = r.1["id"].as_str().unwrap().to_owned();
    for user in [&w.writer_id, &member_id] {
        let r = hub
            .post(
                &hub.admin,
                &format!("/api/v1/permission-groups/{group}/members/users"),
                json!({"user": user}),
            )
            .await;
        assert!(r.0.is_success(), "{}", r.1);
    }
    let said = add(hub, &w.writer, pl, "inside").await;
    let r = put(hub, &w.viewer, &path(pl, "favorite"), None).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let (_, mine) = hub.get(&w.viewer, "/api/v1/me/favorites/playlists").await;
    assert_eq!(mine[0]["id"], json!(pl), "{mine}");
    patch_playlist(hub, pl, json!({"allowed_groups": [group]})).await;
    // The favorite stays stored but is no longer listed (M1).
    let (_, mine) = hub.get(&w.viewer, "/api/v1/me/favorites/playlists").await;
    assert_eq!(mine, json!([]), "a favorite the viewer cannot view: {mine}");
    assert_eq!(
        hub.state.store.scan::<Value>(FAVORITES, "").unwrap().len(),
        1
    );

    let (_, globex_admin) = {
        let globex = hub.node(&hub.admin, &hub.root, "Globex").await;
        hub.user("gadmin", "admin", &[&globex]).await
    };
    let one = path(pl, &format!("comments/{said}"));
    for token in [&w.viewer, &w.other_writer, &globex_admin] {
        let answers = [
            hub.get(token, &path(pl, "actions")).await,
            hub.get(token, &path(pl, "comments")).await,
            hub.post(token, &path(pl, "comments"), json!({"body": "peek"}))
                .await,
            hub.patch(token, &one, json!({"body": "x"})).await,
            hub.delete(token, &one).await,
            put(
                hub,
                token,
                &path(pl, "rating"),
                Some(json!({"value": "dislike"})),
            )
            .await,
            hub.delete(token, &path(pl, "rating")).await,
            put(hub, token, &path(pl, "favorite"), None).await,
            hub.delete(token, &path(pl, "favorite")).await,
        ];
        for answer in &answers {
            assert_error(answer, StatusCode::NOT_FOUND, "not_found");
            assert!(!answer.1.to_string().contains("inside"), "{}", answer.1);
        }
    }
    assert!(
        hub.state
            .store
            .scan::<Value>(RATINGS, "")
            .unwrap()
            .is_empty()
    );
    let favorites = hub.state.store.scan::<Value>(FAVORITES, "").unwrap();
    assert_eq!(favorites.len(), 1, "only the viewer's, from before");
    for token in [&member, &w.moderator] {
        assert_eq!(bodies(hub, token, pl).await, vec!["inside"]);
        let r = put(
            hub,
            token,
            &path(pl, "rating"),
            Some(json!({"value": "like"})),
        )
        .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    }
    let (_, view) = hub.get(&member, &path(pl, "actions")).await;
    assert_eq!(view["likes"], 2, "{view}");
    // An absent playlist is the same 404.
    assert_error(
        &hub.get(&member, &path("pl-missing", "comments")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// M3 on a playlist: one rating per user (a new one replaces it, clearing
/// removes it), counts and one's own shown; a favorite once per user;
/// deleting the playlist removes its comments, ratings and favorites, and
/// leaves those of a content item alone.
#[tokio::test]
async fn m3_playlist_one_rating_per_user_favorites_and_removal_with_the_playlist() {
    let w = world().await;
    let (hub, pl) = (&w.hub, w.playlist.as_str());
    let rating = path(pl, "rating");
    let r = put(hub, &w.viewer, &rating, Some(json!({"value": "like"}))).await;
    assert_eq!(
        (r.1["likes"].clone(), r.1["my_rating"].clone()),
        (json!(1), json!("like"))
    );
    let r = put(hub, &w.viewer, &rating, Some(json!({"value": "dislike"}))).await;
    assert_eq!(
        (r.1["likes"].clone(), r.1["dislikes"].clone()),
        (json!(0), json!(1))
    );
    let r = put(hub, &w.writer, &rating, Some(json!({"value": "dislike"}))).await;
    assert_eq!(r.1["dislikes"], 2, "{}", r.1);
    let r = hub.delete(&w.viewer, &rating).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(
        (r.1["dislikes"].clone(), r.1["my_rating"].clone()),
        (json!(1), Value::Null)
    );
    let r = put(hub, &w.viewer, &rating, Some(json!({"value": "meh"}))).await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);

    for _ in 0..2 {
        let r = put(hub, &w.viewer, &path(pl, "favorite"), None).await;
        assert_eq!(r.1["favorite"], true, "{}", r.1);
    }
    let r = hub.get(&w.writer, &path(pl, "actions")).await;
    assert_eq!(r.1["favorite"], false, "another user's favorite: {}", r.1);
    assert_eq!(r.1["my_rating"], "dislike");
    let favorites: Vec<Value> = hub.state.store.scan(FAVORITES, "").unwrap();
    assert_eq!(favorites.len(), 1, "{favorites:?}");
    // Listed among the viewer's favorite playlists, not among content items.
    let (status, mine) = hub.get(&w.viewer, "/api/v1/me/favorites/playlists").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(
        (mine[0]["id"].clone(), mine[0]["name"].clone()),
        (json!(pl), json!("Lobby"))
    );
    assert_eq!(mine[0]["node"], json!(w.acme));
    let (_, items) = hub.get(&w.viewer, "/api/v1/me/favorites").await;
    assert_eq!(items, json!([]), "{items}");
    let (_, theirs) = hub.get(&w.writer, "/api/v1/me/favorites/playlists").await;
    assert_eq!(theirs, json!([]), "{theirs}");
    let r = hub.delete(&w.viewer, &path(pl, "favorite")).await;
    assert_eq!(r.1["favorite"], false, "{}", r.1);
    put(hub, &w.viewer, &path(pl, "favorite"), None).await;
    add(hub, &w.writer, pl, "goes with it").await;

    // A content item's comment and rating stay when the playlist goes.
    let (_, items) = hub.get(&hub.admin, "/api/v1/content").await;
    let item = items[0]["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(
            &w.writer,
            &format!("/api/v1/content/{item}/comments"),
            json!({"body": "stays"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let r = put(
        hub,
        &w.writer,
        &format!("/api/v1/content/{item}/rating"),
        Some(json!({"value": "like"})),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);

    let r = hub
        .delete(&hub.admin, &format!("/api/v1/playlists/{pl}"))
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let comments: Vec<Value> = hub.state.store.scan(COMMENTS, "").unwrap();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0]["body"], "stays");
    let ratings = hub.state.store.scan_keys(RATINGS, "").unwrap();
    assert_eq!(ratings, vec![format!("{item}/{}", w.writer_id)]);
    assert!(
        hub.state
            .store
            .scan::<Value>(FAVORITES, "")
            .unwrap()
            .is_empty()
    );
    assert!(
        hub.state
            .store
            .scan::<Value>(FAVORITES_BY_ITEM, "")
            .unwrap()
            .is_empty()
    );
    assert_error(
        &hub.get(&w.viewer, &path(pl, "comments")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// M3, M4 on a template by its own path: a template is a content item, so
/// its comments and rating under `/api/v1/templates/{id}/…` are those
/// under `/api/v1/content/{id}/…`; a media item is no template there
/// (404), and `allow_comments` off refuses as on content.
#[tokio::test]
async fn m4_m3_template_comments_and_rating_by_the_template_path() {
    let w = world().await;
    let hub = &w.hub;
    let (template, image) = layout_template(&w).await;
    let base = format!("/api/v1/templates/{template}");
    let r = hub
        .post(
            &w.writer,
            &format!("{base}/comments"),
            json!({"body": "nice layout"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let (_, page) = hub
        .get(&w.viewer, &format!("/api/v1/content/{template}/comments"))
        .await;
    assert_eq!(page["comments"][0]["body"], "nice layout", "{page}");
    let r = put(
        hub,
        &w.viewer,
        &format!("{base}/rating"),
        Some(json!({"value": "like"})),
    )
    .await;
    assert_eq!(r.1["likes"], 1, "{}", r.1);
    let (_, view) = hub
        .get(&w.viewer, &format!("/api/v1/content/{template}/actions"))
        .await;
    assert_eq!(view["my_rating"], "like", "{view}");
    let media = format!("/api/v1/templates/{image}");
    for answer in [
        hub.get(&w.viewer, &format!("{media}/comments")).await,
        hub.get(&w.viewer, &format!("{media}/actions")).await,
        put(hub, &w.viewer, &format!("{media}/favorite"), None).await,
    ] {
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/content/{template}"),
            json!({"settings": {"allow_comments": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_error(
        &hub.get(&hub.admin, &format!("{base}/comments")).await,
        StatusCode::FORBIDDEN,
        "disabled_by_publish_settings",
    );
}

/// The value of attribute `key` in an attributes answer.
fn value_of(list: &Value, key: &str) -> Value {
    (list.as_array().unwrap().iter())
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
        .unwrap_or_else(|| panic!("no {key} in {list}"))
}

/// Defines attribute `key` at `node` as `token`.
async fn define(
    hub: &TestHub,
    token: &str,
    (node, key): (&str, &str),
    body: Value,
) -> (StatusCode, Value) {
    let at = format!("/api/v1/nodes/{node}/attributes/{key}");
    put(hub, token, &at, Some(body)).await
}

/// M3, P7 on a playlist: the custom attributes defined at its node (and
/// above) apply to it as to media; anyone who views it reads them; setting
/// needs `update_custom_attributes` (a Viewer and a Contributor are refused
/// 403, a Moderator sets them) and the item page offers it only then;
/// every value is checked first, and a refusal changes nothing; each
/// change is audited as `playlist.attributes` with the playlist's node; a
/// redefinition the playlist's value does not fit is refused and removing
/// the definition clears it.
#[tokio::test]
async fn m3_p7_playlist_custom_attributes_are_typed_validated_and_audited() {
    let w = world().await;
    let (hub, pl) = (&w.hub, w.playlist.as_str());
    let (_, manager) = hub.user("manager", "manager", &[&w.acme]).await;
    for (key, body) in [
        (
            "season",
            json!({"label": "Season", "type": "enum", "values": ["summer", "winter"]}),
        ),
        ("featured", json!({"label": "Featured", "type": "bool"})),
        ("screens", json!({"label": "Screens", "type": "number"})),
    ] {
        let r = define(hub, &manager, (&w.acme, key), body).await;
        assert_eq!(r.0, StatusCode::CREATED, "{key}: {}", r.1);
    }
    let attributes = path(pl, "attributes");
    let (status, list) = hub.get(&w.viewer, &attributes).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|a| a["value"].is_null()),
        "{list}"
    );
    assert_eq!(list[0]["key"], "featured", "by key: {list}");

    let values = json!({"values": {"season": "winter", "featured": true, "screens": 4}});
    for token in [&w.viewer, &w.writer] {
        let r = hub.patch(token, &attributes, values.clone()).await;
        assert_error(&r, StatusCode::FORBIDDEN, "permission_not_held");
        let (_, view) = hub.get(token, &path(pl, "actions")).await;
        let allowed = view["allowed"].as_array().unwrap();
        assert!(
            !allowed.contains(&json!("update_custom_attributes")),
            "{view}"
        );
    }
    let (_, view) = hub.get(&w.moderator, &path(pl, "actions")).await;
    let allowed = view["allowed"].as_array().unwrap();
    assert!(
        allowed.contains(&json!("update_custom_attributes")),
        "{view}"
    );
    let r = hub.patch(&w.moderator, &attributes, values).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(value_of(&r.1, "season"), json!("winter"));
    let (_, list) = hub.get(&w.viewer, &attributes).await;
    assert_eq!(value_of(&list, "screens"), json!(4), "{list}");
    assert_eq!(value_of(&list, "featured"), json!(true));
    let changes = audit(hub, "playlist.attributes").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["target"], json!(pl));
    assert_eq!(changes[0]["scope"], json!(w.acme));
    assert_eq!(changes[0]["detail"]["values"]["season"], "winter");

    // A bad value is refused with its key, and the good one beside it is
    // not written either; nothing is audited.
    for (bad, code) in [
        (
            json!({"season": "spring", "featured": false}),
            "invalid_attribute_value",
        ),
        (
            json!({"screens": "4", "featured": false}),
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
    let r = hub
        .patch(&w.moderator, &attributes, json!({"values": 3}))
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    let (_, after) = hub.get(&w.viewer, &attributes).await;
    assert_eq!(after, list, "a refusal changes nothing");
    assert_eq!(audit(hub, "playlist.attributes").await.len(), 1);

    // The playlist's value counts when the definition changes: a type it
    // does not fit is refused; removing the definition removes the value.
    let body = json!({"label": "Screens", "type": "bool"});
    let r = define(hub, &manager, (&w.acme, "screens"), body).await;
    assert_error(&r, StatusCode::CONFLICT, "attribute_in_use");
    assert!(r.1.to_string().contains(pl), "{}", r.1);
    let at = format!("/api/v1/nodes/{}/attributes/season", w.acme);
    let r = hub.delete(&manager, &at).await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let stored = hub
        .state
        .store
        .scan_keys(ATTRIBUTE_VALUES, &format!("{pl}/"))
        .unwrap();
    assert_eq!(
        stored,
        vec![format!("{pl}/featured"), format!("{pl}/screens")]
    );
    // null clears a value.
    let r = hub
        .patch(
            &w.moderator,
            &attributes,
            json!({"values": {"screens": null}}),
        )
        .await;
    assert_eq!(value_of(&r.1, "screens"), Value::Null, "{}", r.1);
}

/// M1, M3 on a playlist's attributes: restricted to a permission group, a
/// Viewer outside it and another tenant's admin get 404 on reading and on
/// setting them, as for an absent playlist, and nothing changes; deleting
/// the playlist removes its values in the same transaction and leaves a
/// content item's alone.
#[tokio::test]
async fn m1_m3_playlist_attributes_hidden_outside_its_groups_and_removed_with_it() {
    let w = world().await;
    let (hub, pl) = (&w.hub, w.playlist.as_str());
    let body = json!({"label": "Notes", "type": "string"});
    let r = define(hub, &hub.admin, (&w.acme, "notes"), body).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let attributes = path(pl, "attributes");
    let r = hub
        .patch(
            &w.moderator,
            &attributes,
            json!({"values": {"notes": "lobby"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let (_, items) = hub.get(&hub.admin, "/api/v1/content").await;
    let item = items[0]["id"].as_str().unwrap().to_owned();
    let r = hub
        .patch(
            &w.moderator,
            &format!("/api/v1/content/{item}/attributes"),
            json!({"values": {"notes": "stays"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);

    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": w.acme, "name": "insiders", "permissions": []}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let group = r.1["id"].as_str().unwrap().to_owned();
    patch_playlist(hub, pl, json!({"allowed_groups": [group]})).await;
    let (_, globex_admin) = {
        let globex = hub.node(&hub.admin, &hub.root, "Globex").await;
        hub.user("gadmin", "admin", &[&globex]).await
    };
    for token in [&w.viewer, &w.writer, &globex_admin] {
        for answer in [
            hub.get(token, &attributes).await,
            hub.patch(token, &attributes, json!({"values": {"notes": "peek"}}))
                .await,
        ] {
            assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
            assert!(!answer.1.to_string().contains("lobby"), "{}", answer.1);
        }
    }
    let (_, list) = hub.get(&w.moderator, &attributes).await;
    assert_eq!(value_of(&list, "notes"), json!("lobby"), "{list}");
    assert_error(
        &hub.get(&w.moderator, &path("pl-missing", "attributes"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let r = hub
        .delete(&hub.admin, &format!("/api/v1/playlists/{pl}"))
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let stored = hub.state.store.scan_keys(ATTRIBUTE_VALUES, "").unwrap();
    assert_eq!(stored, vec![format!("{item}/notes")]);
    assert_error(
        &hub.get(&w.moderator, &attributes).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// M3 on a template: a template is a content item, so its attributes by
/// `/api/v1/templates/{id}/attributes` are those by
/// `/api/v1/content/{id}/attributes`, set through either and audited as
/// content; a media item is no template there (404).
#[tokio::test]
async fn m3_template_attributes_by_either_path_are_the_same() {
    let w = world().await;
    let hub = &w.hub;
    let (template, image) = layout_template(&w).await;
    let body = json!({"label": "Featured", "type": "bool"});
    let r = define(hub, &hub.admin, (&w.acme, "featured"), body).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let by_template = format!("/api/v1/templates/{template}/attributes");
    let r = hub
        .patch(
            &w.moderator,
            &by_template,
            json!({"values": {"featured": true}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let (_, list) = hub
        .get(&w.viewer, &format!("/api/v1/content/{template}/attributes"))
        .await;
    assert_eq!(value_of(&list, "featured"), json!(true), "{list}");
    let r = hub
        .patch(
            &w.writer,
            &by_template,
            json!({"values": {"featured": false}}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "permission_not_held");
    let changes = audit(hub, "content.attributes").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["target"], json!(template));
    let media = format!("/api/v1/templates/{image}/attributes");
    assert_error(
        &hub.get(&w.viewer, &media).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = hub
        .patch(&hub.admin, &media, json!({"values": {"featured": true}}))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}
