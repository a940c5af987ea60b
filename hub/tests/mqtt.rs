//! The hub's MQTT side against real brokers (S4, S5, S7, S9, S10, U4, O3):
//! the hub-managed mosquitto (`serve`'s default) and a plain mosquitto
//! started here on random loopback ports. A plain rumqttc client plays the device; every payload
//! it receives is verified the way an agent verifies it
//! (`support::signed::device_trust`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use signet_common::documents::{GroupManifest, HubTime};
use signet_common::envelope::{self, DocumentKind, PublicKey, SigningKey};
use signet_common::ids::DeviceId;
use signet_common::sync::signed::sign_report;
use signet_common::sync::{DeviceState, EventBatch, HUB_TIME_TOPIC};
use signet_common::trust::TrustStore;
use signet_hub::app::SystemClock;
use signet_hub::config::{Config, MqttConfig};
use signet_hub::fleet::Ingested;
use signet_hub::groups::GroupRef;
use signet_hub::mqtt::admin::BrokerAdmin as _;
use signet_hub::mqtt::reports::{DeviceReports, FleetReports};
use signet_hub::mqtt::{BrokerConnection, HubLink, LinkOptions, RunningLink};
use signet_hub::publish::{self, Actor, Publisher as _, TRUST_TOPIC, manifest_topic};
use signet_hub::store::StoreError;
use support::mosquitto::Managed;
use support::signed::device_trust;
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "d-1";
const DEVICE_SECRET: &str = "the device's own secret";
const HUB_PASSWORD: &str = "the hub's broker password";
/// The longest any test waits for the broker.
const WAIT: Duration = Duration::from_secs(20);
/// The device key [`DEVICE`] registered at pairing (S11).
static DEVICE_KEY: LazyLock<SigningKey> = LazyLock::new(support::device_key);

/// The key the test sinks hold for `device`: [`DEVICE_KEY`] for [`DEVICE`].
fn test_key(device: &DeviceId) -> Option<PublicKey> {
    (device.as_str() == DEVICE).then(|| DEVICE_KEY.public_key())
}

/// A fresh data directory with keys and a root node, and the hub's state
/// over it (its publisher is replaced by the MQTT link's).
struct Hub {
    state: signet_hub::app::Hub,
    data: PathBuf,
    root: String,
    _dir: tempfile::TempDir,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = signet_hub::init::init(&data, Utc::now()).await.unwrap();
    let config = Config {
        data: data.clone(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let state = signet_hub::serve::open(config, Arc::new(SystemClock)).unwrap();
    Hub {
        state,
        data,
        root: made.root_node.to_string(),
        _dir: dir,
    }
}

fn fast() -> LinkOptions {
    LinkOptions {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        keep_alive: Duration::from_secs(5),
        ..LinkOptions::default()
    }
}

/// Connects the hub's link and installs its publisher; device reports go
/// to `reports` (default: the fleet).
fn link(
    hub: &mut Hub,
    connection: &BrokerConnection,
    reports: Option<Arc<dyn DeviceReports>>,
) -> (RunningLink, CancellationToken) {
    let link = HubLink::new(connection, fast(), hub.state.metrics.clone());
    hub.state.publisher = Arc::new(link.publisher());
    let reports = reports.unwrap_or_else(|| {
        Arc::new(FleetReports {
            state: hub.state.clone(),
        })
    });
    let cancel = CancellationToken::new();
    (
        link.spawn(hub.state.clone(), reports, cancel.clone()),
        cancel,
    )
}

/// Waits until the link has connected `n` times.
async fn connected(running: &RunningLink, n: u64) {
    let mut connections = running.connections();
    tokio::time::timeout(WAIT, connections.wait_for(|c| *c >= n))
        .await
        .expect("the hub's link did not connect")
        .unwrap();
}

/// Publishes the root node's manifest through the publishing API; returns
/// its topic.
async fn publish_root(hub: &Hub) -> String {
    let published = publish::publish(
        &hub.state,
        &GroupRef::Node(hub.root.as_str().into()),
        Actor::hub(),
    )
    .await
    .unwrap();
    assert!(
        published.undelivered.is_empty(),
        "{:?}",
        published.undelivered
    );
    manifest_topic(&hub.root)
}

fn device_options(port: u16, client: &str, user: &str, password: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(4 << 20, 4 << 20)
        .set_credentials(user, password);
    options
}

/// Subscribes as a device (its user name as client id: the managed broker
/// pins it, S10) to `filters` and collects the last payload per topic until
/// every topic of `want` has one.
async fn receive(
    port: u16,
    user: &str,
    password: &str,
    filters: &[&str],
    want: &[&str],
) -> BTreeMap<String, Vec<u8>> {
    let (client, mut eventloop) = AsyncClient::new(device_options(port, user, user, password), 64);
    for filter in filters {
        client.subscribe(*filter, QoS::AtLeastOnce).await.unwrap();
    }
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while !want.iter().all(|t| got.contains_key(*t)) {
        assert!(
            Instant::now() < deadline,
            "missing {want:?}; got {:?}",
            got.keys()
        );
        match tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got.insert(p.topic.clone(), p.payload.to_vec());
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                eprintln!("device client: {e}");
            }
        }
    }
    let _ = client.disconnect().await;
    got
}

