//! [`lead`]: a loop that runs only while this replica leads.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::app::replica::Replica;
use crate::background::Background;

/// Starts one term of the work: runs until the token is cancelled (the
/// term ends) or it is done for this term.
pub type StartWork = Box<dyn FnMut(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// Supervises `work` named `name`, a loop run only while this replica
/// leads: each time `replica` becomes the leader, `work` is started with a
/// fresh token; when it stops leading the token is cancelled and the work
/// awaited before anything else. Work that ends by itself is done until the
/// next term. Stopping the supervision ([`Background::stop`], or cancelling
/// `cancel`) stops the work.
#[must_use]
pub fn lead(
    name: &'static str,
    replica: Arc<Replica>,
    cancel: CancellationToken,
    work: StartWork,
) -> Background {
    let task = supervise(name, replica, cancel.clone(), work);
    Background::spawn(name, cancel, task)
}

/// How one term ended.
enum Ended {
    /// The work ended by itself.
    Done,
    /// This replica stopped leading.
    Lost,
    /// The hub stops.
    Stopping,
}

async fn supervise(
    name: &'static str,
    replica: Arc<Replica>,
    cancel: CancellationToken,
    mut work: StartWork,
) {
    let mut leading = replica.watch();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            became = leading.wait_for(|leads| *leads) => if became.is_err() { return },
        }
        tracing::info!(work = name, replica = replica.id(), "leading: work started");
        let term = cancel.child_token();
        let mut run = work(term.clone());
        let ended = tokio::select! {
            () = &mut run => Ended::Done,
            _ = leading.wait_for(|leads| !*leads) => Ended::Lost,
            () = cancel.cancelled() => Ended::Stopping,
        };
        match ended {
            Ended::Done => {
                // Done for this term: wait until it ends.
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = leading.wait_for(|leads| !*leads) => {}
                }
            }
            Ended::Lost => {
                tracing::warn!(work = name, "leadership lost: work stopped");
                term.cancel();
                run.await;
            }
            Ended::Stopping => {
                term.cancel();
                run.await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::lead;
    use crate::app::replica::Replica;

    /// Waits (bounded) until `done`.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached within 5 s");
    }

    #[tokio::test]
    async fn x5_work_runs_only_while_leading_and_stops_when_leadership_is_lost() {
        let replica = Arc::new(Replica::new("a".into(), false));
        let (started, running) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, r) = (started.clone(), running.clone());
        let work = lead(
            "test",
            replica.clone(),
            CancellationToken::new(),
            Box::new(move |term: CancellationToken| {
                let (s, r) = (s.clone(), r.clone());
                Box::pin(async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    r.fetch_add(1, Ordering::SeqCst);
                    term.cancelled().await;
                    r.fetch_sub(1, Ordering::SeqCst);
                })
            }),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            0,
            "a follower does no leader work"
        );
        replica.set_leader(true);
        until(|| running.load(Ordering::SeqCst) == 1).await;
        replica.set_leader(false);
        until(|| running.load(Ordering::SeqCst) == 0).await;
        replica.set_leader(true);
        until(|| started.load(Ordering::SeqCst) == 2 && running.load(Ordering::SeqCst) == 1).await;
        assert!(work.is_running());
        work.stop().await;
        assert_eq!(running.load(Ordering::SeqCst), 0, "stopped with the hub");
    }
}
