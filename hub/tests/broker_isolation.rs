//! The broker isolation matrix (S7, S10, issue 15), run against both
//! brokers Signet manages: the hub-managed mosquitto (`serve`'s default,
//! started with [`signet_hub::serve::start_managed_broker`]) and an external
//! mosquitto the hub administers with `mqtt.dynsec`
//! ([`signet_hub::serve::start_broker_admin`]). The hub runs its real HTTP
//! API and MQTT link; devices are paired through the real pairing flow and
//! log in with the credentials it hands them.
//!
//! A paired device, logged in with its own credential, tries every attack
//! of the issue; each is refused or has no effect, judged by what the
//! broker lets through (an observer holding the hub's role sees every
//! message the broker accepts on the hub's and the devices' topics), by the
//! hub's fleet view, by the retained state a device then reads, and by what
//! the victim receives. Assignment changes move a device's subscriptions at
//! once, and 20 publishes to 3 connected devices cause no reconnect.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::{Value, json};
use signet_common::ids::DeviceId;
use signet_common::sync::{
    HUB_TIME_TOPIC, TRUST_TOPIC, assignment_topic, commands_topic, events_topic, manifest_topic,
    state_topic,
};
use signet_hub::app::{Hub, SystemClock};
use signet_hub::config::{Config, MqttConfig};
use signet_hub::mqtt::RunningLink;
use signet_hub::mqtt::broker::ManagedBroker;
use signet_hub::mqtt::dynsec::HUB_ROLE;
use support::mosquitto::{ADMIN_USER, Mosquitto, add_client};
use support::session::{Session, refused_as_bad_login};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that must not happen.
const QUIET: Duration = Duration::from_millis(1500);
/// How long a test waits for something that must happen.
const WITHIN: Duration = Duration::from_secs(15);

/// Which broker.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// The hub-managed mosquitto.
    Managed,
    /// An external mosquitto administered by the hub (`mqtt.dynsec`).
    External,
}

/// A paired device's credentials.
#[derive(Debug, Clone)]
struct Device {
    id: String,
    secret: String,
}

impl Device {
    /// Logs in with its own credential and client id.
    async fn connect(&self, port: u16) -> Session {
        Session::connect(port, &self.id, Some((&self.id, &self.secret)))
            .await
            .unwrap()
    }
}