/// Verifies what an agent receives: the manifest of `root`, `hub_time`
/// and `trust`.
fn verify(trust: &TrustStore, got: &BTreeMap<String, Vec<u8>>, root: &str) {
    let now = Utc::now();
    let manifest = trust
        .verify::<GroupManifest>(&got[&manifest_topic(root)], now)
        .unwrap()
        .into_payload();
    assert_eq!(manifest.group_id, root);
    let time = trust
        .verify::<HubTime>(&got[HUB_TIME_TOPIC], now)
        .unwrap()
        .into_payload();
    assert!((now - time.time).num_seconds().abs() < 60);
    let mut fresh = TrustStore::new(trust.root());
    fresh.apply_trust(&got[TRUST_TOPIC]).unwrap();
}

/// Device reports as the hub's subscriber hands them on.
#[derive(Default)]
struct Recorded {
    states: Mutex<Vec<(DeviceId, DeviceState)>>,
    batches: Mutex<Vec<(DeviceId, EventBatch)>>,
}

impl DeviceReports for Recorded {
    fn registered_key(&self, device: &DeviceId) -> Result<Option<PublicKey>, StoreError> {
        Ok(test_key(device))
    }

    fn state(
        &self,
        device: DeviceId,
        reported: DeviceState,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.states.lock().unwrap().push((device, reported));
        Box::pin(async { Ok(()) })
    }

    fn events(
        &self,
        device: DeviceId,
        batch: EventBatch,
    ) -> BoxFuture<'_, Result<Ingested, StoreError>> {
        let stored = batch.events.len();
        self.batches.lock().unwrap().push((device, batch));
        Box::pin(async move {
            Ok(Ingested {
                stored,
                duplicates: 0,
                refused: 0,
            })
        })
    }
}

/// The hub-managed broker with [`DEVICE`] granted its secret and `groups`.
async fn managed(groups: &[String]) -> Managed {
    let managed = Managed::start();
    managed
        .admin()
        .grant(&DeviceId::from(DEVICE), Some(DEVICE_SECRET), groups)
        .await
        .unwrap();
    managed
}

#[tokio::test]
async fn s4_s7_managed_broker_serves_signed_retained_state_to_an_authenticated_device() {
    let mut hub = hub().await;
    let broker = managed(std::slice::from_ref(&hub.root)).await;
    let port = broker.port();
    assert_ne!(port, 0);
    let (running, _cancel) = link(&mut hub, &broker.broker.hub_connection(), None);
    connected(&running, 1).await;
    let topic = publish_root(&hub).await;
    let got = receive(
        port,
        DEVICE,
        DEVICE_SECRET,
        &[&topic, HUB_TIME_TOPIC, TRUST_TOPIC],
        &[&topic, HUB_TIME_TOPIC, TRUST_TOPIC],
    )
    .await;
    verify(&device_trust(&hub.data), &got, &hub.root);
    running.stop().await;
}

