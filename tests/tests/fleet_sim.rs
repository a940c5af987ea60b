//! The fleet simulator end to end (X1): simulated screens pair through the
//! real pairing API, connect with their own credentials, run the agent's
//! real sync core and content task, and every one makes a group change
//! durable and plays it. The figures at scale come from
//! `benches/fleet_sim.rs` (`make bench-fleet`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use signet_common::envelope::DocumentKind;
use signet_tests::Hub;
use signet_tests::sim::{Approver, Fleet, Settings, pair_fleet};

const SCREENS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_twenty_simulated_screens_pair_apply_and_play_a_group_change() {
    signet_tests::sim::raise_open_files().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = hub.node(&root, "Screens").await;
    let a = hub.upload(&root, "A", signet_tests::gif(b"x1 A")).await["id"].clone();
    let b = hub.upload(&root, "B", signet_tests::gif(b"x1 B")).await["id"].clone();
    let db = sled::Config::new()
        .path(dir.path().join("screens.db"))
        .open()
        .unwrap();
    let approver = Approver {
        base: hub.base.clone(),
        token: hub.token.clone(),
        node: site,
        client: hub.client.clone(),
    };
    let paired = pair_fleet(&approver, &db, &dir.path().join("screens"), SCREENS, 8)
        .await
        .unwrap();
    assert_eq!(paired.len(), SCREENS);
    let devices: Vec<&str> = paired.iter().map(|p| p.device.as_str()).collect();
    let license = json!({"allow_offline": true, "offline_grace_secs": 3600, "allow_export": false});
    let group = hub.access_group(&root, "Sim", license, &devices).await;
    let items = |ids: &[&serde_json::Value]| json!({"items": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
    let path = format!("/api/v1/access-groups/{group}/items");
    let (status, _) = hub.call(Method::PUT, &path, Some(items(&[&a, &b]))).await;
    assert!(status.is_success());
    let settings = Settings {
        heartbeat_secs: 60,
        events_every: Some(Duration::from_secs(5)),
        activate: true,
        start_spacing: Duration::from_millis(5),
        groups: vec![group.clone()],
    };
    let fleet = Fleet::start(paired, &settings).await.unwrap();
    let playing = fleet.activated(&group, 1, Duration::from_secs(40)).await;
    assert_eq!(playing.missing(), 0, "screens that never played the group");

    let (status, saved) = hub.call(Method::PUT, &path, Some(items(&[&a]))).await;
    assert!(status.is_success(), "{saved}");
    let version = saved["publication"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["subject"] == group.as_str())
        .and_then(|d| d["version"].as_u64())
        .unwrap();
    let g = group.clone();
    let applied = fleet
        .applied(
            DocumentKind::GroupManifest,
            |_| g.clone(),
            |_| version,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        applied.missing(),
        0,
        "screens that did not apply the change"
    );
    let playing = fleet
        .activated(&group, version, Duration::from_secs(20))
        .await;
    assert_eq!(playing.missing(), 0, "screens that did not play the change");
    assert!(fleet.failures().is_empty(), "{:?}", fleet.failures());
    // The hub sees every screen, online, from its signed state.
    let online = hub
        .fleet()
        .await
        .iter()
        .filter(|d| d["online"] == true)
        .count();
    assert_eq!(online, SCREENS);
    fleet.stop(Duration::from_secs(20)).await;
}
