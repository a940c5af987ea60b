//! The physical limit of a fan-out (X2): bytes of a given size through the
//! same broker to N raw subscribers that only note when they arrive.
//!
//! Owns: a bench client on the broker ([`BENCH_USER`], allowed only the
//! topics under [`BENCH_PREFIX`]), added to the managed broker's plugin
//! store before the hub starts ([`add_to_managed_store`]; the hub keeps
//! clients it does not manage) or to an external mosquitto through its
//! admin ([`add_to_external`]); N subscribers ([`RawFleet`]) each on the
//! shared topic and on its own; and a publisher. Must not: touch any
//! Signet topic.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// The bench client's user name on the broker.
pub const BENCH_USER: &str = "signet-sim-bench";
/// The topics the bench client may use.
pub const BENCH_PREFIX: &str = "signet-sim";
/// The shared topic every raw subscriber follows.
pub const GROUP_TOPIC: &str = "signet-sim/group";

/// The topic only raw subscriber `index` follows.
#[must_use]
pub fn own_topic(index: usize) -> String {
    format!("{BENCH_PREFIX}/screen/{index}")
}

fn bench_acls() -> Value {
    let topic = format!("{BENCH_PREFIX}/#");
    json!([
        {"acltype": "publishClientSend", "topic": topic, "allow": true},
        {"acltype": "publishClientReceive", "topic": topic, "allow": true},
        {"acltype": "subscribePattern", "topic": topic, "allow": true},
        {"acltype": "unsubscribePattern", "topic": topic, "allow": true},
    ])
}

/// Adds the bench client with `password` to the managed broker's plugin
/// store in the hub data dir `data`, before `signet-hub serve` starts (the
/// hub keeps every client and role it does not own).
///
/// # Errors
/// When the store cannot be written.
pub fn add_to_managed_store(data: &Path, password: &str) -> Result<(), String> {
    use base64::Engine as _;
    let dir = data.join("broker");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let salt = *b"signet-sim-1";
    let iterations = 101_u32;
    let mut hash = [0_u8; 64];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        std::num::NonZeroU32::new(iterations).ok_or("rounds")?,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let store = json!({
        "clients": [{"username": BENCH_USER, "password": b64.encode(hash),
            "salt": b64.encode(salt), "iterations": iterations,
            "roles": [{"rolename": BENCH_USER, "priority": 0}]}],
        "roles": [{"rolename": BENCH_USER, "acls": bench_acls()}],
    });
    std::fs::write(dir.join("dynamic-security.json"), store.to_string()).map_err(|e| e.to_string())
}

/// Adds the bench client with `password` to an external mosquitto through
/// its dynamic-security admin (`mosquitto_ctrl`).
///
/// # Errors
/// When a `mosquitto_ctrl` command fails.
pub fn add_to_external(
    addr: SocketAddr,
    admin: (&str, &str),
    password: &str,
) -> Result<(), String> {
    let topic = format!("{BENCH_PREFIX}/#");
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["createClient", BENCH_USER, "-p", password],
        vec!["createRole", BENCH_USER],
    ];
    for acl in [
        "publishClientSend",
        "publishClientReceive",
        "subscribePattern",
        "unsubscribePattern",
    ] {
        commands.push(vec!["addRoleACL", BENCH_USER, acl, &topic, "allow"]);
    }
    commands.push(vec!["addClientRole", BENCH_USER, BENCH_USER]);
    for command in commands {
        let output = std::process::Command::new("/usr/bin/mosquitto_ctrl")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-u", admin.0, "-P", admin.1, "dynsec"])
            .args(&command)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "mosquitto_ctrl {command:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    Ok(())
}

/// When each raw subscriber received the message with a given marker.
type Arrivals = Arc<Vec<Mutex<Option<(u64, Instant)>>>>;

/// N raw subscribers: each follows [`GROUP_TOPIC`] and its own topic and
/// notes the marker (the payload's first 8 bytes) and time of what arrives.
pub struct RawFleet {
    clients: Vec<AsyncClient>,
    tasks: Vec<JoinHandle<()>>,
    arrivals: Arrivals,
}

