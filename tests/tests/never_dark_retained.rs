//! Never dark because of the broker (S4, D1, D3; DESIGN §1: the broker is
//! an accelerator, never the only path), end to end over the real
//! binaries: a screen paired right after its group's retained manifest was
//! cleared or poisoned plays within 15 s; and the agent's own HTTP path is
//! proven apart from the hub's restore — against a broker that keeps the
//! poison (only the agent connects there, so nothing restores it) and with
//! no broker at all.
//!
//! "Plays" is measured from the agent's own reports: the proof-of-play
//! events it uploads over HTTP, whose start times are compared with when
//! the agent process was started.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use signet_tests::rig::Rig;
use signet_tests::{Agent, Hub, Mosquitto};

/// The bound the acceptance sets: a new screen plays within 15 s.
const PLAYS_WITHIN: Duration = Duration::from_secs(15);
/// How long a test waits for the proof of that play to reach the hub.
const REPORTED_WITHIN: Duration = Duration::from_secs(40);
/// The agent config every screen here gets: events uploaded every second.
const FAST_EVENTS: &str = "event_upload_secs = 1\n";

/// A site with one image scheduled all day, published; returns the site.
async fn site_with_content(rig: &Rig) -> String {
    let site = rig.site("Lobby", "Welcome", 0x22_7744).await;
    site.publish(&rig.hub).await;
    site.node
}

/// Starts `agent` and waits for the proof that it played: returns how long
/// after the start its first play began (the event's own start time).
async fn first_play_after_start(hub: &Hub, agent: &mut Agent) -> Duration {
    let started_at = Utc::now();
    let started = Instant::now();
    agent.run();
    loop {
        let first = hub
            .usage(&agent.device)
            .await
            .iter()
            .filter(|r| r["outcome"] == "played")
            .filter_map(|r| r["start"].as_str()?.parse::<DateTime<Utc>>().ok())
            .min();
        if let Some(first) = first {
            return (first - started_at).to_std().unwrap_or_default();
        }
        assert!(
            started.elapsed() < REPORTED_WITHIN,
            "{} never played:\n{}",
            agent.name,
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Publishes `payload` retained on `topic` as `user`, and waits for the
/// broker's acknowledgement.
async fn publish_retained(port: u16, user: &str, password: &str, topic: &str, payload: Vec<u8>) {
    let mut options = MqttOptions::new("poisoner", "127.0.0.1", port);
    options
        .set_credentials(user, password)
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .await
        .unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("poisoner: {e}"),
            }
        }
    })
    .await;
    assert!(acked.is_ok(), "the broker did not take the poison");
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
}

/// S4, D3 (acceptance: "a device paired right after its group's retained
/// manifest was deleted or poisoned plays within 15 s"), on an external
/// mosquitto the hub administers: a client with publish rights on the hub's
/// topics (here the hub's own account, as a stale second hub would) clears
/// the site's retained manifest, then replaces it with garbage; each time a
/// screen paired into the site right after plays within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_d3_a_screen_paired_after_its_manifest_was_cleared_or_poisoned_plays_within_15s() {
    let rig = Rig::external(&[]).await;
    let (hub, broker) = (&rig.hub, rig.broker());
    let site = site_with_content(&rig).await;
    let topic = format!("signet/v1/groups/{site}/manifest");
    for (name, poison) in [
        ("after-clear", Vec::new()),
        (
            "after-poison",
            br#"{"kind":"group_manifest","key_id":"0000000000000000","payload":"e30=","sig":"AAAA"}"#
                .to_vec(),
        ),
    ] {
        publish_retained(
            broker.addr.port(),
            &broker.admin_user,
            &broker.admin_password,
            &topic,
            poison,
        )
        .await;
        let mut agent = rig.pair(name, &site, FAST_EVENTS).await;
        let took = first_play_after_start(hub, &mut agent).await;
        eprintln!("{name}: first play began {took:?} after the agent started");
        assert!(took <= PLAYS_WITHIN, "{name}: first play after {took:?}");
        agent.kill();
    }
}

