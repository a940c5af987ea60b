//! What the agent's integration tests share: a real mosquitto on a random
//! loopback port, a key hierarchy and signed documents made the way the hub
//! makes them, a paired state dir, the real `signet-agent` binary as a child
//! process, and an MQTT client that plays the hub and watches the device's
//! state topic.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use signet_agent::state::{Identity, Store};
use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::documents::{
    Command as SignedCommand, CommandAction, DeviceAssignment, GroupKind, GroupManifest, HubTime,
};
use signet_common::envelope::{self, SigningKey};
use signet_common::ids::{DeviceId, NodeId};
use signet_common::schedule::{MergeMode, Schedule};
use signet_common::sync::{DeviceState, manifest_topic, state_topic};
use signet_common::trust::{CertifiedKey, TrustDocument};
use tokio::sync::mpsc;

pub const DEVICE: &str = "dev-1";
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

pub fn device() -> DeviceId {
    DeviceId::from(DEVICE)
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto broker on a random loopback port, killed (by its pid) on drop.
pub struct Broker {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn new_key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

/// The hub's keys: a root and one signing key it certifies.
pub struct Keys {
    pub root: SigningKey,
    pub signing: SigningKey,
}

impl Keys {
    pub fn new() -> Self {
        Self {
            root: new_key(),
            signing: new_key(),
        }
    }

    /// The root-signed trust document certifying `signing` around now.
    pub fn trust(&self, version: u64) -> Vec<u8> {
        let now = Utc::now();
        let doc = TrustDocument {
            version,
            issued_at: now,
            root_key_id: self.root.key_id(),
            root_public_key: None,
            signing_keys: vec![CertifiedKey {
                key_id: self.signing.key_id(),
                public_key: self.signing.public_key(),
                not_before: now - TimeDelta::days(1),
                not_after: now + TimeDelta::days(30),
            }],
        };
        envelope::sign_document(&doc, &self.root).unwrap()
    }

    pub fn hub_time(&self, version: u64) -> Vec<u8> {
        let now = Utc::now();
        envelope::sign_document(
            &HubTime {
                version,
                issued_at: now,
                time: now,
            },
            &self.signing,
        )
        .unwrap()
    }

    /// An assignment of [`DEVICE`] to the node chain `groups`.
    pub fn assignment(&self, version: u64, groups: &[&str], floors: &[(&str, u64)]) -> Vec<u8> {
        let doc = DeviceAssignment {
            version,
            issued_at: Utc::now(),
            device_id: device(),
            node_chain: groups.iter().map(|g| NodeId::from(*g)).collect(),
            access_groups: vec![],
            min_manifest_versions: floors
                .iter()
                .map(|(g, v)| ((*g).to_owned(), *v))
                .collect::<BTreeMap<_, _>>(),
            time_zone: chrono_tz::UTC,
            location: Default::default(),
            offline_grace_secs: 86_400,
        };
        envelope::sign_document(&doc, &self.signing).unwrap()
    }

    /// A node manifest of `group` at `version`, signed by `key`.
    pub fn manifest_by(&self, key: &SigningKey, group: &str, version: u64) -> Vec<u8> {
        let now = Utc::now();
        let doc = GroupManifest {
            version,
            issued_at: now,
            expires_at: now + TimeDelta::days(7),
            group_id: group.to_owned(),
            group_kind: GroupKind::Node,
            items: vec![],
            schedule: Schedule {
                entries: vec![],
                merge: MergeMode::Sequence,
                default_item: None,
            },
            license: None,
        };
        doc.validate().unwrap();
        envelope::sign_document(&doc, key).unwrap()
    }

    pub fn manifest(&self, group: &str, version: u64) -> Vec<u8> {
        self.manifest_by(&self.signing, group, version)
    }

    pub fn command(
        &self,
        version: u64,
        nonce: &str,
        action: CommandAction,
        expires_at: DateTime<Utc>,
    ) -> Vec<u8> {
        let doc = SignedCommand {
            version,
            issued_at: Utc::now(),
            expires_at,
            device_id: device(),
            nonce: nonce.to_owned(),
            action,
        };
        envelope::sign_document(&doc, &self.signing).unwrap()
    }
}

/// A data dir set up as if [`DEVICE`] had paired with `broker_url` and
/// pinned `keys.root`.
pub fn paired_dir(keys: &Keys, broker_url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.device_key().unwrap();
    let clock = TrustedClock::new(&ClockReading {
        wall: Utc::now(),
        boot_id: "test".into(),
        since_boot_ms: 0,
    });
    store
        .record_pairing(
            Identity {
                device_id: device(),
                hub_url: "http://127.0.0.1:9".into(),
                broker_url: broker_url.to_owned(),
                username: DEVICE.into(),
                ca_pem: None,
                paired_at: Utc::now(),
            },
            keys.root.public_key(),
            "device-secret",
            clock,
        )
        .unwrap();
    dir
}

/// The real `signet-agent run`, its stderr captured in a log file.
pub struct Agent {
    child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(data: &Path) -> Self {
        let log = data.join(format!("agent-{}.log", free_port()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
            .arg("run")
            .env("SIGNET_AGENT_DATA_DIR", data)
            .env("SIGNET_AGENT_RECONNECT_BASE_MS", "100")
            .env("SIGNET_AGENT_RECONNECT_CAP_SECS", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// SIGKILL: no clean shutdown, no offline message from the agent itself.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM (by this child's pid) and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays the hub: publishes retained signed documents and watches the
/// device's state topic.
pub struct Hub {
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<()>,
    pub states: mpsc::UnboundedReceiver<DeviceState>,
    /// Every state message seen, in order.
    pub seen: Vec<DeviceState>,
}

impl Hub {
    pub async fn connect(broker: &Broker) -> Self {
        let mut options = MqttOptions::new(
            format!("test-hub-{}", free_port()),
            "127.0.0.1",
            broker.port,
        );
        options.set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (state_tx, states) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::PubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let Ok(state) = serde_json::from_slice::<DeviceState>(&p.payload) {
                            let _ = state_tx.send(state);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe(state_topic(&device()), QoS::AtLeastOnce)
            .await
            .unwrap();
        Self {
            client,
            acks,
            states,
            seen: Vec::new(),
        }
    }

    /// Publishes and waits for the broker's PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .expect("broker acknowledged the publish")
            .unwrap();
    }

    pub async fn publish_manifest(&mut self, group: &str, payload: Vec<u8>) {
        self.publish(&manifest_topic(group), payload, true).await;
    }

    /// Waits for a state message satisfying `pred`, recording every one.
    pub async fn wait_state(
        &mut self,
        what: &str,
        pred: impl Fn(&DeviceState) -> bool,
    ) -> DeviceState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let state = tokio::time::timeout_at(deadline, self.states.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no state where {what}; last seen: {:#?}", self.seen.last())
                })
                .unwrap();
            self.seen.push(state.clone());
            if pred(&state) {
                return state;
            }
        }
    }
}

/// The applied version of `key` in `state`.
pub fn version(state: &DeviceState, key: &str) -> Option<u64> {
    state.applied.get(key).map(|d| d.version)
}

/// Publishes the usual retained world: trust v1, hub time v1, an assignment
/// to `n-root` → `n-site`, and both manifests at `version`.
pub async fn publish_world(hub: &mut Hub, keys: &Keys, version: u64) {
    hub.publish(signet_common::sync::TRUST_TOPIC, keys.trust(1), true)
        .await;
    hub.publish(signet_common::sync::HUB_TIME_TOPIC, keys.hub_time(1), true)
        .await;
    hub.publish(
        &signet_common::sync::assignment_topic(&device()),
        keys.assignment(1, &["n-root", "n-site"], &[]),
        true,
    )
    .await;
    hub.publish_manifest("n-root", keys.manifest("n-root", version))
        .await;
    hub.publish_manifest("n-site", keys.manifest("n-site", version))
        .await;
}
