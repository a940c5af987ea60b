//! Device-signed reports (S11, issue 15 Deliver 2): on a broker that lets
//! anyone publish anything — a real mosquitto with anonymous access and no
//! access rules, started here on a random loopback port — forged state and
//! event reports for a device (unsigned, signed by a wrong key, by another
//! device's key, another device's genuine report moved to its topic, a
//! replayed payload of another device, a payload naming another device)
//! leave its fleet view (`GET /api/v1/fleet/{id}`) and the usage report
//! (`GET /api/v1/reports/usage`) exactly as they were, are acknowledged
//! (never redelivered) and are counted in
//! `signet_device_reports_refused_total{reason}`; a report signed by the
//! device's registered key is accepted. The same holds for the HTTP event
//! upload. Real hub router over HTTP, the hub's real MQTT link, real
//! rumqttc clients.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use signet_common::envelope::{self, DocumentKind, SigningKey};
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::signed::sign_report;
use signet_common::sync::{DeviceState, EventBatch, Outcome, PlayEvent, events_topic, state_topic};
use signet_hub::app::Clock as _;
use signet_hub::config::MqttConfig;
use signet_hub::mqtt::reports::FleetReports;
use signet_hub::mqtt::{BrokerConnection, HubLink, LinkOptions, RunningLink};
use support::states::{device_state, playing};
use support::{TestHub, device_key, register_device};
use tokio_util::sync::CancellationToken;

/// The device whose reports are forged.
const VICTIM: &str = "d-victim";
/// Another paired device, whose genuine reports are replayed.
const OTHER: &str = "d-other";
/// The longest any wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(20);

/// A real mosquitto that takes anonymous clients and has no access rules
/// (every client may publish on every topic), killed by its own pid with
/// SIGKILL when dropped.
struct OpenBroker {
    /// The broker process.
    child: Child,
    /// Its loopback port.
    port: u16,
}

