//! End to end over the real binaries (issue 5): a hub and three paired
//! agents, first with the hub's embedded broker, then with an external
//! mosquitto that administers per-device access (dynamic security) and is
//! killed in the middle of changes. A change in the hub reaches every
//! agent, and the fleet API says when each has activated it (S4, S5, S7, L3,
//! L4, U4, O3).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::rig::Rig;
use signet_tests::{Agent, Hub, Mosquitto};

/// How long any convergence may take before the test fails (generous: the
/// machine is shared; the latency itself is measured by the bench).
const CONVERGE: Duration = Duration::from_secs(90);

/// A small GIF-looking image (the hub detects the type from its bytes).
fn image(seed: u8) -> Vec<u8> {
    let pattern: Vec<u8> = (0..512u32)
        .map(|i| (i as u8).wrapping_mul(7) ^ seed)
        .collect();
    signet_tests::gif(&pattern)
}

/// The fleet entry of `device`, if listed.
fn entry<'a>(fleet: &'a [Value], device: &str) -> Option<&'a Value> {
    fleet.iter().find(|d| d["device_id"] == device)
}

/// The version of `group`'s manifest `device` has activated (in use), per
/// the fleet.
fn activated(fleet: &[Value], device: &str, group: &str) -> Option<u64> {
    entry(fleet, device)?["documents"]
        .as_array()?
        .iter()
        .find(|d| d["kind"] == "group_manifest" && d["subject"] == group)?["activated_version"]
        .as_u64()
}

