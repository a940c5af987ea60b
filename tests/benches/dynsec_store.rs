//! Issue 20 (X1, S10): what granting broker access to N devices costs on
//! mosquitto 2.0's dynamic-security plugin, which rewrites its whole store
//! after every changing command — the earlier shape (one role per device
//! holding every topic it reads) against the current one (a small own role
//! per device, shared roles per group), measured in the same run on the
//! same machine. A measurement, not a test: it prints ratios.
//!
//! 1. **before**: a fresh broker; N devices granted the way the hub did
//!    before: per 128 devices one read message (`getRole`, `getClient`
//!    each), then `createRole` (all of the device's ACLs) + `createClient`,
//!    16 commands to a message. Wall time; store bytes per device.
//! 2. **after**: a fresh broker; the hub's `DynsecAdmin` grants the same N
//!    devices at once (as concurrent pairing approvals do). Wall time;
//!    store bytes per device.
//! 3. **migrate**: on the broker of 1, `DynsecAdmin` grants every device
//!    again (what the reconciliation at start does): wall time, store after.
//! 4. **move**: on the broker of 2, every device moves to other groups.
//!
//! `cargo bench --profile dev -p signet-tests --bench dynsec_store`;
//! `SIGNET_DYNSEC_DEVICES` (1000), `SIGNET_DYNSEC_GROUPS` groups per device
//! (3, out of 10).
//!
//! Figures (2-core machine shared with other builds, load 8–15,
//! 2026-12-04, the defaults): before 86.6 s and 3,375 bytes per device;
//! after 51.2 s (136 control messages) and 1,444 bytes per device — 0.59×
//! the time, 0.43× the bytes; moving all 1,000 to other groups 45.9 s;
//! migrating the before store 239.7 s (four commands per device, once).
//! Pairing stays two changing commands per device, each a rewrite of the
//! whole store: the total still grows with N², only with a smaller factor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed run

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use signet_common::ids::DeviceId;
use signet_hub::mqtt::admin::BrokerAdmin;
use signet_hub::mqtt::dynsec::{DynsecAdmin, DynsecSettings, device_acls, device_role};
use signet_tests::Mosquitto;
use tokio::sync::mpsc;

const CONTROL: &str = "$CONTROL/dynamic-security/v1";
const RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";
const POOL: usize = 10;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn device(i: usize) -> DeviceId {
    DeviceId::from(format!("d-{i:05}").as_str())
}

fn groups_of(i: usize, groups: usize, shift: usize) -> Vec<String> {
    (0..groups)
        .map(|k| format!("g{}", (i + k + shift) % POOL))
        .collect()
}

fn settings(broker: &Mosquitto) -> DynsecSettings {
    DynsecSettings {
        url: broker.url(),
        username: broker.admin_user.clone(),
        password: broker.admin_password.clone(),
        ca_pem: None,
        timeout: Duration::from_secs(120),
    }
}

fn store_bytes(broker: &Mosquitto) -> u64 {
    std::fs::metadata(broker.store()).unwrap().len()
}

/// A raw admin session: one control message, one answer.
struct Raw {
    client: AsyncClient,
    answers: mpsc::UnboundedReceiver<Value>,
}

impl Raw {
    async fn connect(broker: &Mosquitto) -> Self {
        let mut options = MqttOptions::new("bench-raw-admin", "127.0.0.1", broker.addr.port());
        options
            .set_credentials(broker.admin_user.clone(), broker.admin_password.clone())
            .set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, answers) = mpsc::unbounded_channel();
        let (sub_tx, mut subscribed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(serde_json::from_slice(&p.payload).unwrap());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        client.subscribe(RESPONSE, QoS::AtLeastOnce).await.unwrap();
        subscribed.recv().await.unwrap();
        Self { client, answers }
    }

    async fn run(&mut self, commands: Vec<Value>) {
        let count = commands.len();
        let payload = serde_json::to_vec(&json!({ "commands": commands })).unwrap();
        self.client
            .publish(CONTROL, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(120), self.answers.recv())
            .await
            .expect("the plugin answered")
            .unwrap();
        let responses = answer["responses"].as_array().unwrap();
        assert_eq!(responses.len(), count);
        for response in responses {
            let command = response["command"].as_str().unwrap_or_default();
            if !command.starts_with("get") {
                assert!(response.get("error").is_none(), "{response}");
            }
        }
    }
}

/// The role the hub gave a device before: every topic it reads
/// (subscribe, unsubscribe, receive) and its own reports.
fn legacy_acls(device: &DeviceId, groups: &[String]) -> Vec<Value> {
    let mut acls = Vec::new();
    for acl in device_acls(device, groups) {
        match acl.acl_type {
            "unsubscribePattern" => {}
            "subscribeLiteral" => {
                acls.push(acl.to_json());
                acls.push(json!({"acltype": "unsubscribeLiteral", "topic": acl.topic,
                    "allow": true, "priority": 0}));
            }
            _ => acls.push(acl.to_json()),
        }
    }
    acls
}

