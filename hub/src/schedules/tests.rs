//! Service tests for the playlist and schedule rules reachable only over
//! HTTP before (D5, T2, S13): common's schedule rules on every write, one
//! schedule per group, a used playlist stays, who may write.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use signet_common::ids::{EntryId, NodeId};
use signet_common::permissions::Role;
use signet_common::schedule::{Layer, MergeMode};

use super::service::{self, CreatePlaylist, CreateSchedule, ReplaceSchedule, SchedulesError};
use super::{GroupSchedule, Playlist, PlaylistId, ScheduledPlaylist, schedules_using_playlist};
use crate::app::Hub;
use crate::groups::GroupRef;
use crate::identity::{Actor, User};
use crate::publish::tests::test_hub;

fn entry(id: &str, playlist: &PlaylistId) -> ScheduledPlaylist {
    ScheduledPlaylist {
        id: EntryId::new(id),
        playlist: playlist.clone(),
        dayparts: Vec::new(),
        weekdays: Vec::new(),
        dates: None,
        priority: 0,
        layer: Layer::Main,
    }
}

async fn playlist(hub: &Hub, actor: &Actor, node: &NodeId) -> Playlist {
    let request = CreatePlaylist {
        node: node.clone(),
        name: " Morning ".to_owned(),
        items: Vec::new(),
        allowed_groups: Vec::new(),
        settings: Default::default(),
    };
    service::create_playlist(hub, actor, request).await.unwrap()
}

async fn attach(
    hub: &Hub,
    actor: &Actor,
    node: &NodeId,
    entries: Vec<ScheduledPlaylist>,
) -> Result<GroupSchedule, SchedulesError> {
    let request = CreateSchedule {
        target: GroupRef::Node(node.clone()),
        entries,
        merge: MergeMode::default(),
        default_item: None,
    };
    service::create_schedule(hub, actor, request).await
}

fn code(result: Result<impl std::fmt::Debug, SchedulesError>) -> &'static str {
    match result {
        Err(SchedulesError::Invalid { code, .. } | SchedulesError::Conflict { code, .. }) => code,
        other => panic!("not a coded refusal: {other:?}"),
    }
}

#[tokio::test]
async fn d5_every_schedule_write_follows_commons_rules() {
    let (_dir, hub, admin, root) = test_hub().await;
    let list = playlist(&hub, &admin, &root).await;
    assert_eq!(list.name, "Morning", "the name is stored trimmed");
    let twice = vec![entry("e1", &list.id), entry("e1", &list.id)];
    assert_eq!(
        code(attach(&hub, &admin, &root, twice.clone()).await),
        "invalid_schedule"
    );
    let bad_id = vec![entry("e 1", &list.id)];
    assert_eq!(
        code(attach(&hub, &admin, &root, bad_id).await),
        "invalid_entry_id"
    );

    let schedule = attach(&hub, &admin, &root, vec![entry("e1", &list.id)])
        .await
        .unwrap();
    let replace = ReplaceSchedule {
        entries: twice,
        merge: MergeMode::default(),
        default_item: None,
    };
    let refused = service::replace_schedule(&hub, &admin, schedule.id.as_str(), replace).await;
    assert_eq!(code(refused), "invalid_schedule");
    let stored = service::schedule(&hub, &admin, schedule.id.as_str()).unwrap();
    assert_eq!(stored, schedule, "a refused replacement changes nothing");
}

#[tokio::test]
async fn d5_a_group_has_at_most_one_schedule() {
    let (_dir, hub, admin, root) = test_hub().await;
    let list = playlist(&hub, &admin, &root).await;
    attach(&hub, &admin, &root, vec![entry("e1", &list.id)])
        .await
        .unwrap();
    let second = attach(&hub, &admin, &root, vec![entry("e2", &list.id)]).await;
    assert_eq!(code(second), "schedule_exists");
    assert_eq!(service::schedules(&hub, &admin).unwrap().len(), 1);
}

#[tokio::test]
async fn d5_a_playlist_a_schedule_uses_is_not_deleted() {
    let (_dir, hub, admin, root) = test_hub().await;
    let list = playlist(&hub, &admin, &root).await;
    let schedule = attach(&hub, &admin, &root, vec![entry("e1", &list.id)])
        .await
        .unwrap();
    assert_eq!(
        schedules_using_playlist(&hub.store, &list.id).unwrap(),
        vec![schedule.id.clone()]
    );
    let refused = service::delete_playlist(&hub, &admin, list.id.as_str()).await;
    assert_eq!(code(refused), "playlist_in_use");

    service::delete_schedule(&hub, &admin, schedule.id.as_str())
        .await
        .unwrap();
    assert!(
        schedules_using_playlist(&hub.store, &list.id)
            .unwrap()
            .is_empty()
    );
    service::delete_playlist(&hub, &admin, list.id.as_str())
        .await
        .unwrap();
    assert!(matches!(
        service::playlist(&hub, &admin, list.id.as_str()).await,
        Err(SchedulesError::NotFound(_))
    ));
}

#[tokio::test]
async fn d5_t4_unknown_or_invisible_groups_and_playlists_are_not_found() {
    let (_dir, hub, admin, root) = test_hub().await;
    let list = playlist(&hub, &admin, &root).await;
    let missing = vec![entry("e1", &PlaylistId::new("pl-none"))];
    assert!(matches!(
        attach(&hub, &admin, &root, missing).await,
        Err(SchedulesError::NotFound(what)) if what == "playlist pl-none"
    ));
    let elsewhere = Actor {
        user: User {
            domain: vec![NodeId::new("n-elsewhere")],
            ..admin.user.clone()
        },
        ..admin.clone()
    };
    assert!(matches!(
        attach(&hub, &elsewhere, &root, vec![entry("e1", &list.id)]).await,
        Err(SchedulesError::NotFound(what)) if what == "group"
    ));
    assert!(
        service::playlists(&hub, &elsewhere)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn d5_s13_only_contributors_write_and_names_are_names() {
    let (_dir, hub, admin, root) = test_hub().await;
    let viewer = Actor {
        user: User {
            role: Role::Viewer,
            ..admin.user.clone()
        },
        ..admin.clone()
    };
    let request = || CreatePlaylist {
        node: root.clone(),
        name: "Lobby".to_owned(),
        items: Vec::new(),
        allowed_groups: Vec::new(),
        settings: Default::default(),
    };
    assert!(matches!(
        service::create_playlist(&hub, &viewer, request()).await,
        Err(SchedulesError::RoleTooLow(_))
    ));
    let unnamed = CreatePlaylist {
        name: "   ".to_owned(),
        ..request()
    };
    assert!(matches!(
        service::create_playlist(&hub, &admin, unnamed).await,
        Err(SchedulesError::InvalidName(_))
    ));
    assert!(service::playlists(&hub, &admin).await.unwrap().is_empty());
}