/// Polls the fleet until `done` holds; returns the fleet then.
async fn fleet_until(hub: &Hub, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let fleet = hub.fleet().await;
        if done(&fleet) {
            return fleet;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "timed out waiting for {what}: {fleet:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every device in sync, holding `group` at `version` or above.
fn in_sync_with(fleet: &[Value], devices: &[String], group: &str, version: u64) -> bool {
    devices.iter().all(|device| {
        entry(fleet, device).is_some_and(|d| d["in_sync"] == true)
            && activated(fleet, device, group).is_some_and(|v| v >= version)
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

/// A tenant with a leaf site, three agents paired into it and running, all
/// reported in sync; returns (tenant, agents, device ids).
async fn three_paired_agents(rig: &Rig) -> (String, Vec<Agent>, Vec<String>) {
    let hub = &rig.hub;
    let root = hub.root().await;
    let tenant = hub.node(&root, "Acme").await;
    let site = hub.node(&tenant, "Store 12").await;
    let mut agents = Vec::new();
    for n in 1..=3 {
        let mut agent = rig.pair(&format!("screen-{n}"), &site, "").await;
        agent.run();
        agents.push(agent);
    }
    let devices: Vec<String> = agents.iter().map(|a| a.device.clone()).collect();
    let fleet = fleet_until(hub, "three paired agents in sync", |fleet| {
        devices
            .iter()
            .all(|d| entry(fleet, d).is_some_and(|e| e["in_sync"] == true))
    })
    .await;
    assert_eq!(fleet.len(), 3, "{fleet:#?}");
    (tenant, agents, devices)
}

/// An access group at `tenant` with `devices` as members; its id.
async fn access_group(hub: &Hub, tenant: &str, devices: &[String]) -> String {
    let license =
        json!({"allow_offline": true, "offline_grace_secs": 86_400, "allow_export": false});
    hub.access_group(tenant, "Menu boards", license, devices)
        .await
}

/// Sets `group`'s items (published at once, L3); returns the group's new
/// manifest version.
async fn set_items(hub: &Hub, group: &str, items: &[&Value]) -> u64 {
    let ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids.len(), items.len(), "items without an id");
    hub.set_group_items(group, &ids).await;
    group_version(hub, group).await
}

/// Three paired agents ([`three_paired_agents`]) in an access group at
/// their tenant, whose first item is an image uploaded as `name`.
struct Menus {
    tenant: String,
    agents: Vec<Agent>,
    devices: Vec<String>,
    group: String,
    first: Value,
    /// The group's manifest version every agent is on.
    version: u64,
}

/// [`Menus`], once every agent is on the group's first manifest.
async fn on_the_first_manifest(rig: &Rig, name: &str) -> Menus {
    let (tenant, agents, devices) = three_paired_agents(rig).await;
    let group = access_group(&rig.hub, &tenant, &devices).await;
    let first = rig.hub.upload(&tenant, name, image(1)).await;
    let version = set_items(&rig.hub, &group, &[&first]).await;
    fleet_until(&rig.hub, "every agent on the first manifest", |fleet| {
        in_sync_with(fleet, &devices, &group, version)
    })
    .await;
    Menus {
        tenant,
        agents,
        devices,
        group,
        first,
        version,
    }
}

/// Removes `removed` from `group`: its assignment drops the group and it is
/// in sync without it, while `kept` keep the group at `version` (L4).
async fn remove_member(hub: &Hub, group: &str, removed: &str, kept: &[String], version: u64) {
    let (status, answer) = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/access-groups/{group}/members/device/{removed}"),
            None,
        )
        .await;
    assert!(status.is_success(), "remove member: {status} {answer}");
    fleet_until(hub, "the removed member to drop the group", |fleet| {
        let gone = entry(fleet, removed).is_some_and(|d| {
            d["in_sync"] == true
                && !d["documents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|doc| doc["subject"] == group)
        });
        gone && kept
            .iter()
            .all(|d| activated(fleet, d, group) == Some(version))
    })
    .await;
}

/// Issue 5, the main scenario with the embedded broker: pair three agents,
/// put them in an access group, add content → every agent applies the new
/// manifest and the fleet API says in sync; remove one member → its
/// assignment drops the group (S4, S5, S7, L3, L4, U4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_s7_l3_l4_u4_three_paired_agents_follow_an_access_group() {
    let rig = Rig::embedded(&[]).await;
    let (tenant, _agents, devices) = three_paired_agents(&rig).await;
    let group = access_group(&rig.hub, &tenant, &devices).await;

    let item = rig.hub.upload(&tenant, "Lunch menu", image(1)).await;
    let version = set_items(&rig.hub, &group, &[&item]).await;
    // Online too: on a loaded machine an agent's connection can be replaced
    // (its last will, then its new state) while the manifest arrives.
    let fleet = fleet_until(
        &rig.hub,
        "every agent online on the new manifest",
        |fleet| {
            in_sync_with(fleet, &devices, &group, version)
                && devices
                    .iter()
                    .all(|d| entry(fleet, d).is_some_and(|e| e["online"] == true))
        },
    )
    .await;
    for device in &devices {
        assert_eq!(activated(&fleet, device, &group), Some(version));
        let entry = entry(&fleet, device).unwrap();
        assert_eq!(entry["online"], true);
        // U4: each agent reports its data dir's free disk, and a plausible
        // temperature where the machine has a thermal zone (none here is null).
        assert!(
            entry["disk_free_bytes"].as_u64().is_some_and(|b| b > 0),
            "{entry}"
        );
        let temperature = &entry["temperature_c"];
        assert!(
            temperature.is_null()
                || temperature
                    .as_f64()
                    .is_some_and(|t| (-60.0..=150.0).contains(&t)),
            "{entry}"
        );
    }

    remove_member(&rig.hub, &group, &devices[2], &devices[..2], version).await;
}

/// The same against an external mosquitto whose per-device access the hub
/// administers (O3, S7), and the broker SIGKILLed while a change is made
/// and restarted empty (no persistence): the hub republishes its retained
/// state and every agent converges to the newest version (S4, S5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o3_s4_s5_s7_mosquitto_killed_mid_change_and_everyone_converges() {
    let mut rig = Rig::external(&[]).await;
    let Menus {
        tenant,
        agents: _agents,
        devices,
        group,
        first,
        version,
    } = on_the_first_manifest(&rig, "Lunch menu").await;

    // The broker dies; a change is made while it is down; it comes back
    // with no retained messages and no sessions.
    rig.broker_mut().kill();
    let second = rig.hub.upload(&tenant, "Dinner menu", image(2)).await;
    let newest = set_items(&rig.hub, &group, &[&first, &second]).await;
    assert!(newest > version);
    rig.broker_mut().restart().await;
    let fleet = fleet_until(&rig.hub, "every agent on the newest manifest", |fleet| {
        in_sync_with(fleet, &devices, &group, newest)
    })
    .await;
    for device in &devices {
        assert_eq!(activated(&fleet, device, &group), Some(newest));
    }

    remove_member(&rig.hub, &group, &devices[2], &devices[..2], newest).await;
}

/// An agent offline (SIGKILLed) while three changes happen: on restart it
/// converges to the newest version and never applies an intermediate or
/// older one, while the agents that stayed online followed every change
/// (S3, S5, L3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_s5_an_agent_offline_during_three_changes_applies_only_the_newest() {
    let rig = Rig::embedded(&[]).await;
    let Menus {
        tenant,
        mut agents,
        devices,
        group,
        first,
        version: _,
    } = on_the_first_manifest(&rig, "Menu 1").await;

    let offline = devices[0].clone();
    agents[0].kill();
    fleet_until(
        &rig.hub,
        "the killed agent marked offline by its last will",
        |fleet| entry(fleet, &offline).is_some_and(|d| d["online"] == false),
    )
    .await;
    let mut items = vec![first];
    let mut versions = Vec::new();
    for n in 2..=4u8 {
        items.push(
            rig.hub
                .upload(&tenant, &format!("Menu {n}"), image(n))
                .await,
        );
        let refs: Vec<&Value> = items.iter().collect();
        versions.push(set_items(&rig.hub, &group, &refs).await);
    }
    let newest = *versions.last().unwrap();
    fleet_until(
        &rig.hub,
        "the online agents on the newest manifest",
        |fleet| in_sync_with(fleet, &devices[1..], &group, newest),
    )
    .await;

    agents[0].run();
    let fleet = fleet_until(
        &rig.hub,
        "the restarted agent on the newest manifest",
        |fleet| in_sync_with(fleet, &devices, &group, newest),
    )
    .await;
    assert_eq!(activated(&fleet, &offline, &group), Some(newest));
    let log = agents[0].log();
    for older in &versions[..versions.len() - 1] {
        assert!(
            !log.contains(&format!("group_manifest {group} version {older} (")),
            "the restarted agent applied intermediate version {older}:\n{log}"
        );
    }
    assert!(
        log.contains(&format!("group_manifest {group} version {newest} (")),
        "{log}"
    );
}

/// A replayed older retained manifest, a manifest signed by a key the trust
/// document does not certify, and a replayed command are refused and
/// logged; the agent keeps its last good state and stays in sync (S1, S3).
/// The misbehaving party publishes on a broker without ACLs (the hub's own
/// brokers would refuse it, S10; a misconfigured external one may not) —
/// exactly why the agent verifies everything itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_s3_replays_and_forged_documents_are_refused_end_to_end() {
    use signet_common::documents::GroupManifest;
    use signet_common::envelope::{SigningKey, sign_document};

    // A broker without ACLs, where anyone may replay and forge retained
    // documents (the hub's own brokers refuse that, S10): the agents' own
    // checks are what is tested here (S1, S3 hold on any broker).
    let rig = Rig::on(Mosquitto::open().await, &[]).await;
    let broker = rig.broker().addr;
    let Menus {
        tenant,
        agents,
        devices,
        group,
        first,
        version: old,
    } = on_the_first_manifest(&rig, "Menu 1").await;

    // Capture the current manifest and the device's commands with the
    // device's own credentials.
    let device = &devices[0];
    let secret = std::fs::read_to_string(agents[0].data.join("device.secret")).unwrap();
    let probe = signet_tests::MqttProbe::connect(broker, "probe", device, secret.trim());
    let manifest_topic = format!("signet/v1/groups/{group}/manifest");
    let commands_topic = format!("signet/v1/devices/{device}/commands");
    for topic in [&manifest_topic, &commands_topic] {
        probe
            .client
            .subscribe(topic.as_str(), rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let captured = probe.message_on(&manifest_topic, CONVERGE).await;

    // A newer version everywhere.
    let second = rig.hub.upload(&tenant, "Menu 2", image(2)).await;
    let newest = set_items(&rig.hub, &group, &[&first, &second]).await;
    fleet_until(&rig.hub, "every agent on the newest manifest", |fleet| {
        in_sync_with(fleet, &devices, &group, newest)
    })
    .await;

    // 1. The older manifest replayed, retained.
    probe
        .client
        .publish(
            manifest_topic.as_str(),
            rumqttc::QoS::AtLeastOnce,
            true,
            captured.clone(),
        )
        .await
        .unwrap();
    // Refused as below the assignment's floor or older than the held one.
    agents[0]
        .logged(
            &format!("reason=group_manifest {group}: version {old} is"),
            CONVERGE,
        )
        .await;

    // 2. A manifest for the group signed by an uncertified key.
    let opened = signet_common::envelope::open(&captured).unwrap();
    let mut forged: GroupManifest = serde_json::from_slice(opened.payload()).unwrap();
    forged.version = newest + 100;
    let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
    let forged = sign_document(&forged, &key).unwrap();
    probe
        .client
        .publish(
            manifest_topic.as_str(),
            rumqttc::QoS::AtLeastOnce,
            true,
            forged,
        )
        .await
        .unwrap();
    agents[0]
        .logged("is not certified by the trust document", CONVERGE)
        .await;

    // 3. A command carried out, then replayed.
    rig.hub
        .post(
            &format!("/api/v1/devices/{device}/commands"),
            json!({"action": "resync"}),
        )
        .await;
    let command = probe.message_on(&commands_topic, CONVERGE).await;
    agents[0].logged("resync", CONVERGE).await;
    probe
        .client
        .publish(
            commands_topic.as_str(),
            rumqttc::QoS::AtLeastOnce,
            false,
            command,
        )
        .await
        .unwrap();
    agents[0].logged("replayed", CONVERGE).await;

    // The last good state stands: every agent still in sync on the newest.
    let fleet = fleet_until(
        &rig.hub,
        "the agents still on the newest manifest",
        |fleet| in_sync_with(fleet, &devices, &group, newest),
    )
    .await;
    for device in &devices {
        assert_eq!(
            activated(&fleet, device, &group),
            Some(newest),
            "{}",
            agents[0].log()
        );
    }
}
