//! A clustered broker path (O3, X6, S7; issue 21, Deliver 4) over the real
//! binaries: two mosquitto 2 brokers bridged on random loopback ports, as a
//! core broker and an edge broker of a broker cluster. The hub connects to
//! broker A (the core: dynamic security administered by the hub); the
//! agent is told broker B (the edge, `mqtt.device_url`) at pairing and
//! only ever connects there. B bridges to A as a client of A's dynamic
//! security with a role of its own (the hub's topics in, device reports
//! out).
//!
//! What this proves: a publication reaches the agent through the bridge
//! (its log names the MQTT topic it applied the new manifest from, not the
//! HTTP fetch); the agent's state reports cross the bridge to the hub (the
//! fleet view sees it online and in sync); a signed event batch published
//! at the edge is stored by the hub; and the retained documents the hub
//! published on A are retained at B for a client connecting there later.
//! What it does not prove (docs/replicas.md, "A broker cluster"): per-device
//! ACLs at the edge (B here lets any client in: a bridge carries messages,
//! not dynamic-security clients and roles), a cluster's shared
//! subscriptions across nodes, or failover between brokers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use rumqttc::QoS;
use serde_json::json;
use signet_common::envelope::SigningKey;
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::{EventBatch, Outcome, PlayEvent};
use signet_tests::rig::Rig;
use signet_tests::{Agent, Hub, Mosquitto, MqttProbe};

/// How long agents may take to pair, sync and settle.
const CONVERGE: Duration = Duration::from_secs(90);
/// The bridge's account on the core broker.
const BRIDGE_USER: &str = "signet-edge-bridge";

