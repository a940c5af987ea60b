//! signet-tests: the end-to-end harness. It runs the real binaries —
//! `signet-hub` (with its embedded broker, or pointed at a real mosquitto)
//! and `signet-agent` — as child processes on loopback ports, and drives
//! them through their public interfaces: the operator HTTP API, the agent's
//! command line and state, and MQTT.
//!
//! Owns: process lifecycle (each child is killed by its pid when dropped,
//! never by name), free loopback ports, bounded waits, and small API
//! helpers. Must not: reach into a process's internals; everything a test
//! checks is visible to an operator or a device.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod rig;
pub mod sim;

/// The directory holding the workspace's built binaries (`target/debug`),
/// found from the running test executable (`target/debug/deps/…`).
///
/// # Panics
/// When the test executable's path has no such ancestor.
#[must_use]
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.ancestors()
        .find(|dir| dir.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf()
}

/// The path of a workspace binary; `make test` builds them before the
/// tests (`cargo build --workspace --bins`).
///
/// # Panics
/// When the binary was not built, with the command that builds it.
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// The hub binary the harness runs: the one `SIGNET_BENCH_HUB_BIN` names
/// when set (a bench measuring another build of the hub against this one),
/// else the workspace's `signet-hub`.
///
/// # Panics
/// When that binary does not exist.
#[must_use]
pub fn hub_binary() -> PathBuf {
    match std::env::var_os("SIGNET_BENCH_HUB_BIN") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "SIGNET_BENCH_HUB_BIN names {}, which does not exist",
                path.display()
            );
            path
        }
        None => binary("signet-hub"),
    }
}

/// A free loopback port, reserved until the returned listener is dropped.
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> (SocketAddr, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    (addr, listener)
}

/// Polls `check` every 25 ms until it returns `Some`, for at most `limit`.
///
/// # Panics
/// With `what` when the limit passes.
pub async fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A child process whose output lines are collected, killed (SIGKILL, by
/// its pid) when dropped.
pub struct Process {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `program` with `args`, collecting stdout and stderr lines.
    ///
    /// # Panics
    /// When the program cannot be started.
    #[must_use]
    pub fn start(name: &str, program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            let label = name.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("SIGNET_TEST_ECHO").is_some() {
                        eprintln!("[{label}] {line}");
                    }
                    if let Ok(mut all) = lines.lock() {
                        all.push(line);
                    }
                }
            });
        }
        Self {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line it printed so far.
    ///
    /// # Panics
    /// When a reader thread panicked while holding the lines.
    #[must_use]
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().expect("output lock").clone()
    }

    /// Waits (bounded) for a printed line containing `needle`; returns it.
    ///
    /// # Panics
    /// When it does not come in time, with the output so far.
    pub async fn line_containing(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.output().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "{} printed no line with {needle:?} within {limit:?}; output:\n{}",
                self.name,
                self.output().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends it SIGTERM (by its pid), as systemd's stop does.
    ///
    /// # Panics
    /// When `kill` cannot be run or refuses.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends it the signal named `name` (`STOP`, `CONT`, `TERM`, …) by its
    /// pid with `kill -NAME PID`.
    ///
    /// # Panics
    /// When `kill` cannot be run or refuses.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Kills it with SIGKILL (by pid) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for it to exit by itself; returns its exit code.
    ///
    /// # Panics
    /// When it is still running after `limit`.
    pub async fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs after {limit:?}; output:\n{}",
                self.name,
                self.output().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

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

    /// Runs `signet-hub init` on `dir/hub-data`; returns the data dir and
    /// the admin password.
    ///
    /// # Panics
    /// When init fails.
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
        (data, password)
    }

    /// Starts `serve` on an initialized data directory and logs in.
    ///
    /// # Panics
    /// When the hub does not start or the login fails.
    pub async fn serve(data: &Path, password: &str, env: &[(&str, &str)]) -> Self {
        let data_text = data.display().to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("SIGNET_HUB_DATA", &data_text),
            ("SIGNET_HUB_HTTP_LISTEN", "127.0.0.1:0"),
            ("SIGNET_HUB_BROKER_LISTEN", "127.0.0.1:0"),
        ];
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
            client,
        };
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
        hub
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

/// A `signet-agent` with its own data directory and config file.
pub struct Agent {
    /// A name for messages.
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data: PathBuf,
    /// Its device id once paired.
    pub device: String,
    /// The running `signet-agent run`, if started.
    pub process: Option<Process>,
}

