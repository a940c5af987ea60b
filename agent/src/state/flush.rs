//! Group commit of the state database (X2, S5): writers that commit at
//! the same moment share one flush instead of queueing one each.
//!
//! Owns: [`FlushGate`], the rule that a write counts as durable only once
//! a flush that *started after it was applied* has finished, and
//! [`SharedDb`], one database whose stores share a gate (the fleet
//! simulator's screens, one tree each). Must not: write records — the
//! store applies its batches and calls [`FlushGate::flush_after`].
//!
//! A flush of a sled database makes durable everything written to it
//! before the flush began. So the first writer to find no flush running
//! starts one, covering every write applied so far; writers that arrive
//! while it runs wait for it, then one of them starts the next, covering
//! all of them. A hundred concurrent commits cost two or three flushes
//! rather than a hundred, and none of them returns before its own write is
//! on disk ("durable before acknowledged" is unchanged). A failed flush
//! fails only the writer that ran it; the others try again themselves.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Coordinates the flushes of one database.
#[derive(Debug, Default)]
pub struct FlushGate {
    state: Mutex<GateState>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Writes applied (to the database's buffers) so far: the ticket of
    /// the latest.
    applied: u64,
    /// Every write with a ticket up to this is durable.
    durable: u64,
    /// Whether a flush is running now.
    flushing: bool,
    /// Flushes run to completion, for the figures and the tests.
    flushes: u64,
}

impl FlushGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once a flush that started after the caller's write was
    /// applied has finished: call it after applying the write (or, for a
    /// plain flush, after everything it must cover). `flush` flushes the
    /// whole database; it may run in this thread or another writer's.
    ///
    /// # Errors
    /// The error of the flush this thread ran, when it failed.
    pub fn flush_after<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut state = self.lock();
        state.applied += 1;
        let ticket = state.applied;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Every write with a ticket up to `covers` was applied before
            // this flush begins.
            let covers = state.applied;
            state.flushing = true;
            drop(state);
            let result = flush();
            state = self.lock();
            state.flushing = false;
            if result.is_ok() {
                state.durable = state.durable.max(covers);
                state.flushes += 1;
            }
            self.finished.notify_all();
            result?;
        }
    }

    /// How many flushes ran to completion.
    #[must_use]
    pub fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// How many writes asked for durability.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.lock().applied
    }
}

/// One sled database shared by several stores, one tree each
/// ([`super::Store::open_in`]), with the flush gate they share.
#[derive(Debug, Clone)]
pub struct SharedDb {
    pub(super) db: sled::Db,
    pub(super) gate: Arc<FlushGate>,
}

impl SharedDb {
    /// Shares `db`.
    #[must_use]
    pub fn new(db: sled::Db) -> Self {
        Self {
            db,
            gate: Arc::new(FlushGate::default()),
        }
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The gate its stores' commits go through.
    #[must_use]
    pub fn gate(&self) -> &FlushGate {
        &self.gate
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// X2, S5: writers arriving while a flush runs wait for it and then
    /// share one more flush; none returns before a flush that started
    /// after its write.
    #[test]
    fn x2_writers_during_a_flush_share_the_next_one() {
        let gate = Arc::new(FlushGate::default());
        let started = Arc::new(AtomicU64::new(0));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let writers = 16_u64;
        let flush = {
            let (started, release_rx) = (started.clone(), release_rx.clone());
            move || -> Result<(), ()> {
                // The first flush holds until every writer has arrived.
                if started.fetch_add(1, Ordering::SeqCst) == 0 {
                    release_rx.lock().unwrap().recv().unwrap();
                }
                Ok(())
            }
        };
        let mut threads = Vec::new();
        for _ in 0..writers {
            let (gate, flush) = (gate.clone(), flush.clone());
            threads.push(std::thread::spawn(move || gate.flush_after(flush)));
            // The first writer's flush is running before the others come.
            while started.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while gate.writes() < writers {
            std::thread::sleep(Duration::from_millis(1));
        }
        // None of the waiting writers returned during the first flush.
        assert_eq!(gate.flushes(), 0);
        assert!(threads.iter().skip(1).all(|t| !t.is_finished()));
        release_tx.send(()).unwrap();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), Ok(()));
        }
        assert_eq!(gate.flushes(), 2, "the waiting writers shared one flush");
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }

    /// S5: a failed flush fails its writer; a writer waiting on it flushes
    /// again itself rather than returning as durable.
    #[test]
    fn x2_a_failed_flush_is_not_taken_as_durable() {
        let gate = FlushGate::default();
        let calls = AtomicU64::new(0);
        let failing = || -> Result<(), &'static str> {
            calls.fetch_add(1, Ordering::SeqCst);
            Err("disk full")
        };
        assert_eq!(gate.flush_after(failing), Err("disk full"));
        assert_eq!(gate.flushes(), 0);
        let working = || -> Result<(), &'static str> {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        assert_eq!(gate.flush_after(working), Ok(()));
        assert_eq!(gate.flushes(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
