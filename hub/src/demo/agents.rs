//! The demo's headless agents: `signet-agent` child processes, each with
//! its own data directory, config file and log file under the demo's
//! temporary directory.
//!
//! Owns: writing their configs, the device side of pairing (start
//! `signet-agent pair`, read the code it prints, wait for it to finish),
//! starting `signet-agent run`, noticing an agent that died, and stopping
//! them: SIGTERM to each child's own pid, a bounded wait, then SIGKILL.
//! Must not: link the agent crate (DESIGN §2) or signal any process it did
//! not start. Each child runs in its own process group, so a Ctrl-C in the
//! terminal reaches only the demo, which then stops them in order.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::media::{SAMPLE_HEIGHT, SAMPLE_WIDTH};

/// How long `signet-agent pair` may take to print its code, and then to
/// finish once approved.
const PAIRING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an agent may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// What `signet-agent pair` prints before the code.
const CODE_PREFIX: &str = "pairing code: ";
/// The longest line read from `signet-agent pair`, in bytes.
const MAX_LINE: usize = 4096;

/// Why an agent could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("agent {name}: {reason}")]
pub struct AgentError {
    /// The agent.
    pub name: String,
    /// What went wrong.
    pub reason: String,
}

/// One demo agent.
pub struct DemoAgent {
    /// Its name, also its device name in the hub.
    pub name: String,
    /// Its config file.
    config: PathBuf,
    /// Where its output goes.
    pub log: PathBuf,
    /// Its device id, once paired.
    pub device: Option<String>,
    /// The running `pair` or `run` process.
    child: Option<Child>,
    /// The running process's pid.
    pub pid: Option<u32>,
    /// How `run` ended, once it did by itself.
    pub exited: Option<ExitStatus>,
}

impl DemoAgent {
    /// Writes the config of agent `name` under `dir`: its data directory,
    /// the hub, and a headless small screen.
    ///
    /// # Errors
    /// When the directory or config cannot be written.
    pub fn prepare(dir: &Path, name: &str, hub: &str) -> Result<Self, AgentError> {
        let failed = |e: std::io::Error| AgentError {
            name: name.to_owned(),
            reason: e.to_string(),
        };
        let home = dir.join(name);
        std::fs::create_dir_all(&home).map_err(failed)?;
        let config = home.join("agent.toml");
        let data = home.join("data");
        std::fs::write(
            &config,
            format!(
                "# signet-agent config written by `signet-hub demo`\n\
                 data_dir = {data:?}\nhub_url = {hub:?}\nreconnect_cap_secs = 2\n\
                 # headless: no display, a small screen (many agents share one machine)\n\
                 video_sink = \"none\"\nscreen_width = {SAMPLE_WIDTH}\nscreen_height = {SAMPLE_HEIGHT}\n",
                data = data.display().to_string(),
            ),
        )
        .map_err(failed)?;
        Ok(Self {
            name: name.to_owned(),
            config,
            log: home.join("agent.log"),
            device: None,
            child: None,
            pid: None,
            exited: None,
        })
    }

    fn error(&self, reason: impl Into<String>) -> AgentError {
        AgentError {
            name: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Starts `binary` with `args` and this agent's config; stdout piped
    /// when `piped`, else to the log; stderr to the log.
    fn spawn(
        &mut self,
        binary: &Path,
        args: &[&str],
        piped: bool,
    ) -> Result<Option<ChildStdout>, AgentError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| self.error(format!("{}: {e}", self.log.display())))?;
        let stdout = if piped {
            Stdio::piped()
        } else {
            Stdio::from(
                log.try_clone()
                    .map_err(|e| self.error(format!("{}: {e}", self.log.display())))?,
            )
        };
        let mut child = Command::new(binary)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.error(format!("cannot start {}: {e}", binary.display())))?;
        self.pid = child.id();
        let out = child.stdout.take();
        self.child = Some(child);
        Ok(out)
    }

    /// Starts `signet-agent pair --hub HUB` and returns the pairing code it
    /// prints (bounded by [`PAIRING_TIMEOUT`]).
    ///
    /// # Errors
    /// When it cannot start, exits, or prints no code in time.
    pub async fn start_pairing(&mut self, binary: &Path, hub: &str) -> Result<String, AgentError> {
        let stdout = self
            .spawn(binary, &["pair", "--hub", hub], true)?
            .ok_or_else(|| self.error("no output from signet-agent pair"))?;
        let mut lines = BufReader::new(stdout).lines();
        let code = tokio::time::timeout(PAIRING_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.len() > MAX_LINE {
                    continue;
                }
                if let Some(code) = line.strip_prefix(CODE_PREFIX) {
                    return Some(code.trim().to_owned());
                }
            }
            None
        })
        .await;
        let log = self.log.display().to_string();
        let code = code
            .map_err(|_| {
                self.error(format!(
                    "no pairing code within {PAIRING_TIMEOUT:?}; see {log}"
                ))
            })?
            .ok_or_else(|| self.error(format!("signet-agent pair printed no code; see {log}")))?;
        // Keep reading what it prints after the code, so it never blocks
        // on (or fails writing to) a full or closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(code)
    }

    /// Waits (bounded) for the approved `pair` to finish successfully.
    ///
    /// # Errors
    /// When it fails or does not finish in time.
    pub async fn finish_pairing(&mut self) -> Result<(), AgentError> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| self.error("pairing was not started"))?;
        let status = match tokio::time::timeout(PAIRING_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(self.error(e.to_string())),
            Err(_) => {
                // Put it back so stopping the demo reaps it.
                self.child = Some(child);
                return Err(self.error(format!(
                    "signet-agent pair did not finish within {PAIRING_TIMEOUT:?} after approval; see {}",
                    self.log.display()
                )));
            }
        };
        self.pid = None;
        if status.success() {
            Ok(())
        } else {
            Err(self.error(format!(
                "signet-agent pair failed ({status}); see {}",
                self.log.display()
            )))
        }
    }

    /// Starts `signet-agent run`.
    ///
    /// # Errors
    /// When it cannot start.
    pub fn start_running(&mut self, binary: &Path) -> Result<(), AgentError> {
        self.spawn(binary, &["run"], false).map(|_| ())
    }

    /// Whether the running agent has exited by itself since the last call
    /// (reaping it); its status is kept in [`DemoAgent::exited`].
    pub fn newly_exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.exited = Some(status);
        Some(status)
    }

    /// Stops the running process, if any: SIGTERM, up to [`STOP_GRACE`]
    /// for it to exit, then SIGKILL. Returns what happened, for printing.
    pub async fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let pid = child.id();
        if let Some(pid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // The child is not reaped yet, so the pid is still ours.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let pid = pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        Some(match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(Ok(status)) => format!("agent {} (pid {pid}) stopped: {status}", self.name),
            Ok(Err(e)) => format!("agent {} (pid {pid}): {e}", self.name),
            Err(_) => {
                let _ = child.kill().await;
                format!(
                    "agent {} (pid {pid}) did not stop within {STOP_GRACE:?}: killed",
                    self.name
                )
            }
        })
    }
}
