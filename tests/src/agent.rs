//! A running `signet-agent` as a child process: paired through the hub,
//! started, read and stopped ([`Agent`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Hub, Process, binary};

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
