//! Comments on content items over HTTP (M4, P5, P7, M1, M2): each action by
//! its permission and the item's `allow_comments`, only on items the caller
//! views (404 otherwise), own versus others', newest first and paged,
//! bounded, audited, and deleted with their item.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_hub::content::comments::COMMENTS;
use support::{TestHub, assert_error, gif};

/// A tenant with a Viewer, two Contributors and a Moderator, and an image.
struct World {
    hub: TestHub,
    acme: String,
    item: String,
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
    let (_, viewer) = hub.user("viewer", "viewer", &[&acme]).await;
    let (writer_id, writer) = hub.user("writer", "contributor", &[&acme]).await;
    let (_, other_writer) = hub.user("other", "contributor", &[&acme]).await;
    let (_, moderator) = hub.user("moderator", "moderator", &[&acme]).await;
    World {
        hub,
        acme,
        item,
        viewer,
        writer_id,
        writer,
        other_writer,
        moderator,
    }
}

fn comments(item: &str) -> String {
    format!("/api/v1/content/{item}/comments")
}

fn comment(item: &str, id: &str) -> String {
    format!("/api/v1/content/{item}/comments/{id}")
}

/// Adds a comment as `token`; returns its id.
async fn add(hub: &TestHub, token: &str, item: &str, body: &str) -> String {
    let r = hub
        .post(token, &comments(item), json!({"body": body}))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_owned()
}