/// A running hub on a broker, three paired devices (`a` and `c` on site
/// `n1`, `b` on site `n2`), everything published, and an observer.
struct World {
    base: String,
    http: reqwest::Client,
    token: String,
    root: String,
    n1: String,
    n2: String,
    port: u16,
    a: Device,
    b: Device,
    c: Device,
    link: Option<RunningLink>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _managed: Option<ManagedBroker>,
    _external: Option<Mosquitto>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let made = signet_hub::init::init(&data, Utc::now()).await.unwrap();
        let external = match kind {
            Kind::Managed => None,
            Kind::External => Some(Mosquitto::start().await),
        };
        let mqtt = match &external {
            None => MqttConfig::default(),
            Some(broker) => MqttConfig {
                embedded: false,
                url: Some(format!("mqtt://{}", broker.addr)),
                username: Some(ADMIN_USER.to_owned()),
                password: Some(broker.admin_password.clone()),
                dynsec: true,
                ..MqttConfig::default()
            },
        };
        let config = Config {
            data,
            http_listen: "127.0.0.1:0".parse().unwrap(),
            broker_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate_limit_per_minute: 100_000,
            rate_limit_burst: 100_000,
            mqtt,
            ..Config::default()
        };
        let mut state: Hub = signet_hub::serve::open(config, Arc::new(SystemClock)).unwrap();
        let stop = CancellationToken::new();
        // The same calls as `serve_on`.
        let managed = signet_hub::serve::start_managed_broker(&mut state, stop.child_token())
            .await
            .unwrap();
        signet_hub::serve::start_broker_admin(&mut state, stop.child_token()).unwrap();
        let link = signet_hub::serve::start_mqtt(&mut state, managed.as_ref(), stop.child_token())
            .unwrap();
        let (port, admin) = match (&managed, &external) {
            (Some(broker), _) => {
                let settings = broker.admin_settings();
                (broker.addr().port(), (settings.username, settings.password))
            }
            (None, Some(broker)) => (
                broker.addr.port(),
                (ADMIN_USER.to_owned(), broker.admin_password.clone()),
            ),
            (None, None) => unreachable!(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server_state = state.clone();
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            signet_hub::serve::run(listener, server_state, async move {
                server_stop.cancelled().await;
            })
            .await
            .unwrap();
        });
        let http = reqwest::Client::new();
        let token = login(&http, &base, &made.admin_password).await;
        let mut world = Self {
            base,
            http,
            token,
            root: made.root_node.to_string(),
            n1: String::new(),
            n2: String::new(),
            port,
            a: Device {
                id: String::new(),
                secret: String::new(),
            },
            b: Device {
                id: String::new(),
                secret: String::new(),
            },
            c: Device {
                id: String::new(),
                secret: String::new(),
            },
            link: Some(link),
            stop,
            server,
            _managed: managed,
            _external: external,
            _dir: dir,
        };
        connected(world.link.as_ref().unwrap(), 1).await;
        world.n1 = world.node("site 1").await;
        world.n2 = world.node("site 2").await;
        world.a = world.pair(&world.n1.clone(), 1).await;
        world.b = world.pair(&world.n2.clone(), 2).await;
        world.c = world.pair(&world.n1.clone(), 3).await;
        world.publish_all().await;
        // The observer: a test-only client with the hub's role (the
        // external broker's role appears once the hub's bootstrap ran).
        let observer_password = "observer password";
        let deadline = tokio::time::Instant::now() + WITHIN;
        while !add_client(
            port,
            (&admin.0, &admin.1),
            "observer",
            observer_password,
            HUB_ROLE,
        )
        .await
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hub's role never appeared"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        world
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn node(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/nodes",
                Some(json!({"parent": self.root, "name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Pairs a device into `node` through the real flow.
    async fn pair(&self, node: &str, seed: u8) -> Device {
        let key = base64::engine::general_purpose::STANDARD.encode([seed; 32]);
        let response = self
            .http
            .post(format!("{}/api/v1/device/pairings", self.base))
            .json(&json!({"public_key": key, "agent_version": "0.1.0", "os": "Linux"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        let (ticket, code) = (
            body["ticket"].as_str().unwrap().to_owned(),
            body["code"].as_str().unwrap().to_owned(),
        );
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/devices/pairings/{code}/approve"),
                Some(json!({"node": node, "name": format!("screen {seed}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let answer: Value = self
            .http
            .get(format!("{}/api/v1/device/pairings/{ticket}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Device {
            id: answer["device_id"].as_str().unwrap().to_owned(),
            secret: answer["broker"]["password"].as_str().unwrap().to_owned(),
        }
    }

    async fn publish_all(&self) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/publish",
                Some(json!({"scope": {"kind": "node", "id": self.root}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn fleet(&self, device: &Device) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/fleet/{}", device.id),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The observer, subscribed to every device's reports and every topic
    /// the hub owns.
    async fn observer(&self) -> Session {
        let id = format!("observer-{}", signet_hub::identity::new_id(""));
        let mut observer =
            Session::connect(self.port, &id, Some(("observer", "observer password")))
                .await
                .unwrap();
        for filter in [
            "signet/v1/devices/+/state",
            "signet/v1/devices/+/events",
            "signet/v1/devices/+/assignment",
            "signet/v1/groups/+/manifest",
            TRUST_TOPIC,
            HUB_TIME_TOPIC,
        ] {
            observer.subscribe_granted(filter).await;
        }
        // The retained state it gets on subscribing.
        let _ = observer.messages(QUIET).await;
        observer
    }

    async fn stop(mut self) {
        self.link.take().unwrap().stop().await;
        self.stop.cancel();
        let _ = self.server.await;
    }
}

async fn login(http: &reqwest::Client, base: &str, password: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"name": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn connected(link: &RunningLink, n: u64) {
    let mut connections = link.connections();
    tokio::time::timeout(WITHIN, connections.wait_for(|c| *c >= n))
        .await
        .expect("the hub's link did not connect")
        .unwrap();
}

/// The retained payload on each of `topics` a fresh session of `device`
/// receives.
async fn retained(port: u16, device: &Device, topics: &[String]) -> Vec<(String, String)> {
    let mut session = device.connect(port).await;
    for topic in topics {
        session.subscribe_granted(topic).await;
    }
    let mut got = session.messages(QUIET).await;
    got.sort();
    got
}

/// S7, S10: every attack of issue 15 by device `a` is refused or without
/// effect.
async fn attacks_are_refused(kind: Kind) {
    let world = World::start(kind).await;
    let (a, b, c, port) = (&world.a, &world.b, &world.c, world.port);
    let mut observer = world.observer().await;
    let hub_topics = vec![
        manifest_topic(&world.root),
        manifest_topic(&world.n2),
        assignment_topic(&DeviceId::from(b.id.as_str())),
        TRUST_TOPIC.to_owned(),
        HUB_TIME_TOPIC.to_owned(),
    ];
    // What b reads before the attacks (hub_time changes every minute: only
    // its presence is compared).
    let b_reads: Vec<String> = vec![
        manifest_topic(&world.root),
        manifest_topic(&world.n2),
        assignment_topic(&DeviceId::from(b.id.as_str())),
        TRUST_TOPIC.to_owned(),
    ];
    let before = retained(port, b, &b_reads).await;
    assert_eq!(before.len(), b_reads.len(), "{kind:?}: b reads {before:?}");
    assert_eq!(world.fleet(b).await["connection"], "never_reported");

    let mut victim = b.connect(port).await;
    victim
        .subscribe_granted(&assignment_topic(&DeviceId::from(b.id.as_str())))
        .await;
    let _ = victim.messages(QUIET).await;

    let mut attacker = a.connect(port).await;
    // A forged, retained state for b (online, in sync) and a forged play.
    let forged_state = json!({"device_id": b.id, "online": true, "at": Utc::now(),
        "agent_version": "0.1.0", "os": "forged", "cache_bytes": 1});
    attacker
        .publish(
            &state_topic(&DeviceId::from(b.id.as_str())),
            true,
            &forged_state.to_string(),
        )
        .await;
    let forged_play = json!({"events": [{"id": "forged-1", "kind": "played",
        "item": "c-x", "at": Utc::now(), "duration_ms": 999_000}]});
    attacker
        .publish(
            &events_topic(&DeviceId::from(b.id.as_str())),
            false,
            &forged_play.to_string(),
        )
        .await;
    // Retained junk and empty retained messages on every hub topic.
    for topic in &hub_topics {
        attacker.publish(topic, true, "{\"junk\":true}").await;
        attacker.publish(topic, true, "").await;
    }
    // The control: a's own state does get through (so the observer would
    // have seen a forgery the broker let pass).
    let own_state = state_topic(&DeviceId::from(a.id.as_str()));
    attacker.publish(&own_state, true, "{\"own\":true}").await;
    let let_through = observer.messages(QUIET).await;
    assert_eq!(
        let_through,
        [(own_state, "{\"own\":true}".to_owned())],
        "{kind:?}: the broker let a's forgeries through"
    );
    // The fleet view: b never reported.
    let view = world.fleet(b).await;
    assert_eq!(view["connection"], "never_reported", "{kind:?}: {view}");
    // What b reads is still the hub's (not junk, not cleared).
    let after = retained(port, b, &b_reads).await;
    assert_eq!(after, before, "{kind:?}: b's retained documents changed");
    let time = retained(port, b, &[HUB_TIME_TOPIC.to_owned()]).await;
    assert!(
        time.len() == 1 && time[0].1.contains("\"sig\""),
        "{kind:?}: hub/time is {time:?}"
    );
    assert!(
        victim.messages(QUIET).await.is_empty(),
        "{kind:?}: the victim received forgeries"
    );

    // Subscriptions: `#`, b's topics and an unassigned group's manifest are
    // refused, and nothing arrives.
    for filter in [
        "#".to_owned(),
        "signet/v1/#".to_owned(),
        "signet/v1/devices/+/assignment".to_owned(),
        assignment_topic(&DeviceId::from(b.id.as_str())),
        commands_topic(&DeviceId::from(b.id.as_str())),
        state_topic(&DeviceId::from(b.id.as_str())),
        manifest_topic(&world.n2),
    ] {
        assert_eq!(
            attacker.subscribe(&filter).await,
            SubscribeReasonCode::Failure,
            "{kind:?}: {filter}"
        );
    }
    // A publish that would match them: nothing reaches a.
    world.publish_all().await;
    let (status, body) = world
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/devices/{}/commands", b.id),
            Some(json!({"action": "resync"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let seen = attacker.messages(QUIET).await;
    assert!(
        seen.iter().all(|(topic, _)| topic.contains(&a.id)),
        "{kind:?}: a received others' messages: {seen:?}"
    );

    // Client ids: b's (victim not kicked) and the hub's (hub stays).
    let hub_connections = *world.link.as_ref().unwrap().connections().borrow();
    assert!(refused_as_bad_login(
        Session::connect(port, &b.id, Some((&a.id, &a.secret))).await
    ));
    assert!(refused_as_bad_login(
        Session::connect(port, "signet-hub", Some((&a.id, &a.secret))).await
    ));
    assert!(
        !victim.closed_within(QUIET).await,
        "{kind:?}: b was kicked off"
    );
    assert_eq!(
        *world.link.as_ref().unwrap().connections().borrow(),
        hub_connections,
        "{kind:?}: the hub was knocked off its broker"
    );
    // The hub's user name with a device's secret, and anonymous clients.
    assert!(refused_as_bad_login(
        Session::connect(port, "signet-hub", Some(("signet-hub", &a.secret))).await
    ));
    assert!(refused_as_bad_login(
        Session::connect(port, "anonymous", None).await
    ));
    // c, on a's site, is untouched by all this and still reads its site.
    let site = retained(port, c, &[manifest_topic(&world.n1)]).await;
    assert_eq!(site.len(), 1, "{kind:?}");
    drop((attacker, victim, observer));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_s10_a_device_cannot_tamper_on_the_managed_broker() {
    attacks_are_refused(Kind::Managed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_s10_a_device_cannot_tamper_on_an_external_mosquitto() {
    attacks_are_refused(Kind::External).await;
}

/// S7, S10: moving a device to another site lets it read the new site's
/// manifest and no longer the old one, at once.
async fn assignment_change_moves_subscriptions(kind: Kind) {
    let world = World::start(kind).await;
    let (a, port) = (&world.a, world.port);
    let mut session = a.connect(port).await;
    session.subscribe_granted(&manifest_topic(&world.n1)).await;
    assert_eq!(
        session.subscribe(&manifest_topic(&world.n2)).await,
        SubscribeReasonCode::Failure
    );
    let (status, body) = world
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/devices/{}", a.id),
            Some(json!({"node": world.n2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["broker_error"].is_null(), "{kind:?}: {body}");
    // A role change may end the session: log in again.
    drop(session);
    let mut session = a.connect(port).await;
    session.subscribe_granted(&manifest_topic(&world.n2)).await;
    assert_eq!(
        session.subscribe(&manifest_topic(&world.n1)).await,
        SubscribeReasonCode::Failure,
        "{kind:?}: a still reads its old site"
    );
    drop(session);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_s10_an_assignment_change_moves_subscriptions_on_the_managed_broker() {
    assignment_change_moves_subscriptions(Kind::Managed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_s10_an_assignment_change_moves_subscriptions_on_an_external_mosquitto() {
    assignment_change_moves_subscriptions(Kind::External).await;
}

/// An agent-like session (persistent session, manual acks, its own
/// topics); counts its CONNACKs.
async fn agent_like(
    port: u16,
    device: &Device,
    topics: Vec<String>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
    let mut options = MqttOptions::new(device.id.clone(), "127.0.0.1", port);
    options
        .set_credentials(device.id.clone(), device.secret.clone())
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let connects = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let (counted, messages) = (connects.clone(), received.clone());
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    counted.fetch_add(1, Ordering::SeqCst);
                    for topic in &topics {
                        let _ = client.try_subscribe(topic, QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    messages.fetch_add(1, Ordering::SeqCst);
                    let _ = client.ack(&p).await;
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (connects, received)
}

/// Issue 15: rumqttd dropped agents on every publish; 20 publishes to 3
/// connected devices now cause no reconnect.
async fn publishes_cause_no_reconnects(kind: Kind) {
    let world = World::start(kind).await;
    let port = world.port;
    let mut counters = Vec::new();
    for (device, site) in [
        (&world.a, &world.n1),
        (&world.b, &world.n2),
        (&world.c, &world.n1),
    ] {
        let id = DeviceId::from(device.id.as_str());
        let topics = vec![
            assignment_topic(&id),
            commands_topic(&id),
            manifest_topic(&world.root),
            manifest_topic(site),
            TRUST_TOPIC.to_owned(),
            HUB_TIME_TOPIC.to_owned(),
        ];
        counters.push(agent_like(port, device, topics).await);
    }
    let deadline = tokio::time::Instant::now() + WITHIN;
    while counters.iter().any(|(c, _)| c.load(Ordering::SeqCst) == 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind:?}: agents never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(QUIET).await;
    let received_before = counters[0].1.load(Ordering::SeqCst);
    for i in 0..20 {
        // Each publish changes something: a device's variables re-sign its assignment.
        let (status, body) = world
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/devices/{}/variables", world.a.id),
                Some(json!({"variables": {"1": format!("value {i}")}})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        world.publish_all().await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connects: Vec<u64> = counters
        .iter()
        .map(|(c, _)| c.load(Ordering::SeqCst))
        .collect();
    let received = counters[0].1.load(Ordering::SeqCst) - received_before;
    eprintln!(
        "{kind:?}: connects per device after 20 publishes: {connects:?}; \
         a received {received} messages meanwhile"
    );
    assert!(
        received >= 20,
        "{kind:?}: a received only {received} messages"
    );
    assert_eq!(connects, [1, 1, 1], "{kind:?}: devices reconnected");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_twenty_publishes_cause_no_reconnects_on_the_managed_broker() {
    publishes_cause_no_reconnects(Kind::Managed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_twenty_publishes_cause_no_reconnects_on_an_external_mosquitto() {
    publishes_cause_no_reconnects(Kind::External).await;
}
