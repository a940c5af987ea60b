//! The publishing loop (S3, U5): it runs due jobs and re-signs expiring
//! manifests ([`super::run_due`]) every poll interval, or sooner when
//! woken. Republishing all retained state (S4) is the MQTT link's job, on
//! every connect ([`crate::mqtt::HubLink`]), so a start is covered too.
//!
//! Owns: pacing and back-off. Must not: decide anything `run_due` decides.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::Hub;

/// How the loop paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopOptions {
    /// Real time between passes when nothing wakes the loop. A job runs at
    /// most this late; manifests are re-signed days before expiry.
    pub poll_interval: Duration,
    /// The longest wait after repeated store failures.
    pub max_backoff: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(15),
            max_backoff: Duration::from_secs(120),
        }
    }
}

/// The running loop; stop it with [`PublishLoop::stop`] or by cancelling
/// the token it was spawned with.
pub struct PublishLoop {
    /// Stops the loop.
    cancel: CancellationToken,
    /// The loop.
    task: JoinHandle<()>,
}

impl PublishLoop {
    /// Starts the loop on the runtime.
    pub fn spawn(state: Hub, options: LoopOptions, cancel: CancellationToken) -> Self {
        let wake = Arc::clone(&state.publish_wake);
        let task = tokio::spawn(run(state, options, cancel.clone(), wake));
        Self { cancel, task }
    }

    /// Whether the loop still runs: it ends only when stopped, so a
    /// finished task before that is a dead loop (the systemd health tick
    /// withholds its watchdog ping then, O1).
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops the loop and waits until it has stopped. A pass in flight is
    /// abandoned between store writes; what it had applied stays applied.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "publish loop task failed");
        }
    }
}

async fn run(state: Hub, options: LoopOptions, cancel: CancellationToken, wake: Arc<Notify>) {
    let mut failures: u32 = 0;
    loop {
        let wait = tokio::select! {
            () = cancel.cancelled() => break,
            result = super::run_due(&state, state.clock.now()) => match result {
                Ok(report) => {
                    failures = 0;
                    if report.jobs_run > 0 || report.resigned > 0 {
                        tracing::info!(jobs = report.jobs_run, failed = report.jobs_failed,
                            resigned = report.resigned, "publishing pass");
                    }
                    options.poll_interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(error = %e, "publishing pass failed");
                    options
                        .poll_interval
                        .saturating_mul(1 << failures.min(6))
                        .min(options.max_backoff)
                }
            },
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
    tracing::info!("publish loop stopped");
}
