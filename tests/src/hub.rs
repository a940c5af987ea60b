//! A running `signet-hub` as a child process and the operator API calls
//! tests make through it ([`Hub`]), on sled or, with
//! `SIGNET_TEST_STORE=postgres`, on PostgreSQL ([`crate::store`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Process, hub_binary};

/// A running `signet-hub serve` on loopback (embedded broker unless the
/// environment says otherwise), with its admin logged in.
pub struct Hub {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin's bearer token.
    pub token: String,
    /// The data directory.
    pub data: PathBuf,
    /// The PostgreSQL URL of the hub's store; `None` on sled (in `data`).
    pub store: Option<String>,
    /// HTTP client.
    pub client: reqwest::Client,
}

impl Hub {
    /// Initializes `dir/data` and starts the hub on free loopback ports,
    /// with `env` added (e.g. `SIGNET_HUB_MQTT__EMBEDDED=false`).
    ///
    /// # Panics
    /// When init, start or login fail.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let (data, password) = Self::init(dir);
        Self::serve(&data, &password, env).await
    }

    /// Runs `signet-hub init` on `dir/hub-data` (and, on PostgreSQL, moves
    /// the store it made into a new database: [`crate::store::adopt`]);
    /// returns the data dir and the admin password.
    ///
    /// # Panics
    /// When init or the move fails.
    #[must_use]
    pub fn init(dir: &Path) -> (PathBuf, String) {
        let data = dir.join("hub-data");
        let init = Command::new(hub_binary())
            .args(["init", "--data"])
            .arg(&data)
            .output()
            .expect("run signet-hub init");
        let stdout = String::from_utf8_lossy(&init.stdout).into_owned();
        assert!(
            init.status.success(),
            "init failed: {stdout}{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let password = stdout
            .lines()
            .find_map(|l| l.strip_prefix("admin password: "))
            .expect("init prints the admin password")
            .to_owned();
        crate::store::adopt(&hub_binary(), &data);
        (data, password)
    }

    /// Starts `serve` on an initialized data directory (on the database
    /// its store moved to, if it did) and logs in.
    ///
    /// # Panics
    /// When the hub does not start or the login fails, or, on PostgreSQL,
    /// when the login's session is not in the database.
    pub async fn serve(data: &Path, password: &str, env: &[(&str, &str)]) -> Self {
        let data_text = data.display().to_string();
        let store = crate::store::store_of(data);
        let mut all: Vec<(&str, &str)> = vec![
            ("SIGNET_HUB_DATA", &data_text),
            ("SIGNET_HUB_HTTP_LISTEN", "127.0.0.1:0"),
            ("SIGNET_HUB_BROKER_LISTEN", "127.0.0.1:0"),
        ];
        if let Some(url) = &store {
            all.push(("SIGNET_HUB_STORE", url));
        }
        all.extend_from_slice(env);
        let process = Process::start("hub", &hub_binary(), &["serve"], &all);
        let line = process
            .line_containing("signet-hub listening on http://", Duration::from_secs(30))
            .await;
        let base = line
            .split("listening on ")
            .nth(1)
            .expect("the line names the address")
            .trim()
            .to_owned();
        let client = reqwest::Client::new();
        let mut hub = Self {
            process,
            base,
            token: String::new(),
            data: data.to_path_buf(),
            store,
            client,
        };
        let sessions_before = hub.sessions_in_postgres().await;
        let (status, session) = hub
            .call(
                reqwest::Method::POST,
                "/api/v1/session",
                Some(serde_json::json!({"name": "admin", "password": password})),
            )
            .await;
        assert!(status.is_success(), "login: {status} {session}");
        hub.token = session["token"]
            .as_str()
            .expect("the session answer has a token")
            .to_owned();
        if let Some(before) = sessions_before {
            let after = hub.sessions_in_postgres().await.unwrap_or_default();
            assert!(
                after > before,
                "the login's session is not in the hub's PostgreSQL database ({before} then {after} sessions): the hub is not on it"
            );
        }
        hub
    }

    /// How many sessions the hub's PostgreSQL database holds; `None` on
    /// sled.
    async fn sessions_in_postgres(&self) -> Option<u64> {
        let url = self.store.clone()?;
        let count = tokio::task::spawn_blocking(move || crate::store::records(&url, "sessions"))
            .await
            .expect("count the sessions");
        Some(count)
    }

    /// Sends a request as the admin; returns the status and JSON body.
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send a request to the hub");
        let status = response.status();
        let bytes = response.bytes().await.expect("read the hub's answer");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// POSTs `body` and expects success; returns the answer.
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {answer}");
        answer
    }

    /// Creates a node under `parent`; returns its id.
    pub async fn node(&self, parent: &str, name: &str) -> String {
        let answer = self
            .post(
                "/api/v1/nodes",
                serde_json::json!({"parent": parent, "name": name}),
            )
            .await;
        answer["id"].as_str().expect("a node id").to_owned()
    }

    /// Schedules `item` all day at `node` (one playlist, one entry with id
    /// `all-day`) showing it for `duration_ms` per pass; returns the ids of
    /// the playlist and the schedule made.
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn schedule_all_day(&self, node: &str, item: &str, duration_ms: u64) -> AllDay {
        let playlist = self
            .post(
                "/api/v1/playlists",
                serde_json::json!({"node": node, "name": format!("All day: {item}"),
                    "items": [{"item": item, "duration_ms": duration_ms}]}),
            )
            .await;
        let schedule = self
            .post(
                "/api/v1/schedules",
                serde_json::json!({"target": {"kind": "node", "id": node},
                    "entries": [{"id": "all-day", "playlist": playlist["id"], "priority": 0}]}),
            )
            .await;
        let id = |answer: &serde_json::Value, what: &str| {
            answer["id"]
                .as_str()
                .unwrap_or_else(|| panic!("the {what} answer has no id: {answer}"))
                .to_owned()
        };
        AllDay {
            playlist: id(&playlist, "playlist"),
            schedule: id(&schedule, "schedule"),
        }
    }

    /// Creates an access group at `node` with `license` and adds `devices`
    /// as its device members in one request ([`Hub::add_devices`]);
    /// returns the group's id.
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn access_group<D: AsRef<str>>(
        &self,
        node: &str,
        name: &str,
        license: serde_json::Value,
        devices: &[D],
    ) -> String {
        let group = self
            .post(
                "/api/v1/access-groups",
                serde_json::json!({"node": node, "name": name, "license": license}),
            )
            .await["id"]
            .as_str()
            .expect("an access group id")
            .to_owned();
        self.add_devices(&group, devices).await;
        group
    }

    /// Sets access group `group`'s items (content ids) in one request,
    /// published at once (L3); returns the publication run's documents.
    ///
    /// # Panics
    /// When the hub refuses, or says the publication failed.
    pub async fn set_group_items<I: AsRef<str>>(
        &self,
        group: &str,
        items: &[I],
    ) -> Vec<serde_json::Value> {
        let items: Vec<serde_json::Value> = items
            .iter()
            .map(|id| serde_json::json!({"id": id.as_ref()}))
            .collect();
        let (status, saved) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/access-groups/{group}/items"),
                Some(serde_json::json!({"items": items})),
            )
            .await;
        assert!(status.is_success(), "{status} {saved}");
        assert!(saved["publication_error"].is_null(), "{saved}");
        saved["publication"]["documents"]
            .as_array()
            .expect("the publication's documents")
            .clone()
    }

    /// Adds `devices` to access group `group` in one request (the bulk
    /// route: one change, one publication); nothing when there are none.
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn add_devices<D: AsRef<str>>(&self, group: &str, devices: &[D]) {
        if devices.is_empty() {
            return;
        }
        let add: Vec<&str> = devices.iter().map(AsRef::as_ref).collect();
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/access-groups/{group}/members/devices"),
                Some(serde_json::json!({"add": add})),
            )
            .await;
        assert!(status.is_success(), "adding devices: {status} {answer}");
    }

    /// The root node's id.
    ///
    /// # Panics
    /// When the node list has no root.
    pub async fn root(&self) -> String {
        let (_, nodes) = self.call(reqwest::Method::GET, "/api/v1/nodes", None).await;
        nodes
            .as_array()
            .and_then(|all| all.iter().find(|n| n["parent"].is_null()))
            .and_then(|n| n["id"].as_str())
            .expect("a root node")
            .to_owned()
    }

    /// Uploads `bytes` as a content item at `node`; returns the item's JSON.
    ///
    /// # Panics
    /// When the upload is refused.
    pub async fn upload(&self, node: &str, name: &str, bytes: Vec<u8>) -> serde_json::Value {
        let response = self
            .client
            .post(format!("{}/api/v1/content", self.base))
            .query(&[("node", node), ("name", name)])
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(status.is_success(), "upload: {status} {answer}");
        answer
    }

    /// Every row of `device`'s usage report (its proof of play), all
    /// pages of 1,000, in the hub's order.
    ///
    /// # Panics
    /// When the hub refuses or answers without rows.
    pub async fn usage(&self, device: &str) -> Vec<serde_json::Value> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/reports/usage?device={device}&limit=1000");
            if let Some(after) = &after {
                path.push_str(&format!("&after={after}"));
            }
            let (status, page) = self.call(reqwest::Method::GET, &path, None).await;
            assert!(status.is_success(), "{page}");
            let events = page["events"].as_array();
            rows.extend(events.expect("a usage page has events").iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return rows,
            }
        }
    }

    /// The fleet view of every device.
    pub async fn fleet(&self) -> Vec<serde_json::Value> {
        let (_, fleet) = self.call(reqwest::Method::GET, "/api/v1/fleet", None).await;
        fleet.as_array().cloned().unwrap_or_default()
    }
}

/// What [`Hub::schedule_all_day`] made.
#[derive(Debug, Clone)]
pub struct AllDay {
    /// The playlist's id.
    pub playlist: String,
    /// The schedule's id.
    pub schedule: String,
}
