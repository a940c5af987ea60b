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
use signet_common::approval::ApprovalState;
use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::digest::Sha256;
use signet_common::documents::{
    AccessMembership, Command as SignedCommand, CommandAction, DeviceAssignment, GroupKind,
    GroupManifest, HubTime, ItemKind, ManifestItem,
};
use signet_common::envelope::{self, SigningKey};
use signet_common::ids::{AccessGroupId, EntryId, ItemId};
use signet_common::ids::{DeviceId, NodeId};
use signet_common::license::{AccessWindow, LicenseTerms};
use signet_common::schedule::{Layer, PlaylistItem, ScheduleEntry};
use signet_common::schedule::{MergeMode, Schedule};
use signet_common::sync::{DeviceState, manifest_topic, state_topic};
use signet_common::trust::{CertifiedKey, TrustDocument};
use tokio::sync::mpsc;

pub mod dynsec;

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
        Self::start_with(|_, _| "allow_anonymous true\n".to_owned())
    }

    /// A broker with mosquitto's dynamic-security plugin, whose store holds
    /// only the admin client [`dynsec::ADMIN_USER`] (password
    /// [`dynsec::ADMIN_PASSWORD`]); nobody connects without a login.
    pub fn start_dynsec() -> Self {
        Self::start_with(|dir, _| dynsec::config(dir))
    }

    /// Starts mosquitto with `extra(dir, port)` appended to its config.
    fn start_with(extra: impl Fn(&Path, u16) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\n{}",
                extra(dir.path(), port)
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
            variables: Default::default(),
        };
        envelope::sign_document(&doc, &self.signing).unwrap()
    }

    /// An empty node manifest of `group` at `version`, signed by `key`.
    pub fn manifest_by(&self, key: &SigningKey, group: &str, version: u64) -> Vec<u8> {
        envelope::sign_document(&manifest_doc(group, version, vec![], vec![], None), key).unwrap()
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

/// A valid manifest, issued now, expiring in a week; `license` makes it an
/// access group's.
fn manifest_doc(
    group: &str,
    version: u64,
    items: Vec<ManifestItem>,
    entries: Vec<ScheduleEntry>,
    license: Option<LicenseTerms>,
) -> GroupManifest {
    let now = Utc::now();
    let doc = GroupManifest {
        version,
        issued_at: now,
        expires_at: now + TimeDelta::days(7),
        group_id: group.to_owned(),
        group_kind: if license.is_some() {
            GroupKind::AccessGroup
        } else {
            GroupKind::Node
        },
        items,
        schedule: Schedule {
            entries,
            merge: MergeMode::Sequence,
            default_item: None,
        },
        license,
    };
    doc.validate().unwrap();
    doc
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
        Self::start_with(data, &[])
    }

    /// As [`Self::start`], with more environment (config keys, kill point).
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_full(data, None, env, &[])
    }

    /// As [`Self::start_with`], with the variables `unset` removed from the
    /// environment the agent inherits (`DISPLAY`, `WAYLAND_DISPLAY`).
    pub fn start_without(data: &Path, env: &[(&str, &str)], unset: &[&str]) -> Self {
        Self::start_full(data, None, env, unset)
    }

    /// As [`Self::start`], with a config file (which the agent watches).
    pub fn start_config(data: &Path, config: &Path) -> Self {
        Self::start_full(data, Some(config), &[], &[])
    }

    fn start_full(
        data: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
        unset: &[&str],
    ) -> Self {
        let log = data.join(format!("agent-{}.log", free_port()));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_signet-agent"));
        command.arg("run");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command
            .env("SIGNET_AGENT_DATA_DIR", data)
            .env("SIGNET_AGENT_RECONNECT_BASE_MS", "100")
            .env("SIGNET_AGENT_RECONNECT_CAP_SECS", "1")
            .env("RUST_LOG", "info")
            .env("SIGNET_AGENT_VIDEO_SINK", "none")
            .env("SIGNET_AGENT_SCREEN_WIDTH", "320")
            .env("SIGNET_AGENT_SCREEN_HEIGHT", "180")
            .stdout(Stdio::null())
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        for key in unset {
            command.env_remove(key);
        }
        let child = command.spawn().unwrap();
        Self { child, log }
    }

    /// The process id, for a test that kills by pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
    /// Each state message's payload, and the signed message as sent.
    pub states: mpsc::UnboundedReceiver<(DeviceState, Vec<u8>)>,
    /// Every state message seen, in order.
    pub seen: Vec<DeviceState>,
    /// Every state message seen, as sent (signed `device_state`
    /// envelopes, S11), in order.
    pub seen_signed: Vec<Vec<u8>>,
}

/// The public key of the device key in the agent data dir `data` (read
/// from the key file, so it works while the agent holds its store).
pub fn device_public_key(data: &Path) -> signet_common::envelope::PublicKey {
    let pkcs8 = std::fs::read(data.join(signet_agent::state::DEVICE_KEY_FILE)).unwrap();
    SigningKey::from_pkcs8(&pkcs8).unwrap().public_key()
}

