//! O1: the real binaries speak systemd's notify protocol. Each test plays
//! systemd: it binds a Unix datagram socket, starts the binary with
//! `NOTIFY_SOCKET` and `WATCHDOG_USEC` set, and reads what arrives —
//! `READY=1` (the hub's only once its HTTP port answers and its broker link
//! is up), `WATCHDOG=1` pings from the health tick, `STOPPING=1` after
//! SIGTERM. A start that cannot succeed until an operator acts exits with
//! 78, the status the units name in `RestartPreventExitStatus=`, and says
//! what to run.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use signet_tests::{Agent, Hub, binary, free_port};

/// systemd's watchdog timeout for these tests: pings every 0.5 s.
const WATCHDOG_USEC: &str = "1000000";

/// A notify socket like systemd's: every datagram that arrives, in order.
struct NotifySocket {
    /// The socket's path, for `NOTIFY_SOCKET`.
    path: PathBuf,
    /// The datagrams, as text.
    messages: mpsc::Receiver<String>,
    /// Keeps the socket's directory.
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = vec![0_u8; 4096];
            while let Ok(len) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
                if tx.send(text).is_err() {
                    return;
                }
            }
        });
        Self {
            path,
            messages,
            _dir: dir,
        }
    }

    fn env(&self) -> String {
        self.path.display().to_string()
    }

    /// Waits (bounded) for a datagram with the line `line`; returns the
    /// datagram and every one before it.
    fn until(&self, line: &str, limit: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + limit;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if message.lines().any(|l| l == line) => return (message, before),
                Ok(message) => before.push(message),
                Err(_) => panic!("no {line:?} within {limit:?}; got {before:?}"),
            }
        }
    }
}

/// O1: the hub's `READY=1` comes once its HTTP port answers and its broker
/// link is up (the same datagram's `STATUS=` says so); the health tick pings
/// `WATCHDOG=1` at half of `WATCHDOG_USEC`; SIGTERM brings `STOPPING=1` and
/// a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o1_hub_notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify = NotifySocket::bind();
    let socket = notify.env();
    let (http, reserved) = free_port();
    drop(reserved);
    let listen = http.to_string();
    let hub = Hub::start(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", &socket),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
            ("SIGNET_HUB_HTTP_LISTEN", &listen),
        ],
    )
    .await;
    let (ready, before) = notify.until("READY=1", Duration::from_secs(30));
    let answer = reqwest::Client::new()
        .get(format!("http://{http}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("the HTTP port answers once READY=1 is sent");
    assert!(answer.status().is_success(), "{}", answer.status());
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    assert!(
        ready.contains(&format!(
            "STATUS=serving http://{http}; MQTT broker managed on"
        )) && ready.contains(" connected"),
        "{ready}"
    );

    let started = Instant::now();
    let (_, between) = notify.until("WATCHDOG=1", Duration::from_secs(10));
    notify.until("WATCHDOG=1", Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "two pings took {:?}",
        started.elapsed()
    );
    assert!(between.is_empty(), "{between:?}");

    hub.process.terminate();
    let (stopping, _) = notify.until("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let mut process = hub.process;
    assert_eq!(process.exit_code(Duration::from_secs(15)).await, Some(0));
}

/// O1: the agent's `READY=1` comes once its state is open and its tasks
/// run, with a `STATUS=` naming the device; the health tick pings
/// `WATCHDOG=1`; SIGTERM brings `STOPPING=1` and a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o1_agent_notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let mut agent = Agent::pair(&hub, dir.path(), "screen", &root, "").await;
    let notify = NotifySocket::bind();
    let socket = notify.env();
    agent.run_with(&[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", WATCHDOG_USEC)]);
    let (ready, before) = notify.until("READY=1", Duration::from_secs(30));
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    assert!(
        ready.contains(&format!("STATUS=device {}: ", agent.device)),
        "{ready}"
    );

    let started = Instant::now();
    notify.until("WATCHDOG=1", Duration::from_secs(10));
    notify.until("WATCHDOG=1", Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "two pings took {:?}",
        started.elapsed()
    );

    let mut process = agent.process.take().expect("running");
    process.terminate();
    let (stopping, _) = notify.until("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    assert_eq!(process.exit_code(Duration::from_secs(15)).await, Some(0));
}

/// O1: under systemd (`INVOCATION_ID` set), a hub whose data directory was
/// never initialized exits with 78 (no restart loop) and prints the command
/// that initializes it as the service's user.
#[test]
fn o1_uninitialized_hub_exits_78_and_says_what_to_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("never-initialized");
    let out = Command::new(binary("signet-hub"))
        .arg("serve")
        .env("SIGNET_HUB_DATA", &data)
        .env("SIGNET_HUB_HTTP_LISTEN", "127.0.0.1:0")
        .env("SIGNET_HUB_BROKER_LISTEN", "127.0.0.1:0")
        .env("INVOCATION_ID", "0123456789abcdef")
        .output()
        .expect("run signet-hub");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let shown = data.display();
    assert!(
        stderr.contains(&format!("run `signet-hub init --data {shown}` first"))
            && stderr.contains(&format!(
                "sudo systemd-run --pty --wait --collect -p DynamicUser=yes -p User=signet-hub \
                 -p StateDirectory=signet-hub /usr/bin/signet-hub init --data {shown}"
            )),
        "{stderr}"
    );
}

/// O1: under systemd, an unpaired agent exits with 78 and prints how to
/// pair it as the service's user.
#[test]
fn o1_unpaired_agent_exits_78_and_says_what_to_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("write the config");
    let out = Command::new(binary("signet-agent"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("INVOCATION_ID", "0123456789abcdef")
        .env("USER", "signet")
        .output()
        .expect("run signet-agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("this device is not paired yet")
            && stderr.contains(&format!(
                "sudo -u signet signet-agent pair --hub URL --config {}",
                config.display()
            )),
        "{stderr}"
    );
}