/// Polls `options` until the broker answers; returns whether it accepted.
async fn connects(options: MqttOptions) -> Result<(), ConnectionError> {
    let (_client, mut eventloop) = AsyncClient::new(options, 8);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the broker never answered");
        match tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

#[tokio::test]
async fn s7_s10_managed_broker_refuses_a_wrong_password_and_the_hub_name() {
    let broker = managed(&[]).await;
    let port = broker.port();
    let wrong = connects(device_options(port, "d-1", DEVICE, "not the secret")).await;
    assert!(wrong.is_err(), "a wrong password was accepted");
    // The hub's user name is reserved for the hub credential.
    let hub_name = connects(device_options(port, "x", "signet-hub", DEVICE_SECRET)).await;
    assert!(
        hub_name.is_err(),
        "the hub's name was accepted without its credential"
    );
    let anonymous = connects(MqttOptions::new("anon", "127.0.0.1", port)).await;
    assert!(anonymous.is_err(), "an anonymous client was accepted");
    connects(device_options(port, "d-1", DEVICE, DEVICE_SECRET))
        .await
        .unwrap();
}

fn device_state(device: &str) -> serde_json::Value {
    json!({"device_id": device, "online": true, "at": Utc::now(),
        "agent_version": "0.1.0", "os": "test os", "cache_bytes": 42})
}

/// `device_state(device)` signed by [`DEVICE`]'s key (S11).
fn signed_state(device: &str) -> Vec<u8> {
    let state: DeviceState = serde_json::from_value(device_state(device)).unwrap();
    sign_report(&state, &DEVICE_KEY).unwrap()
}

#[tokio::test]
async fn u4_s9_hub_subscriber_stores_device_reports_and_drops_bad_ones() {
    let mut hub = hub().await;
    let broker = managed(&[]).await;
    let recorded = Arc::new(Recorded::default());
    let (running, _cancel) = link(
        &mut hub,
        &broker.broker.hub_connection(),
        Some(recorded.clone()),
    );
    connected(&running, 1).await;
    // Let the hub's subscriptions reach the broker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let port = broker.port();
    let (device, mut eventloop) =
        AsyncClient::new(device_options(port, "d-1", DEVICE, DEVICE_SECRET), 16);
    let state_topic = format!("signet/v1/devices/{DEVICE}/state");
    let events_topic = format!("signet/v1/devices/{DEVICE}/events");
    let bad: [(&str, Vec<u8>); 4] = [
        // Signed by d-1, but naming another device on d-1's topic.
        (&state_topic, signed_state("d-2")),
        (&state_topic, b"{not json".to_vec()),
        // A good state, but unsigned (S11).
        (&state_topic, device_state(DEVICE).to_string().into_bytes()),
        (
            &events_topic,
            envelope::sign(
                DocumentKind::DeviceEvents,
                json!({"events": [{"id": "x"}]}).to_string().as_bytes(),
                &DEVICE_KEY,
            ),
        ),
    ];
    for (topic, payload) in bad {
        device
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    device
        .publish(&state_topic, QoS::AtLeastOnce, true, signed_state(DEVICE))
        .await
        .unwrap();
    let event = json!({"id": "0123456789abcdef0123456789abcdef", "device_id": DEVICE,
        "item": "c-1", "start": Utc::now(), "duration_ms": 1000, "outcome": "played",
        "os": "test os", "agent_version": "0.1.0"});
    let batch: EventBatch = serde_json::from_value(json!({"events": [event]})).unwrap();
    device
        .publish(
            &events_topic,
            QoS::AtLeastOnce,
            false,
            sign_report(&batch, &DEVICE_KEY).unwrap(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while recorded.batches.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the event batch never arrived");
        let _ = tokio::time::timeout(Duration::from_millis(100), eventloop.poll()).await;
    }
    let states = recorded.states.lock().unwrap().clone();
    assert_eq!(states.len(), 1, "only the good state is stored: {states:?}");
    assert_eq!(states[0].0, DeviceId::new(DEVICE));
    assert_eq!(states[0].1.device_id, DeviceId::new(DEVICE));
    assert_eq!(states[0].1.cache_bytes, 42);
    let batches = recorded.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].1.events.len(), 1);
    // Each refusal is counted by its reason (S11); the inbox takes
    // messages in order, so all four were judged before the batch.
    for reason in ["other_device", "malformed", "unsigned", "bad_payload"] {
        assert_eq!(
            hub.state.metrics.refused_reports(reason),
            1,
            "refusals for {reason}"
        );
    }
    running.stop().await;
}

/// A real mosquitto on a loopback port with a password file; killed with
/// SIGKILL (by its pid) when dropped.
struct Mosquitto {
    child: Child,
}

impl Mosquitto {
    fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, "", &[])
    }

    /// Starts it with `extra` config lines (e.g. another listener) and
    /// waits until `port` and every port of `also` accept connections.
    fn start_with(dir: &Path, port: u16, extra: &str, also: &[u16]) -> Self {
        let passwords = dir.join("passwords");
        if !passwords.exists() {
            for (i, (user, password)) in [("signet-hub", HUB_PASSWORD), (DEVICE, DEVICE_SECRET)]
                .into_iter()
                .enumerate()
            {
                let mut command = Command::new("mosquitto_passwd");
                command.arg("-b");
                if i == 0 {
                    command.arg("-c");
                }
                let status = command
                    .arg(&passwords)
                    .args([user, password])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            // `user root`: as root, mosquitto would drop to its own user and
            // could not read 0600 files in the temp dir (TLS keys); as any
            // other user the line is ignored.
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 persistence false\nuser root\n{extra}",
                passwords.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        for port in std::iter::once(port).chain(also.iter().copied()) {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "mosquitto did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Self { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn external(port: u16) -> BrokerConnection {
    BrokerConnection::external(&MqttConfig {
        embedded: false,
        url: Some(format!("mqtt://127.0.0.1:{port}")),
        username: Some("signet-hub".into()),
        password: Some(HUB_PASSWORD.into()),
        ..MqttConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn o3_s4_external_mosquitto_with_passwords_gets_retained_state() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _mosquitto = Mosquitto::start(dir.path(), port);
    let mut hub = hub().await;
    let (running, _cancel) = link(&mut hub, &external(port), None);
    connected(&running, 1).await;
    let topic = publish_root(&hub).await;
    let got = receive(
        port,
        DEVICE,
        DEVICE_SECRET,
        &["signet/v1/#"],
        &[&topic, HUB_TIME_TOPIC, TRUST_TOPIC],
    )
    .await;
    verify(&device_trust(&hub.data), &got, &hub.root);
    // A wrong password is refused by mosquitto too.
    assert!(
        connects(device_options(port, "x", DEVICE, "wrong"))
            .await
            .is_err()
    );
    running.stop().await;
}

#[tokio::test]
async fn s4_s5_hub_republishes_retained_state_to_a_broker_that_lost_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = Mosquitto::start(dir.path(), port);
    let mut hub = hub().await;
    let (running, _cancel) = link(&mut hub, &external(port), None);
    connected(&running, 1).await;
    let topic = publish_root(&hub).await;
    receive(port, DEVICE, DEVICE_SECRET, &[&topic], &[&topic]).await;
    first.kill();
    // A fresh broker without persistence: no retained state at all.
    let _second = Mosquitto::start(dir.path(), port);
    connected(&running, 2).await;
    let got = receive(
        port,
        DEVICE,
        DEVICE_SECRET,
        &["signet/v1/#"],
        &[&topic, HUB_TIME_TOPIC, TRUST_TOPIC],
    )
    .await;
    verify(&device_trust(&hub.data), &got, &hub.root);
    running.stop().await;
}

#[tokio::test]
async fn s5_hub_starts_without_a_broker_and_connects_when_one_appears() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = hub().await;
    let (running, _cancel) = link(&mut hub, &external(port), None);
    // Publishing while the broker is down queues without blocking.
    let topic = tokio::time::timeout(Duration::from_secs(5), publish_root(&hub))
        .await
        .expect("publishing blocked while the broker was down");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _mosquitto = Mosquitto::start(dir.path(), port);
    connected(&running, 1).await;
    let got = receive(port, DEVICE, DEVICE_SECRET, &[&topic], &[&topic]).await;
    verify_manifest(&device_trust(&hub.data), &got[&topic], &hub.root);
    running.stop().await;
}

fn verify_manifest(trust: &TrustStore, payload: &[u8], root: &str) {
    let manifest = trust
        .verify::<GroupManifest>(payload, Utc::now())
        .unwrap()
        .into_payload();
    assert_eq!(manifest.group_id, root);
}

#[tokio::test]
async fn s5_publishing_never_waits_a_full_queue_is_an_error() {
    // Nothing polls this link's event loop: its queue of 2 fills up.
    let link = HubLink::new(
        &external(free_port()),
        LinkOptions {
            queue_capacity: 2,
            ..fast()
        },
        Arc::default(),
    );
    let publisher = link.publisher();
    let message = |n: u8| publish::RetainedMessage {
        topic: format!("signet/v1/groups/g-{n}/manifest"),
        payload: vec![n],
    };
    for n in 0..2 {
        publisher.publish(message(n)).await.unwrap();
    }
    let refused = tokio::time::timeout(Duration::from_secs(1), publisher.publish(message(2)))
        .await
        .expect("publish waited for the queue");
    assert_eq!(refused.unwrap_err().topic, "signet/v1/groups/g-2/manifest");
}

#[tokio::test]
async fn s6_hub_time_versions_are_stored_and_strictly_increase() {
    let hub = hub().await;
    let trust = device_trust(&hub.data);
    let mut last = 0;
    for _ in 0..3 {
        let envelope = signet_hub::mqtt::hub_time::sign_next(&hub.state)
            .await
            .unwrap();
        let time = trust
            .verify::<HubTime>(&envelope, Utc::now())
            .unwrap()
            .into_payload();
        assert!(time.version > last, "{} after {last}", time.version);
        last = time.version;
        let stored: signet_hub::mqtt::hub_time::LastHubTime = hub
            .state
            .store
            .get(
                signet_hub::mqtt::hub_time::HUB_TIME,
                signet_hub::mqtt::hub_time::LAST_KEY,
            )
            .unwrap()
            .unwrap();
        assert_eq!(stored.version, last);
    }
}

#[tokio::test]
async fn s5_commands_go_out_not_retained_with_qos_1() {
    let mut hub = hub().await;
    let broker = managed(&[]).await;
    let (running, _cancel) = link(&mut hub, &broker.broker.hub_connection(), None);
    connected(&running, 1).await;
    let commands = format!("signet/v1/devices/{DEVICE}/commands");
    let (device, mut eventloop) = AsyncClient::new(
        device_options(broker.port(), "d-1", DEVICE, DEVICE_SECRET),
        16,
    );
    device.subscribe(&commands, QoS::AtLeastOnce).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut sent = false;
    loop {
        assert!(Instant::now() < deadline, "the command never arrived");
        match tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !sent => {
                hub.state
                    .publisher
                    .send(publish::TransientMessage {
                        topic: commands.clone(),
                        payload: b"signed command".to_vec(),
                    })
                    .await
                    .unwrap();
                sent = true;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                assert_eq!(p.topic, commands);
                assert!(!p.retain);
                assert_eq!(p.qos, QoS::AtLeastOnce);
                assert_eq!(&p.payload[..], b"signed command");
                break;
            }
            _ => {}
        }
    }
    running.stop().await;
}

/// A store that always fails.
#[derive(Default)]
struct Failing {
    calls: Mutex<usize>,
}

impl DeviceReports for Failing {
    fn registered_key(&self, device: &DeviceId) -> Result<Option<PublicKey>, StoreError> {
        Ok(test_key(device))
    }

    fn state(&self, _: DeviceId, _: DeviceState) -> BoxFuture<'_, Result<(), StoreError>> {
        *self.calls.lock().unwrap() += 1;
        Box::pin(async { Err(StoreError::Storage("disk full".into())) })
    }

    fn events(&self, _: DeviceId, _: EventBatch) -> BoxFuture<'_, Result<Ingested, StoreError>> {
        *self.calls.lock().unwrap() += 1;
        Box::pin(async { Err(StoreError::Storage("disk full".into())) })
    }
}