/// 1: the earlier shape, sent as the hub sent it.
async fn before(broker: &Mosquitto, n: usize, groups: usize) -> Duration {
    let mut raw = Raw::connect(broker).await;
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(128) {
        let reads = chunk
            .iter()
            .flat_map(|i| {
                [
                    json!({"command": "getRole", "rolename": device_role(&device(*i))}),
                    json!({"command": "getClient", "username": device(*i).as_str()}),
                ]
            })
            .collect();
        raw.run(reads).await;
        for pair in chunk.chunks(8) {
            let mut message = Vec::new();
            for i in pair {
                let id = device(*i);
                message.push(
                    json!({"command": "createRole", "rolename": device_role(&id),
                    "acls": legacy_acls(&id, &groups_of(*i, groups, 0))}),
                );
                message.push(json!({"command": "createClient", "username": id.as_str(),
                    "password": format!("secret {i}"), "clientid": id.as_str(),
                    "roles": [{"rolename": device_role(&id), "priority": 0}]}));
            }
            raw.run(message).await;
        }
    }
    started.elapsed()
}

/// Grants every device `groups_of(i, groups, shift)` at once through the
/// hub's admin; the wall time.
async fn grant_all(
    admin: &Arc<DynsecAdmin>,
    n: usize,
    groups: usize,
    shift: usize,
    password: bool,
) -> Duration {
    let started = Instant::now();
    let mut grants = tokio::task::JoinSet::new();
    for i in 0..n {
        let admin = Arc::clone(admin);
        grants.spawn(async move {
            let password = password.then(|| format!("secret {i}"));
            admin
                .grant(
                    &device(i),
                    password.as_deref(),
                    &groups_of(i, groups, shift),
                )
                .await
        });
    }
    while let Some(outcome) = grants.join_next().await {
        outcome.unwrap().unwrap();
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_number("SIGNET_DYNSEC_DEVICES", 1000);
    let groups = env_number("SIGNET_DYNSEC_GROUPS", 3).min(POOL);
    println!("dynsec store: {n} devices, {groups} groups each (of {POOL})");

    let mut old = Mosquitto::start().await;
    let empty = store_bytes(&old);
    let before_time = before(&old, n, groups).await;
    let before_bytes = store_bytes(&old) - empty;

    let mut new = Mosquitto::start().await;
    let admin = Arc::new(DynsecAdmin::connect(settings(&new)).unwrap());
    admin
        .bootstrap("signet-hub", Some("hub password"))
        .await
        .unwrap();
    let base = store_bytes(&new);
    let messages = admin.control_messages();
    let after_time = grant_all(&admin, n, groups, 0, true).await;
    let after_messages = admin.control_messages() - messages;
    let after_bytes = store_bytes(&new) - base;
    let messages = admin.control_messages();
    let move_time = grant_all(&admin, n, groups, 1, false).await;
    let move_messages = admin.control_messages() - messages;
    let moved_bytes = store_bytes(&new) - base;

    let migrator = Arc::new(DynsecAdmin::connect(settings(&old)).unwrap());
    migrator
        .bootstrap("signet-hub", Some("hub password"))
        .await
        .unwrap();
    let migrate_time = grant_all(&migrator, n, groups, 0, false).await;
    let migrated_bytes = store_bytes(&old) - empty;

    #[allow(clippy::cast_precision_loss)]
    let per = |bytes: u64| bytes as f64 / n as f64;
    println!(
        "before (one role per device): paired in {:.1} s, {:.0} bytes per device",
        before_time.as_secs_f64(),
        per(before_bytes)
    );
    println!(
        "after (own role + shared roles): paired in {:.1} s ({after_messages} control messages), {:.0} bytes per device",
        after_time.as_secs_f64(),
        per(after_bytes)
    );
    println!(
        "ratio after/before: time {:.2}x, bytes per device {:.2}x",
        after_time.as_secs_f64() / before_time.as_secs_f64(),
        per(after_bytes) / per(before_bytes)
    );
    println!(
        "move every device to other groups (after): {:.1} s ({move_messages} control messages), {:.0} bytes per device",
        move_time.as_secs_f64(),
        per(moved_bytes)
    );
    println!(
        "migrate the before store (reconciliation grants): {:.1} s, {:.0} bytes per device",
        migrate_time.as_secs_f64(),
        per(migrated_bytes)
    );
    drop(admin);
    drop(migrator);
    old.kill();
    new.kill();
}