/// The edge broker: anonymous clients (no per-device ACLs), bridged to the
/// core. Killed by its pid when dropped.
struct Edge {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    /// Starts it bridged to `core` as `BRIDGE_USER` with `password`.
    async fn start(core: SocketAddr, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (addr, reserved) = signet_tests::free_port();
        drop(reserved);
        let config = dir.path().join("mosquitto.conf");
        // The hub's documents and time come in (retained ones stay
        // retained: mosquitto bridges to mosquitto with `try_private`, so
        // the core sends them as published); device reports go out.
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
                 persistence false\nlog_dest file {log}\nlog_type all\n\
                 connection core\naddress {core}\n\
                 remote_clientid signet-edge-b\nremote_username {BRIDGE_USER}\n\
                 remote_password {password}\ncleansession false\ntry_private true\n\
                 restart_timeout 1 5\n\
                 topic signet/v1/groups/+/manifest in 1\n\
                 topic signet/v1/devices/+/assignment in 1\n\
                 topic signet/v1/devices/+/commands in 1\n\
                 topic signet/v1/hub/time in 1\n\
                 topic signet/v1/trust in 1\n\
                 topic signet/v1/devices/+/state out 1\n\
                 topic signet/v1/devices/+/events out 1\n",
                port = addr.port(),
                log = dir.path().join("mosquitto.log").display(),
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let edge = Self { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the edge broker did not listen:\n{}",
                edge.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        edge
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

/// Gives the bridge an account on the core broker's dynamic security: a
/// client with a role that may subscribe to the hub's topics and publish
/// device reports, as an operator would (docs/replicas.md).
fn bridge_account(core: &Mosquitto, password: &str) {
    let port = core.addr.port().to_string();
    let role_acls: [&[&str]; 9] = [
        &["createClient", BRIDGE_USER, "-p", password],
        &["createRole", BRIDGE_USER],
        &[
            "addRoleACL",
            BRIDGE_USER,
            "subscribePattern",
            "signet/v1/#",
            "allow",
        ],
        &[
            "addRoleACL",
            BRIDGE_USER,
            "publishClientReceive",
            "signet/v1/#",
            "allow",
        ],
        &[
            "addRoleACL",
            BRIDGE_USER,
            "publishClientSend",
            "signet/v1/devices/+/state",
            "allow",
        ],
        &[
            "addRoleACL",
            BRIDGE_USER,
            "publishClientSend",
            "signet/v1/devices/+/events",
            "allow",
        ],
        // The bridge's `try_private` notification topic.
        &[
            "addRoleACL",
            BRIDGE_USER,
            "publishClientSend",
            "$SYS/broker/connection/#",
            "allow",
        ],
        &[
            "addRoleACL",
            BRIDGE_USER,
            "subscribePattern",
            "$SYS/broker/connection/#",
            "allow",
        ],
        &["addClientRole", BRIDGE_USER, BRIDGE_USER],
    ];
    for args in role_acls {
        let out = Command::new("/usr/bin/mosquitto_ctrl")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(["-u", &core.admin_user, "-P", &core.admin_password])
            .arg("dynsec")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosquitto_ctrl dynsec {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Waits until the fleet view has `device` online and in sync.
async fn in_sync(hub: &Hub, device: &str, agent: &Agent, edge: &Edge) {
    let started = Instant::now();
    loop {
        let fleet = hub.fleet().await;
        if fleet
            .iter()
            .any(|e| e["device_id"] == device && e["in_sync"] == true && e["online"] == true)
        {
            return;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the agent is not in sync through the bridge: {fleet:#?}\nagent:\n{}\nedge:\n{}",
            agent.log(),
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The device key the agent made at pairing, found in its data directory.
fn device_key(data: &Path) -> SigningKey {
    let mut dirs = vec![data.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name() == Some(std::ffi::OsStr::new("device.key")) {
                return SigningKey::from_pkcs8(&std::fs::read(&path).unwrap()).unwrap();
            }
        }
    }
    panic!("no device.key under {}", data.display());
}

/// O3, X6, S7 (issue 21, Deliver 4): the hub on the core broker, the agent
/// on a bridged edge broker — a publication reaches the agent over MQTT,
/// its state and a signed event batch reach the hub, and retained
/// documents are retained at the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o3_x6_a_hub_on_one_bridged_broker_reaches_an_agent_on_the_other() {
    let core = Mosquitto::start().await;
    let bridge_password = format!("bridge-{}", std::process::id());
    bridge_account(&core, &bridge_password);
    let edge = Edge::start(core.addr, &bridge_password).await;
    let edge_url = format!("mqtt://{}", edge.addr);
    let rig = Rig::on(core, &[("SIGNET_HUB_MQTT__DEVICE_URL", &edge_url)]).await;
    let (hub, core) = (&rig.hub, rig.broker());
    let first = rig.site("Edge site", "First", 0x22_7744).await;
    let site = first.node.clone();
    first.publish(hub).await;

    let mut agent = rig.pair("edge-screen", &site, "").await;
    agent.run();
    // The agent's state reaches the hub only through the bridge: the agent
    // connected to the edge broker, never to the core.
    in_sync(hub, &agent.device, &agent, &edge).await;
    let connected = format!(" as {} (", agent.device);
    assert!(
        edge.log()
            .lines()
            .any(|l| l.contains("New client connected") && l.contains(&connected)),
        "the agent connected to the edge:\n{}",
        edge.log()
    );
    assert!(
        !core.log().contains(&connected),
        "the agent connected to the core:\n{}",
        core.log()
    );

    // A new publication reaches the agent over MQTT through the bridge:
    // one more manifest applied from its topic (an HTTP fetch names the
    // hub as its source instead).
    let topic = format!("signet/v1/groups/{site}/manifest");
    let applied_from_topic = |agent: &Agent| {
        agent
            .log()
            .lines()
            .filter(|l| l.contains(" applied") && l.contains(&topic))
            .count()
    };
    let before = applied_from_topic(&agent);
    let second = rig.image(&site, "Second", 0x77_2244).await;
    let second_playlist = hub
        .post(
            "/api/v1/playlists",
            json!({"node": site, "name": "Second",
                "items": [{"item": second, "duration_ms": 1_000}]}),
        )
        .await;
    let (status, body) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/schedules/{}", first.schedule),
            Some(json!({"entries": [
                {"id": "all-day", "playlist": first.playlist, "priority": 0},
                {"id": "second", "playlist": second_playlist["id"], "priority": 1}]})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    first.publish(hub).await;
    let started = Instant::now();
    loop {
        if applied_from_topic(&agent) > before {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "no manifest applied from {topic}:\n{}\nedge:\n{}",
            agent.log(),
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    in_sync(hub, &agent.device, &agent, &edge).await;

    // A signed event batch published at the edge is stored by the hub.
    let key = device_key(&agent.data);
    let device = DeviceId::from(agent.device.as_str());
    let event = PlayEvent {
        id: format!("{:032x}", 0x0b71_d9e5_u64),
        device_id: device.clone(),
        item: ItemId::from(first.item.as_str()),
        access_group: None,
        license_version: None,
        start: Utc::now() - chrono::TimeDelta::minutes(1),
        duration_ms: 1_000,
        outcome: Outcome::Played,
        skip_reason: None,
        country: None,
        region: None,
        os: "Debian 12".into(),
        agent_version: "0.1.0".into(),
    };
    let signed = signet_common::sync::signed::sign_report(
        &EventBatch {
            events: vec![event.clone()],
        },
        &key,
    )
    .unwrap();
    let publisher = MqttProbe::connect(edge.addr, "edge-publisher", &agent.device, "any");
    publisher
        .client
        .publish(
            format!("signet/v1/devices/{}/events", agent.device),
            QoS::AtLeastOnce,
            false,
            signed,
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let rows = hub.usage(&agent.device).await;
        if rows.iter().any(|e| e["id"] == event.id.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the event published at the edge was not stored: {rows:?}\nedge:\n{}",
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Retained at the edge: a client connecting to B now gets the hub's
    // retained time and the group's current manifest from B itself — the
    // one published after the bridge connected, as the core holds it.
    let late = MqttProbe::connect(edge.addr, "late-reader", "late", "any");
    let mut at_edge = Vec::new();
    for retained in ["signet/v1/hub/time", topic.as_str()] {
        late.client
            .subscribe(retained, QoS::AtLeastOnce)
            .await
            .unwrap();
        let payload = late.message_on(retained, Duration::from_secs(20)).await;
        assert!(
            signet_common::envelope::open(&payload).is_ok(),
            "{retained}: not a signed document"
        );
        at_edge.push(payload);
    }
    let at_core = rig.retained(&topic, Duration::from_secs(20)).await;
    assert_eq!(
        at_edge[1], at_core,
        "the edge retains the manifest the core holds"
    );
    agent.kill();
}
