//! Signing again what a member's first use changed (L2): a first use
//! shortens the member's window, so the group's assignments are re-signed
//! and re-published and the device stops at the new end.
//!
//! Owns: [`after_first_use`], which publishes every group
//! [`crate::access_groups::first_use`] marked in the transaction that
//! recorded the first use, then clears the mark. Must not: decide what a
//! first use is, or run inside a transaction. A mark survives a crash
//! between the commit and the publication: the next call publishes it.
//!
//! The fleet ingest calls [`after_first_use`] after a batch that recorded a
//! first use (and after its first batch since the start, or after a pass
//! that left marks, so a mark left by a crash or a failed publish is
//! published by the next batch), so calls coalesce:
//! while one pass runs for a hub (one data directory), further calls only
//! ask it for one more pass, so a busy fleet reads the marks once per
//! pass, not once per batch, and never publishes the same mark twice at
//! once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::access_groups::first_use;
use crate::app::Hub;
use crate::groups::GroupRef;

use super::{Actor, PublishError, publish};

/// The hubs (by data directory) a pass runs for, each with whether another
/// pass was asked for meanwhile.
static PASSES: LazyLock<Mutex<HashMap<PathBuf, bool>>> = LazyLock::new(Mutex::default);

/// The pass running for one hub; forgets it when it ends, or when dropped
/// (a panic) before.
struct Pass {
    data: PathBuf,
    ended: bool,
}

impl Pass {
    /// The pass for `data`, or `None` when one runs (it is asked to run
    /// once more).
    fn start(data: PathBuf) -> Option<Self> {
        let mut passes = PASSES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(again) = passes.get_mut(&data) {
            *again = true;
            return None;
        }
        passes.insert(data.clone(), false);
        Some(Self { data, ended: false })
    }

    /// Whether another pass was asked for since the last call; if not, the
    /// pass ends (atomically with the answer, so no call is lost).
    fn again(&mut self) -> bool {
        let mut passes = PASSES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(again) = passes.get_mut(&self.data)
            && std::mem::replace(again, false)
        {
            return true;
        }
        passes.remove(&self.data);
        self.ended = true;
        false
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if !self.ended {
            PASSES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.data);
        }
    }
}

/// Publishes, as the hub, every access group marked by a first use, and
/// clears each mark once its publication is durable. Failures are logged
/// and the mark kept for the next call (after the next ingest of events).
/// A call while a pass runs for this hub returns at once; that pass runs
/// once more (see the module doc).
pub async fn after_first_use(hub: &Hub) {
    let Some(mut pass) = Pass::start(hub.config.data.clone()) else {
        return;
    };
    loop {
        publish_marks(hub).await;
        if !pass.again() {
            break;
        }
    }
}

/// One pass of [`after_first_use`].
async fn publish_marks(hub: &Hub) {
    let marks = match first_use::pending(&hub.store) {
        Ok(marks) => marks,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the first-use marks");
            return;
        }
    };
    for (group, mark) in marks {
        let scope = GroupRef::AccessGroup(group.clone());
        match publish(hub, &scope, Actor::hub()).await {
            Ok(_) | Err(PublishError::UnknownGroup(_)) => {
                let cleared = hub
                    .store
                    .transact(|tx| first_use::clear(tx, &group, mark))
                    .await;
                if let Err(e) = cleared {
                    tracing::warn!(%group, error = %e, "cannot clear a first-use mark");
                }
            }
            Err(e) => {
                tracing::warn!(%group, error = %e, "publishing after a first use failed; retried with the next events");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L2: calls while a pass runs coalesce into one more pass; none is lost.
    #[test]
    fn l2_first_use_passes_coalesce_per_hub() {
        let data = PathBuf::from("/nonexistent/l2-pass-test");
        let mut pass = Pass::start(data.clone()).unwrap();
        assert!(Pass::start(data.clone()).is_none());
        assert!(Pass::start(data.clone()).is_none());
        assert!(Pass::start(PathBuf::from("/nonexistent/other")).is_some());
        assert!(pass.again());
        assert!(!pass.again());
        let next = Pass::start(data.clone());
        assert!(next.is_some());
        drop(pass);
        assert!(
            Pass::start(data.clone()).is_none(),
            "the ended pass left the new one"
        );
        drop(next);
        assert!(Pass::start(data).is_some());
    }
}
