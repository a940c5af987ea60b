//! The live fleet stream (C3, U4, T4): `GET /api/v1/fleet/stream` read by a
//! real server-sent-events client (reqwest, streaming) against a real hub;
//! device state goes in through `fleet::record_state`, as the MQTT
//! subscriber hands it over.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::sync::DeviceState;
use signet_hub::devices::{DEVICES, Device};
use signet_hub::fleet;
use signet_hub::fleet::stream::{self, CHANNEL_CAPACITY, FleetEvent};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::TestHub;
use support::states::device_state;

/// One server-sent event.
#[derive(Debug)]
struct SseEvent {
    /// Its `event:` name.
    name: String,
    /// Its `data:`, as JSON.
    data: Value,
}

/// A server-sent-events client over one streaming response.
struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// Opens the stream with `token`.
    async fn open(hub: &TestHub, token: &str) -> Self {
        let response = hub
            .client
            .get(format!("{}/api/v1/fleet/stream", hub.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); panics after 10 s without one.
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut name = String::from("message");
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if !data.is_empty() {
                        return SseEvent {
                            name,
                            data: serde_json::from_str(&data).unwrap(),
                        };
                    }
                }
                let chunk = self.response.chunk().await.unwrap().expect("stream ended");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("no event within 10 s")
    }

    /// Events up to and including the first `device` event.
    async fn until_device(&mut self) -> (Vec<SseEvent>, Value) {
        let mut before = Vec::new();
        loop {
            let event = self.next().await;
            if event.name == "device" {
                return (before, event.data);
            }
            before.push(event);
        }
    }

    /// The next `summary` event's data.
    async fn next_summary(&mut self) -> Value {
        loop {
            let event = self.next().await;
            if event.name == "summary" {
                return event.data;
            }
        }
    }
}

/// A paired device record `device` at `node` (as pairing stores it).
async fn attach(hub: &TestHub, node: &str, device: &str) {
    let record = Device {
        id: DeviceId::from(device),
        name: format!("Screen {device}"),
        node: NodeId::from(node),
        public_key: String::new(),
        os: "Debian 12".into(),
        agent_version: "0.1.0".into(),
        paired_at: Utc::now(),
        paired_by: UserId::from("test"),
        secret_hash: String::new(),
        last_command_version: 0,
        variables: BTreeMap::new(),
    };
    let mut batch = WriteBatch::new();
    batch.put(DEVICES, device, &record).unwrap();
    batch
        .put(NODE_DEVICES, &format!("{node}/{device}"), &json!({}))
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
}

/// `device` reports online (or not) at the hub's now.
async fn report(hub: &TestHub, device: &str, online: bool) {
    let state = DeviceState {
        online,
        os: "Debian 12".into(),
        cache_bytes: 1024,
        disk_free_bytes: Some(4_000_000_000),
        temperature_c: Some(48.0),
        ..device_state(device, signet_hub::app::Clock::now(&*hub.clock))
    };
    fleet::record_state(&hub.state, &DeviceId::from(device), state)
        .await
        .unwrap();
}

/// Two tenants under the root, one device each; a Viewer of tenant A.
async fn two_tenants(hub: &TestHub) -> String {
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    attach(hub, &a, "d-a").await;
    attach(hub, &b, "d-b").await;
    let (_, viewer) = hub.user("anna", "viewer", &[&a]).await;
    viewer
}

/// C3, U4, T4: the stream opens with the caller's totals; after a state
/// report the caller sees its own device's view (as `GET
/// /api/v1/fleet/{device}` answers it) and new totals; another tenant's
/// device, reported first, never shows.
#[tokio::test]
async fn c3_stream_shows_own_devices_only() {
    let hub = TestHub::start().await;
    let viewer = two_tenants(&hub).await;
    let mut stream = SseClient::open(&hub, &viewer).await;
    let first = stream.next().await;
    assert_eq!(first.name, "summary");
    assert_eq!(first.data["attached"], 1, "{}", first.data);
    assert_eq!(first.data["online"], 0);

    report(&hub, "d-b", true).await;
    report(&hub, "d-a", true).await;
    let (before, device) = stream.until_device().await;
    assert_eq!(device["device_id"], "d-a", "{device}");
    assert!(
        before.iter().all(|e| e.name != "device"),
        "nothing of tenant B: {before:?}"
    );
    assert_eq!(device["online"], true);
    let (_, served) = hub.get(&viewer, "/api/v1/fleet/d-a").await;
    assert_eq!(
        device, served,
        "the same object as GET /api/v1/fleet/{{device}}"
    );
    let summary = stream.next_summary().await;
    assert_eq!(summary["online"], 1, "{summary}");
    let (_, served) = hub.get(&viewer, "/api/v1/fleet/summary").await;
    assert_eq!(summary, served);

    // The admin sees both tenants' devices.
    let mut admin = SseClient::open(&hub, &hub.admin).await;
    assert_eq!(admin.next().await.data["attached"], 2);
    report(&hub, "d-b", true).await;
    let (_, device) = admin.until_device().await;
    assert_eq!(device["device_id"], "d-b");
}