/// The bodies of the first page, newest first.
async fn bodies(hub: &TestHub, token: &str, item: &str) -> Vec<String> {
    let (status, page) = hub.get(token, &comments(item)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit(hub: &TestHub, action: &str) -> Vec<Value> {
    let (status, entries) = hub
        .get(&hub.admin, &format!("/api/v1/audit?action={action}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    entries.as_array().unwrap().clone()
}

#[tokio::test]
async fn m4_p7_view_add_edit_own_delete_own_and_others_by_permission() {
    let w = world().await;
    let hub = &w.hub;
    // Viewer: comment.view only (P7 defaults); cannot add.
    assert!(bodies(hub, &w.viewer, &w.item).await.is_empty());
    assert_error(
        &hub.post(&w.viewer, &comments(&w.item), json!({"body": "hi"}))
            .await,
        StatusCode::FORBIDDEN,
        "permission_not_held",
    );
    // Contributors add; everyone who views the item reads, newest first.
    let first = add(hub, &w.writer, &w.item, "  First!  ").await;
    let second = add(hub, &w.other_writer, &w.item, "Second").await;
    assert_eq!(
        bodies(hub, &w.viewer, &w.item).await,
        vec!["Second", "First!"]
    );
    let (_, page) = hub.get(&w.viewer, &comments(&w.item)).await;
    assert_eq!(page["comments"][1]["author"], json!(w.writer_id));
    assert_eq!(page["comments"][1]["author_name"], "writer");
    assert_eq!(page["comments"][1]["edited_at"], Value::Null);

    // Edit own: yes; another's: no, not even a Moderator or the admin.
    let r = hub
        .patch(
            &w.writer,
            &comment(&w.item, &first),
            json!({"body": "First, edited"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["body"], "First, edited");
    assert!(r.1["edited_at"].is_string());
    for token in [&w.other_writer, &w.moderator, &hub.admin] {
        assert_error(
            &hub.patch(
                token,
                &comment(&w.item, &first),
                json!({"body": "mine now"}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "not_own_comment",
        );
    }
    // A Viewer holds no comment.edit_own.
    assert_error(
        &hub.patch(&w.viewer, &comment(&w.item, &first), json!({"body": "x"}))
            .await,
        StatusCode::FORBIDDEN,
        "permission_not_held",
    );

    // Delete another's: Contributor no (no comment.delete_others), Viewer no.
    for token in [&w.writer, &w.viewer] {
        assert_error(
            &hub.delete(token, &comment(&w.item, &second)).await,
            StatusCode::FORBIDDEN,
            "permission_not_held",
        );
    }
    // Delete own: yes.
    let r = hub.delete(&w.writer, &comment(&w.item, &first)).await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    // A Moderator deletes others' (comment.delete_others).
    let r = hub.delete(&w.moderator, &comment(&w.item, &second)).await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    assert!(bodies(hub, &w.viewer, &w.item).await.is_empty());
    // Gone: 404.
    assert_error(
        &hub.delete(&w.moderator, &comment(&w.item, &second)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // M4: audited, with what changed (the test clock stands still, so
    // entries are found by their target, not their order).
    let about = |entries: &[Value], target: &str| {
        let found: Vec<Value> = entries
            .iter()
            .filter(|e| e["target"] == json!(target))
            .cloned()
            .collect();
        assert_eq!(found.len(), 1, "{target}: {entries:?}");
        found[0].clone()
    };
    let added = audit(hub, "comment.add").await;
    assert_eq!(added.len(), 2);
    let entry = about(&added, &first);
    assert_eq!(entry["detail"]["item"], json!(w.item));
    assert_eq!(entry["detail"]["body"], "First!");
    let edited = audit(hub, "comment.edit").await;
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0]["detail"]["body"]["from"], "First!");
    assert_eq!(edited[0]["detail"]["body"]["to"], "First, edited");
    let deleted = audit(hub, "comment.delete").await;
    assert_eq!(deleted.len(), 2);
    let entry = about(&deleted, &second);
    assert_eq!(entry["actor_name"], "moderator");
    assert_eq!(entry["detail"]["author_name"], "other");
    assert_eq!(about(&deleted, &first)["actor_name"], "writer");
}

#[tokio::test]
async fn m4_m2_p5_comments_refused_while_allow_comments_is_off_even_with_the_permission() {
    let w = world().await;
    let hub = &w.hub;
    let kept = add(hub, &w.writer, &w.item, "before the switch").await;
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/content/{}", w.item),
            json!({"settings": {"allow_comments": false}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    // Every comment action is refused for those holding its permission,
    // the admin (who holds every comment permission) included; a Viewer
    // holds only comment.view, and cannot read them either.
    assert_error(
        &hub.get(&w.viewer, &comments(&w.item)).await,
        StatusCode::FORBIDDEN,
        "disabled_by_publish_settings",
    );
    for token in [&w.writer, &w.moderator, &hub.admin] {
        let refused = [
            hub.get(token, &comments(&w.item)).await,
            hub.post(token, &comments(&w.item), json!({"body": "hello"}))
                .await,
            hub.patch(token, &comment(&w.item, &kept), json!({"body": "edit"}))
                .await,
            hub.delete(token, &comment(&w.item, &kept)).await,
        ];
        for answer in &refused {
            assert_error(
                answer,
                StatusCode::FORBIDDEN,
                "disabled_by_publish_settings",
            );
        }
    }
    assert!(
        audit(hub, "comment.").await.len() == 1,
        "only the first add"
    );
    // On again: the comment is still there.
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/content/{}", w.item),
            json!({"settings": {"allow_comments": true}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(
        bodies(hub, &w.viewer, &w.item).await,
        vec!["before the switch"]
    );
}

#[tokio::test]
async fn m4_m1_viewer_outside_allowed_groups_gets_404_for_comments() {
    let w = world().await;
    let hub = &w.hub;
    let r = hub
        .post(
            &hub.admin,
            "/api/v1/permission-groups",
            json!({"node": w.acme, "name": "insiders", "permissions": []}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let group = r.1["id"].as_str().unwrap().to_owned();
    let r = hub
        .post(
            &hub.admin,
            &format!("/api/v1/permission-groups/{group}/members/users"),
            json!({"user": w.writer_id}),
        )
        .await;
    assert!(r.0.is_success(), "{}", r.1);
    let said = add(hub, &w.writer, &w.item, "inside").await;
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/content/{}", w.item),
            json!({"allowed_groups": [group]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);

    // Outside the group: every comment route is 404, as for another
    // tenant; the member still reads and writes.
    let (_, globex_admin) = {
        let globex = hub.node(&hub.admin, &hub.root, "Globex").await;
        hub.user("gadmin", "admin", &[&globex]).await
    };
    for token in [&w.viewer, &w.other_writer, &globex_admin] {
        let answers = [
            hub.get(token, &comments(&w.item)).await,
            hub.post(token, &comments(&w.item), json!({"body": "peek"}))
                .await,
            hub.patch(token, &comment(&w.item, &said), json!({"body": "x"}))
                .await,
            hub.delete(token, &comment(&w.item, &said)).await,
        ];
        for answer in &answers {
            assert_error(answer, StatusCode::NOT_FOUND, "not_found");
        }
    }
    assert_eq!(bodies(hub, &w.writer, &w.item).await, vec!["inside"]);
    // A Moderator views every item in their domain (M1).
    assert_eq!(bodies(hub, &w.moderator, &w.item).await, vec!["inside"]);
}

#[tokio::test]
async fn m4_bad_input_is_refused_and_changes_nothing_paging_newest_first() {
    let w = world().await;
    let hub = &w.hub;
    let long = "x".repeat(2001);
    for body in [
        json!({"body": ""}),
        json!({"body": "   "}),
        json!({"body": long}),
        json!({"body": "bell\u{7}"}),
    ] {
        assert_error(
            &hub.post(&w.writer, &comments(&w.item), body).await,
            StatusCode::BAD_REQUEST,
            "invalid_comment",
        );
    }
    for body in [
        json!({}),
        json!({"body": 3}),
        json!({"body": "x", "extra": 1}),
    ] {
        let r = hub.post(&w.writer, &comments(&w.item), body.clone()).await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "{body}: {}", r.1);
    }
    let max = "é".repeat(2000);
    add(hub, &w.writer, &w.item, &max).await;
    assert_eq!(
        hub.state.store.scan::<Value>(COMMENTS, "").unwrap().len(),
        1
    );
    assert_error(
        &hub.get(&w.writer, &comments("c-missing")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.delete(&w.writer, &comment(&w.item, "cm-missing")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Paging: newest first, `next` leads to older ones, none repeated.
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(add(hub, &w.writer, &w.item, &format!("n{n}")).await);
    }
    let (_, page) = hub
        .get(&w.viewer, &format!("{}?limit=2", comments(&w.item)))
        .await;
    let names: Vec<&str> = page["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["n4", "n3"]);
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, page) = hub
        .get(
            &w.viewer,
            &format!("{}?limit=4&before={next}", comments(&w.item)),
        )
        .await;
    assert_eq!(page["comments"].as_array().unwrap().len(), 4);
    assert_eq!(page["comments"][2]["body"], "n0");
    assert_eq!(page["next"], Value::Null);
    for query in ["limit=0", "limit=101", "before=", "limit=x"] {
        let r = hub
            .get(&w.viewer, &format!("{}?{query}", comments(&w.item)))
            .await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "{query}: {}", r.1);
    }
}

#[tokio::test]
async fn m4_deleting_an_item_deletes_its_comments() {
    let w = world().await;
    let hub = &w.hub;
    add(hub, &w.writer, &w.item, "one").await;
    add(hub, &w.other_writer, &w.item, "two").await;
    let r = hub.upload(&hub.admin, &w.acme, "other", gif("other")).await;
    let other = r.1["id"].as_str().unwrap().to_owned();
    add(hub, &w.writer, &other, "stays").await;
    let r = hub
        .delete(&w.writer, &format!("/api/v1/content/{}", w.item))
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let left: Vec<Value> = hub.state.store.scan(COMMENTS, "").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["body"], "stays");
}
