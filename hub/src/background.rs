//! [`Background`]: the handle of one long-lived hub task — the publish
//! loop, the alert loop, the mail sender, the leader-only work — so each
//! of them says only what it runs, not again how it is stopped and watched.
//!
//! Owns: starting a task with its cancellation token, telling whether it
//! still runs, stopping it and logging how it ended. Must not: know what the
//! task does.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A task that runs until its token is cancelled.
#[derive(Debug)]
pub struct Background {
    /// What the task is, for the log line of a task that failed.
    name: &'static str,
    /// Stops the task.
    cancel: CancellationToken,
    /// The task.
    task: JoinHandle<()>,
}

impl Background {
    /// Starts `task` on the runtime; `cancel` is the token it watches.
    pub fn spawn<F>(name: &'static str, cancel: CancellationToken, task: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self {
            name,
            cancel,
            task: tokio::spawn(task),
        }
    }

    /// Whether the task still runs: it ends only when stopped, so a task
    /// finished before that is dead (the systemd health tick withholds its
    /// watchdog ping then, O1).
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Cancels the task's token and waits until the task has ended; a task
    /// that panicked is logged, not propagated (the hub is stopping).
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, task = self.name, "background task failed");
        }
    }
}

/// The wait of a polling loop after `failures` failed passes in a row:
/// `every` (the poll interval) doubled per failure, at most 64 times,
/// never more than `max`.
#[must_use]
pub fn backoff(every: Duration, failures: u32, max: Duration) -> Duration {
    every.saturating_mul(1 << failures.min(6)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O1: a failing loop backs off by doubling, capped, and a loop that
    /// polls rarely is never made to wait past its cap.
    #[test]
    fn o1_a_failing_loop_backs_off_by_doubling_up_to_its_cap() {
        let (every, max) = (Duration::from_secs(15), Duration::from_secs(120));
        let waits: Vec<u64> = (1..=5).map(|f| backoff(every, f, max).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 120, 120]);
        assert_eq!(backoff(every, u32::MAX, Duration::MAX).as_secs(), 15 * 64);
        assert_eq!(backoff(Duration::from_secs(600), 1, max), max);
    }

    /// O1: a task that runs until cancelled counts as running; stop ends
    /// it, and a task that ended early is seen as not running.
    #[tokio::test]
    async fn o1_a_background_task_runs_until_stopped_and_a_dead_one_is_seen() {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let running = Background::spawn("test loop", cancel, async move {
            token.cancelled().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(running.is_running());
        tokio::time::timeout(Duration::from_secs(5), running.stop())
            .await
            .expect("stop returns once the task has seen its token");

        let dead = Background::spawn("dead loop", CancellationToken::new(), async {});
        tokio::time::timeout(Duration::from_secs(5), async {
            while dead.is_running() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("a task that returned is no longer running");
        dead.stop().await;
    }
}
