//! Fleet status, proof of play, usage reports and alerts (U1–U4, L8, S9,
//! T4): device state recorded through `fleet::record_state`, events through
//! `fleet::ingest_events` (the calls the MQTT subscriber makes), desired
//! versions from real publications, reports read back over HTTP (CSV parsed
//! with the csv crate), and alerts mailed to a real SMTP listener and POSTed
//! to a real local webhook server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::digest::Sha256;
use signet_common::ids::{DeviceId, UserId};
use signet_common::sync::{
    AppliedDocument, DeviceState, EventBatch, PendingActivation, PlayEvent, RefusedDocument,
};
use signet_hub::access_groups::MemberRef;
use signet_hub::app::{Clock as _, Hub};
use signet_hub::config::Config;
use signet_hub::fleet::alerts::{self, AlertOptions, Webhook, WebhookOptions};
use signet_hub::fleet::{self, Ingested, Liveness};
use signet_hub::mail::sender::{MailSender, SenderOptions};
use signet_hub::mail::{OUTBOX, OutboxEntry};
use signet_hub::publish;
use signet_hub::store::WriteBatch;
use support::smtp::{SmtpSink, smtp_to};
use support::states::{device_state, playing};
use support::{ManualClock, TestHub, assert_error, report_all_in_use};
use tokio_util::sync::CancellationToken;

// ------------------------------------------------------------- helpers

/// A hub whose tokens outlive the hours these tests move the clock by.
async fn hub() -> TestHub {
    TestHub::start_with(|c| c.token_ttl_secs = 30 * 86_400).await
}

/// Attaches `device` at `node` (as pairing will) and, with `group`, makes
/// it an active member of that access group.
async fn attach(hub: &TestHub, node: &str, device: &str, group: Option<&str>) {
    let mut batch = WriteBatch::new();
    support::paired_in(&mut batch, node, device, "fleet-secret");
    if let Some(group) = group {
        support::put_member(
            &mut batch,
            hub,
            group,
            MemberRef::Device {
                device_id: DeviceId::from(device),
            },
            TimeDelta::hours(1),
        );
    }
    hub.state.store.apply(batch).await.unwrap();
}

