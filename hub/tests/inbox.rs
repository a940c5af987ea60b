//! The hub's device-report inbox in batches (X2, X3, S9, S11; issues 17
//! and 20): messages as the link receives them go straight into
//! [`inbox`], which checks them in batches on its blocking workers and
//! hands each checked batch to the sink at once. The real inbox and its
//! real checks (Ed25519 over every report); the sink is the real fleet over
//! a real hub store, or a recording one where the order of hand-offs is
//! the point; acknowledgements are recorded by packet id instead of going
//! to a broker (`mqtt.rs` and `signed_reports.rs` run the same inbox
//! behind the real link and real brokers).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rumqttc::{Publish, QoS};
use signet_common::envelope::{PublicKey, SigningKey};
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::signed::sign_report;
use signet_common::sync::{DeviceState, EventBatch, Outcome, PlayEvent, events_topic, state_topic};
use signet_hub::app::Clock as _;
use signet_hub::fleet::Ingested;
use signet_hub::fleet::events::PLAY_EVENT_IDS;
use signet_hub::metrics::Metrics;
use signet_hub::mqtt::reports::{
    Acknowledge, CHECK_BATCH, Checked, DeviceReports, FleetReports, IN_FLIGHT, Verdict, inbox,
};
use signet_hub::store::StoreError;
use support::states::device_state;
use support::{TestHub, device_key, register_device};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The longest any wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(30);

/// The packet ids the inbox acknowledged, in order.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<u16>>>);

impl Acknowledge for Acks {
    fn ack<'a>(&'a self, publish: &'a Publish) -> BoxFuture<'a, Result<(), String>> {
        self.0.lock().unwrap().push(publish.pkid);
        Box::pin(async { Ok(()) })
    }
}

impl Acks {
    fn ids(&self) -> Vec<u16> {
        self.0.lock().unwrap().clone()
    }
}

/// A QoS 1 message as the link hands it to the inbox.
fn message(topic: &str, payload: Vec<u8>, pkid: u16) -> Publish {
    let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
    publish.pkid = pkid;
    publish
}

/// A state report of `device` at `at`, its sequence number in `cache_bytes`.
fn state(device: &str, at: chrono::DateTime<chrono::Utc>, cache_bytes: u64) -> DeviceState {
    DeviceState {
        cache_bytes,
        ..device_state(device, at)
    }
}

/// Runs the inbox over `messages` (all queued before it starts) until the
/// queue is closed and every message is settled.
async fn run_to_end(
    acks: Acks,
    reports: Arc<dyn DeviceReports>,
    metrics: Arc<Metrics>,
    messages: Vec<Publish>,
) {
    let (link, received) = mpsc::channel(messages.len().max(1));
    for publish in messages {
        link.send(publish).await.unwrap();
    }
    drop(link);
    let cancel = CancellationToken::new();
    tokio::time::timeout(WAIT, inbox(acks, reports, metrics, received, cancel))
        .await
        .expect("the inbox did not settle every message");
}