/// C3, U4: a device whose heartbeats stop turns offline on the stream at
/// its deadline (no message arrives: the hub's clock passes
/// `heartbeat_timeout_secs`), with new totals.
#[tokio::test]
async fn c3_u4_heartbeat_timeout_reaches_the_stream() {
    let hub = TestHub::start_with(|c| {
        c.heartbeat_timeout_secs = 60;
        c.token_ttl_secs = 86_400;
    })
    .await;
    let viewer = two_tenants(&hub).await;
    report(&hub, "d-a", true).await;
    let mut stream = SseClient::open(&hub, &viewer).await;
    let first = stream.next().await;
    assert_eq!(first.data["online"], 1, "{}", first.data);

    hub.clock.advance(TimeDelta::seconds(61));
    let (_, device) = stream.until_device().await;
    assert_eq!(device["device_id"], "d-a");
    assert_eq!(device["online"], false, "{device}");
    assert_eq!(device["connection"], "offline");
    let summary = stream.next_summary().await;
    assert_eq!(
        (&summary["online"], &summary["offline"]),
        (&json!(0), &json!(1))
    );
}

/// C3, T4: a device moved out of the caller's domain leaves its stream
/// with `resync` and totals without it; moved in, it shows up.
#[tokio::test]
async fn c3_a_device_moved_away_means_resync() {
    let hub = TestHub::start().await;
    let viewer = two_tenants(&hub).await;
    let (_, nodes) = hub.get(&hub.admin, "/api/v1/nodes").await;
    let node_b = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "Tenant B")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::open(&hub, &viewer).await;
    assert_eq!(stream.next().await.data["attached"], 1);
    let (status, body) = hub
        .patch(&hub.admin, "/api/v1/devices/d-a", json!({"node": node_b}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = stream.next().await;
    assert_eq!(event.name, "resync", "{event:?}");
    assert_eq!(stream.next_summary().await["attached"], 0);

    let mut admin = SseClient::open(&hub, &hub.admin).await;
    assert_eq!(admin.next().await.data["attached"], 2);
    let (status, _) = hub
        .patch(&hub.admin, "/api/v1/devices/d-b", json!({"name": "Lobby"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, device) = admin.until_device().await;
    assert_eq!(device["device_id"], "d-b");
}

/// C3: many clients at once each see the change; past the stream cap
/// (a quarter of `http_max_connections`) a client gets 503
/// `too_many_streams`, and a slot frees when a client leaves.
#[tokio::test]
async fn c3_many_clients_and_a_cap() {
    let hub = TestHub::start_with(|c| c.http_max_connections = 64).await;
    let viewer = two_tenants(&hub).await;
    let cap = hub.state.fleet_feed.max_streams();
    assert_eq!(cap, 16);
    let mut clients = Vec::new();
    for i in 0..cap {
        let token = if i % 2 == 0 { &viewer } else { &hub.admin };
        let mut client = SseClient::open(&hub, token).await;
        assert_eq!(client.next().await.name, "summary");
        clients.push(client);
    }
    let (status, body) = hub.get(&hub.admin, "/api/v1/fleet/stream").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "too_many_streams");

    report(&hub, "d-a", true).await;
    for client in &mut clients {
        let (_, device) = client.until_device().await;
        assert_eq!(device["device_id"], "d-a");
    }
    drop(clients.pop());
    let mut again = None;
    for _ in 0..50 {
        let response = hub
            .client
            .get(format!("{}/api/v1/fleet/stream", hub.base))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            again = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a slot frees when a client leaves");
}

/// C3: a subscriber that falls more than the broadcast's capacity behind
/// gets `resync` (and fresh totals) instead of a silent gap.
#[tokio::test]
async fn c3_a_lagging_subscriber_is_told_to_resync() {
    let hub = TestHub::start().await;
    let viewer = two_tenants(&hub).await;
    let session_key = {
        let (_, me) = hub.get(&viewer, "/api/v1/session").await;
        let id = UserId::from(me["user"]["id"].as_str().unwrap());
        (signet_hub::identity::token_key(&viewer), id)
    };
    let mut stream = stream::subscribe(&hub.state, session_key.0, session_key.1)
        .await
        .unwrap();
    assert!(matches!(stream.next().await, Some(FleetEvent::Summary(_))));
    let device = DeviceId::from("d-a");
    for _ in 0..CHANNEL_CAPACITY + 10 {
        stream::device_changed(&hub.state, &device);
    }
    assert_eq!(stream.next().await, Some(FleetEvent::Resync));
    assert!(matches!(stream.next().await, Some(FleetEvent::Summary(c)) if c.attached == 1));
    // Afterwards it follows again.
    stream::device_changed(&hub.state, &device);
    assert!(matches!(stream.next().await, Some(FleetEvent::Device(d)) if d.device_id == device));
}

/// C3: the stream needs a session like every fleet route (401 without).
#[tokio::test]
async fn c3_stream_needs_a_session() {
    let hub = TestHub::start().await;
    let (status, body) = hub
        .call(reqwest::Method::GET, "/api/v1/fleet/stream", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

/// C3: a stopping hub ends its live streams (they never end by
/// themselves), so its graceful shutdown finishes.
#[tokio::test]
async fn c3_streams_end_when_the_hub_stops() {
    let hub = TestHub::start().await;
    let mut stream = SseClient::open(&hub, &hub.admin).await;
    assert_eq!(stream.next().await.name, "summary");
    drop(hub);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.response.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end with the hub");
}