async fn publish_node(hub: &TestHub, node: &str) {
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": node}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Moves the hub's clock on by `by` while the device keeps reporting
/// `state` every minute — heartbeats well within the default 180 s
/// `heartbeat_timeout_secs` — so it stays online (U4).
async fn heartbeating(hub: &TestHub, state: &mut DeviceState, by: TimeDelta) {
    let device = state.device_id.clone();
    let mut left = by;
    while left > TimeDelta::zero() {
        let step = left.min(TimeDelta::minutes(1));
        hub.clock.advance(step);
        left -= step;
        state.at = hub.clock.now();
        fleet::record_state(&hub.state, &device, state.clone())
            .await
            .unwrap();
    }
}

/// A realistic state report of `device` at the hub's now.
fn report(hub: &TestHub, device: &str, online: bool) -> DeviceState {
    report_at(device, online, hub.clock.now())
}

/// A realistic state report of `device` written at `at`.
fn report_at(device: &str, online: bool, at: DateTime<Utc>) -> DeviceState {
    DeviceState {
        online,
        os: "Raspberry Pi OS 12 (aarch64)".into(),
        now_playing: playing("c-poster", at),
        cache_bytes: 52_428_800,
        disk_free_bytes: Some(8_000_000_000),
        temperature_c: Some(51.5),
        clock_offset_ms: -120,
        ..device_state(device, at)
    }
}

static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A played (or, with a reason, skipped) event of `item` on `device`.
fn event(
    device: &str,
    item: &str,
    group: Option<&str>,
    start: DateTime<Utc>,
    skipped: Option<&str>,
) -> PlayEvent {
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let played = PlayEvent {
        region: Some("Bavaria".into()),
        ..support::events::played(n, device, item, group.map(|g| (g, 3)), start)
    };
    match skipped {
        Some(reason) => support::events::skipped(played, reason),
        None => played,
    }
}

async fn ingest(state: &Hub, device: &str, events: Vec<PlayEvent>) -> Ingested {
    fleet::ingest_events(state, &DeviceId::from(device), EventBatch { events })
        .await
        .unwrap()
}

/// Polls `done` every 20 ms for at most 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real HTTP server on loopback recording every JSON POST; the first
/// `fail_first` requests get a 500.
struct WebhookSink {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<Mutex<usize>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl WebhookSink {
    async fn start(fail_first: usize) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let (r, a) = (received.clone(), attempts.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (r, a) = (r.clone(), a.clone());
                async move {
                    let n = {
                        let mut a = a.lock().unwrap();
                        *a += 1;
                        *a
                    };
                    if n <= fail_first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    r.lock().unwrap().push(body);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            received,
            attempts,
            _stop: stop,
        }
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

// --------------------------------------------------------------- tests

/// U4: the latest state per device, the hub's receive time as the last
/// heartbeat, the last will's `online: false`; a state naming another
/// device is refused and changes nothing.
#[tokio::test]
async fn u4_state_heartbeat_and_last_will_are_recorded() {
    let hub = hub().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    attach(&hub, &site, "d-1", None).await;

    let (_, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(view["connection"], "never_reported");
    assert_eq!(view["in_sync"], false);

    let connected_at = hub.clock.now();
    fleet::record_state(
        &hub.state,
        &DeviceId::from("d-1"),
        report(&hub, "d-1", true),
    )
    .await
    .unwrap();
    let (status, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["node"], site.as_str());
    assert_eq!(view["connection"], "online");
    assert_eq!(view["online"], true);
    let heartbeat: DateTime<Utc> = serde_json::from_value(view["last_heartbeat"].clone()).unwrap();
    assert_eq!(heartbeat, connected_at);
    assert_eq!(view["now_playing"]["item"], "c-poster");
    assert_eq!(view["cache_bytes"], 52_428_800);
    assert_eq!(view["disk_free_bytes"], 8_000_000_000_u64);
    assert_eq!(view["temperature_c"], 51.5);
    assert_eq!(view["clock_offset_ms"], -120);
    assert_eq!(view["agent_version"], "0.1.0");
    assert_eq!(view["os"], "Raspberry Pi OS 12 (aarch64)");

    // Another device's state on d-1's behalf: refused, nothing changes.
    let mut forged = report(&hub, "d-2", false);
    forged.cache_bytes = 1;
    fleet::record_state(&hub.state, &DeviceId::from("d-1"), forged)
        .await
        .unwrap();
    assert!(
        fleet::status_of(&hub.state.store, &DeviceId::from("d-2"))
            .unwrap()
            .is_none()
    );
    let (_, same) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(same, view);

    // The last will (written at connect time) marks it offline and keeps
    // the fresher details and the last heartbeat.
    hub.clock.advance(TimeDelta::minutes(3));
    let mut will = report(&hub, "d-1", false);
    will.at = connected_at - TimeDelta::seconds(1);
    will.cache_bytes = 0;
    fleet::record_state(&hub.state, &DeviceId::from("d-1"), will)
        .await
        .unwrap();
    let (_, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(view["connection"], "offline");
    assert_eq!(view["cache_bytes"], 52_428_800);
    assert!(
        view["now_playing"].is_null(),
        "nothing is known to play offline"
    );
    let since: DateTime<Utc> = serde_json::from_value(view["since"].clone()).unwrap();
    assert_eq!(since, hub.clock.now());
    let heartbeat: DateTime<Utc> = serde_json::from_value(view["last_heartbeat"].clone()).unwrap();
    assert_eq!(heartbeat, connected_at);

    let (_, offline) = hub.get(&hub.admin, "/api/v1/fleet?online=false").await;
    assert_eq!(offline.as_array().unwrap().len(), 1);
    let (_, online) = hub.get(&hub.admin, "/api/v1/fleet?online=true").await;
    assert_eq!(online, json!([]));
    assert_error(
        &hub.get(&hub.admin, "/api/v1/fleet/d-unknown").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// U4: applied vs desired per document; in sync only when every desired
/// document (the assignment and the manifests of its node chain and access
/// groups) is applied at exactly the desired version.
#[tokio::test]
async fn u4_in_sync_only_when_every_desired_version_is_applied() {
    let hub = hub().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let group = hub.news_group(&tenant, "Lobby").await;
    attach(&hub, &site, "d-1", Some(&group)).await;
    publish_node(&hub, &tenant).await;
    let device = DeviceId::from("d-1");

    let desired = fleet::desired_documents(&hub.state.store, &device)
        .unwrap()
        .unwrap();
    let mut subjects: Vec<String> = desired
        .iter()
        .map(|d| publish::document_key(d.kind, &d.subject))
        .collect();
    subjects.sort();
    let mut expected = vec![
        format!("device_assignment/d-1"),
        format!("group_manifest/{tenant}"),
        format!("group_manifest/{site}"),
        format!("group_manifest/{group}"),
    ];
    expected.sort();
    // The root was never published (above the scope): nothing to apply.
    assert_eq!(subjects, expected);

    // Everything in use but the access group's manifest, at an older version.
    let mut state = report(&hub, "d-1", true);
    report_all_in_use(&hub, &mut state);
    let key = format!("group_manifest/{group}");
    let desired_version = state.applied[&key].version;
    let older = AppliedDocument {
        version: desired_version - 1,
        sha256: Sha256::of(b"older"),
    };
    state.applied.insert(key.clone(), older.clone());
    state.activated.insert(key.clone(), older);
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let (_, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(view["in_sync"], false);
    let lagging: Vec<&Value> = view["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["in_sync"] == false)
        .collect();
    assert_eq!(lagging.len(), 1, "{view}");
    assert_eq!(lagging[0]["subject"], group.as_str());
    assert_eq!(lagging[0]["desired_version"], desired_version);
    assert_eq!(lagging[0]["accepted_version"], desired_version - 1);
    assert_eq!(lagging[0]["activated_version"], desired_version - 1);
    assert_eq!(lagging[0]["status"], "not_received");
    assert!(view["out_of_sync_since"].is_string());
    let (_, listed) = hub.get(&hub.admin, "/api/v1/fleet?in_sync=false").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // It catches up: in sync.
    report_all_in_use(&hub, &mut state);
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let (_, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(view["in_sync"], true, "{view}");
    assert!(view["out_of_sync_since"].is_null());
    let (_, listed) = hub
        .get(
            &hub.admin,
            &format!("/api/v1/fleet?in_sync=true&node={tenant}"),
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // The hub re-signs manifests before they expire (S3): the desired
    // versions rise, and the device is out of sync until it applies them.
    hub.clock
        .advance(TimeDelta::days(5) + TimeDelta::seconds(1));
    let due = publish::run_due(&hub.state, hub.clock.now()).await.unwrap();
    assert!(due.resigned >= 3, "{due:?}");
    let (_, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(view["in_sync"], false, "{view}");
    report_all_in_use(&hub, &mut state);
    fleet::record_state(&hub.state, &device, state)
        .await
        .unwrap();
    let (_, view) = hub.get(&hub.admin, "/api/v1/fleet/d-1").await;
    assert_eq!(view["in_sync"], true, "{view}");
}

/// The fleet entry of `device` over the API.
async fn fleet_view(hub: &TestHub, device: &str) -> Value {
    let (status, view) = hub
        .get(&hub.admin, &format!("/api/v1/fleet/{device}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

/// The `documents` entry about `key` (`{kind}/{subject}`) of a fleet view.
fn document<'a>(view: &'a Value, key: &str) -> &'a Value {
    view["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["subject"].as_str().unwrap()
            ) == key
        })
        .unwrap_or_else(|| panic!("no document {key} in {view}"))
}

/// U4, D3 (issue 14, defect 6): a new manifest version accepted but still
/// downloading — while the previous version plays — is not in sync: the
/// view shows desired, accepted and activated versions, "downloading" with
/// its progress; refused by the cache it is "refused", the refusal becomes
/// the last error (unless the agent reports its own) and raises the
/// out-of-sync alert after its threshold; a refusal by verification is
/// shown with its reason; activation brings the device in sync and clears
/// the alert. An agent that reports no activation at all is "waiting".
#[tokio::test]
async fn u4_d3_in_sync_means_activated_and_the_view_says_why_not() {
    let hub = TestHub::start_with(|c| {
        c.token_ttl_secs = 30 * 86_400;
        c.alert_out_of_sync_secs = 600;
    })
    .await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    attach(&hub, &site, "d-1", None).await;
    publish_node(&hub, &site).await;
    let device = DeviceId::from("d-1");
    let key = format!("group_manifest/{site}");
    let mut state = report(&hub, "d-1", true);
    report_all_in_use(&hub, &mut state);
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    // The OpenAPI document (what the console's types are made from)
    // describes the same shape.
    let (status, api) = hub
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &api["components"]["schemas"];
    let properties = schemas["DocumentSync"]["properties"].as_object().unwrap();
    for field in [
        "desired_version",
        "accepted_version",
        "accepted_sha256",
        "activated_version",
        "status",
        "reason",
        "progress",
        "in_sync",
    ] {
        assert!(properties.contains_key(field), "{field}: {properties:?}");
    }
    assert!(!properties.contains_key("applied_version"));
    assert_eq!(
        schemas["DocumentStatus"]["enum"],
        json!([
            "in_sync",
            "not_received",
            "downloading",
            "refused",
            "waiting"
        ]),
        "{schemas}"
    );
    assert!(schemas["ActivationProgress"]["properties"]["bytes_cached"].is_object());

    let view = fleet_view(&hub, "d-1").await;
    assert_eq!(view["in_sync"], true, "{view}");
    for doc in view["documents"].as_array().unwrap() {
        assert_eq!(doc["status"], "in_sync", "{view}");
        assert!(
            doc["reason"].is_null() && doc["progress"].is_null(),
            "{view}"
        );
        assert_eq!(doc["activated_version"], doc["desired_version"], "{view}");
    }
    let v1 = state.activated[&key].clone();

    // Version 2 is signed (the hub re-signs before expiry, S3); the device
    // has not received it.
    hub.clock
        .advance(TimeDelta::days(5) + TimeDelta::seconds(1));
    publish::run_due(&hub.state, hub.clock.now()).await.unwrap();
    let v2 = fleet::desired_documents(&hub.state.store, &device)
        .unwrap()
        .unwrap()
        .into_iter()
        .find(|d| publish::document_key(d.kind, &d.subject) == key)
        .unwrap();
    assert!(v2.version > v1.version);
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let view = fleet_view(&hub, "d-1").await;
    assert_eq!(view["in_sync"], false, "{view}");
    assert_eq!(document(&view, &key)["status"], "not_received", "{view}");

    // Accepted, downloading: version 1 keeps playing, not in sync.
    let accepted = AppliedDocument {
        version: v2.version,
        sha256: v2.sha256,
    };
    state.applied.insert(key.clone(), accepted.clone());
    state.pending.insert(
        key.clone(),
        PendingActivation {
            version: v2.version,
            items_needed: 2,
            items_cached: 1,
            bytes_needed: 80 * 1024 * 1024,
            bytes_cached: 8 * 1024 * 1024,
            refusal: None,
        },
    );
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let view = fleet_view(&hub, "d-1").await;
    assert_eq!(view["in_sync"], false, "{view}");
    assert_eq!(
        view["now_playing"]["item"], "c-poster",
        "version 1 plays on"
    );
    let doc = document(&view, &key);
    assert_eq!(doc["status"], "downloading", "{view}");
    assert_eq!(doc["desired_version"], v2.version);
    assert_eq!(doc["accepted_version"], v2.version);
    assert_eq!(doc["accepted_sha256"], v2.sha256.to_string());
    assert_eq!(doc["activated_version"], v1.version);
    assert_eq!(doc["in_sync"], false);
    assert_eq!(
        doc["progress"],
        json!({"items_needed": 2, "items_cached": 1,
            "bytes_needed": 80 * 1024 * 1024, "bytes_cached": 8 * 1024 * 1024})
    );
    assert!(
        doc["reason"].as_str().unwrap().contains("downloading"),
        "{doc}"
    );
    assert!(
        view["last_error"].is_null(),
        "downloading is no error: {view}"
    );
    let (_, summary) = hub.get(&hub.admin, "/api/v1/fleet/summary").await;
    assert_eq!(
        summary,
        json!({"attached": 1, "online": 1, "offline": 0, "in_sync": 0, "out_of_sync": 1,
            "playing": 1, "with_errors": 0})
    );
    let (_, listed) = hub.get(&hub.admin, "/api/v1/fleet?in_sync=false").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Refused by the cache limit: refused, the last error, and after the
    // threshold an out-of-sync alert.
    let refusal = "refused: cache limit of 64 MiB is below the 80 MiB version 2 needs";
    state.pending.get_mut(&key).unwrap().refusal = Some(refusal.into());
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let view = fleet_view(&hub, "d-1").await;
    let doc = document(&view, &key);
    assert_eq!(doc["status"], "refused", "{view}");
    assert_eq!(doc["reason"], refusal);
    assert!(doc["progress"].is_object(), "{doc}");
    assert_eq!(view["last_error"], refusal, "{view}");
    let (_, summary) = hub
        .get(&hub.admin, &format!("/api/v1/fleet/summary?node={site}"))
        .await;
    assert_eq!(summary["with_errors"], 1, "{summary}");
    let since: DateTime<Utc> = serde_json::from_value(view["out_of_sync_since"].clone()).unwrap();
    assert_eq!(
        since, v2.issued_at,
        "out of sync since version 2 was signed"
    );
    let mut own = state.clone();
    own.last_error = Some("player: pipeline restarted".into());
    fleet::record_state(&hub.state, &device, own).await.unwrap();
    let view = fleet_view(&hub, "d-1").await;
    assert_eq!(
        view["last_error"], "player: pipeline restarted",
        "the agent's own error first"
    );
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    heartbeating(&hub, &mut state, TimeDelta::seconds(600)).await;
    let check = || alerts::check(&hub.state, hub.clock.now(), None);
    assert_eq!(
        check().await.unwrap().raised,
        0,
        "not past the threshold yet"
    );
    heartbeating(&hub, &mut state, TimeDelta::seconds(1)).await;
    assert_eq!(check().await.unwrap().raised, 1);
    let (_, open) = hub
        .get(
            &hub.admin,
            "/api/v1/fleet/alerts?open=true&kind=out_of_sync",
        )
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");

    // An agent that reports neither activation nor progress: waiting.
    state.pending.clear();
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let view = fleet_view(&hub, "d-1").await;
    assert_eq!(document(&view, &key)["status"], "waiting", "{view}");
    assert_eq!(view["in_sync"], false);

    // Activated: in sync, the alert cleared.
    state.activated.insert(key.clone(), accepted);
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let view = fleet_view(&hub, "d-1").await;
    assert_eq!(view["in_sync"], true, "{view}");
    assert!(view["last_error"].is_null(), "{view}");
    assert_eq!(check().await.unwrap().cleared, 1);

    // Version 3 refused by verification: refused with the agent's reason.
    hub.clock
        .advance(TimeDelta::days(5) + TimeDelta::seconds(1));
    publish::run_due(&hub.state, hub.clock.now()).await.unwrap();
    let v3 = v2.version + 1;
    state.refused.insert(
        key.clone(),
        RefusedDocument {
            version: Some(v3),
            reason: "signed by a key the trust document does not certify".into(),
            at: hub.clock.now(),
        },
    );
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state)
        .await
        .unwrap();
    let view = fleet_view(&hub, "d-1").await;
    let doc = document(&view, &key);
    assert_eq!(doc["desired_version"], v3, "{view}");
    assert_eq!(doc["status"], "refused", "{view}");
    assert_eq!(doc["accepted_version"], v2.version);
    assert!(
        doc["reason"].as_str().unwrap().contains("does not certify"),
        "{doc}"
    );
    assert_eq!(view["last_error"], doc["reason"], "{view}");
}

/// U4 (issue 14, defect 7): online is derived from the last heartbeat when
/// the view is read, and the last heartbeat is durable. A device that went
/// silent without a last will (frozen, or its network dropped) while the
/// hub was down is offline after the hub restarts — since its last
/// heartbeat plus `heartbeat_timeout_secs` — in the view, the counts and
/// the alerts (the same offline alert as a last will, past its
/// threshold); its next heartbeat brings it back and clears the alert.
#[tokio::test]
async fn u4_a_silent_device_is_offline_after_the_heartbeat_timeout_across_a_hub_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = Utc::now();
    let made = signet_hub::init::init(&data, start).await.unwrap();
    let open = |clock: Arc<ManualClock>| {
        let config = Config {
            data: data.clone(),
            heartbeat_timeout_secs: 180,
            alert_offline_secs: 600,
            ..Config::default()
        };
        signet_hub::serve::open(config, clock).unwrap()
    };
    let device = DeviceId::from("d-1");
    let node = made.root_node.clone();
    let clock = Arc::new(ManualClock::at(start));
    let state = open(clock.clone());
    let mut batch = WriteBatch::new();
    support::paired_in(&mut batch, node.as_str(), device.as_str(), "fleet-secret");
    state.store.apply(batch).await.unwrap();
    fleet::record_state(&state, &device, report_at("d-1", true, start))
        .await
        .unwrap();
    let view = |state: &Hub| {
        fleet::device_view(&state.store, &device, &node, Liveness::of(state)).unwrap()
    };
    assert!(view(&state).online);
    clock.advance(TimeDelta::seconds(180));
    assert!(view(&state).online, "online up to the timeout");
    drop(state);

    // The hub is down for ten minutes; the device froze meanwhile.
    clock.advance(TimeDelta::minutes(7));
    let state = open(clock.clone());
    let offline_since = start + TimeDelta::seconds(180);
    let seen = view(&state);
    assert!(!seen.online);
    assert_eq!(seen.connection, fleet::Connection::Offline);
    assert_eq!(seen.since, Some(offline_since));
    assert_eq!(seen.last_heartbeat, Some(start));
    assert!(seen.now_playing.is_none(), "nothing is known to play");
    let counts = fleet::counts(&state.store, Liveness::of(&state)).unwrap();
    assert_eq!((counts.attached, counts.online, counts.playing), (1, 0, 0));

    // Offline 7 minutes: below the threshold. Past it: the offline alert,
    // since the timeout.
    assert_eq!(
        alerts::check(&state, clock.now(), None)
            .await
            .unwrap()
            .raised,
        0
    );
    clock.advance(TimeDelta::minutes(3) + TimeDelta::seconds(1));
    assert_eq!(
        alerts::check(&state, clock.now(), None)
            .await
            .unwrap()
            .raised,
        1
    );
    let alert: alerts::Alert = state
        .store
        .scan::<alerts::Alert>(alerts::ALERTS, "")
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(alert.kind, alerts::AlertKind::Offline);
    assert_eq!(alert.since, offline_since);

    // It heartbeats again: online since now, and the alert clears.
    let back = clock.now();
    fleet::record_state(&state, &device, report_at("d-1", true, back))
        .await
        .unwrap();
    let seen = view(&state);
    assert!(seen.online);
    assert_eq!(seen.since, Some(back));
    assert_eq!(
        alerts::check(&state, clock.now(), None)
            .await
            .unwrap()
            .cleared,
        1
    );
}

/// U2, S9: each event is stored exactly once by its id, however often it
/// arrives; events about another device are refused. The HTTP upload needs
/// device credentials (401 until pairing provides them).
#[tokio::test]
async fn u2_events_are_stored_exactly_once() {
    let hub = hub().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    attach(&hub, &site, "d-1", None).await;
    let now = hub.clock.now() - TimeDelta::minutes(1);
    let batch: Vec<PlayEvent> = (0..3)
        .map(|i| event("d-1", "c-1", None, now + TimeDelta::seconds(10 * i), None))
        .collect();

    let first = ingest(&hub.state, "d-1", batch.clone()).await;
    assert_eq!((first.stored, first.duplicates, first.refused), (3, 0, 0));
    let again = ingest(&hub.state, "d-1", batch.clone()).await;
    assert_eq!((again.stored, again.duplicates, again.refused), (0, 3, 0));
    // Within one batch too, and mixed with new ones.
    let fresh = event("d-1", "c-2", None, now, None);
    let mixed = ingest(
        &hub.state,
        "d-1",
        vec![fresh.clone(), fresh, batch[0].clone()],
    )
    .await;
    assert_eq!((mixed.stored, mixed.duplicates), (1, 2));
    // Another device's event, or a bad one: refused, nothing stored.
    let mut bad = event("d-1", "c-3", None, now, None);
    bad.id = "not hex".into();
    let refused = ingest(
        &hub.state,
        "d-1",
        vec![event("d-2", "c-3", None, now, None), bad],
    )
    .await;
    assert_eq!((refused.stored, refused.refused), (0, 2));

    let (_, page) = hub.get(&hub.admin, "/api/v1/reports/usage").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 4, "{page}");
    assert!(page["next"].is_null());

    // The device route: no device credentials yet.
    let response = hub
        .client
        .post(format!("{}/api/v1/device/events", hub.base))
        .json(&EventBatch { events: batch })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "device_credentials_required");
}

/// U3, L8, U1: reports filter by access group, user, device, node, item and
/// time, page as JSON, download as CSV (parsed back here), and summarize a
/// group's usage per item.
#[tokio::test]
async fn u3_l8_usage_reports_filter_and_download_as_csv() {
    let hub = hub().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let north = hub.node(&hub.admin, &tenant, "North").await;
    let south = hub.node(&hub.admin, &tenant, "South").await;
    let group = hub.news_group(&tenant, "Lobby").await;
    attach(&hub, &north, "d-n", Some(&group)).await;
    attach(&hub, &south, "d-s", None).await;
    let (user, _) = hub.user("licensee", "viewer", &[&tenant]).await;
    let mut batch = WriteBatch::new();
    support::put_member(
        &mut batch,
        &hub,
        &group,
        MemberRef::user(&UserId::from(user.as_str())),
        TimeDelta::hours(1),
    );
    hub.state.store.apply(batch).await.unwrap();

    let t0: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
    let north_events = vec![
        event("d-n", "c-1", Some(&group), t0, None),
        event("d-n", "c-1", Some(&group), t0 + TimeDelta::minutes(1), None),
        event(
            "d-n",
            "c-2",
            Some(&group),
            t0 + TimeDelta::minutes(2),
            Some("pending approval"),
        ),
        event("d-n", "c-2", Some(&group), t0 + TimeDelta::hours(30), None),
    ];
    let south_events = vec![
        event("d-s", "c-1", None, t0 + TimeDelta::minutes(5), None),
        event("d-s", "c-3", None, t0 + TimeDelta::hours(2), None),
    ];
    assert_eq!(
        ingest(&hub.state, "d-n", north_events.clone()).await.stored,
        4
    );
    assert_eq!(
        ingest(&hub.state, "d-s", south_events.clone()).await.stored,
        2
    );

    let range = "from=2026-03-01T00:00:00Z&to=2026-03-05T00:00:00Z";
    let ids = support::events::ids;
    let report = |query: String| {
        let hub = &hub;
        async move {
            let (status, page) = hub
                .get(
                    &hub.admin,
                    &format!("/api/v1/reports/usage?{range}&{query}"),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page
        }
    };
    let all = report(String::new()).await;
    assert_eq!(ids(&all).len(), 6);
    // Time order, every U1 field.
    let first = &all["events"][0];
    assert_eq!(first["id"], north_events[0].id.as_str());
    assert_eq!(first["device"], "d-n");
    assert_eq!(first["node"], north.as_str());
    assert_eq!(first["access_group"], group.as_str());
    assert_eq!(first["license_version"], 3);
    assert_eq!(first["outcome"], "played");
    assert_eq!(first["duration_ms"], 10_000);
    assert_eq!(first["country"], "DE");
    assert_eq!(first["region"], "Bavaria");
    assert_eq!(first["os"], "Debian 12");
    assert_eq!(first["agent_version"], "0.1.0");

    assert_eq!(
        ids(&report("device=d-s".into()).await),
        vec![south_events[0].id.clone(), south_events[1].id.clone()]
    );
    assert_eq!(ids(&report(format!("node={south}")).await).len(), 2);
    assert_eq!(ids(&report(format!("node={tenant}")).await).len(), 6);
    assert_eq!(ids(&report("item=c-1".into()).await).len(), 3);
    assert_eq!(ids(&report(format!("access_group={group}")).await).len(), 4);
    // user: events licensed through the user's access groups.
    assert_eq!(ids(&report(format!("user={user}")).await).len(), 4);
    assert_eq!(
        ids(&report(format!("user={user}&item=c-2&device=d-n")).await),
        vec![north_events[2].id.clone(), north_events[3].id.clone()]
    );
    // Time range [from, to).
    let (_, narrow) = hub
        .get(
            &hub.admin,
            "/api/v1/reports/usage?from=2026-03-02T08:01:00Z&to=2026-03-02T10:00:00Z",
        )
        .await;
    assert_eq!(
        ids(&narrow),
        vec![
            north_events[1].id.clone(),
            north_events[2].id.clone(),
            south_events[0].id.clone()
        ]
    );

    // Paging.
    let page1 = report("limit=4".into()).await;
    assert_eq!(ids(&page1).len(), 4);
    let next = page1["next"].as_str().unwrap().to_owned();
    let page2 = report(format!(
        "limit=4&after={}",
        next.replace(':', "%3A").replace('/', "%2F")
    ))
    .await;
    assert_eq!(ids(&page2).len(), 2);
    assert!(page2["next"].is_null());
    let mut paged = ids(&page1);
    paged.extend(ids(&page2));
    assert_eq!(paged, ids(&all));

    // CSV: header row, one row per event, a download filename.
    let response = hub
        .client
        .get(format!(
            "{}/api/v1/reports/usage?{range}&format=csv&node={north}",
            hub.base
        ))
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"signet-usage-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(&header[..4], ["id", "start", "device", "node"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][column("id")], north_events[0].id.as_str());
    assert_eq!(&rows[2][column("outcome")], "skipped");
    assert_eq!(&rows[2][column("skip_reason")], "pending approval");
    assert_eq!(&rows[2][column("duration_ms")], "0");
    assert_eq!(&rows[0][column("access_group")], group.as_str());
    let start: DateTime<Utc> = rows[0][column("start")].parse().unwrap();
    assert_eq!(start, t0);
    // An empty CSV still has its header.
    let empty = hub
        .client
        .get(format!(
            "{}/api/v1/reports/usage?format=csv&item=none",
            hub.base
        ))
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(empty.lines().count(), 1);
    assert!(empty.starts_with("id,start,device"));

    // Bad input: clear errors.
    assert_error(
        &hub.get(
            &hub.admin,
            "/api/v1/reports/usage?from=2026-03-05T00:00:00Z&to=2026-03-01T00:00:00Z",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_range",
    );
    assert_error(
        &hub.get(
            &hub.admin,
            "/api/v1/reports/usage?from=2024-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "range_too_long",
    );
    assert_error(
        &hub.get(&hub.admin, "/api/v1/reports/usage?format=xml")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &hub.get(&hub.admin, "/api/v1/reports/usage?user=u-nobody")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // L8: the group's usage per item.
    let (status, summary) = hub
        .get(
            &hub.admin,
            &format!("/api/v1/reports/usage/access-groups/{group}?{range}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["played"], 3);
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["played_ms"], 30_000);
    assert_eq!(summary["truncated"], false);
    assert_eq!(
        summary["items"],
        json!([{"item": "c-1", "played": 2, "skipped": 0, "played_ms": 20_000},
               {"item": "c-2", "played": 1, "skipped": 1, "played_ms": 10_000}])
    );
}

/// T4: fleet, reports and alerts show a tenant only its own devices and
/// events; another tenant's device is 404.
#[tokio::test]
async fn t4_fleet_reports_and_alerts_are_tenant_scoped() {
    let hub = hub().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let a_site = hub.node(&hub.admin, &a, "A site").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let b_site = hub.node(&hub.admin, &b, "B site").await;
    attach(&hub, &a_site, "d-a", None).await;
    attach(&hub, &b_site, "d-b", None).await;
    let b_group = hub.news_group(&b, "Lobby").await;
    let now = hub.clock.now() - TimeDelta::minutes(5);
    ingest(
        &hub.state,
        "d-a",
        vec![event("d-a", "c-1", None, now, None)],
    )
    .await;
    ingest(
        &hub.state,
        "d-b",
        vec![event("d-b", "c-1", None, now, None)],
    )
    .await;
    for device in ["d-a", "d-b"] {
        fleet::record_state(
            &hub.state,
            &DeviceId::from(device),
            report(&hub, device, false),
        )
        .await
        .unwrap();
    }
    hub.clock.advance(TimeDelta::hours(1));
    let raised = alerts::check(&hub.state, hub.clock.now(), None)
        .await
        .unwrap();
    assert_eq!(raised.raised, 2);

    let (_, viewer) = hub.user("a-viewer", "viewer", &[&a]).await;
    let (status, fleet) = hub.get(&viewer, "/api/v1/fleet").await;
    assert_eq!(status, StatusCode::OK);
    let devices: Vec<&str> = fleet
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(devices, vec!["d-a"]);
    assert_eq!(
        hub.get(&viewer, "/api/v1/fleet/d-a").await.0,
        StatusCode::OK
    );
    assert_error(
        &hub.get(&viewer, "/api/v1/fleet/d-b").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.get(&viewer, &format!("/api/v1/fleet?node={b}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let (_, page) = hub.get(&viewer, "/api/v1/reports/usage").await;
    let reported: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["device"].as_str().unwrap())
        .collect();
    assert_eq!(reported, vec!["d-a"]);
    let (_, page) = hub.get(&viewer, "/api/v1/reports/usage?device=d-b").await;
    assert_eq!(page["events"], json!([]));
    assert_error(
        &hub.get(
            &viewer,
            &format!("/api/v1/reports/usage?access_group={b_group}"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.get(
            &viewer,
            &format!("/api/v1/reports/usage/access-groups/{b_group}"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let (_, listed) = hub.get(&viewer, "/api/v1/fleet/alerts").await;
    let about: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["device"].as_str().unwrap())
        .collect();
    assert_eq!(about, vec!["d-a"]);
    let (_, everything) = hub.get(&hub.admin, "/api/v1/fleet/alerts").await;
    assert_eq!(everything.as_array().unwrap().len(), 2);
}

/// U4: a device offline longer than the threshold raises one alert per
/// incident: mail through the durable outbox (delivered to a real SMTP
/// listener) and a webhook POST (retried after a failure); recovery clears
/// it with a recovery notice. An online device out of sync longer than its
/// threshold does the same.
#[tokio::test]
async fn u4_alerts_raised_once_mailed_posted_and_cleared_on_recovery() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| {
        c.token_ttl_secs = 30 * 86_400;
        c.smtp = Some(smtp_to(sink.addr));
        c.alert_email = Some("ops@example.test".into());
        c.alert_offline_secs = 600;
        c.alert_out_of_sync_secs = 1800;
    })
    .await;
    let webhook_sink = WebhookSink::start(1).await;
    let cancel = CancellationToken::new();
    let webhook = Webhook::new(
        &webhook_sink.url,
        WebhookOptions {
            first_retry: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            ..WebhookOptions::default()
        },
        cancel.clone(),
    )
    .unwrap();
    let sender = MailSender::spawn(
        hub.state.clone(),
        SenderOptions {
            poll_interval: Duration::from_millis(20),
            ..SenderOptions::default()
        },
        cancel.child_token(),
    );
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    attach(&hub, &site, "d-1", None).await;
    publish_node(&hub, &site).await;
    let device = DeviceId::from("d-1");
    let mut state = report(&hub, "d-1", true);
    report_all_in_use(&hub, &mut state);
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let check = || alerts::check(&hub.state, hub.clock.now(), Some(&webhook));

    // Offline, but not yet for longer than the threshold: nothing.
    fleet::record_state(&hub.state, &device, report(&hub, "d-1", false))
        .await
        .unwrap();
    hub.clock.advance(TimeDelta::seconds(600));
    assert_eq!(check().await.unwrap().raised, 0);
    // Past it: one alert, once.
    hub.clock.advance(TimeDelta::seconds(1));
    assert_eq!(check().await.unwrap().raised, 1);
    hub.clock.advance(TimeDelta::minutes(5));
    assert_eq!(check().await.unwrap(), alerts::AlertReport::default());
    let (_, open) = hub.get(&hub.admin, "/api/v1/fleet/alerts?open=true").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    let alert = &open[0];
    assert_eq!(alert["device"], "d-1");
    assert_eq!(alert["kind"], "offline");
    assert_eq!(alert["node"], site.as_str());
    let outbox: Vec<OutboxEntry> = hub.state.store.scan(OUTBOX, "").unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].mail.to, "ops@example.test");
    assert!(
        outbox[0].mail.subject.contains("d-1"),
        "{}",
        outbox[0].mail.subject
    );
    assert_eq!(alert["mail"], json!([outbox[0].id]));
    eventually("the alert mail", || sink.received().len() == 1).await;
    assert_eq!(sink.received()[0].to, vec!["ops@example.test".to_owned()]);
    webhook.idle().await;
    let posted = webhook_sink.received();
    assert_eq!(
        posted.len(),
        1,
        "the first attempt failed, the retry landed"
    );
    assert_eq!(*webhook_sink.attempts.lock().unwrap(), 2);
    assert_eq!(posted[0]["notice"], "raised");
    assert_eq!(posted[0]["alert"]["device"], "d-1");
    let (_, open) = hub.get(&hub.admin, "/api/v1/fleet/alerts?open=true").await;
    assert_eq!(open[0]["webhook"]["attempts"], 2);
    assert!(open[0]["webhook"]["delivered_at"].is_string());

    // Recovery clears it, with a recovery mail and webhook.
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    let cleared = check().await.unwrap();
    assert_eq!((cleared.raised, cleared.cleared), (0, 1));
    let (_, open) = hub.get(&hub.admin, "/api/v1/fleet/alerts?open=true").await;
    assert_eq!(open, json!([]));
    let (_, closed) = hub.get(&hub.admin, "/api/v1/fleet/alerts?open=false").await;
    assert_eq!(closed[0]["cleared_because"], "the device is online again");
    eventually("the recovery mail", || sink.received().len() == 2).await;
    webhook.idle().await;
    assert_eq!(webhook_sink.received()[1]["notice"], "cleared");

    // Out of sync: a re-signed manifest the online device does not apply.
    hub.clock
        .advance(TimeDelta::days(5) + TimeDelta::seconds(1));
    state.at = hub.clock.now();
    fleet::record_state(&hub.state, &device, state.clone())
        .await
        .unwrap();
    publish::run_due(&hub.state, hub.clock.now()).await.unwrap();
    heartbeating(&hub, &mut state, TimeDelta::seconds(1800)).await;
    assert_eq!(
        check().await.unwrap().raised,
        0,
        "not longer than the threshold yet"
    );
    heartbeating(&hub, &mut state, TimeDelta::seconds(1)).await;
    assert_eq!(check().await.unwrap().raised, 1);
    assert_eq!(check().await.unwrap().raised, 0);
    let (_, open) = hub
        .get(
            &hub.admin,
            "/api/v1/fleet/alerts?open=true&kind=out_of_sync",
        )
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    report_all_in_use(&hub, &mut state);
    fleet::record_state(&hub.state, &device, state)
        .await
        .unwrap();
    assert_eq!(check().await.unwrap().cleared, 1);
    eventually("four mails", || sink.received().len() == 4).await;
    webhook.idle().await;
    assert_eq!(webhook_sink.received().len(), 4);

    cancel.cancel();
    sender.stop().await;
}

/// U4: the alert loop runs `check` on its own every poll, with the
/// configured webhook, and stops with its token.
#[tokio::test]
async fn u4_the_alert_loop_raises_alerts_on_its_own() {
    let webhook_sink = WebhookSink::start(0).await;
    let url = webhook_sink.url.clone();
    let hub = TestHub::start_with(move |c| {
        c.alert_poll_secs = 1;
        c.alert_offline_secs = 60;
        c.alert_webhook_url = Some(url);
    })
    .await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    attach(&hub, &site, "d-1", None).await;
    fleet::record_state(
        &hub.state,
        &DeviceId::from("d-1"),
        report(&hub, "d-1", false),
    )
    .await
    .unwrap();
    hub.clock.advance(TimeDelta::minutes(2));
    let cancel = CancellationToken::new();
    let running = alerts::spawn_loop(
        hub.state.clone(),
        AlertOptions::from_config(&hub.state.config),
        cancel.clone(),
    );
    eventually("the webhook notice", || webhook_sink.received().len() == 1).await;
    assert_eq!(webhook_sink.received()[0]["alert"]["kind"], "offline");
    running.stop().await;
    assert!(cancel.is_cancelled());
}

/// U3: events older than `usage_retention_days` are pruned, oldest hours
/// first, with their id index; newer ones stay.
#[tokio::test]
async fn u3_old_events_are_pruned_after_the_retention() {
    let hub = hub().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    attach(&hub, &site, "d-1", None).await;
    let now = hub.clock.now();
    let old = now - TimeDelta::days(800);
    let ancient = vec![
        event("d-1", "c-1", None, old, None),
        event("d-1", "c-1", None, old + TimeDelta::hours(1), None),
    ];
    let recent = event("d-1", "c-1", None, now - TimeDelta::hours(1), None);
    let mut all = ancient.clone();
    all.push(recent.clone());
    assert_eq!(ingest(&hub.state, "d-1", all).await.stored, 3);
    let pruned = fleet::events::prune(&hub.state, now, TimeDelta::days(730))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    for gone in &ancient {
        let index: Option<String> = hub
            .state
            .store
            .get(fleet::events::PLAY_EVENT_IDS, &gone.id)
            .unwrap();
        assert!(index.is_none());
    }
    let (_, page) = hub.get(&hub.admin, "/api/v1/reports/usage").await;
    assert_eq!(page["events"][0]["id"], recent.id.as_str());
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        fleet::events::prune(&hub.state, now, TimeDelta::days(730))
            .await
            .unwrap(),
        0
    );
}

/// The first-use marks left to publish (L2).
fn marks(hub: &TestHub) -> Vec<String> {
    signet_hub::access_groups::first_use::pending(&hub.state.store)
        .unwrap()
        .into_iter()
        .map(|(group, _)| group.to_string())
        .collect()
}

/// Marks `group` for signing again, as a first use's commit does.
async fn mark(hub: &TestHub, group: &str) {
    let mut batch = WriteBatch::new();
    let at = hub.clock.now();
    batch
        .put(signet_hub::access_groups::first_use::REPUBLISH, group, &at)
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
}

/// L2, X3 (issue 20): fleet ingest signs groups again only after a batch
/// that recorded a first use, and loses no first use: a mark left from
/// before start (a crash between a first use's commit and its publication)
/// is published by the first batch of events; a later batch that records
/// no first use starts no publication (a mark set meanwhile stays); the
/// next batch that records a first use publishes every mark.
#[tokio::test]
async fn l2_x3_ingest_signs_again_only_after_a_first_use_and_loses_none() {
    let hub = hub().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let (status, counted) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Counted", "license": {"allow_offline": true,
                "offline_grace_secs": 3600, "allow_export": false,
                "duration_from_first_use_secs": 86_400}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{counted}");
    let counted = counted["id"].as_str().unwrap().to_owned();
    let other = hub.news_group(&tenant, "Other").await;
    attach(&hub, &site, "d-1", Some(&counted)).await;
    let now = hub.clock.now();

    // A mark from before start: the first batch of events publishes it.
    mark(&hub, &other).await;
    let plain = ingest(
        &hub.state,
        "d-1",
        vec![event("d-1", "i-1", None, now, None)],
    )
    .await;
    assert_eq!(plain.stored, 1);
    eventually("the mark from before start to be published", || {
        marks(&hub).is_empty()
    })
    .await;
    // Let that pass see the marks it left (none) before the next one is set.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A batch that records no first use starts no publication.
    mark(&hub, &other).await;
    let plain = ingest(
        &hub.state,
        "d-1",
        vec![event("d-1", "i-1", None, now, None)],
    )
    .await;
    assert_eq!(plain.stored, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        marks(&hub),
        vec![other.clone()],
        "no publication was started"
    );

    // The member's first play records its first use: every mark is published.
    let first = event("d-1", "i-1", Some(&counted), now, None);
    assert_eq!(ingest(&hub.state, "d-1", vec![first]).await.stored, 1);
    let (status, members) = hub
        .get(
            &hub.admin,
            &format!("/api/v1/access-groups/{counted}/members"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert!(!members[0]["first_used_at"].is_null(), "{members:#}");
    eventually("every mark to be published after a first use", || {
        marks(&hub).is_empty()
    })
    .await;
}
