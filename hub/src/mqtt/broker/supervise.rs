//! The managed broker's supervisor (S10, O2): one long-lived thread that
//! spawns mosquitto (under `setpriv --pdeathsig KILL`), waits until it
//! accepts connections, forwards its log, and restarts it after a back-off
//! whenever it exits, until the handle is dropped.
//!
//! Owns: the broker process, its pid file and the restart back-off. Must
//! not: write the broker's config or store (`super::store` does).

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder};

use super::Shared;

/// util-linux's `setpriv`, which sets the parent-death signal.
const SETPRIV: &str = "/usr/bin/setpriv";
/// How long [`super::ManagedBroker::start`] waits for the broker to accept.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two restarts.
const LONGEST_RESTART_PAUSE: Duration = Duration::from_secs(30);
/// The pauses between restarts: 100 ms, doubling up to
/// [`LONGEST_RESTART_PAUSE`]; afresh once a broker ran [`STABLE_AFTER`].
pub(super) const RESTART_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_factor(2.0)
    .with_max_delay(LONGEST_RESTART_PAUSE)
    .without_max_times();
/// Uptime after which the back-off starts afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How often the supervisor looks at the child.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// The longest broker log line forwarded, in bytes.
const MAX_LOG_LINE: u64 = 4096;

/// What the supervisor thread needs.
pub(super) struct Run {
    /// The binary.
    pub(super) mosquitto: PathBuf,
    /// Its config.
    pub(super) config: PathBuf,
    /// Where the running broker's pid is written.
    pub(super) pid_file: PathBuf,
    /// Where readiness is probed.
    pub(super) connect_to: SocketAddr,
    /// Shared with the handle.
    pub(super) shared: Arc<Shared>,
}

impl Run {
    /// Starts the broker, reports whether it came up, then restarts it
    /// whenever it exits, until the handle is dropped; then kills it.
    pub(super) fn supervise(self, ready: &mpsc::Sender<Result<(), String>>) {
        let mut first = true;
        let mut backoff = RESTART_BACKOFF.build();
        loop {
            let mut child = match self.spawn() {
                Ok(child) => child,
                Err(why) => {
                    if first {
                        let _ = ready.send(Err(why));
                        return;
                    }
                    tracing::error!(error = %why, "managed MQTT broker not restarted");
                    if !self.pause(backoff.next().unwrap_or(LONGEST_RESTART_PAUSE)) {
                        return;
                    }
                    continue;
                }
            };
            let started = Instant::now();
            if first {
                first = false;
                if let Err(why) = self.wait_accepting(&mut child) {
                    self.end(&mut child);
                    let _ = ready.send(Err(why));
                    return;
                }
                let _ = ready.send(Ok(()));
            }
            let status = loop {
                if self.shared.stop.load(Ordering::SeqCst) {
                    self.end(&mut child);
                    return;
                }
                match child.try_wait() {
                    Ok(Some(status)) => break status.to_string(),
                    Ok(None) => std::thread::sleep(WATCH_EVERY),
                    Err(e) => break e.to_string(),
                }
            };
            self.shared.pid.store(0, Ordering::SeqCst);
            if started.elapsed() >= STABLE_AFTER {
                backoff = RESTART_BACKOFF.build();
            }
            let wait = backoff.next().unwrap_or(LONGEST_RESTART_PAUSE);
            tracing::error!(%status, restart_in = ?wait, "managed MQTT broker exited; restarting it");
            if !self.pause(wait) {
                return;
            }
            self.shared.restarts.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Sleeps `wait` unless stopped meanwhile; `false` when stopped.
    fn pause(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if self.shared.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(WATCH_EVERY.min(wait));
        }
        !self.shared.stop.load(Ordering::SeqCst)
    }

    /// Spawns mosquitto (through `setpriv --pdeathsig KILL` when present),
    /// records its pid and forwards its stderr to the log.
    fn spawn(&self) -> Result<Child, String> {
        let mut command = if Path::new(SETPRIV).is_file() {
            let mut command = Command::new(SETPRIV);
            command
                .args(["--pdeathsig", "KILL", "--"])
                .arg(&self.mosquitto);
            command
        } else {
            tracing::warn!(
                "{SETPRIV} (util-linux) is missing: the broker would outlive a SIGKILLed hub \
                 (the next start kills it)"
            );
            Command::new(&self.mosquitto)
        };
        // The hub's systemd notifications are the hub's: mosquitto (built
        // with systemd support) would otherwise send its own READY=1 there.
        for var in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "LISTEN_FDS",
            "LISTEN_PID",
        ] {
            command.env_remove(var);
        }
        let mut child = command
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.mosquitto.display()))?;
        self.shared.pid.store(child.id(), Ordering::SeqCst);
        if let Err(e) = std::fs::write(&self.pid_file, format!("{}\n", child.id())) {
            tracing::warn!(error = %e, file = %self.pid_file.display(), "broker pid not recorded");
        }
        if let Some(stderr) = child.stderr.take() {
            let _ = std::thread::Builder::new()
                .name("signet-broker-log".into())
                .spawn(move || forward_log(stderr));
        }
        Ok(child)
    }

    /// Waits until the broker accepts TCP connections.
    fn wait_accepting(&self, child: &mut Child) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mosquitto exited at start ({status}); its log lines are above"
                ));
            }
            if TcpStream::connect_timeout(&self.connect_to, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline || self.shared.stop.load(Ordering::SeqCst) {
                return Err(format!(
                    "not accepting connections on {} after {START_TIMEOUT:?}",
                    self.connect_to
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the broker by its pid and reaps it.
    fn end(&self, child: &mut Child) {
        let _ = child.kill();
        let _ = child.wait();
        self.shared.pid.store(0, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Forwards the broker's stderr, line by line (each cut at
/// [`MAX_LOG_LINE`] bytes), to the hub's log.
fn forward_log(stderr: impl std::io::Read) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader
            .by_ref()
            .take(MAX_LOG_LINE)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    tracing::info!(target: "signet_hub::mosquitto", "{text}");
                }
            }
        }
    }
}

/// Kills a broker an earlier hub left running: the pid in `pid_file`, if
/// that process's command line names `config`.
pub(super) fn kill_stale(pid_file: &Path, config: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let config = config.as_os_str().as_encoded_bytes();
    let ours = cmdline.split(|b| *b == 0).any(|arg| arg == config);
    let Some(pid) = rustix::process::Pid::from_raw(pid).filter(|_| ours) else {
        return;
    };
    tracing::warn!(
        pid = pid.as_raw_nonzero().get(),
        "killing a broker an earlier hub left running"
    );
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && std::fs::metadata(format!("/proc/{}", pid.as_raw_nonzero())).is_ok()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}
