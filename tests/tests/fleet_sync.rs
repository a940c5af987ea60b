//! End to end over the real binaries (issue 5): a hub with its embedded
//! broker and three paired agents. A change in the hub reaches every agent,
//! and the fleet API says when each has applied it (S4, S5, S7, L3, L4, U4).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::{Agent, Hub};

/// A small GIF-looking image (the hub detects the type from its bytes).
fn image(seed: u8) -> Vec<u8> {
    let mut bytes = b"GIF89a".to_vec();
    bytes.extend((0..512u32).map(|i| (i as u8).wrapping_mul(7) ^ seed));
    bytes
}

/// The fleet entry of `device`, if listed.
fn entry<'a>(fleet: &'a [Value], device: &str) -> Option<&'a Value> {
    fleet.iter().find(|d| d["device_id"] == device)
}

/// The version of `group`'s manifest `device` has applied, per the fleet.
fn applied(fleet: &[Value], device: &str, group: &str) -> Option<u64> {
    entry(fleet, device)?["documents"]
        .as_array()?
        .iter()
        .find(|d| d["kind"] == "group_manifest" && d["subject"] == group)?["applied_version"]
        .as_u64()
}

/// Whether every listed device is in sync and holds `group` at `version`
/// or above.
fn all_in_sync(fleet: &[Value], devices: &[String], group: &str, version: u64) -> bool {
    devices.iter().all(|device| {
        entry(fleet, device).is_some_and(|d| d["in_sync"] == true)
            && applied(fleet, device, group).is_some_and(|v| v >= version)
    })
}

/// The latest signed version of `group`'s manifest, per the publications.
async fn group_version(hub: &Hub, group: &str) -> u64 {
    let (_, list) = hub.call(Method::GET, "/api/v1/publications", None).await;
    list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|run| run["documents"].as_array().cloned().unwrap_or_default())
        .filter(|d| d["kind"] == "group_manifest" && d["subject"] == group)
        .filter_map(|d| d["version"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Issue 5, the main scenario: pair three agents, put them in an access
/// group, add content → every agent applies the new manifest and the fleet
/// API says in sync; remove one member → its assignment drops the group,
/// and it is in sync again without it (S4, S5, S7, L3, L4, U4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_s7_l3_l4_u4_three_paired_agents_follow_an_access_group() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let tenant = hub.node(&root, "Acme").await;
    let site = hub.node(&tenant, "Store 12").await;

    let mut agents = Vec::new();
    for n in 1..=3 {
        let mut agent = Agent::pair(&hub, dir.path(), &format!("screen-{n}"), &site, "").await;
        agent.run();
        agents.push(agent);
    }
    let devices: Vec<String> = agents.iter().map(|a| a.device.clone()).collect();

    // Paired and running: each reports and applies its node manifests.
    let fleet_limit = Duration::from_secs(60);
    let mut fleet = Vec::new();
    for device in &devices {
        let f = &mut fleet;
        let mut last = Vec::new();
        let started = Instant::now();
        while started.elapsed() < fleet_limit {
            last = hub.fleet().await;
            if entry(&last, device).is_some_and(|d| d["in_sync"] == true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            entry(&last, device).is_some_and(|d| d["in_sync"] == true),
            "{device} never in sync: {last:#?}"
        );
        *f = last;
    }
    assert_eq!(fleet.len(), 3, "{fleet:#?}");

    // An access group with the three screens as members.
    let group = hub
        .post(
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Menu boards",
                "license": {"allow_offline": true, "offline_grace_secs": 86_400, "allow_export": false}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for device in &devices {
        hub.post(
            &format!("/api/v1/access-groups/{group}/members"),
            json!({"member": {"type": "device", "device_id": device}}),
        )
        .await;
    }

    // Content added to the group: published at once (L3).
    let item = hub.upload(&tenant, "Lunch menu", image(1)).await;
    let (status, saved) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{group}/items"),
            Some(json!({"items": [{"id": item["id"]}]})),
        )
        .await;
    assert!(status.is_success(), "{saved}");
    assert!(saved["publication_error"].is_null(), "{saved}");
    let version = group_version(&hub, &group).await;
    assert!(version >= 1);
    let started = Instant::now();
    let fleet = loop {
        let fleet = hub.fleet().await;
        if all_in_sync(&fleet, &devices, &group, version) {
            break fleet;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "agents did not apply {group} v{version}: {fleet:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for device in &devices {
        assert_eq!(applied(&fleet, device, &group), Some(version));
        assert_eq!(entry(&fleet, device).unwrap()["online"], true);
    }

    // Remove one member: its assignment drops the group (L4), the others
    // keep it.
    let removed = &devices[2];
    let (status, answer) = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/access-groups/{group}/members/device/{removed}"),
            None,
        )
        .await;
    assert!(status.is_success(), "remove member: {status} {answer}");
    // Its desired documents no longer include the group; once it applied
    // the new assignment it is in sync without it. The others keep it.
    let started = Instant::now();
    loop {
        let fleet = hub.fleet().await;
        let gone = entry(&fleet, removed).is_some_and(|d| {
            d["in_sync"] == true
                && !d["documents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|doc| doc["subject"] == group.as_str())
        });
        let kept = devices[..2]
            .iter()
            .all(|d| applied(&fleet, d, &group) == Some(version));
        if gone && kept {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{removed} did not drop {group}: {fleet:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
