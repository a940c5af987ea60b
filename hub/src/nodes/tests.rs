//! The node administration rules, without HTTP (T1–T4).

use signet_common::permissions::Role;

use super::*;
use crate::identity::testing::fixture;
use crate::store::WriteBatch;
use crate::tenancy::NODE_DEVICES;

fn request(parent: &NodeId, name: &str) -> CreateNode {
    CreateNode {
        parent: parent.clone(),
        name: name.into(),
        restricted: false,
        content_manager_email: None,
        strict_feeds: false,
        time_zone: None,
        country: None,
        region: None,
    }
}

fn code(e: &NodeError) -> Option<&'static str> {
    match e {
        NodeError::Invalid { code, .. } | NodeError::Conflict { code, .. } => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn t1_a_child_is_refused_under_a_node_that_holds_devices() {
    let f = fixture().await;
    let lobby = create_node(&f.hub, &f.admin, request(&f.root, "  Lobby "))
        .await
        .unwrap();
    assert_eq!(lobby.name, "Lobby");
    assert!(lobby.leaf);
    let mut batch = WriteBatch::new();
    batch
        .put(
            NODE_DEVICES,
            &format!("{}/d-1", lobby.id),
            &serde_json::json!({}),
        )
        .unwrap();
    f.hub.store.apply(batch).await.unwrap();
    let refused = create_node(&f.hub, &f.admin, request(&lobby.id, "Under"))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some("node_has_devices"));
    let refused = delete_node(&f.hub, &f.admin, lobby.id.as_str())
        .await
        .unwrap_err();
    assert_eq!(code(&refused), Some("node_not_empty"));
}

#[tokio::test]
async fn t1_only_an_empty_leaf_is_deleted_and_the_root_never() {
    let f = fixture().await;
    let a = f.node("n-a", &f.root).await;
    let b = f.node("n-b", &a).await;
    let refused = delete_node(&f.hub, &f.admin, a.as_str()).await.unwrap_err();
    assert_eq!(code(&refused), Some("node_not_empty"));
    assert!(matches!(
        delete_node(&f.hub, &f.admin, f.root.as_str()).await,
        Err(NodeError::Forbidden(_))
    ));
    f.user("bob", Role::Viewer, &[&b]).await;
    let refused = delete_node(&f.hub, &f.admin, b.as_str()).await.unwrap_err();
    assert_eq!(code(&refused), Some("node_in_use"));
    let c = f.node("n-c", &a).await;
    delete_node(&f.hub, &f.admin, c.as_str()).await.unwrap();
    assert!(matches!(
        get_node(&f.hub, &f.admin, c.as_str()),
        Err(NodeError::NotFound)
    ));
}

#[tokio::test]
async fn t4_nodes_outside_the_domain_are_not_found_and_a_domain_root_is_deleted_only_from_above() {
    let f = fixture().await;
    let a = f.node("n-a", &f.root).await;
    let b = f.node("n-b", &f.root).await;
    let manager = f.user("mia", Role::Manager, &[&a]).await;
    let seen: Vec<NodeId> = list_nodes(&f.hub, &manager)
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(seen, vec![a.clone()]);
    assert!(matches!(
        get_node(&f.hub, &manager, b.as_str()),
        Err(NodeError::NotFound)
    ));
    assert!(matches!(
        create_node(&f.hub, &manager, request(&b, "x")).await,
        Err(NodeError::NotFound)
    ));
    assert!(matches!(
        update_node(&f.hub, &manager, b.as_str(), UpdateNode::default()).await,
        Err(NodeError::NotFound)
    ));
    assert!(matches!(
        delete_node(&f.hub, &manager, a.as_str()).await,
        Err(NodeError::Forbidden(_))
    ));
    let viewer = f.user("vic", Role::Viewer, &[&a]).await;
    assert!(matches!(
        create_node(&f.hub, &viewer, request(&a, "x")).await,
        Err(NodeError::RoleTooLow(_))
    ));
}

