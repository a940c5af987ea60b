//! End to end over the real binaries (issue 14, defect 7): a frozen agent
//! sends no last will, so only its missing heartbeats can tell. The hub
//! derives online from the last heartbeat when it is read (U4): an agent
//! SIGSTOPped by its pid turns offline within `heartbeat_timeout_secs` + 5 s,
//! raises the same offline alert as a last will, and is online again (the
//! alert cleared) once SIGCONT lets it heartbeat again.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::Value;
use signet_tests::{Agent, Hub};

/// The agent's heartbeat in these tests, in seconds.
const HEARTBEAT_SECS: u64 = 2;
/// The hub's heartbeat timeout in these tests (3 × the heartbeat).
const TIMEOUT_SECS: u64 = 6;
/// How long pairing and the first report may take on a shared machine.
const START: Duration = Duration::from_secs(90);

/// The fleet entry of `device`.
async fn view(hub: &Hub, device: &str) -> Value {
    let (status, view) = hub
        .call(Method::GET, &format!("/api/v1/fleet/{device}"), None)
        .await;
    assert!(status.is_success(), "{status} {view}");
    view
}

/// Polls the fleet entry of `device` every 100 ms until `done` holds, for
/// at most `limit`; returns the entry then.
async fn view_until(
    hub: &Hub,
    device: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let entry = view(hub, device).await;
        if done(&entry) {
            return entry;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}: {entry:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The alerts about `device` of `kind`, oldest first.
async fn alerts(hub: &Hub, device: &str, kind: &str) -> Vec<Value> {
    let (status, list) = hub
        .call(
            Method::GET,
            &format!("/api/v1/fleet/alerts?device={device}&kind={kind}"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {list}");
    list.as_array().cloned().unwrap_or_default()
}

fn time(value: &Value) -> DateTime<Utc> {
    serde_json::from_value(value.clone()).unwrap()
}

/// U4 (issue 14, defect 7): an agent heartbeating every 2 s stays online
/// past the hub's 6 s heartbeat timeout; SIGSTOPped by its pid, it is
/// offline within the timeout + 5 s, since its last heartbeat plus the
/// timeout, with nothing shown playing and an offline alert raised;
/// SIGCONTed, it is online again and the alert is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u4_a_sigstopped_agent_goes_offline_within_the_heartbeat_timeout_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = TIMEOUT_SECS.to_string();
    let hub = Hub::start(
        dir.path(),
        &[
            ("SIGNET_HUB_HEARTBEAT_TIMEOUT_SECS", &timeout),
            ("SIGNET_HUB_ALERT_OFFLINE_SECS", "1"),
            ("SIGNET_HUB_ALERT_POLL_SECS", "1"),
        ],
    )
    .await;
    let root = hub.root().await;
    let site = hub.node(&root, "Lobby").await;
    let mut agent = Agent::pair(
        &hub,
        dir.path(),
        "lobby",
        &site,
        &format!("heartbeat_secs = {HEARTBEAT_SECS}\n"),
    )
    .await;
    agent.run();
    let device = agent.device.clone();
    view_until(&hub, &device, "the agent online", START, |v| {
        v["online"] == true
    })
    .await;

    // Heartbeats keep it online well past the timeout.
    let watched = Instant::now();
    let mut beats = std::collections::BTreeSet::new();
    while watched.elapsed() < Duration::from_secs(2 * TIMEOUT_SECS) {
        let entry = view(&hub, &device).await;
        assert_eq!(
            entry["online"], true,
            "a heartbeating agent went offline: {entry:#}"
        );
        beats.insert(entry["last_heartbeat"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(beats.len() >= 3, "heartbeats seen: {beats:?}");

    // Frozen: no more heartbeats, and no last will either.
    let process = agent.process.as_ref().unwrap();
    process.signal("STOP");
    let stopped = Instant::now();
    let limit = Duration::from_secs(TIMEOUT_SECS + 5);
    let offline = view_until(&hub, &device, "the frozen agent offline", limit, |v| {
        v["online"] == false
    })
    .await;
    let took = stopped.elapsed();
    assert!(took <= limit, "offline after {took:?}");
    eprintln!("SIGSTOPped agent shown offline after {took:?} (heartbeat timeout {TIMEOUT_SECS} s)");
    assert_eq!(offline["connection"], "offline", "{offline:#}");
    assert!(offline["now_playing"].is_null(), "{offline:#}");
    let since = time(&offline["since"]);
    let last = time(&offline["last_heartbeat"]);
    assert_eq!(
        since - last,
        chrono::TimeDelta::seconds(i64::try_from(TIMEOUT_SECS).unwrap()),
        "{offline:#}"
    );
    // /metrics counts it the same way.
    let text = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l == "signet_devices_online 0"),
        "{text}"
    );

    // The same offline alert a last will raises, since the timeout.
    let started = Instant::now();
    let alert = loop {
        if let Some(alert) = alerts(&hub, &device, "offline")
            .await
            .into_iter()
            .find(|a| a["cleared_at"].is_null())
        {
            break alert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no offline alert raised"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(time(&alert["since"]), since, "{alert:#}");

    // Thawed: it heartbeats again, is online, and the alert is cleared.
    process.signal("CONT");
    let back = view_until(&hub, &device, "the thawed agent online", START, |v| {
        v["online"] == true
    })
    .await;
    assert!(time(&back["last_heartbeat"]) > last, "{back:#}");
    let started = Instant::now();
    loop {
        let all = alerts(&hub, &device, "offline").await;
        if all.iter().all(|a| !a["cleared_at"].is_null()) {
            assert_eq!(all.len(), 1, "{all:#?}");
            assert_eq!(all[0]["cleared_because"], "the device is online again");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the offline alert was not cleared: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
