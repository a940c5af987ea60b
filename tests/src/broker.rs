//! A real mosquitto started by the test ([`Mosquitto`]) and a plain MQTT
//! client to watch it ([`MqttProbe`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::free_port;

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
    pub(crate) managed: bool,
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