#[tokio::test]
async fn s9_a_report_the_store_refused_is_not_acknowledged_and_comes_again() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _mosquitto = Mosquitto::start(dir.path(), port);
    let mut hub = hub().await;
    let failing = Arc::new(Failing::default());
    let (first, _cancel) = link(&mut hub, &external(port), Some(failing.clone()));
    connected(&first, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (device, mut eventloop) =
        AsyncClient::new(device_options(port, "d-1", DEVICE, DEVICE_SECRET), 16);
    // Not retained: only redelivery of the unacknowledged message can bring
    // it to the hub again.
    device
        .publish(
            format!("signet/v1/devices/{DEVICE}/state"),
            QoS::AtLeastOnce,
            false,
            signed_state(DEVICE),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while *failing.calls.lock().unwrap() < 3 {
        assert!(Instant::now() < deadline, "the hub never tried to store it");
        let _ = tokio::time::timeout(Duration::from_millis(100), eventloop.poll()).await;
    }
    first.stop().await;
    // The same client id resumes the persistent session (S5).
    let recorded = Arc::new(Recorded::default());
    let (second, _cancel) = link(&mut hub, &external(port), Some(recorded.clone()));
    let deadline = Instant::now() + WAIT;
    while recorded.states.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the unacknowledged report never came again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        recorded.states.lock().unwrap()[0].1.device_id,
        DeviceId::new(DEVICE)
    );
    second.stop().await;
}