impl Agent {
    /// Pairs a new agent with `hub` into `node` (the operator approves the
    /// code the agent prints), then waits for `pair` to finish.
    ///
    /// # Panics
    /// When pairing fails.
    pub async fn pair(hub: &Hub, dir: &Path, name: &str, node: &str, extra_config: &str) -> Self {
        let data = dir.join(format!("{name}-data"));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nhub_url = {:?}\nreconnect_cap_secs = 2\n{extra_config}",
                data.display().to_string(),
                hub.base
            ),
        )
        .expect("write the agent config");
        let config_text = config.display().to_string();
        let mut pairing = Process::start(
            &format!("{name}-pair"),
            &binary("signet-agent"),
            &["pair", "--hub", &hub.base, "--config", &config_text],
            &[],
        );
        let line = pairing
            .line_containing("pairing code: ", Duration::from_secs(30))
            .await;
        let code = line
            .split("pairing code: ")
            .nth(1)
            .expect("the line has the code")
            .trim()
            .to_owned();
        let answer = hub
            .post(
                &format!("/api/v1/devices/pairings/{code}/approve"),
                serde_json::json!({"node": node, "name": name}),
            )
            .await;
        let device = answer["device"]["id"]
            .as_str()
            .expect("the approval names the device")
            .to_owned();
        let code = pairing.exit_code(Duration::from_secs(30)).await;
        assert_eq!(
            code,
            Some(0),
            "pair output:\n{}",
            pairing.output().join("\n")
        );
        Self {
            name: name.to_owned(),
            config,
            data,
            device,
            process: None,
        }
    }

    /// Starts `signet-agent run`.
    pub fn run(&mut self) {
        self.run_with(&[]);
    }

    /// Starts `signet-agent run` with `env` added (e.g. systemd's
    /// `NOTIFY_SOCKET`).
    pub fn run_with(&mut self, env: &[(&str, &str)]) {
        let config = self.config.display().to_string();
        // Headless at a small size: many agents share the test machine.
        let mut all = vec![
            ("RUST_LOG", "info"),
            ("SIGNET_AGENT_VIDEO_SINK", "none"),
            ("SIGNET_AGENT_SCREEN_WIDTH", "320"),
            ("SIGNET_AGENT_SCREEN_HEIGHT", "180"),
        ];
        all.extend_from_slice(env);
        self.process = Some(Process::start(
            &self.name,
            &binary("signet-agent"),
            &["run", "--config", &config],
            &all,
        ));
    }

    /// Every line the running (or last) `signet-agent run` printed so far.
    ///
    /// # Panics
    /// When it was never started.
    #[must_use]
    pub fn log(&self) -> String {
        self.running().output().join("\n")
    }

    /// Waits (bounded) for a line of the running agent containing
    /// `needle`; returns it.
    ///
    /// # Panics
    /// When it was never started, or no such line comes within `limit`.
    pub async fn logged(&self, needle: &str, limit: Duration) -> String {
        self.running().line_containing(needle, limit).await
    }

    fn running(&self) -> &Process {
        self.process
            .as_ref()
            .unwrap_or_else(|| panic!("{} was never started", self.name))
    }

    /// Kills the running agent with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

/// A real mosquitto 2.x with the dynamic-security plugin on a free
/// loopback port, as an operator would run an external broker (O3): its
/// config, plugin store and log in a temp dir; no persistence of messages,
/// so a restart loses every retained message (the harshest case for S4).
/// Killed by its pid when dropped.
pub struct Mosquitto {
    /// Where it listens (the same across restarts).
    pub addr: SocketAddr,
    /// The dynamic-security admin's user name.
    pub admin_user: String,
    /// Its password.
    pub admin_password: String,
    /// Whether it runs the dynamic-security plugin ([`Mosquitto::open`]: no).
    managed: bool,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker with no plugin that lets any client in, anonymous
    /// or with any credentials, and lets it read and write every topic: an
    /// unmanaged broker, for tests of what an agent defends by itself.
    ///
    /// # Panics
    /// When mosquitto fails.
    pub async fn open() -> Self {
        let (addr, reserved) = free_port();
        drop(reserved);
        let mut broker = Self {
            addr,
            admin_user: String::new(),
            admin_password: String::new(),
            managed: false,
            child: None,
            dir: tempfile::tempdir().expect("a temp dir"),
        };
        broker.run().await;
        broker
    }