/// Every state message `device` published on a broker, collected by a
/// client subscribed to its state topic.
struct StateWatch {
    /// The states seen, oldest first.
    states: Arc<std::sync::Mutex<Vec<Value>>>,
    /// The client's task.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StateWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StateWatch {
    async fn start(port: u16, user: &str, password: &str, device: &str) -> Self {
        let mut options = MqttOptions::new("state-watch", "127.0.0.1", port);
        options
            .set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        client
            .subscribe(
                format!("signet/v1/devices/{device}/state"),
                QoS::AtLeastOnce,
            )
            .await
            .unwrap();
        let states = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = states.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        // A signed `device_state` envelope (S11): only its
                        // payload matters here.
                        let state = signet_common::envelope::open(&p.payload)
                            .ok()
                            .and_then(|o| serde_json::from_slice::<Value>(o.payload()).ok());
                        if let Some(state) = state {
                            sink.lock().unwrap().push(state);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Self { states, task }
    }

    /// The first state whose `refused` map names `key`.
    fn refusal_of(&self, key: &str) -> Option<Value> {
        self.states
            .lock()
            .unwrap()
            .iter()
            .find_map(|s| s["refused"].get(key).cloned())
    }
}

/// S4, D1 (DESIGN §1): the agent's own HTTP path, apart from the hub's
/// restore. The agent's broker is one only it connects to, holding a
/// poisoned manifest for its site and none of its other documents, and
/// nothing ever restores it: the agent fetches its current signed documents
/// from the hub over HTTP, plays within 15 s, and reports the refused
/// manifest by its document key (U4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_d1_an_agent_whose_broker_keeps_a_poisoned_manifest_fetches_over_http_and_plays() {
    let rig = Rig::embedded(&[]).await;
    let hub = &rig.hub;
    let site = site_with_content(&rig).await;
    // A broker the hub never connects to; any client may log in.
    let isolated = Mosquitto::open().await;
    let port = isolated.addr.port();
    let (user, password) = ("poisoner".to_owned(), "any".to_owned());
    let topic = format!("signet/v1/groups/{site}/manifest");
    publish_retained(
        port,
        &user,
        &password,
        &topic,
        b"not a signed document".to_vec(),
    )
    .await;

    let mut agent = rig
        .pair(
            "isolated",
            &site,
            &format!("{FAST_EVENTS}broker_url = \"mqtt://127.0.0.1:{port}\"\n"),
        )
        .await;
    let watch = StateWatch::start(port, "observer", "any", &agent.device).await;
    let took = first_play_after_start(hub, &mut agent).await;
    eprintln!("poisoned broker: first play began {took:?} after the agent started");
    assert!(took <= PLAYS_WITHIN, "first play after {took:?}");

    // The poison was refused and reported by its document key; a version
    // is claimed only by what verifies (this never does).
    let key = format!("group_manifest/{site}");
    let started = Instant::now();
    let refusal = loop {
        if let Some(refusal) = watch.refusal_of(&key) {
            break refusal;
        }
        assert!(
            started.elapsed() < REPORTED_WITHIN,
            "no state named the refused manifest:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(refusal["reason"].as_str().unwrap().len() > 5, "{refusal}");
    assert!(refusal.get("version").is_none(), "{refusal}");
    assert!(refusal["at"].is_string(), "{refusal}");
    // The poison is still there: only the agent's fetch got it playing.
    let output = agent.log();
    assert!(
        output.contains("from the hub over HTTP"),
        "the documents came over HTTP:\n{output}"
    );
    agent.kill();
}

/// S4, D1: with no broker at all (its address refuses connections) but the
/// hub's HTTP reachable, a newly paired agent fetches its documents over
/// HTTP and plays within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_d1_an_agent_without_a_broker_fetches_over_http_and_plays() {
    let rig = Rig::embedded(&[]).await;
    let hub = &rig.hub;
    let site = site_with_content(&rig).await;
    let (nowhere, reserved) = signet_tests::free_port();
    drop(reserved);
    let mut agent = rig
        .pair(
            "brokerless",
            &site,
            &format!("{FAST_EVENTS}broker_url = \"mqtt://{nowhere}\"\n"),
        )
        .await;
    let took = first_play_after_start(hub, &mut agent).await;
    eprintln!("no broker: first play began {took:?} after the agent started");
    assert!(took <= PLAYS_WITHIN, "first play after {took:?}");
    agent.kill();
}
