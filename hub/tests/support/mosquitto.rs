//! A real mosquitto 2.x with the dynamic-security plugin on a random
//! loopback port, for broker tests (S7, O3): its own config, plugin store
//! and log in a temp dir; killed by pid (never by name) when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use signet_hub::mqtt::dynsec::DynsecSettings;

/// The broker binary.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The dynamic-security plugin.
pub const DYNSEC_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
/// Writes the plugin's initial store with an admin client.
pub const MOSQUITTO_CTRL: &str = "/usr/bin/mosquitto_ctrl";
/// The admin client's user name.
pub const ADMIN_USER: &str = "signet-admin";
/// How long the broker may take to accept connections.
const START_WITHIN: Duration = Duration::from_secs(10);

/// A running mosquitto.
pub struct Mosquitto {
    /// Where it listens (`127.0.0.1:PORT`, the same across restarts).
    pub addr: SocketAddr,
    /// The admin client's password.
    pub admin_password: String,
    /// The broker process, while running.
    child: Option<Child>,
    /// Config, plugin store and log.
    dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Mosquitto {
    /// Starts a broker with a fresh plugin store holding only the admin
    /// client; retries on another port if the chosen one was taken.
    pub async fn start() -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        let admin_password = format!("admin-{}", std::process::id());
        let store = dir.path().join("dynamic-security.json");
        let init = Command::new(MOSQUITTO_CTRL)
            .args(["dynsec", "init"])
            .arg(&store)
            .args([ADMIN_USER, &admin_password])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            init.status.success() && store.exists(),
            "mosquitto_ctrl dynsec init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut broker = Self {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                admin_password: admin_password.clone(),
                child: None,
                dir,
            };
            if broker.run().await {
                return broker;
            }
            last_log = broker.log();
            dir = std::mem::replace(&mut broker.dir, tempfile::tempdir().unwrap());
        }
        panic!("mosquitto did not start; last log:\n{last_log}");
    }

    /// Settings for the hub's dynamic-security admin.
    pub fn admin_settings(&self) -> DynsecSettings {
        DynsecSettings {
            url: format!("mqtt://{}", self.addr),
            username: ADMIN_USER.to_owned(),
            password: self.admin_password.clone(),
            ca_pem: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// The plugin's store (clients, roles, default access).
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("dynamic-security.json")
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGKILLs the broker (by the pid this helper started) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.run().await,
            "mosquitto did not restart:\n{}",
            self.log()
        );
    }

    /// Writes the config, spawns the broker and waits until it accepts
    /// connections; `false` if it exited or did not within [`START_WITHIN`].
    async fn run(&mut self) -> bool {
        let config = self.dir.path().join("mosquitto.conf");
        std::fs::write(&config, config_text(self.addr.port(), self.dir.path())).unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_WITHIN;
        while tokio::time::Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                self.child = None;
                return false;
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.kill();
        false
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(port: u16, dir: &Path) -> String {
    // `user root`: when the tests run as root, mosquitto would otherwise
    // drop to the `mosquitto` user and could not save the plugin's store in
    // the temp dir; as any other user the line has no effect.
    format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous false\n\
         user root\n\
         persistence false\n\
         log_dest file {log}\n\
         log_type all\n\
         plugin {DYNSEC_PLUGIN}\n\
         plugin_opt_config_file {store}\n",
        log = dir.join("mosquitto.log").display(),
        store = dir.join("dynamic-security.json").display(),
    )
}

/// The hub-managed broker (what `serve` starts by default, S10) in its own
/// temp dir; killed when dropped.
pub struct Managed {
    /// The broker (dropped first: it is killed before its dir goes).
    pub broker: signet_hub::mqtt::broker::ManagedBroker,
    /// Its directory.
    pub dir: tempfile::TempDir,
}

impl Managed {
    /// Starts it on a free loopback port, the hub's client id `signet-hub`.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = signet_hub::mqtt::broker::ManagedBroker::start(
            &signet_hub::mqtt::broker::BrokerSettings {
                dir: dir.path().join("broker"),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                hub_client_id: "signet-hub".to_owned(),
                mosquitto: MOSQUITTO.into(),
                plugin: None,
            },
        )
        .unwrap();
        Self { broker, dir }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.broker.addr().port()
    }

    /// Its plugin admin, connecting.
    pub fn admin(&self) -> signet_hub::mqtt::dynsec::DynsecAdmin {
        signet_hub::mqtt::dynsec::DynsecAdmin::connect(self.broker.admin_settings()).unwrap()
    }
}

/// Creates client `user` with `password` holding `role` on the broker at
/// `port`, through the plugin admin `admin` (user, password) — a test-only
/// party the hub's own admin never makes (e.g. an observer with the hub's
/// role, to see what the broker lets through). `false` when the broker
/// refused (e.g. `role` does not exist yet).
pub async fn add_client(
    port: u16,
    admin: (&str, &str),
    user: &str,
    password: &str,
    role: &str,
) -> bool {
    use super::session::Session;
    let id = format!("test-admin-{}", signet_hub::identity::new_id(""));
    let mut session = Session::connect(port, &id, Some(admin)).await.unwrap();
    session
        .subscribe_granted(signet_hub::mqtt::dynsec::RESPONSE_TOPIC)
        .await;
    let command = serde_json::json!({"commands": [{"command": "createClient",
        "username": user, "password": password, "roles": [{"rolename": role}]}]});
    session
        .publish(
            signet_hub::mqtt::dynsec::CONTROL_TOPIC,
            false,
            &command.to_string(),
        )
        .await;
    let answer = session
        .until_message_on(signet_hub::mqtt::dynsec::RESPONSE_TOPIC)
        .await;
    let (_, body) = answer.last().unwrap();
    !body.contains("\"error\"")
}
