//! S4 (DESIGN §1): the hub watches every retained topic it owns —
//! `signet/v1/groups/+/manifest`, `signet/v1/devices/+/assignment`,
//! `signet/v1/trust`, `signet/v1/hub/time` — and puts its own latest signed
//! document back within 5 s when any other client replaces or clears it;
//! junk on a topic it has no document for is cleared. Against the
//! hub-managed mosquitto and an external one with dynamic security driven
//! by the hub (whose own role must let it subscribe to those topics); the
//! poisoner is a client with publish rights there other than the hub. A plain rumqttc client plays the
//! poisoner and another one the observer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use signet_common::ids::DeviceId;
use signet_common::sync::{HUB_TIME_TOPIC, TRUST_TOPIC, assignment_topic, manifest_topic};
use signet_hub::app::SystemClock;
use signet_hub::config::{Config, MqttConfig};
use signet_hub::groups::GroupRef;
use signet_hub::mqtt::dynsec::DynsecAdmin;
use signet_hub::mqtt::reports::FleetReports;
use signet_hub::mqtt::retained::{expected, owned_topic};
use signet_hub::mqtt::{BrokerConnection, HubLink, LinkOptions, RunningLink};
use signet_hub::publish::{self, Actor};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::mosquitto::{Managed, Mosquitto, add_client};
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "d-1";
const HUB_USER: &str = "signet-hub";
const HUB_PASSWORD: &str = "the hub's broker password";
/// The bound S4 sets on a restore.
const RESTORED_WITHIN: Duration = Duration::from_secs(5);
/// The longest a test waits for setup on the broker.
const WAIT: Duration = Duration::from_secs(20);

/// A hub with a root node holding one device, its documents signed and
/// stored, connected to a broker by its real link.
struct Hub {
    state: signet_hub::app::Hub,
    root: String,
    running: Option<RunningLink>,
    _cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn hub(connection: &BrokerConnection) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = signet_hub::init::init(&data, Utc::now()).await.unwrap();
    let config = Config {
        data,
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let mut state = signet_hub::serve::open(config, Arc::new(SystemClock)).unwrap();
    let root = made.root_node.to_string();
    let mut batch = WriteBatch::new();
    batch
        .put(NODE_DEVICES, &format!("{root}/{DEVICE}"), &json!({}))
        .unwrap();
    state.store.apply(batch).await.unwrap();
    let link = HubLink::new(
        connection,
        LinkOptions {
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            keep_alive: Duration::from_secs(5),
            ..LinkOptions::default()
        },
        state.metrics.clone(),
    );
    state.publisher = Arc::new(link.publisher());
    let cancel = CancellationToken::new();
    let reports = Arc::new(FleetReports {
        state: state.clone(),
    });
    let running = link.spawn(state.clone(), reports, cancel.clone());
    let mut connections = running.connections();
    tokio::time::timeout(WAIT, connections.wait_for(|c| *c >= 1))
        .await
        .expect("the hub's link did not connect")
        .unwrap();
    let published = publish::publish(&state, &GroupRef::Node(root.as_str().into()), Actor::hub())
        .await
        .unwrap();
    assert!(published.undelivered.is_empty());
    Hub {
        state,
        root,
        running: Some(running),
        _cancel: cancel,
        _dir: dir,
    }
}

/// A client that records every message it receives, by topic, in order.
struct Client {
    client: AsyncClient,
    seen: Arc<Mutex<BTreeMap<String, Vec<Vec<u8>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    async fn connect(port: u16, id: &str, user: &str, password: &str) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let seen = Arc::new(Mutex::new(BTreeMap::<String, Vec<Vec<u8>>>::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock()
                            .unwrap()
                            .entry(p.topic.clone())
                            .or_default()
                            .push(p.payload.to_vec());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, connected_rx)
            .await
            .expect("the test client did not connect")
            .unwrap();
        Self { client, seen, task }
    }

    async fn subscribe(&self, topics: &[String]) {
        for topic in topics {
            self.client
                .subscribe(topic.as_str(), QoS::AtLeastOnce)
                .await
                .unwrap();
        }
    }

    fn last(&self, topic: &str) -> Option<Vec<u8>> {
        self.seen
            .lock()
            .unwrap()
            .get(topic)
            .and_then(|all| all.last().cloned())
    }

    fn count(&self, topic: &str) -> usize {
        self.seen.lock().unwrap().get(topic).map_or(0, Vec::len)
    }

