//! End to end over the real binaries (issue 6): content uploaded to the hub
//! reaches a paired agent over the hub's device content route, plays from
//! the agent's cache, and every play arrives in the hub's usage report
//! exactly once — also for 10 000 events queued offline and an agent
//! SIGKILLed in the middle of uploading them (D2, D3, D4, U1, U2, S9).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use signet_agent::events::{EventLog, new_event_id};
use signet_agent::state::Store;
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::{Outcome, PlayEvent};
use signet_tests::{Agent, Hub};

const CONVERGE: Duration = Duration::from_secs(90);

/// U1, U2, D2, D3, D4: content uploaded and scheduled at a site is fetched
/// by the agent from the hub, played from its cache, and reported; the
/// hub's report has the plays with device, item, duration and location.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u1_u2_d2_scheduled_content_is_fetched_from_the_hub_played_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = hub.node(&root, "Store 7").await;
    let menu = signet_tests::solid_png(dir.path(), "menu.png", 0x33_6699, 64, 36);
    let item = hub.upload(&site, "Lunch menu", menu.clone()).await;
    let item_id = item["id"].as_str().unwrap().to_owned();
    hub.schedule_all_day(&site, &item_id, 1_000).await;
    let mut agent = Agent::pair(&hub, dir.path(), "screen", &site, "event_upload_secs = 1\n").await;
    agent.run();
    hub.post(
        "/api/v1/publish",
        json!({"scope": {"kind": "node", "id": site}}),
    )
    .await;

    let started = Instant::now();
    let rows = loop {
        let rows = hub.usage(&agent.device).await;
        let played = rows
            .iter()
            .filter(|r| r["item"] == item_id.as_str() && r["outcome"] == "played")
            .count();
        if played >= 3 {
            break rows;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "no plays reported: {rows:#?}\nagent:\n{}",
            agent.process.as_ref().unwrap().output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // One event per pass of the one-second loop: the first may be partial
    // (the agent joins the loop where the clock says), later ones whole.
    let plays: Vec<&Value> = rows
        .iter()
        .filter(|r| r["item"] == item_id.as_str() && r["outcome"] == "played")
        .collect();
    for play in &plays {
        assert_eq!(play["device"], agent.device.as_str());
        assert_eq!(play["node"], site.as_str());
        assert!(play["duration_ms"].as_u64().unwrap() <= 1_300, "{play}");
    }
    assert!(
        plays
            .iter()
            .any(|p| (800..=1_300).contains(&p["duration_ms"].as_u64().unwrap())),
        "a whole pass: {plays:#?}"
    );
    let blob = agent
        .data
        .join("cache")
        .join("blobs")
        .join(item["sha256"].as_str().unwrap());
    assert_eq!(std::fs::read(blob).unwrap(), menu, "the cached bytes");
    let ids: BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "each event once");
    agent.kill();
}

/// U2, S9: 10 000 events queued while offline are uploaded after the agent
/// starts, exactly once, although it is SIGKILLed in the middle of the
/// upload and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u2_s9_ten_thousand_offline_events_arrive_exactly_once_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = hub.node(&root, "Depot").await;
    let mut agent = Agent::pair(&hub, dir.path(), "kiosk", &site, "event_upload_secs = 1\n").await;

    // Queued offline: the agent's own durable queue, filled while it is down.
    let start = Utc::now() - TimeDelta::hours(2);
    let mut queued = BTreeSet::new();
    {
        let store = Store::open(&agent.data).unwrap();
        let log = EventLog::open(&store).unwrap();
        for chunk in 0..20 {
            let events: Vec<PlayEvent> = (0..500)
                .map(|n| {
                    let id = new_event_id();
                    queued.insert(id.clone());
                    PlayEvent {
                        id,
                        device_id: DeviceId::from(agent.device.as_str()),
                        item: ItemId::from("c-offline"),
                        access_group: None,
                        license_version: None,
                        start: start + TimeDelta::milliseconds(chunk * 500 + n),
                        duration_ms: 10_000,
                        outcome: Outcome::Played,
                        skip_reason: None,
                        country: None,
                        region: None,
                        os: "test".into(),
                        agent_version: "0.1.0".into(),
                    }
                })
                .collect();
            log.record(&events).unwrap();
        }
        assert_eq!(log.len(), 10_000);
    }

    agent.run();
    let started = Instant::now();
    loop {
        let count = hub.usage(&agent.device).await.len();
        if count > 0 {
            assert!(count < 10_000, "the upload finished before the kill");
            break;
        }
        assert!(started.elapsed() < CONVERGE, "no upload began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill();
    agent.run();
    let rows = loop {
        let rows = hub.usage(&agent.device).await;
        if rows.len() >= 10_000 {
            break rows;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "{} of 10 000 arrived",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rows.len(), 10_000, "each event stored exactly once");
    assert_eq!(ids, queued, "exactly the queued events");
    agent.kill();
    let store = Store::open(&agent.data).unwrap();
    assert!(
        EventLog::open(&store).unwrap().is_empty(),
        "the queue is empty"
    );
}
