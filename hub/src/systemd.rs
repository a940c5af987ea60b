//! The hub's side of systemd's service protocol (O1): `READY=1` once
//! `serve` answers HTTP and its broker link is up, `STATUS=` lines an
//! operator sees in `systemctl status signet-hub`, `WATCHDOG=1` from a
//! health tick, `STOPPING=1` on shutdown.
//!
//! Owns: what the hub tells the service manager, and what the health tick
//! counts as alive ([`Health`]). Must not: start or stop anything — a failed
//! check only withholds the ping, so systemd (`WatchdogSec=`) kills and
//! restarts the hub. Without `NOTIFY_SOCKET` (not started by systemd) every
//! notification is a no-op.

use std::net::SocketAddr;
use std::time::Duration;

use sd_notify::NotifyState;

/// The longest one health probe may take; a slower answer counts as a failure.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `states` to the service manager; a no-op without `NOTIFY_SOCKET`.
/// A failure to send is logged, never fatal: the hub serves either way.
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}

/// How often the health tick runs: half of systemd's `WATCHDOG_USEC`, so
/// one late tick is not yet a restart; `None` when no watchdog is set.
#[must_use]
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|timeout| timeout / 2)
        .filter(|period| !period.is_zero())
}

/// A part of the hub that must keep running as long as the hub serves.
pub struct Essential<'a> {
    /// Its name in logs and in the `STATUS=` line.
    pub name: &'static str,
    /// Whether it still runs (its task has not finished).
    pub running: Box<dyn Fn() -> bool + Send + Sync + 'a>,
}

/// What one health tick checks: the hub's own loops still run, its HTTP
/// server answers `/healthz`, and the embedded broker (when there is one)
/// accepts connections.
pub struct Health<'a> {
    /// The client that asks `/healthz` (bounded by [`PROBE_TIMEOUT`]).
    client: reqwest::Client,
    /// `http://{bound}/healthz`, an unspecified address made loopback.
    healthz: String,
    /// The embedded broker's address; `None` with an external broker,
    /// whose outages the link rides out and which must not restart the hub
    /// (O3).
    embedded_broker: Option<SocketAddr>,
    /// The background loops that end only when the hub stops.
    essentials: Vec<Essential<'a>>,
}

impl<'a> Health<'a> {
    /// The checks for a hub serving on `http` (its bound address).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        http: SocketAddr,
        embedded_broker: Option<SocketAddr>,
        essentials: Vec<Essential<'a>>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let healthz = format!(
            "http://{}/healthz",
            crate::config::loopback_if_unspecified(http)
        );
        Ok(Self {
            client,
            healthz,
            embedded_broker: embedded_broker.map(crate::config::loopback_if_unspecified),
            essentials,
        })
    }

    /// Whether the HTTP server answers `/healthz` with 200.
    ///
    /// # Errors
    /// What went wrong, for the log and the `STATUS=` line.
    pub async fn http_answers(&self) -> Result<(), String> {
        let response = self
            .client
            .get(&self.healthz)
            .send()
            .await
            .map_err(|e| format!("{} does not answer: {e}", self.healthz))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.healthz, response.status()));
        }
        Ok(())
    }

    /// One tick's verdict.
    ///
    /// # Errors
    /// The first check that failed, in words.
    pub async fn check(&self) -> Result<(), String> {
        if let Some(stopped) = self.essentials.iter().find(|e| !(e.running)()) {
            return Err(format!("the {} has stopped", stopped.name));
        }
        self.http_answers().await?;
        if let Some(broker) = self.embedded_broker {
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(broker)).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("the embedded broker on {broker}: {e}")),
                Err(_) => return Err(format!("the embedded broker on {broker} does not accept")),
            }
        }
        Ok(())
    }
}

/// The health tick: every `period`, runs `check`; while it passes, sends
/// `WATCHDOG=1` through `notify`. When it fails, logs why (once per
/// reason), says so in `STATUS=`, and withholds the ping, so systemd
/// restarts the hub after `WatchdogSec=`; a passing check resumes the pings
/// and restores the `healthy` status. Runs until dropped.
pub async fn watchdog<Check, Checked>(
    period: Duration,
    mut check: Check,
    healthy: &str,
    notify: impl Fn(&[NotifyState<'_>]),
) where
    // A plain closure returning a future, not an async closure: the hub's
    // serving future must stay `Send` (the demo spawns it).
    Check: FnMut() -> Checked,
    Checked: Future<Output = Result<(), String>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing: Option<String> = None;
    loop {
        tick.tick().await;
        match check().await {
            Ok(()) => {
                if let Some(reason) = failing.take() {
                    tracing::info!(%reason, "health check passes again");
                    notify(&[NotifyState::Status(healthy)]);
                }
                notify(&[NotifyState::Watchdog]);
            }
            Err(reason) => {
                if failing.as_ref() != Some(&reason) {
                    tracing::error!(
                        %reason,
                        "health check failed: withholding the watchdog ping so systemd restarts the hub"
                    );
                    notify(&[NotifyState::Status(&format!("unhealthy: {reason}"))]);
                }
                failing = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    /// The protocol's lines sent so far.
    type Sent = Arc<Mutex<Vec<String>>>;

    /// What the watchdog sent, as the protocol's lines.
    fn recorder() -> (Sent, impl Fn(&[NotifyState<'_>])) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&sent);
        (sent, move |states: &[NotifyState<'_>]| {
            let mut sent = into.lock().unwrap();
            sent.extend(states.iter().map(ToString::to_string));
        })
    }

    /// O1: a failing check withholds `WATCHDOG=1` (so systemd restarts the
    /// hub) and says why in `STATUS=`; a passing one pings on every tick.
    #[tokio::test]
    async fn o1_a_failed_check_withholds_the_watchdog_ping() {
        let (sent, notify) = recorder();
        let mut ticks = 0_u32;
        let check = || {
            ticks += 1;
            let checked = if ticks <= 2 {
                Ok(())
            } else {
                Err("the publishing loop has stopped".to_owned())
            };
            std::future::ready(checked)
        };
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            watchdog(Duration::from_millis(20), check, "serving", notify),
        )
        .await;
        let sent = sent.lock().unwrap().clone();
        assert_eq!(
            sent,
            [
                "WATCHDOG=1",
                "WATCHDOG=1",
                "STATUS=unhealthy: the publishing loop has stopped"
            ]
        );
    }

    /// O1: the essential loops are checked first and named.
    #[tokio::test]
    async fn o1_a_stopped_loop_is_named() {
        let health = Health::new(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            None,
            vec![Essential {
                name: "mail sender",
                running: Box::new(|| false),
            }],
        )
        .unwrap();
        assert_eq!(
            health.check().await,
            Err("the mail sender has stopped".to_owned())
        );
    }
}