/// A CA and a server certificate for `127.0.0.1` / `localhost`, made with
/// the openssl command line in `dir`; returns (ca.pem, cert.pem, key.pem).
fn tls_files(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let cert = dir.join(format!("{name}-server.pem"));
    let ext = dir.join(format!("{name}-san.ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |path: &PathBuf| path.display().to_string();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN=Signet test CA {name}"),
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (ca, cert, key)
}

/// O3: the hub reaches an external broker over `mqtts://`, trusting the CA
/// given in `ca_file`, and publishes its retained state there; a broker
/// whose certificate another CA signed is never trusted.
#[tokio::test]
async fn o3_mqtts_with_a_private_ca_carries_retained_state() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path(), "broker");
    let (other_ca, _, _) = tls_files(dir.path(), "other");
    let tls_port = free_port();
    let plain_port = free_port();
    let _broker = Mosquitto::start_with(
        dir.path(),
        plain_port,
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            ca.display(),
            cert.display(),
            key.display()
        ),
        &[tls_port],
    );
    let tls = |ca: &PathBuf| {
        BrokerConnection::external(&MqttConfig {
            embedded: false,
            url: Some(format!("mqtts://127.0.0.1:{tls_port}")),
            username: Some("signet-hub".into()),
            password: Some(HUB_PASSWORD.into()),
            ca_file: Some(ca.clone()),
            ..MqttConfig::default()
        })
        .unwrap()
    };

    // Trusting another CA: the link never connects.
    let mut untrusting = hub().await;
    let (refused, _cancel) = link(&mut untrusting, &tls(&other_ca), None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        *refused.connections().borrow(),
        0,
        "connected to an untrusted broker"
    );
    refused.stop().await;

    let mut hub = hub().await;
    let (running, _cancel) = link(&mut hub, &tls(&ca), None);
    connected(&running, 1).await;
    let topic = publish_root(&hub).await;
    let got = receive(
        plain_port,
        DEVICE,
        DEVICE_SECRET,
        &["signet/v1/#"],
        &[&topic, HUB_TIME_TOPIC, TRUST_TOPIC],
    )
    .await;
    verify(&device_trust(&hub.data), &got, &hub.root);
    running.stop().await;
}