fn options(addr: SocketAddr, client_id: &str, password: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options
        .set_credentials(BENCH_USER, password)
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
    options
}

impl RawFleet {
    /// Connects and subscribes `count` raw subscribers, `concurrency` at a
    /// time.
    ///
    /// # Errors
    /// When one cannot connect or subscribe within 60 s.
    pub async fn connect(
        addr: SocketAddr,
        password: &str,
        count: usize,
        concurrency: usize,
    ) -> Result<Self, String> {
        let arrivals: Arrivals = Arc::new((0..count).map(|_| Mutex::new(None)).collect());
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut connecting = JoinSet::new();
        for index in 0..count {
            let (slots, arrivals, password) =
                (slots.clone(), arrivals.clone(), password.to_owned());
            connecting.spawn(async move {
                let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
                let id = format!("signet-sim-raw-{index}");
                let (client, mut events) = AsyncClient::new(options(addr, &id, &password), 16);
                client
                    .subscribe_many([
                        SubscribeFilter::new(GROUP_TOPIC.to_owned(), QoS::AtLeastOnce),
                        SubscribeFilter::new(own_topic(index), QoS::AtLeastOnce),
                    ])
                    .await
                    .map_err(|e| e.to_string())?;
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let event = tokio::time::timeout_at(deadline.into(), events.poll())
                        .await
                        .map_err(|_| format!("{id}: no SUBACK within 60 s"))?;
                    match event {
                        Ok(Event::Incoming(Packet::SubAck(_))) => break,
                        Ok(_) => {}
                        Err(e) => return Err(format!("{id}: {e}")),
                    }
                }
                let task = tokio::spawn(async move {
                    loop {
                        match events.poll().await {
                            Ok(Event::Incoming(Packet::Publish(publish))) => {
                                let at = Instant::now();
                                let marker = publish
                                    .payload
                                    .get(..8)
                                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                                    .map_or(0, u64::from_be_bytes);
                                *arrivals[index]
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner) = Some((marker, at));
                            }
                            Ok(_) => {}
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                });
                Ok::<_, String>((index, client, task))
            });
        }
        let mut clients = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        while let Some(done) = connecting.join_next().await {
            let (_, client, task) = done.map_err(|e| e.to_string())??;
            clients.push(client);
            tasks.push(task);
        }
        Ok(Self {
            clients,
            tasks,
            arrivals,
        })
    }

    /// Waits until every subscriber got `marker`, for at most `limit`;
    /// per subscriber, when it did.
    pub async fn arrived(&self, marker: u64, limit: Duration) -> Vec<Option<Instant>> {
        let deadline = Instant::now() + limit;
        loop {
            let seen: Vec<Option<Instant>> = self
                .arrivals
                .iter()
                .map(|slot| {
                    slot.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .filter(|(m, _)| *m == marker)
                        .map(|(_, at)| at)
                })
                .collect();
            if seen.iter().all(Option::is_some) || Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Disconnects every subscriber.
    pub async fn close(self) {
        for client in &self.clients {
            let _ = client.try_disconnect();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The bench client's publisher: publishes QoS 1 and keeps its event loop
/// running.
pub struct Publisher {
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Connects the publisher.
    #[must_use]
    pub fn connect(addr: SocketAddr, password: &str) -> Self {
        let (client, mut events) =
            AsyncClient::new(options(addr, "signet-sim-raw-publisher", password), 20_000);
        let task = tokio::spawn(async move {
            loop {
                if events.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self { client, task }
    }

    /// Publishes `size` bytes starting with `marker` on `topic` (QoS 1, not
    /// retained).
    ///
    /// # Errors
    /// When the client refuses (its event loop is gone).
    pub async fn publish(&self, topic: String, marker: u64, size: usize) -> Result<(), String> {
        let mut payload = vec![b'x'; size.max(8)];
        payload[..8].copy_from_slice(&marker.to_be_bytes());
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}
