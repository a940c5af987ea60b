//! Signing again what a member's first use changed (L2): a first use
//! shortens the member's window, so the group's assignments are re-signed
//! and re-published and the device stops at the new end.
//!
//! Owns: [`after_first_use`], which publishes every group
//! [`crate::access_groups::first_use`] marked in the transaction that
//! recorded the first use, then clears the mark. Must not: decide what a
//! first use is, or run inside a transaction. A mark survives a crash
//! between the commit and the publication: the next call publishes it.

use crate::access_groups::first_use;
use crate::app::Hub;
use crate::groups::GroupRef;

use super::{Actor, PublishError, publish};

/// Publishes, as the hub, every access group marked by a first use, and
/// clears each mark once its publication is durable. Failures are logged
/// and the mark kept for the next call (after the next ingest of events).
pub async fn after_first_use(hub: &Hub) {
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