#[tokio::test]
async fn t2_locale_fields_are_parsed_set_and_cleared() {
    let f = fixture().await;
    let a = f.node("n-a", &f.root).await;
    let change = UpdateNode {
        time_zone: Some("Europe/Berlin".into()),
        country: Some("de".into()),
        region: Some(" Bavaria ".into()),
        ..UpdateNode::default()
    };
    let node = update_node(&f.hub, &f.admin, a.as_str(), change)
        .await
        .unwrap();
    assert_eq!(node.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(node.country.as_deref(), Some("DE"));
    assert_eq!(node.region.as_deref(), Some("Bavaria"));
    let clear = UpdateNode {
        country: Some(String::new()),
        ..UpdateNode::default()
    };
    let node = update_node(&f.hub, &f.admin, a.as_str(), clear)
        .await
        .unwrap();
    assert_eq!(node.country, None);
    assert_eq!(node.time_zone.as_deref(), Some("Europe/Berlin"));
    for (change, expected) in [
        (
            UpdateNode {
                time_zone: Some("Mars/Olympus".into()),
                ..UpdateNode::default()
            },
            "invalid_time_zone",
        ),
        (
            UpdateNode {
                country: Some("DEU".into()),
                ..UpdateNode::default()
            },
            "invalid_country",
        ),
        (
            UpdateNode {
                content_manager_email: Some("nope".into()),
                ..UpdateNode::default()
            },
            "invalid_email",
        ),
    ] {
        let refused = update_node(&f.hub, &f.admin, a.as_str(), change)
            .await
            .unwrap_err();
        assert_eq!(code(&refused), Some(expected));
    }
    assert!(matches!(
        update_node(
            &f.hub,
            &f.admin,
            a.as_str(),
            UpdateNode {
                name: Some(" ".into()),
                ..UpdateNode::default()
            }
        )
        .await,
        Err(NodeError::InvalidName(_))
    ));
}

/// What `delete_node` of `id` answers: its refusal code and message.
async fn delete_refusal(f: &crate::identity::testing::Fixture, id: &NodeId) -> (String, String) {
    match delete_node(&f.hub, &f.admin, id.as_str()).await {
        Err(NodeError::Conflict { code, message }) => (code.to_owned(), message),
        other => panic!("not a conflict: {other:?}"),
    }
}

#[tokio::test]
async fn t2_a_node_holding_content_groups_or_schedules_is_not_deleted() {
    let f = fixture().await;
    let shop = f.node("n-shop", &f.root).await;
    // Content: each domain answers for its own records, read in the delete's transaction.
    let item = crate::content::refs::tests::item(&f.hub, &f.admin, &shop, "c-menu").await;
    let (code, message) = delete_refusal(&f, &shop).await;
    assert_eq!(code, "node_in_use");
    assert!(message.contains("1 content items"), "{message}");
    crate::content::service::delete(&f.hub, &f.admin, item.as_str(), crate::content::Items::Any)
        .await
        .unwrap();

    // An access group.
    let request = crate::access_groups::types::CreateGroup {
        node: shop.clone(),
        name: "Members".into(),
        license: signet_common::license::LicenseTerms::default(),
        categories: Vec::new(),
        self_signup: false,
        signup_domains: Vec::new(),
    };
    let group = crate::access_groups::service::create_group(&f.hub, &f.admin, request)
        .await
        .unwrap();
    let (code, message) = delete_refusal(&f, &shop).await;
    assert_eq!(code, "node_in_use");
    assert!(message.contains("access groups"), "{message}");
    let schedule = crate::schedules::delete_group_schedule_in;
    crate::access_groups::service::delete_group(&f.hub, &f.admin, group.id.as_str(), schedule)
        .await
        .unwrap();

    // A playlist.
    let request = crate::schedules::CreatePlaylist {
        node: shop.clone(),
        name: "Morning".into(),
        items: Vec::new(),
        allowed_groups: Default::default(),
        settings: Default::default(),
    };
    let playlist = crate::schedules::service::create_playlist(&f.hub, &f.admin, request)
        .await
        .unwrap();
    let (code, message) = delete_refusal(&f, &shop).await;
    assert_eq!(code, "node_in_use");
    assert!(message.contains("playlists"), "{message}");
    crate::schedules::service::delete_playlist(&f.hub, &f.admin, playlist.id.as_str())
        .await
        .unwrap();

    delete_node(&f.hub, &f.admin, shop.as_str()).await.unwrap();
}
