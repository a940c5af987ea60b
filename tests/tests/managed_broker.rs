//! The hub-managed broker end to end (S5, S10, O2; issue 15): the real
//! `signet-hub serve` with its default broker (a mosquitto it runs), three
//! real agents. The embedded rumqttd this replaced dropped every agent
//! several times per publish ("Unsolicited/out of order ack"); the managed
//! broker's own log, which the hub forwards, counts each agent's connects.
//! And a SIGKILLed hub takes its broker with it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use signet_tests::{Agent, Hub};

/// How long agents may take to pair, sync and settle.
const CONVERGE: Duration = Duration::from_secs(90);

/// How many times the managed broker logged a connect of `device`.
fn connects(hub: &Hub, device: &str) -> usize {
    let needle = format!(" as {device} (");
    hub.process
        .output()
        .iter()
        .filter(|line| line.contains("New client connected") && line.contains(&needle))
        .count()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

async fn all_in_sync(hub: &Hub, devices: &[String]) {
    let started = Instant::now();
    loop {
        let fleet = hub.fleet().await;
        let synced = devices.iter().all(|device| {
            fleet.iter().any(|e| {
                e["device_id"] == device.as_str() && e["in_sync"] == true && e["online"] == true
            })
        });
        if synced {
            return;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "agents not in sync: {fleet:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn three_agents(hub: &Hub, dir: &Path) -> (Vec<Agent>, Vec<String>) {
    let root = hub.root().await;
    let site = hub.node(&root, "Store").await;
    let mut agents = Vec::new();
    for n in 1..=3 {
        let mut agent = Agent::pair(hub, dir, &format!("screen-{n}"), &site, "").await;
        agent.run();
        agents.push(agent);
    }
    let devices: Vec<String> = agents.iter().map(|a| a.device.clone()).collect();
    all_in_sync(hub, &devices).await;
    (agents, devices)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_s10_o2_twenty_publishes_reconnect_no_agent_and_the_broker_dies_with_its_hub() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Hub::start(dir.path(), &[("SIGNET_LOG", "info")]).await;
    let (_agents, devices) = three_agents(&hub, dir.path()).await;
    // Let the pairing-time reconnects (if any) settle before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<usize> = devices.iter().map(|d| connects(&hub, d)).collect();
    assert!(
        before.iter().all(|n| *n >= 1),
        "the broker's log names each agent's connect: {before:?}"
    );
    let root = hub.root().await;
    for _ in 0..20 {
        let (status, body) = hub
            .call(
                Method::POST,
                "/api/v1/publish",
                Some(json!({"scope": {"kind": "node", "id": root}})),
            )
            .await;
        assert!(status.is_success(), "{body}");
    }
    all_in_sync(&hub, &devices).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<usize> = devices.iter().map(|d| connects(&hub, d)).collect();
    eprintln!("agent connects seen by the broker: before {before:?}, after 20 publishes {after:?}");
    assert_eq!(after, before, "agents reconnected during 20 publishes");

    // SIGKILL the hub: its broker must not survive it.
    let pid_file = hub.data.join("broker").join("mosquitto.pid");
    let broker: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(broker));
    hub.process.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(broker) {
        assert!(
            Instant::now() < deadline,
            "the broker {broker} outlived its SIGKILLed hub"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