impl Hub {
    pub async fn connect(broker: &Broker) -> Self {
        Self::connect_as(broker, None).await
    }

    /// As [`Self::connect`], with a user name and password.
    pub async fn connect_as(broker: &Broker, login: Option<(&str, &str)>) -> Self {
        let mut options = MqttOptions::new(
            format!("test-hub-{}", free_port()),
            "127.0.0.1",
            broker.port,
        );
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
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
                        // A signed `device_state` envelope (S11): its
                        // payload is read here; tests that know the device
                        // key verify `seen_signed`.
                        let state = envelope::open(&p.payload)
                            .ok()
                            .filter(|o| o.kind() == envelope::DocumentKind::DeviceState)
                            .and_then(|o| serde_json::from_slice::<DeviceState>(o.payload()).ok());
                        if let Some(state) = state {
                            let _ = state_tx.send((state, p.payload.to_vec()));
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
            seen_signed: Vec::new(),
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
            let (state, signed) = tokio::time::timeout_at(deadline, self.states.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no state where {what}; last seen: {:#?}", self.seen.last())
                })
                .unwrap();
            self.seen.push(state.clone());
            self.seen_signed.push(signed);
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

// ------------------------------------------------------------------ content

/// One blob served by the [`ContentServer`], with what was asked of it.
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// Requests for it.
    pub requests: u64,
    /// Σ (size − range start) over its requests: the bytes the agent asked
    /// for, so re-requested bytes = this − size once it is complete.
    pub requested_bytes: u64,
    /// The range start of each request.
    pub starts: Vec<u64>,
    /// When each request arrived (wall clock).
    pub at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct ContentState {
    blobs: std::collections::HashMap<String, Vec<u8>>,
    served: std::collections::HashMap<String, Served>,
    /// Blobs answered with 503 for now.
    unavailable: std::collections::HashSet<String>,
}

/// A real HTTP content mirror on 127.0.0.1 (axum) answering
/// `GET /blobs/{sha256}` whole or from a `Range: bytes=N-`, counting what it
/// was asked for.
pub struct ContentServer {
    pub base: String,
    state: std::sync::Arc<std::sync::Mutex<ContentState>>,
}

impl ContentServer {
    pub async fn start() -> Self {
        use axum::extract::{Path as AxPath, State};
        use axum::http::{HeaderMap, StatusCode, header};
        use axum::response::IntoResponse;
        type Shared = std::sync::Arc<std::sync::Mutex<ContentState>>;
        async fn blob(
            State(state): State<Shared>,
            AxPath(sha): AxPath<String>,
            headers: HeaderMap,
        ) -> axum::response::Response {
            let mut state = state.lock().unwrap();
            if state.unavailable.contains(&sha) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let Some(bytes) = state.blobs.get(&sha).cloned() else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let start = headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|v| v.parse::<u64>().ok());
            let size = bytes.len() as u64;
            let served = state.served.entry(sha).or_default();
            served.requests += 1;
            served.starts.push(start.unwrap_or(0));
            served.at.push(Utc::now());
            match start {
                None => {
                    served.requested_bytes += size;
                    (StatusCode::OK, bytes).into_response()
                }
                Some(start) if start >= size => (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response(),
                Some(start) => {
                    served.requested_bytes += size - start;
                    (
                        StatusCode::PARTIAL_CONTENT,
                        [(
                            header::CONTENT_RANGE,
                            format!("bytes {start}-{}/{size}", size - 1),
                        )],
                        bytes[start as usize..].to_vec(),
                    )
                        .into_response()
                }
            }
        }
        let state: Shared = Default::default();
        let app = axum::Router::new()
            .route("/blobs/{sha}", axum::routing::get(blob))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, state }
    }

    /// Serves `bytes`; returns their SHA-256 and URL.
    pub fn add(&self, bytes: Vec<u8>) -> (Sha256, String) {
        let sha = Sha256::of(&bytes);
        self.state
            .lock()
            .unwrap()
            .blobs
            .insert(sha.to_string(), bytes);
        (sha, format!("{}/blobs/{sha}", self.base))
    }

    /// What was asked of `sha`.
    pub fn served(&self, sha: &Sha256) -> Served {
        self.state
            .lock()
            .unwrap()
            .served
            .get(&sha.to_string())
            .cloned()
            .unwrap_or_default()
    }

    /// Answers 503 for `sha` while `down`.
    pub fn set_unavailable(&self, sha: &Sha256, down: bool) {
        let mut state = self.state.lock().unwrap();
        if down {
            state.unavailable.insert(sha.to_string());
        } else {
            state.unavailable.remove(&sha.to_string());
        }
    }
}

/// `len` pseudo-random bytes from `seed` (distinct seeds, distinct hashes).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An approved image item of `size` bytes at `url`.
pub fn image(id: &str, sha: Sha256, size: u64, url: &str) -> ManifestItem {
    ManifestItem {
        id: ItemId::from(id),
        kind: ItemKind::Image,
        sha256: sha,
        size,
        url: url.to_owned(),
        approval: ApprovalState::Active,
        approved_hash: Some(sha),
        categories: vec![],
        renditions: Vec::new(),
    }
}

/// An always-active schedule entry playing `items` for `ms` each.
pub fn entry(id: &str, items: &[&str], ms: u64, priority: i32) -> ScheduleEntry {
    ScheduleEntry {
        id: EntryId::from(id),
        items: items
            .iter()
            .map(|i| PlaylistItem {
                item: ItemId::from(*i),
                duration_ms: ms,
            })
            .collect(),
        dayparts: vec![],
        weekdays: vec![],
        dates: None,
        priority,
        layer: Layer::Main,
    }
}

impl Keys {
    /// A manifest of `group` with `items` and `entries`; `license` makes it
    /// an access group's.
    pub fn manifest_with(
        &self,
        group: &str,
        version: u64,
        items: Vec<ManifestItem>,
        entries: Vec<ScheduleEntry>,
        license: Option<LicenseTerms>,
    ) -> Vec<u8> {
        let doc = manifest_doc(group, version, items, entries, license);
        envelope::sign_document(&doc, &self.signing).unwrap()
    }

    /// An assignment of [`DEVICE`] to `nodes` and the access groups
    /// `access` (each with its window), with `grace_secs` offline grace.
    pub fn assignment_with(
        &self,
        version: u64,
        nodes: &[&str],
        access: &[(&str, AccessWindow)],
        grace_secs: u64,
    ) -> Vec<u8> {
        let doc = DeviceAssignment {
            version,
            issued_at: Utc::now(),
            device_id: device(),
            node_chain: nodes.iter().map(|g| NodeId::from(*g)).collect(),
            access_groups: access
                .iter()
                .map(|(g, window)| AccessMembership {
                    group_id: AccessGroupId::from(*g),
                    window: *window,
                })
                .collect(),
            min_manifest_versions: BTreeMap::new(),
            time_zone: chrono_tz::UTC,
            location: Default::default(),
            offline_grace_secs: grace_secs,
            variables: Default::default(),
        };
        envelope::sign_document(&doc, &self.signing).unwrap()
    }
}

/// The playing manifest versions in a stopped agent's state dir, by group.
pub fn playing_versions(data: &Path) -> BTreeMap<String, (u64, Vec<ManifestItem>)> {
    let store = Store::open(data).unwrap();
    store
        .active_manifests()
        .unwrap()
        .into_iter()
        .map(|(group, bytes)| {
            let m: GroupManifest = signet_agent::sync::apply::stored_payload(&bytes).unwrap();
            (group, (m.version, m.items))
        })
        .collect()
}

/// Every file in the cache's blobs dir with the SHA-256 of its bytes.
pub fn blobs_on_disk(data: &Path) -> Vec<(String, Sha256)> {
    let dir = data.join("cache").join("blobs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut out: Vec<(String, Sha256)> = entries
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                Sha256::of(&bytes),
            )
        })
        .collect();
    out.sort();
    out
}

