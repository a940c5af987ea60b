//! Content's in-use check reads the references the modules above write
//! through the item-references index (T2, A1, D5, L1), and the index
//! reads a store written before it moved here.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use signet_common::approval::{ContentHash, ItemApproval};
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};
use signet_common::license::LicenseTerms;
use signet_common::schedule::MergeMode;

use super::Referrer;
use crate::access_groups::GroupItem;
use crate::access_groups::types::{CreateGroup, ItemList};
use crate::app::Hub;
use crate::content::service::{self, ContentError};
use crate::content::{ContentItem, Items, repo};
use crate::groups::GroupRef;
use crate::identity::Actor;
use crate::publish::tests::test_hub;
use crate::schedules::service::{CreatePlaylist, CreateSchedule};
use crate::schedules::{PlannedItem, PlaylistId};
use crate::store::WriteBatch;

/// Stores an image item `id` at `node`, as an upload would.
pub(crate) async fn item(hub: &Hub, actor: &Actor, node: &NodeId, id: &str) -> ItemId {
    let hash = ContentHash::of(id.as_bytes());
    let now = hub.now();
    let item = ContentItem {
        id: ItemId::new(id),
        node: node.clone(),
        name: id.to_owned(),
        kind: ItemKind::Image,
        sha256: hash,
        size: 1,
        media_type: "image/png".into(),
        created_by: actor.user.id.clone(),
        created_at: now,
        duration_ms: None,
        width: None,
        height: None,
        approval: ItemApproval::Active {
            approved_hash: hash,
        },
        approval_hash: hash,
        revision: 1,
        source: None,
        updated_at: now,
        updated_by: actor.user.id.clone(),
        allowed_groups: std::collections::BTreeSet::new(),
        settings: crate::content::visibility::Settings::default(),
        thumbnail: false,
    };
    hub.store
        .transact(|tx| repo::put_item(tx, &item, None))
        .await
        .unwrap();
    item.id
}

/// What the delete refusal of `id` names, or `None` when it was deleted.
async fn refusal(hub: &Hub, actor: &Actor, id: &ItemId) -> Option<String> {
    match service::delete(hub, actor, id.as_str(), Items::Any).await {
        Ok(()) => None,
        Err(ContentError::Conflict { code, message }) => {
            assert_eq!(code, "item_in_use");
            Some(message)
        }
        Err(other) => panic!("not an in-use refusal: {other:?}"),
    }
}

fn planned(item: &ItemId) -> PlannedItem {
    PlannedItem {
        item: item.clone(),
        duration_ms: Some(10_000),
    }
}

#[tokio::test]
async fn t2_an_item_held_by_an_access_group_a_playlist_or_a_schedule_is_not_deleted() {
    let (_dir, hub, admin, root) = test_hub().await;
    let held = item(&hub, &admin, &root, "c-held").await;
    let group = crate::access_groups::service::create_group(
        &hub,
        &admin,
        CreateGroup {
            node: root.clone(),
            name: "Members".into(),
            license: LicenseTerms::default(),
            categories: Vec::new(),
            self_signup: false,
            signup_domains: Vec::new(),
        },
    )
    .await
    .unwrap();
    let list = |items: Vec<GroupItem>| ItemList { items };
    let one = vec![GroupItem {
        id: held.clone(),
        categories: Vec::new(),
    }];
    crate::access_groups::service::set_items(&hub, &admin, group.id.as_str(), list(one))
        .await
        .unwrap();
    let message = refusal(&hub, &admin, &held).await.unwrap();
    assert!(
        message.contains(&format!("access group {}", group.id)),
        "{message}"
    );

    crate::access_groups::service::set_items(&hub, &admin, group.id.as_str(), list(Vec::new()))
        .await
        .unwrap();
    let playlist = crate::schedules::service::create_playlist(
        &hub,
        &admin,
        CreatePlaylist {
            node: root.clone(),
            name: "Morning".into(),
            items: vec![planned(&held)],
            allowed_groups: Default::default(),
            settings: Default::default(),
        },
    )
    .await
    .unwrap();
    let message = refusal(&hub, &admin, &held).await.unwrap();
    assert!(
        message.contains(&format!("playlist {}", playlist.id)),
        "{message}"
    );
    assert!(!message.contains("access group"), "{message}");

    let fallback = item(&hub, &admin, &root, "c-fallback").await;
    let schedule = crate::schedules::service::create_schedule(
        &hub,
        &admin,
        CreateSchedule {
            target: GroupRef::Node(root.clone()),
            entries: Vec::new(),
            merge: MergeMode::default(),
            default_item: Some(planned(&fallback)),
        },
    )
    .await
    .unwrap();
    let message = refusal(&hub, &admin, &fallback).await.unwrap();
    assert!(
        message.contains(&format!("schedule {} (default item)", schedule.id)),
        "{message}"
    );

    let unused = item(&hub, &admin, &root, "c-unused").await;
    assert_eq!(refusal(&hub, &admin, &unused).await, None);
}

#[tokio::test]
async fn t2_references_in_a_store_written_before_the_index_moved_still_count() {
    let (_dir, hub, admin, root) = test_hub().await;
    let held = item(&hub, &admin, &root, "c-old").await;
    // The records as the access-group and schedule modules wrote them.
    let mut batch = WriteBatch::new();
    batch
        .put("access_group_item_index", "c-old/ag-old", &"ag-old")
        .unwrap();
    batch
        .put(
            "playlist_item_index",
            "c-old/pl-old",
            &PlaylistId::new("pl-old"),
        )
        .unwrap();
    hub.store.apply(batch).await.unwrap();
    let found: Vec<String> = hub
        .store
        .transact(|tx| repo::users_of_in(tx, &held))
        .await
        .unwrap();
    assert_eq!(found, vec!["access group ag-old", "playlist pl-old"]);
    let trees: Vec<&str> = Referrer::ALL.iter().map(|r| r.tree()).collect();
    assert_eq!(
        trees,
        vec![
            "access_group_item_index",
            "playlist_item_index",
            "schedule_item_index"
        ]
    );
}