impl OpenBroker {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join("open.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(support::mosquitto::MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }
}

impl Drop for OpenBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hub's real MQTT link to `broker`, feeding the fleet.
async fn link(hub: &TestHub, broker: &OpenBroker) -> (RunningLink, CancellationToken) {
    let connection = BrokerConnection::external(&MqttConfig {
        embedded: false,
        url: Some(format!("mqtt://127.0.0.1:{}", broker.port)),
        ..MqttConfig::default()
    })
    .unwrap();
    let options = LinkOptions {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        keep_alive: Duration::from_secs(5),
        ..LinkOptions::default()
    };
    let link = HubLink::new(&connection, options, hub.state.metrics.clone());
    let cancel = CancellationToken::new();
    let running = link.spawn(
        hub.state.clone(),
        Arc::new(FleetReports {
            state: hub.state.clone(),
        }),
        cancel.clone(),
    );
    let mut connections = running.connections();
    tokio::time::timeout(WAIT, connections.wait_for(|c| *c >= 1))
        .await
        .expect("the hub's link did not connect")
        .unwrap();
    (running, cancel)
}

/// An anonymous client of the open broker: it publishes whatever it is
/// given, on any topic, and waits for each PUBACK.
struct Publisher {
    /// The client.
    client: AsyncClient,
    /// PUBACKs from the event loop task.
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Publisher {
    fn connect(broker: &OpenBroker, id: &str) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(2 << 20, 2 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (ack_tx, acks) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        if ack_tx.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Self { client, acks }
    }

    async fn publish(&mut self, topic: &str, retain: bool, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
        tokio::time::timeout(WAIT, self.acks.recv())
            .await
            .expect("the broker acknowledged the publish")
            .unwrap();
    }
}

/// A state of `device`: online, playing, with a cache of `cache_bytes`.
fn state(hub: &TestHub, device: &str, cache_bytes: u64) -> DeviceState {
    DeviceState {
        now_playing: playing("c-forged", hub.clock.now()),
        cache_bytes,
        ..device_state(device, hub.clock.now())
    }
}

/// A batch of one `played` event of `device`, `duration_ms` long.
fn played(hub: &TestHub, device: &str, seed: u64, duration_ms: u64) -> EventBatch {
    EventBatch {
        events: vec![PlayEvent {
            id: format!("{seed:032x}"),
            device_id: DeviceId::from(device),
            item: ItemId::from("c-1"),
            access_group: None,
            license_version: None,
            start: hub.clock.now() - TimeDelta::minutes(5),
            duration_ms,
            outcome: Outcome::Played,
            skip_reason: None,
            country: None,
            region: None,
            os: "test os".into(),
            agent_version: "0.1.0".into(),
        }],
    }
}

/// `envelope` with its `key_id` replaced by `key`'s id.
fn claiming(envelope: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut object: Value = serde_json::from_slice(envelope).unwrap();
    object["key_id"] = json!(key.key_id().to_string());
    serde_json::to_vec(&object).unwrap()
}

/// `GET path` as the admin; must answer 200.
async fn read(hub: &TestHub, path: &str) -> Value {
    let (status, body) = hub.get(&hub.admin, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// `signet_device_reports_refused_total` by reason, as `/metrics` shows
/// it over HTTP.
async fn refused_in_metrics(hub: &TestHub) -> BTreeMap<String, u64> {
    let text = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("signet_device_reports_refused_total{reason=\""))
        .map(|rest| {
            let (reason, value) = rest.split_once("\"} ").unwrap();
            (reason.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// S11: forged state and events for a device — no signature, a wrong key
/// (also claiming the device's key id), another device's key, another
/// device's genuine report moved to its topic, a replayed payload of
/// another device, a payload naming another device, junk — leave its fleet
/// view and the usage report unchanged and are each counted as refused; a
/// report signed by the device's registered key is accepted.
#[tokio::test]
async fn s11_forged_reports_leave_the_fleet_view_and_reports_unchanged() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let victim_key = register_device(&hub, &site, VICTIM, "victim secret").await;
    let other_key = register_device(&hub, &site, OTHER, "other secret").await;
    let dir = tempfile::tempdir().unwrap();
    let broker = OpenBroker::start(dir.path());
    let (running, cancel) = link(&hub, &broker).await;
    let mut mallory = Publisher::connect(&broker, "mallory");
    let victim = DeviceId::from(VICTIM);
    let other = DeviceId::from(OTHER);

    // The other device reports, signed by its own key: accepted (state and
    // events). These are also the genuine reports replayed below.
    let other_state = sign_report(&state(&hub, OTHER, 7), &other_key).unwrap();
    let other_events = sign_report(&played(&hub, OTHER, 1, 3_000), &other_key).unwrap();
    mallory
        .publish(&state_topic(&other), true, other_state.clone())
        .await;
    mallory
        .publish(&events_topic(&other), false, other_events.clone())
        .await;
    eventually("the other device's signed reports are stored", async || {
        let view = read(&hub, &format!("/api/v1/fleet/{OTHER}")).await;
        let usage = read(&hub, "/api/v1/reports/usage").await;
        let stored = view["online"] == true && usage["events"].as_array().unwrap().len() == 1;
        if !stored {
            // The link counts as connected at the broker's CONNACK, before
            // its subscriptions reach the broker; events are not retained,
            // so a batch sent in between is dropped. Send it again: it is
            // stored once by its event id (U2).
            mallory
                .publish(&events_topic(&other), false, other_events.clone())
                .await;
        }
        stored
    })
    .await;
    let view = read(&hub, &format!("/api/v1/fleet/{OTHER}")).await;
    assert_eq!(view["cache_bytes"], 7, "{view}");

    let victim_before = read(&hub, &format!("/api/v1/fleet/{VICTIM}")).await;
    assert_eq!(victim_before["online"], false, "{victim_before}");
    let usage_before = read(&hub, "/api/v1/reports/usage").await;
    assert_eq!(refused_in_metrics(&hub).await, BTreeMap::new());

    // The forgeries: (topic, retained, payload, the reason it is refused).
    let stranger = device_key();
    let forged_state = state(&hub, VICTIM, 999);
    let forged_events = played(&hub, VICTIM, 2, 999_000);
    let state_of_victim = state_topic(&victim);
    let events_of_victim = events_topic(&victim);
    let forgeries: Vec<(&str, String, bool, Vec<u8>, &str)> = vec![
        (
            "no signature (state)",
            state_of_victim.clone(),
            true,
            serde_json::to_vec(&forged_state).unwrap(),
            "unsigned",
        ),
        (
            "no signature (events)",
            events_of_victim.clone(),
            false,
            serde_json::to_vec(&forged_events).unwrap(),
            "unsigned",
        ),
        (
            "a wrong key (state)",
            state_of_victim.clone(),
            true,
            sign_report(&forged_state, &stranger).unwrap(),
            "wrong_key",
        ),
        (
            "a wrong key claiming the victim's key id (events)",
            events_of_victim.clone(),
            false,
            claiming(
                &sign_report(&forged_events, &stranger).unwrap(),
                &victim_key,
            ),
            "bad_signature",
        ),
        (
            "another device's key (state)",
            state_of_victim.clone(),
            true,
            sign_report(&forged_state, &other_key).unwrap(),
            "wrong_key",
        ),
        (
            "another device's key (events)",
            events_of_victim.clone(),
            false,
            sign_report(&forged_events, &other_key).unwrap(),
            "wrong_key",
        ),
        (
            "a valid signature on another device's topic (state)",
            state_of_victim.clone(),
            true,
            other_state.clone(),
            "wrong_key",
        ),
        (
            "a replayed payload of another device (events)",
            events_of_victim.clone(),
            false,
            other_events.clone(),
            "wrong_key",
        ),
        (
            "a signed envelope of the wrong kind (events as state)",
            state_of_victim.clone(),
            true,
            sign_report(&forged_events, &victim_key).unwrap(),
            "wrong_kind",
        ),
        (
            "a payload naming another device, signed by the victim's key",
            state_of_victim.clone(),
            true,
            sign_report(&state(&hub, OTHER, 5), &victim_key).unwrap(),
            "other_device",
        ),
        (
            "junk",
            state_of_victim.clone(),
            true,
            b"\x00\xffnot a report".to_vec(),
            "malformed",
        ),
        (
            "a signed payload out of its bounds",
            events_of_victim.clone(),
            false,
            envelope::sign(DocumentKind::DeviceEvents, b"{\"events\": 1}", &victim_key),
            "bad_payload",
        ),
    ];
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (what, topic, retain, payload, reason) in forgeries {
        mallory.publish(&topic, retain, payload).await;
        let count = expected.entry(reason.to_owned()).or_default();
        *count += 1;
        let count = *count;
        eventually(&format!("{what} is refused as {reason}"), async || {
            hub.state.metrics.refused_reports(reason) >= count
        })
        .await;
    }
    let total: u64 = expected.values().sum();
    assert_eq!(
        refused_in_metrics(&hub).await,
        expected,
        "refusals by reason"
    );

    // Nothing changed: not the victim's view, not the usage report.
    assert_eq!(
        read(&hub, &format!("/api/v1/fleet/{VICTIM}")).await,
        victim_before
    );
    assert_eq!(read(&hub, "/api/v1/reports/usage").await, usage_before);

    // The refused messages were acknowledged: when the hub's persistent
    // session resumes, none is delivered again. Only the retained message
    // of the victim's state topic comes again, because the hub subscribes
    // anew: the last retained forgery (the junk), refused once more.
    running.stop().await;
    cancel.cancel();
    let (running, _cancel) = link(&hub, &broker).await;
    eventually("the retained junk is refused again", async || {
        hub.state.metrics.refused_reports("malformed") >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = refused_in_metrics(&hub).await;
    expected.insert("malformed".to_owned(), 2);
    assert_eq!(again, expected, "nothing but the retained junk came again");
    assert_eq!(again.values().sum::<u64>(), total + 1);

    // The victim itself, signing with its registered key: accepted.
    mallory
        .publish(
            &state_of_victim,
            true,
            sign_report(&state(&hub, VICTIM, 11), &victim_key).unwrap(),
        )
        .await;
    mallory
        .publish(
            &events_of_victim,
            false,
            sign_report(&played(&hub, VICTIM, 3, 2_000), &victim_key).unwrap(),
        )
        .await;
    eventually("the victim's signed reports are stored", async || {
        let view = read(&hub, &format!("/api/v1/fleet/{VICTIM}")).await;
        let usage = read(&hub, "/api/v1/reports/usage").await;
        view["online"] == true && usage["events"].as_array().unwrap().len() == 2
    })
    .await;
    let view = read(&hub, &format!("/api/v1/fleet/{VICTIM}")).await;
    assert_eq!(view["cache_bytes"], 11, "{view}");
    let usage = read(&hub, "/api/v1/reports/usage").await;
    let durations: Vec<u64> = usage["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["duration_ms"].as_u64().unwrap())
        .collect();
    assert!(!durations.contains(&999_000), "{usage}");
    running.stop().await;
}

/// S11: the HTTP event upload takes only a batch signed by the key of the
/// device its credentials name: unsigned, a wrong key and another device's
/// key are 403, a batch about another device is 400; nothing of them is
/// stored and each is counted; the device's own signed batch is stored.
#[tokio::test]
async fn s11_http_event_upload_needs_the_device_signature() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let victim_key = register_device(&hub, &site, VICTIM, "victim secret").await;
    let other_key = register_device(&hub, &site, OTHER, "other secret").await;
    let upload = async |body: Vec<u8>| {
        let response = hub
            .client
            .post(format!("{}/api/v1/device/events", hub.base))
            .basic_auth(VICTIM, Some("victim secret"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    let forged = played(&hub, VICTIM, 9, 999_000);
    for (body, status, code) in [
        (
            serde_json::to_vec(&forged).unwrap(),
            StatusCode::FORBIDDEN,
            "report_not_signed_by_device",
        ),
        (
            sign_report(&forged, &device_key()).unwrap(),
            StatusCode::FORBIDDEN,
            "report_not_signed_by_device",
        ),
        (
            sign_report(&forged, &other_key).unwrap(),
            StatusCode::FORBIDDEN,
            "report_not_signed_by_device",
        ),
        (
            sign_report(&played(&hub, OTHER, 10, 1_000), &victim_key).unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_events",
        ),
    ] {
        let (got, body) = upload(body).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body["error"], code, "{body}");
    }
    let usage = read(&hub, "/api/v1/reports/usage").await;
    assert_eq!(usage["events"], json!([]), "{usage}");
    assert_eq!(
        refused_in_metrics(&hub).await,
        [("unsigned", 1), ("wrong_key", 2), ("other_device", 1)]
            .into_iter()
            .map(|(r, n)| (r.to_owned(), n))
            .collect()
    );

    let (status, body) =
        upload(sign_report(&played(&hub, VICTIM, 11, 4_000), &victim_key).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 1);
    let usage = read(&hub, "/api/v1/reports/usage").await;
    assert_eq!(usage["events"].as_array().unwrap().len(), 1, "{usage}");
    assert_eq!(usage["events"][0]["duration_ms"], 4_000);
}