    /// Starts a broker whose plugin store holds only the admin client.
    ///
    /// # Panics
    /// When mosquitto or `mosquitto_ctrl` fail.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let admin_user = "signet-admin".to_owned();
        let admin_password = format!("admin-{}", std::process::id());
        let store = dir.path().join("dynamic-security.json");
        let init = Command::new("/usr/bin/mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&store)
            .args([&admin_user, &admin_password])
            .stdin(Stdio::null())
            .output()
            .expect("run mosquitto_ctrl");
        assert!(
            init.status.success() && store.exists(),
            "mosquitto_ctrl dynsec init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let (addr, reserved) = free_port();
        drop(reserved);
        let mut broker = Self {
            addr,
            admin_user,
            admin_password,
            managed: true,
            child: None,
            dir,
        };
        broker.run().await;
        broker
    }

    /// `mqtt://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The dynamic-security plugin's store (what it rewrites after every
    /// changing command).
    #[must_use]
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("dynamic-security.json")
    }

    /// SIGKILLs it (by pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same plugin store.
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    async fn run(&mut self) {
        let dir = self.dir.path();
        let config = dir.join("mosquitto.conf");
        // `user root`: as root, mosquitto would drop to the `mosquitto` user
        // and could not write its plugin store in the temp dir.
        let security = if self.managed {
            format!(
                "allow_anonymous false\n\
                 plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n\
                 plugin_opt_config_file {store}\n",
                store = dir.join("dynamic-security.json").display(),
            )
        } else {
            "allow_anonymous true\n".to_owned()
        };
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nuser root\n\
                 persistence false\nlog_dest file {log}\nlog_type all\n{security}",
                port = self.addr.port(),
                log = dir.join("mosquitto.log").display(),
            ),
        )
        .expect("write the mosquitto config");
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}:\n{}",
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain MQTT client for tests that play a misbehaving party on the
/// broker (replaying captured messages, publishing forged documents).
pub struct MqttProbe {
    /// The client.
    pub client: rumqttc::AsyncClient,
    received: Arc<Mutex<Vec<rumqttc::Publish>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttProbe {
    /// Connects to `addr` as `username`/`password` with a fresh client id.
    #[must_use]
    pub fn connect(addr: SocketAddr, client_id: &str, username: &str, password: &str) -> Self {
        let mut options = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_credentials(username, password);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                        if let Ok(mut all) = sink.lock() {
                            all.push(publish);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Self {
            client,
            received,
            task,
        }
    }

    /// Waits (bounded) for a message on `topic`; returns its payload.
    ///
    /// # Panics
    /// When none comes within `limit`.
    pub async fn message_on(&self, topic: &str, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.received.lock().ok().and_then(|all| {
                all.iter()
                    .rev()
                    .find(|p| p.topic == topic)
                    .map(|p| p.payload.to_vec())
            });
            if let Some(payload) = found {
                return payload;
            }
            assert!(
                Instant::now() < deadline,
                "no message on {topic} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for MqttProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A solid PNG of `rgb` (0xRRGGBB), `width`×`height`, made by GStreamer's
/// own encoder in `dir` (the agent's player decodes it; the hub detects its
/// type from the bytes).
///
/// # Panics
/// When `gst-launch-1.0` fails.
#[must_use]
pub fn solid_png(dir: &Path, name: &str, rgb: u32, width: u32, height: u32) -> Vec<u8> {
    let path = dir.join(name);
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "pattern=solid-color",
            &format!("foreground-color={:#010x}", 0xff00_0000u32 | rgb),
            "num-buffers=1",
            "!",
            &format!("video/x-raw,width={width},height={height}"),
            "!",
            "pngenc",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("run gst-launch-1.0");
    assert!(status.success(), "gst-launch-1.0 made no PNG");
    std::fs::read(path).expect("read the PNG")
}

/// A structurally whole 1×1 GIF carrying `tag` in a comment (the hub checks
/// uploads, S13), so distinct tags make distinct bytes.
///
/// # Panics
/// Never: comment blocks are cut to 255 bytes.
#[must_use]
pub fn gif(tag: &[u8]) -> Vec<u8> {
    let mut gif = b"GIF89a\x01\0\x01\0\0\0\0".to_vec();
    for block in tag.chunks(255) {
        gif.extend([0x21, 0xfe, u8::try_from(block.len()).expect("at most 255")]);
        gif.extend(block);
        gif.push(0);
    }
    gif.extend(b"\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x4c\x01\0\x3b");
    gif
}