    async fn publish_retained(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .unwrap();
    }
}

/// Waits until `observer`'s latest message on `topic` is `want`, after at
/// least `after` messages; returns how long that took.
async fn settles_on(
    observer: &Client,
    topic: &str,
    after: usize,
    want: &[u8],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if observer.count(topic) > after && observer.last(topic).as_deref() == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{topic}: not back to the hub's document within {limit:?}; last: {:?}",
            observer
                .last(topic)
                .map(|p| String::from_utf8_lossy(&p[..p.len().min(80)]).into_owned())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the hub holds for `topic`.
fn hubs(hub: &Hub, topic: &str) -> Vec<u8> {
    expected(&hub.state, &owned_topic(topic).unwrap())
        .unwrap()
        .unwrap()
}

/// Poisons and clears every kind of retained topic with `poisoner` and
/// asserts `observer` sees the hub's own document back within 5 s each
/// time, that junk on an unknown group is cleared, and that a fresh
/// subscriber (a newly paired device) gets the hub's documents.
async fn poison_and_clear_every_kind(hub: &Hub, port: u16, poisoner: &Client, fresh: (&str, &str)) {
    let topics = [
        manifest_topic(&hub.root),
        assignment_topic(&DeviceId::from(DEVICE)),
        TRUST_TOPIC.to_owned(),
        HUB_TIME_TOPIC.to_owned(),
    ];
    let observer = Client::connect(port, "observer", fresh.0, fresh.1).await;
    let junk = manifest_topic("no-such-group");
    let mut all = topics.to_vec();
    all.push(junk.clone());
    observer.subscribe(&all).await;
    for topic in &topics {
        // The retained document reaches a subscriber first.
        settles_on(&observer, topic, 0, &hubs(hub, topic), WAIT).await;
        for poison in [
            b"{\"kind\":\"group_manifest\",\"garbage\":true}".to_vec(),
            Vec::new(),
        ] {
            let before = observer.count(topic);
            poisoner.publish_retained(topic, poison.clone()).await;
            // The observer sees the poison, then the hub's document again.
            let took = settles_on(
                &observer,
                topic,
                before + 1,
                &hubs(hub, topic),
                RESTORED_WITHIN,
            )
            .await;
            eprintln!(
                "{topic}: restored after {took:?} ({} poison bytes)",
                poison.len()
            );
        }
    }
    // Junk on a group the hub has no document for is cleared.
    poisoner.publish_retained(&junk, b"junk".to_vec()).await;
    settles_on(&observer, &junk, 1, b"", RESTORED_WITHIN).await;

    // A newly connecting device gets exactly the hub's documents, and
    // nothing on the junk topic.
    let device = Client::connect(port, "fresh-device", fresh.0, fresh.1).await;
    device.subscribe(&all).await;
    for topic in &topics {
        settles_on(&device, topic, 0, &hubs(hub, topic), WAIT).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(device.count(&junk), 0, "junk stayed retained");

    let metrics = &hub.state.metrics;
    for kind in ["group_manifest", "device_assignment", "trust", "hub_time"] {
        assert!(
            metrics.restored(kind) >= 2,
            "{kind}: {}",
            metrics.restored(kind)
        );
    }
    assert!(
        metrics
            .render(&Default::default())
            .contains("signet_retained_restored_total{kind=\"group_manifest\"}")
    );
}

/// S4 on the hub-managed broker: a client with the hub's publish rights
/// other than the hub (a test-only party; devices cannot publish there,
/// S10) replaces or clears each retained hub topic; the hub restores each
/// within 5 s and clears junk on an unknown group.
#[tokio::test]
async fn s4_hub_restores_poisoned_or_cleared_retained_state_on_the_managed_broker() {
    let broker = Managed::start();
    let port = broker.port();
    let admin = broker.broker.admin_settings();
    let rogue = ("rogue-publisher", "rogue password");
    assert!(
        add_client(
            port,
            (&admin.username, &admin.password),
            rogue.0,
            rogue.1,
            signet_hub::mqtt::dynsec::HUB_ROLE,
        )
        .await
    );
    let mut hub = hub(&broker.broker.hub_connection()).await;
    let poisoner = Client::connect(port, "poisoner", rogue.0, rogue.1).await;
    poison_and_clear_every_kind(&hub, port, &poisoner, rogue).await;
    hub.running.take().unwrap().stop().await;
}

/// S4 and O3 on a real mosquitto with dynamic security as the hub sets it
/// up: a second client with publish rights on the hub's topics (a stale or
/// compromised one) replaces or clears each of them; the hub, subscribed
/// through its own role, restores each within 5 s.
#[tokio::test]
async fn s4_o3_hub_restores_poisoned_or_cleared_retained_state_on_mosquitto() {
    let broker = Mosquitto::start().await;
    let admin = DynsecAdmin::connect(broker.admin_settings()).unwrap();
    admin.bootstrap(HUB_USER, Some(HUB_PASSWORD)).await.unwrap();
    let connection = BrokerConnection::external(&MqttConfig {
        embedded: false,
        url: Some(format!("mqtt://{}", broker.addr)),
        username: Some(HUB_USER.into()),
        password: Some(HUB_PASSWORD.into()),
        ..MqttConfig::default()
    })
    .unwrap();
    let port = broker.addr.port();
    let mut hub = hub(&connection).await;
    let poisoner = Client::connect(port, "poisoner", HUB_USER, HUB_PASSWORD).await;
    poison_and_clear_every_kind(&hub, port, &poisoner, (HUB_USER, HUB_PASSWORD)).await;
    hub.running.take().unwrap().stop().await;
}
