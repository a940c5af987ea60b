//! An in-process hub for API tests: a fresh data directory, the real router
//! on a random loopback port, a manual clock, and request helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod events;
pub mod mosquitto;
pub mod postgres;
pub mod session;
pub mod signed;
pub mod smtp;
pub mod states;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::app::{Clock, Hub};
use signet_hub::config::Config;
use signet_hub::publish::RecordingPublisher;
use tokio::sync::oneshot;

/// A clock tests move by hand.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock reading `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// What `device` would report accepted after accepting every document it
/// should have (with [`activated_all`]: in sync, U4).
pub fn applied_all(
    hub: &TestHub,
    device: &str,
) -> std::collections::BTreeMap<String, signet_common::sync::AppliedDocument> {
    signet_hub::fleet::desired_documents(
        &hub.state.store,
        &signet_common::ids::DeviceId::from(device),
    )
    .unwrap()
    .unwrap()
    .into_iter()
    .map(|d| {
        (
            signet_hub::publish::document_key(d.kind, &d.subject),
            signet_common::sync::AppliedDocument {
                version: d.version,
                sha256: d.sha256,
            },
        )
    })
    .collect()
}

/// What `device` would report activated with every desired group manifest
/// in use: the group manifests of [`applied_all`] (other kinds are in use
/// once accepted and are not listed as activated).
pub fn activated_all(
    hub: &TestHub,
    device: &str,
) -> std::collections::BTreeMap<String, signet_common::sync::AppliedDocument> {
    applied_all(hub, device)
        .into_iter()
        .filter(|(key, _)| key.starts_with("group_manifest/"))
        .collect()
}

/// Sets `state` to every desired document accepted and every desired group
/// manifest activated, nothing pending or refused (U4, D3: in sync).
pub fn report_all_in_use(hub: &TestHub, state: &mut signet_common::sync::DeviceState) {
    let device = state.device_id.to_string();
    state.applied = applied_all(hub, &device);
    state.activated = activated_all(hub, &device);
    state.pending.clear();
    state.refused.clear();
}

/// The password every user made by [`TestHub::user`] gets.
pub const PASSWORD: &str = "a long test password";

/// A running hub with its admin logged in.
pub struct TestHub {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The hub's shared state (store access for setup and checks).
    pub state: Hub,
    /// The hub's clock.
    pub clock: Arc<ManualClock>,
    /// The admin's token.
    pub admin: String,
    /// Every retained message the hub published (the state's publisher).
    pub publisher: Arc<RecordingPublisher>,
    /// The data directory (keys under `keys/`).
    pub data: std::path::PathBuf,
    /// The root node's id.
    pub root: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// Stops the server when dropped.
    _stop: oneshot::Sender<()>,
    /// The data directory, deleted when dropped.
    _dir: tempfile::TempDir,
    /// The PostgreSQL server the store is in (`SIGNET_TEST_STORE=postgres`).
    _postgres: Option<Arc<postgres::PgServer>>,
}

/// With `SIGNET_TEST_STORE=postgres`, moves the store `init` made in `data`
/// into a new database of the shared test server (X4) and points `config`
/// at it; the server, to keep while the hub runs.
async fn store_from_env(config: &mut Config) -> Option<Arc<postgres::PgServer>> {
    if std::env::var("SIGNET_TEST_STORE").ok()?.as_str() != "postgres" {
        return None;
    }
    Some(store_in_postgres(config).await)
}

/// Moves the store `init` made in `config.data` into a new database of the
/// shared test server (X4) and points `config` at it; the server.
async fn store_in_postgres(config: &mut Config) -> Arc<postgres::PgServer> {
    let server = postgres::PgServer::shared();
    let url = server.database();
    let (from, to) = (config.data.clone(), url.clone());
    tokio::task::spawn_blocking(move || signet_hub::store::migrate::sled_to_postgres(&from, &to))
        .await
        .unwrap()
        .unwrap();
    config.store = url;
    server
}

