//! An access group's items change reaches a real agent as the group's one
//! new manifest (X1, L3, DESIGN §4), over the real binaries: the hub signs
//! no new assignment for it, and the agent — on the assignment it already
//! holds, whose floor is the group's older version — accepts the new
//! manifest, activates it and plays the new item (what it reports playing,
//! U4).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::Hub;
use signet_tests::rig::Rig;

/// How long a converging step may take on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// The fleet entry of `device`.
async fn view(hub: &Hub, device: &str) -> Value {
    (hub.fleet().await.into_iter())
        .find(|d| d["device_id"] == device)
        .unwrap_or(Value::Null)
}

/// The entry of `device`'s fleet view about document (`kind`, `subject`).
fn document<'a>(view: &'a Value, kind: &str, subject: &str) -> Option<&'a Value> {
    view["documents"]
        .as_array()?
        .iter()
        .find(|d| d["kind"] == kind && d["subject"] == subject)
}

/// Polls `device`'s fleet view until `done` holds; the view then.
async fn until(hub: &Hub, device: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = view(hub, device).await;
        if done(&view) {
            return view;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "timed out waiting for {what}: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// X1, L3, U4: the group plays its playlist; the operator adds a second
/// item to the playlist and to the group's items. The items change signs
/// the group's manifest alone, and the agent plays the new item on the
/// assignment it held before (same version, its floor below the new
/// manifest's version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_l3_u4_an_agent_plays_a_group_items_change_without_a_new_assignment() {
    let rig = Rig::embedded(&[]).await;
    let hub = &rig.hub;
    let root = hub.root().await;
    let tenant = hub.node(&root, "Acme").await;
    let first = rig.image(&tenant, "Breakfast", 0x11_8844).await;
    let second = rig.image(&tenant, "Lunch", 0x88_1144).await;
    let mut agent = rig.pair("lobby", &tenant, "").await;
    agent.run();
    let license =
        json!({"allow_offline": true, "offline_grace_secs": 86_400, "allow_export": false});
    let group = hub
        .access_group(&tenant, "Menu boards", license, &[&agent.device])
        .await;
    let playlist = hub
        .post(
            "/api/v1/playlists",
            json!({"node": tenant, "name": "Menus",
                "items": [{"item": first, "duration_ms": 1_000}]}),
        )
        .await;
    let schedule = hub
        .post(
            "/api/v1/schedules",
            json!({"target": {"kind": "access_group", "id": group},
                "entries": [{"id": "all-day", "playlist": playlist["id"], "priority": 0}]}),
        )
        .await;
    assert!(schedule["id"].is_string(), "{schedule}");
    hub.set_group_items(&group, &[&first]).await;
    let before = until(hub, &agent.device, "the first item playing", |v| {
        v["in_sync"] == true && v["now_playing"]["item"] == first.as_str()
    })
    .await;
    let held = document(&before, "device_assignment", &agent.device)
        .and_then(|d| d["activated_version"].as_u64())
        .unwrap_or_else(|| panic!("no assignment in use: {before:#}"));

    let (status, answer) = hub
        .call(
            Method::PATCH,
            &format!("/api/v1/playlists/{}", playlist["id"].as_str().unwrap()),
            Some(json!({"items": [{"item": first, "duration_ms": 1_000},
                {"item": second, "duration_ms": 1_000}]})),
        )
        .await;
    assert!(status.is_success(), "{status} {answer}");
    let documents = hub.set_group_items(&group, &[&first, &second]).await;
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0]["kind"], "group_manifest");
    assert_eq!(documents[0]["signed"], true);
    let version = documents[0]["version"].as_u64().unwrap();

    let after = until(hub, &agent.device, "the new item playing", |v| {
        v["now_playing"]["item"] == second.as_str()
            && document(v, "group_manifest", &group)
                .is_some_and(|d| d["activated_version"].as_u64() == Some(version))
    })
    .await;
    let assignment = document(&after, "device_assignment", &agent.device).unwrap();
    assert_eq!(
        assignment["activated_version"].as_u64(),
        Some(held),
        "{after:#}"
    );
    assert_eq!(
        assignment["desired_version"].as_u64(),
        Some(held),
        "{after:#}"
    );
    drop(agent);
}
