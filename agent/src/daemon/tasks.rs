//! The agent's essential tasks (O1): every task `run` starts, by name, so
//! the health tick can tell when one has ended or panicked before the agent
//! was told to stop.
//!
//! Owns: the task set and what counts as a dead task. Must not: restart
//! anything — a dead task withholds the watchdog ping, and systemd restarts
//! the whole agent.

use std::collections::HashMap;

use tokio::task::{Id, JoinSet};

/// The tasks of a running agent; each runs until the agent stops.
pub(crate) struct EssentialTasks {
    /// The running tasks.
    set: JoinSet<()>,
    /// Each task's name, by its id.
    names: HashMap<Id, &'static str>,
    /// How the first task that ended early ended; an agent stays unhealthy
    /// from then on.
    dead: Option<String>,
}

impl EssentialTasks {
    /// No tasks yet.
    pub(crate) fn new() -> Self {
        Self {
            set: JoinSet::new(),
            names: HashMap::new(),
            dead: None,
        }
    }

    /// Starts `task` on the runtime as `name`.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// `Ok` while every task still runs; once one has ended (returned,
    /// panicked or was aborted) before [`Self::join_all`], the reason, now
    /// and on every later call.
    pub(crate) fn check(&mut self) -> Result<(), String> {
        if let Some(dead) = &self.dead {
            return Err(dead.clone());
        }
        let Some(ended) = self.set.try_join_next_with_id() else {
            return Ok(());
        };
        let name = |id: Id| self.names.get(&id).copied().unwrap_or("unnamed");
        let reason = match ended {
            Ok((id, ())) => format!("the {} task ended", name(id)),
            Err(error) if error.is_panic() => format!("the {} task panicked", name(error.id())),
            Err(error) => format!("the {} task was aborted", name(error.id())),
        };
        self.dead = Some(reason.clone());
        Err(reason)
    }

    /// Waits until every task has ended (after the stop token fired).
    pub(crate) async fn join_all(mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O1: a task that ends before the agent stops makes the agent unhealthy
    /// for good, and is named.
    #[tokio::test]
    async fn o1_an_ended_task_is_named_and_stays_dead() {
        let mut tasks = EssentialTasks::new();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn("player", std::future::pending());
        tasks.spawn("event upload", async move {
            let _ = finished.await;
        });
        assert_eq!(tasks.check(), Ok(()));
        let _ = finish.send(());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let reason = loop {
            match tasks.check() {
                Ok(()) => {
                    assert!(tokio::time::Instant::now() < deadline, "never noticed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(reason) => break reason,
            }
        };
        assert_eq!(reason, "the event upload task ended");
        assert_eq!(tasks.check(), Err(reason));
    }

    /// O1: a panicking task is reported as such.
    #[tokio::test]
    async fn o1_a_panicked_task_is_reported() {
        let mut tasks = EssentialTasks::new();
        tasks.spawn("feeds", async { panic!("boom") });
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match tasks.check() {
                Ok(()) => {
                    assert!(tokio::time::Instant::now() < deadline, "never noticed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(reason) => {
                    assert_eq!(reason, "the feeds task panicked");
                    break;
                }
            }
        }
    }
}