impl TestHub {
    /// Starts a hub with the default config on a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a hub after `configure` adjusts its config.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(None, configure).await
    }

    /// Starts a hub on sled (`Some(false)`), on PostgreSQL (`Some(true)`),
    /// or as `SIGNET_TEST_STORE` says (`None`), after `configure`.
    pub async fn start_on(postgres: Option<bool>, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let now = Utc::now();
        let made = signet_hub::init::init(&data, now).await.unwrap();
        let mut config = Config {
            data,
            http_listen: "127.0.0.1:0".parse().unwrap(),
            // Every request of a test comes from 127.0.0.1: the per-source
            // limits (S12) are tested where a test sets them lower.
            rate_limit_per_minute: 100_000,
            rate_limit_burst: 100_000,
            ..Config::default()
        };
        configure(&mut config);
        let postgres = match postgres {
            None => store_from_env(&mut config).await,
            Some(false) => None,
            Some(true) => Some(store_in_postgres(&mut config).await),
        };
        let clock = Arc::new(ManualClock(Mutex::new(now)));
        let data = config.data.clone();
        let mut state = signet_hub::serve::open(config, clock.clone()).unwrap();
        let publisher = Arc::new(RecordingPublisher::new());
        state.publisher = publisher.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server_state = state.clone();
        tokio::spawn(async move {
            signet_hub::serve::run(listener, server_state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let mut hub = Self {
            base,
            state,
            clock,
            admin: String::new(),
            publisher,
            data,
            root: made.root_node.to_string(),
            client: reqwest::Client::new(),
            _stop: stop,
            _dir: dir,
            _postgres: postgres,
        };
        hub.admin = hub.login("admin", &made.admin_password).await;
        hub
    }

    /// Sends `method path` with an optional token and JSON body; returns the
    /// status and the JSON body (`Null` when empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GET with a token.
    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// PATCH JSON with a token.
    pub async fn patch(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// DELETE with a token.
    pub async fn delete(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Pairs a device into `node` as the admin through the real flow
    /// (its public key: 32 bytes of `seed`); its id and secret.
    pub async fn pair_device(&self, node: &str, seed: u8) -> (String, String) {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD.encode([seed; 32]);
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/device/pairings",
                None,
                Some(json!({"public_key": key, "agent_version": "0.1.0", "os": "Linux"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (ticket, code) = (
            body["ticket"].as_str().unwrap(),
            body["code"].as_str().unwrap(),
        );
        let (status, body) = self
            .post(
                &self.admin,
                &format!("/api/v1/devices/pairings/{code}/approve"),
                json!({"node": node, "name": format!("screen {seed}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, answer) = self
            .call(
                Method::GET,
                &format!("/api/v1/device/pairings/{ticket}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        (
            answer["device_id"].as_str().unwrap().to_owned(),
            answer["broker"]["password"].as_str().unwrap().to_owned(),
        )
    }

    /// Logs in and returns the token; panics unless it succeeds.
    pub async fn login(&self, name: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/session",
                None,
                Some(json!({"name": name, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {name}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a node under `parent` as `token`; returns its id.
    pub async fn node(&self, token: &str, parent: &str, name: &str) -> String {
        let (status, body) = self
            .post(
                token,
                "/api/v1/nodes",
                json!({"parent": parent, "name": name}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create node {name}: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates, as the admin, an access group at `node` with category
    /// `news`, offline play for an hour and no export; returns its id.
    pub async fn news_group(&self, node: &str, name: &str) -> String {
        let (status, body) = self
            .post(
                &self.admin,
                "/api/v1/access-groups",
                json!({"node": node, "name": name, "categories": ["news"],
                    "license": {"allow_offline": true, "offline_grace_secs": 3600, "allow_export": false}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Sets, as the admin, the items of access group `group`, each in
    /// category `news`; returns the answer, which must be a success.
    pub async fn set_news_items(&self, group: &str, items: &[&str]) -> Value {
        let items: Vec<Value> = items
            .iter()
            .map(|id| json!({"id": id, "categories": ["news"]}))
            .collect();
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/api/v1/access-groups/{group}/items"),
                Some(&self.admin),
                Some(json!({"items": items})),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
        body
    }

    /// Defers a publish of node `node` to `at` as `token`; returns the
    /// answer (202 and the pending job when accepted).
    pub async fn publish_node_at(
        &self,
        token: &str,
        node: &str,
        at: DateTime<Utc>,
    ) -> (StatusCode, Value) {
        self.post(
            token,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": node},
                "when": {"type": "at", "at": at.to_rfc3339()}}),
        )
        .await
    }

    /// Runs `sql` in this hub's PostgreSQL database (a hub on PostgreSQL
    /// only); its output (unaligned, tuples only).
    pub fn pg_sql(&self, sql: &str) -> String {
        let server = self._postgres.as_ref().expect("a hub on PostgreSQL");
        let db = self.state.config.store.rsplit('/').next().unwrap();
        server.sql(db, sql)
    }

    /// Creates a user (as the admin) with `role` and `domain`, logs them in,
    /// and returns (user id, token).
    pub async fn user(&self, name: &str, role: &str, domain: &[&str]) -> (String, String) {
        let (status, body) = self
            .post(
                &self.admin,
                "/api/v1/users",
                json!({"name": name, "email": format!("{name}@example.test"), "password": PASSWORD,
                    "role": role, "domain": domain}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create user {name}: {body}");
        let id = body["id"].as_str().unwrap().to_owned();
        (id, self.login(name, PASSWORD).await)
    }
}

/// Asserts an error answer: the status and the JSON `error` code.
pub fn assert_error(result: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(result.0, status, "body: {}", result.1);
    assert_eq!(result.1["error"], code, "body: {}", result.1);
    assert!(result.1["message"].is_string(), "body: {}", result.1);
}

/// A structurally whole PNG of exactly `len` bytes (at least 57): a 1×1
/// header, one IDAT chunk filled with a pattern that `seed` varies (never
/// decoded by the hub's upload checks), IEND. Distinct seeds or lengths make
/// distinct bytes.
pub fn png(len: usize, seed: u8) -> Vec<u8> {
    let data = len.checked_sub(57).expect("a PNG has at least 57 bytes");
    let mut png =
        b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\0\0\0\0".to_vec();
    png.extend(u32::try_from(data).unwrap().to_be_bytes());
    png.extend(b"IDAT");
    png.extend((0..data).map(|i| (i as u8).wrapping_mul(31) ^ seed));
    png.extend(b"\0\0\0\0\0\0\0\0IEND\xae\x42\x60\x82");
    assert_eq!(png.len(), len);
    png
}

/// A whole 1×1 GIF (a two-colour palette, one black pixel) carrying `tag`
/// in a comment, so distinct tags make distinct bytes; decodable (C5
/// thumbnails).
pub fn gif(tag: &str) -> Vec<u8> {
    let mut gif = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff".to_vec();
    for block in tag.as_bytes().chunks(255) {
        gif.extend([0x21, 0xfe, u8::try_from(block.len()).unwrap()]);
        gif.extend(block);
        gif.push(0);
    }
    gif.extend(b"\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3b");
    gif
}

/// A fresh Ed25519 device key, as an agent makes at its first start.
pub fn device_key() -> signet_common::envelope::SigningKey {
    use signet_common::envelope::SigningKey;
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

/// Records `device` as paired at leaf `node` with the broker and HTTP
/// secret `secret` — its device record and its place in the tree, as
/// approving its pairing writes them — and returns the device key it
/// registered, the only key its reports may be signed with (S11).
pub async fn register_device(
    hub: &TestHub,
    node: &str,
    device: &str,
    secret: &str,
) -> signet_common::envelope::SigningKey {
    let mut batch = signet_hub::store::WriteBatch::new();
    let key = paired_in(&mut batch, node, device, secret);
    hub.state.store.apply(batch).await.unwrap();
    key
}

/// Adds to `batch` what approving the pairing of `device` at leaf `node`
/// writes (its device record and its place in the tree); returns the
/// device key it registered.
pub fn paired_in(
    batch: &mut signet_hub::store::WriteBatch,
    node: &str,
    device: &str,
    secret: &str,
) -> signet_common::envelope::SigningKey {
    use signet_common::ids::{DeviceId, NodeId, UserId};
    use signet_hub::devices::{DEVICES, Device, node_device_key};
    let key = device_key();
    let record = Device {
        id: DeviceId::from(device),
        name: format!("screen {device}"),
        node: NodeId::from(node),
        public_key: key.public_key().to_base64(),
        os: "test os".into(),
        agent_version: "0.1.0".into(),
        paired_at: Utc::now(),
        paired_by: UserId::from("test"),
        secret_hash: signet_hub::identity::token_key(secret),
        last_command_version: 0,
        variables: std::collections::BTreeMap::new(),
    };
    batch.put(DEVICES, device, &record).unwrap();
    batch
        .put(
            signet_hub::tenancy::NODE_DEVICES,
            &node_device_key(&record.node, &record.id),
            &json!({"device": device}),
        )
        .unwrap();
    key
}

impl TestHub {
    /// Uploads `body` as a content item named `name` at `node` with
    /// `token`; returns the status and the JSON answer.
    pub async fn upload(
        &self,
        token: &str,
        node: &str,
        name: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/content", self.base))
            .query(&[("node", node), ("name", name)])
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Makes a media file in `dir` with `gst-launch-1.0 PIPELINE ! filesink`
/// (installed with GStreamer) and returns its bytes.
pub fn gst_file(dir: &std::path::Path, name: &str, pipeline: &str) -> Vec<u8> {
    let path = dir.join(name);
    let mut args: Vec<String> = vec!["-q".into()];
    args.extend(pipeline.split_whitespace().map(str::to_owned));
    args.extend([
        "!".into(),
        "filesink".into(),
        format!("location={}", path.display()),
    ]);
    let status = std::process::Command::new("gst-launch-1.0")
        .args(&args)
        .status()
        .unwrap();
    assert!(status.success(), "gst-launch-1.0 {pipeline}");
    std::fs::read(path).unwrap()
}

/// Adds to `batch` an active, operator-made membership of `member` in
/// `group` that began `joined_ago` before the hub's clock, with its group
/// index entry: what the access-group service writes when a member is added.
pub fn put_member(
    batch: &mut signet_hub::store::WriteBatch,
    hub: &TestHub,
    group: &str,
    member: signet_hub::access_groups::MemberRef,
    joined_ago: TimeDelta,
) {
    use signet_hub::access_groups::{
        MEMBER_GROUPS, MEMBERS, Member, MemberSource, member_index_key, member_key,
    };
    let group = signet_common::ids::AccessGroupId::from(group);
    let record = Member {
        group: group.clone(),
        member: member.clone(),
        membership: signet_common::license::Membership::joined(hub.clock.now() - joined_ago),
        display_name: None,
        source: MemberSource::Operator {
            by: signet_common::ids::UserId::from("test"),
        },
        active: true,
    };
    batch
        .put(MEMBERS, &member_key(&group, &member), &record)
        .unwrap();
    batch
        .put(MEMBER_GROUPS, &member_index_key(&group, &member), &group)
        .unwrap();
}