/// The retained world of a content test: trust v1, hub time v1 and
/// `assignment`.
pub async fn publish_basics(hub: &mut Hub, keys: &Keys, assignment: Vec<u8>) {
    hub.publish(signet_common::sync::TRUST_TOPIC, keys.trust(1), true)
        .await;
    hub.publish(signet_common::sync::HUB_TIME_TOPIC, keys.hub_time(1), true)
        .await;
    hub.publish(
        &signet_common::sync::assignment_topic(&device()),
        assignment,
        true,
    )
    .await;
}

/// A content mirror, a broker, keys and a hub client, with the device
/// assigned to the node chain `nodes` (one day of offline grace).
pub async fn content_world(nodes: &[&str]) -> (ContentServer, Broker, Keys, Hub) {
    let server = ContentServer::start().await;
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    let assignment = keys.assignment_with(1, nodes, &[], 86_400);
    publish_basics(&mut hub, &keys, assignment).await;
    (server, broker, keys, hub)
}

/// A PNG of `side`×`side` random pixels made by GStreamer's own encoder: a
/// real image the player decodes, about 3·side² bytes, new bytes each call.
pub fn noise_png(side: u32) -> Vec<u8> {
    pattern_png("snow", side, side)
}

/// A PNG of videotestsrc's `pattern` (`snow`, `red`, …) at
/// `width`×`height`, made by GStreamer's own encoder.
pub fn pattern_png(pattern: &str, width: u32, height: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pattern.png");
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            &format!("pattern={pattern}"),
            "num-buffers=1",
            "!",
        ])
        .arg(format!("video/x-raw,width={width},height={height}"))
        .args(["!", "pngenc", "!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "gst-launch-1.0 made no PNG");
    std::fs::read(path).unwrap()
}

/// The proof-of-play events queued in a stopped agent's state dir, oldest
/// first (at most 10 000).
pub fn queued_events(data: &Path) -> Vec<signet_common::sync::PlayEvent> {
    let store = Store::open(data).unwrap();
    signet_agent::events::EventLog::open(&store)
        .unwrap()
        .oldest(10_000)
        .unwrap()
        .into_iter()
        .map(|(_, event)| event)
        .collect()
}