/// S11, S9, X2: one batch — three states and an event batch from three
/// paired devices, one of the states forged (signed by a key the device
/// never registered). The real fleet stores the other three durably, the
/// forged one alone is refused and counted, and every message is
/// acknowledged (the refusal too, never redelivered), in arrival order.
#[tokio::test]
async fn s11_s9_x2_a_batch_with_one_forged_report_stores_the_others_and_refuses_only_that_one() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let mut keys = BTreeMap::new();
    for device in ["d-a", "d-b", "d-c"] {
        keys.insert(device, register_device(&hub, &site, device, "secret").await);
    }
    let now = hub.clock.now();
    let signed = |device: &str, key: &SigningKey, n: u64| {
        let topic = state_topic(&DeviceId::from(device));
        (topic, sign_report(&state(device, now, n), key).unwrap())
    };
    let event = PlayEvent {
        id: format!("{:032x}", 7),
        device_id: DeviceId::from("d-a"),
        item: ItemId::from("c-1"),
        access_group: None,
        license_version: None,
        start: now - chrono::TimeDelta::minutes(5),
        duration_ms: 2_000,
        outcome: Outcome::Played,
        skip_reason: None,
        country: None,
        region: None,
        os: "test os".into(),
        agent_version: "0.1.0".into(),
    };
    let events = EventBatch {
        events: vec![event.clone()],
    };
    let reports = [
        signed("d-a", &keys["d-a"], 11),
        signed("d-b", &device_key(), 22),
        signed("d-c", &keys["d-c"], 33),
        (
            events_topic(&DeviceId::from("d-a")),
            sign_report(&events, &keys["d-a"]).unwrap(),
        ),
    ];
    let messages = (1..)
        .zip(reports)
        .map(|(pkid, (topic, payload))| message(&topic, payload, pkid))
        .collect();
    let acks = Acks::default();
    let sink = Arc::new(FleetReports {
        state: hub.state.clone(),
    });
    run_to_end(acks.clone(), sink, hub.state.metrics.clone(), messages).await;

    let status = |device: &str| {
        signet_hub::fleet::status_of(&hub.state.store, &DeviceId::from(device)).unwrap()
    };
    assert_eq!(status("d-a").unwrap().state.cache_bytes, 11);
    assert_eq!(status("d-c").unwrap().state.cache_bytes, 33);
    assert!(status("d-b").is_none(), "the forged state was stored");
    let stored: Option<serde_json::Value> = hub.state.store.get(PLAY_EVENT_IDS, &event.id).unwrap();
    assert!(
        stored.is_some(),
        "the event batch of the same batch was not stored"
    );
    assert_eq!(hub.state.metrics.refused_reports("wrong_key"), 1);
    assert_eq!(acks.ids(), vec![1, 2, 3, 4]);
}

/// What a recording sink was handed, in hand-off order, and a gate its
/// stores wait at. Like the fleet's, it takes each batch in one hand-off.
struct Recorded {
    keys: BTreeMap<String, PublicKey>,
    handed: Mutex<Vec<(DeviceId, u64)>>,
    gate: watch::Receiver<bool>,
}

impl Recorded {
    fn new(keys: &BTreeMap<String, SigningKey>, gate: watch::Receiver<bool>) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|(d, k)| (d.clone(), k.public_key()))
                .collect(),
            handed: Mutex::default(),
            gate,
        }
    }

    fn handed(&self) -> Vec<(DeviceId, u64)> {
        self.handed.lock().unwrap().clone()
    }
}

impl DeviceReports for Recorded {
    fn registered_key(&self, device: &DeviceId) -> Result<Option<PublicKey>, StoreError> {
        Ok(self.keys.get(device.as_str()).cloned())
    }

    fn state(&self, _: DeviceId, _: DeviceState) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Storage("batches only".into())) })
    }

    fn events(&self, _: DeviceId, _: EventBatch) -> BoxFuture<'_, Result<Ingested, StoreError>> {
        Box::pin(async { Err(StoreError::Storage("batches only".into())) })
    }

    fn store_batch<'a>(&'a self, batch: &'a [Checked]) -> BoxFuture<'a, Vec<Verdict>> {
        let mut handed = self.handed.lock().unwrap();
        let verdicts = batch
            .iter()
            .map(|checked| match checked {
                Checked::State(device, reported) => {
                    handed.push((device.clone(), reported.cache_bytes));
                    Verdict::Stored
                }
                Checked::Events(..) => Verdict::Stored,
                Checked::Done(verdict) => verdict.clone(),
            })
            .collect();
        let mut gate = self.gate.clone();
        Box::pin(async move {
            let _ = gate.wait_for(|open| *open).await;
            verdicts
        })
    }
}

