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

mod agent;
mod broker;
mod hub;
mod media;
pub mod rig;
pub mod sim;
pub mod store;

pub use agent::Agent;
pub use broker::{Mosquitto, MqttProbe};
pub use hub::{AllDay, Hub};
pub use media::{gif, solid_png};

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
