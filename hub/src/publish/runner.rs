//! The publishing loop (S3, U5): it runs due jobs and re-signs expiring
//! manifests ([`super::run_due`]), then sleeps until the earliest pending
//! job is due ([`super::next_due`], by the hub's clock) or at most the poll
//! interval, or until woken ([`Hub::publish_wake`], when a job is stored or
//! cancelled): a deferred or daily job starts within moments of its time,
//! not at the next poll. Republishing all retained state (S4) is the MQTT link's job, on
//! every connect ([`crate::mqtt::HubLink`]), so a start is covered too.
//!
//! Owns: pacing and back-off. Must not: decide anything `run_due` decides.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::app::Hub;
use crate::background::{self, Background};

/// How the loop paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopOptions {
    /// The longest sleep between passes when no job is due sooner and
    /// nothing wakes the loop: how often re-signing and pruning are
    /// checked (manifests are re-signed days before expiry).
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

/// Starts the publish loop. Stopping it ([`Background::stop`], or
/// cancelling `cancel`) abandons a pass in flight between store writes;
/// what it had applied stays applied.
pub fn spawn_loop(state: Hub, options: LoopOptions, cancel: CancellationToken) -> Background {
    let wake = Arc::clone(&state.publish_wake);
    let task = run(state, options, cancel.clone(), wake);
    Background::spawn("publish loop", cancel, task)
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
                    until_next_job(&state, options.poll_interval)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(error = %e, "publishing pass failed");
                    background::backoff(options.poll_interval, failures, options.max_backoff)
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

/// How long to sleep: until the earliest pending job is due by the hub's
/// clock (no time at all when one is due already), at most `longest`.
fn until_next_job(state: &Hub, longest: Duration) -> Duration {
    match super::next_due(state) {
        Ok(Some(due)) => (due - state.clock.now())
            .to_std()
            .map_or(Duration::ZERO, |wait| wait.min(longest)),
        Ok(None) => longest,
        Err(e) => {
            tracing::error!(error = %e, "reading the next publication job failed");
            longest
        }
    }
}