/// `n` signed state messages alternating over `devices`, numbered 1..=n
/// (packet id and `cache_bytes`).
fn numbered(keys: &BTreeMap<String, SigningKey>, n: u16) -> Vec<Publish> {
    let devices: Vec<&String> = keys.keys().collect();
    let now = chrono::Utc::now();
    (1..=n)
        .map(|i| {
            let device = devices[usize::from(i) % devices.len()];
            let report = state(device, now, u64::from(i));
            let payload = sign_report(&report, &keys[device]).unwrap();
            message(&state_topic(&DeviceId::from(device.as_str())), payload, i)
        })
        .collect()
}

fn keys(devices: &[&str]) -> BTreeMap<String, SigningKey> {
    devices
        .iter()
        .map(|d| ((*d).to_owned(), device_key()))
        .collect()
}

/// X2, S9: many batches at once (several times [`CHECK_BATCH`], checked by
/// the workers side by side) reach the sink in arrival order — each
/// device's reports in the order the broker delivered them — and are
/// acknowledged in that order, each once.
#[tokio::test]
async fn x2_s9_per_device_order_is_kept_across_batches() {
    let keys = keys(&["d-1", "d-2", "d-3"]);
    let n = u16::try_from(3 * CHECK_BATCH + 17).unwrap();
    let messages = numbered(&keys, n);
    let (_open, gate) = watch::channel(true);
    let sink = Arc::new(Recorded::new(&keys, gate));
    let acks = Acks::default();
    run_to_end(acks.clone(), sink.clone(), Arc::default(), messages).await;
    let handed = sink.handed();
    let numbers: Vec<u64> = handed.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=u64::from(n)).collect::<Vec<_>>());
    for device in keys.keys() {
        let mine: Vec<u64> = handed
            .iter()
            .filter(|(d, _)| d.as_str() == device)
            .map(|(_, n)| *n)
            .collect();
        assert!(mine.is_sorted(), "{device}: {mine:?}");
    }
    assert_eq!(acks.ids(), (1..=n).collect::<Vec<_>>());
}

/// X2, X3, S9: while the sink cannot store, the inbox takes at most
/// [`IN_FLIGHT`] messages off the link's queue and then waits; the queue
/// fills and its sender waits too (back-pressure, bounded memory), nothing
/// is acknowledged and nothing dropped. Once the store moves, every message
/// — those that waited too — is handed over and acknowledged, in order.
#[tokio::test]
async fn x2_x3_s9_a_full_queue_holds_the_sender_back_and_drops_nothing() {
    const QUEUE: usize = 8;
    let keys = keys(&["d-1", "d-2"]);
    let n = u16::try_from(IN_FLIGHT + QUEUE + 40).unwrap();
    let mut messages = numbered(&keys, n).into_iter();
    let (open, gate) = watch::channel(false);
    let sink = Arc::new(Recorded::new(&keys, gate));
    let acks = Acks::default();
    let (link, received) = mpsc::channel(QUEUE);
    let running = tokio::spawn(inbox(
        acks.clone(),
        sink.clone(),
        Arc::default(),
        received,
        CancellationToken::new(),
    ));
    let mut accepted = 0;
    while let Ok(permit) = tokio::time::timeout(Duration::from_secs(2), link.reserve()).await {
        permit.unwrap().send(messages.next().unwrap());
        accepted += 1;
        assert!(accepted < usize::from(n), "the inbox never held back");
    }
    assert_eq!(
        accepted,
        IN_FLIGHT + QUEUE,
        "the inbox holds at most IN_FLIGHT messages, the queue the rest"
    );
    assert!(acks.ids().is_empty(), "acknowledged before stored");
    open.send(true).unwrap();
    for publish in messages {
        tokio::time::timeout(WAIT, link.send(publish))
            .await
            .expect("the queue never drained")
            .unwrap();
    }
    drop(link);
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the inbox did not settle every message")
        .unwrap();
    let numbers: Vec<u64> = sink.handed().iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=u64::from(n)).collect::<Vec<_>>());
    assert_eq!(acks.ids(), (1..=n).collect::<Vec<_>>());
}
