//! The mail-outbox service (A5, L6): reading the outbox and retrying a
//! message, for root-level admins.
//!
//! Owns the rules: only an Admin whose domain includes the root lists
//! entries (bodies included: they may carry invite links) and retries one,
//! because the outbox holds mail of every tenant; a sent message cannot be
//! retried; a retry is audited and wakes the sender after it commits.
//! Must not: send mail itself — the [`super::sender`] does — nor know HTTP.

use serde::{Deserialize, Serialize};
use signet_common::permissions::Role;

use super::{OUTBOX, OutboxEntry, OutboxStatus, entries};
use crate::app::Hub;
use crate::identity::{Actor, RoleTooLow};
use crate::store::StoreError;
use crate::tenancy::load_tree;

/// The most entries one request returns.
pub const MAX_OUTBOX_PAGE: usize = 1000;

/// The longest id looked up.
const MAX_ID_LEN: usize = 128;

/// An outbox entry as the API shows it: the record and where it stands.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxView {
    /// Queued, sent or failed.
    pub status: OutboxStatus,
    /// The stored record.
    #[serde(flatten)]
    pub entry: OutboxEntry,
}

impl From<OutboxEntry> for OutboxView {
    fn from(entry: OutboxEntry) -> Self {
        Self {
            status: entry.status(),
            entry,
        }
    }
}

/// List filter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxFilter {
    /// Only entries in this state: `queued`, `sent` or `failed`.
    #[param(value_type = Option<String>)]
    pub status: Option<OutboxStatus>,
    /// At most this many of the newest matches (default and maximum 1000).
    pub limit: Option<usize>,
}

/// Why an outbox operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The actor's role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// An Admin whose domain does not include the root (403).
    #[error("needs an Admin whose domain includes the root")]
    NotRootLevel,
    /// No such entry (404).
    #[error("message not found")]
    NotFound,
    /// The message was already delivered (409).
    #[error("the message was already delivered")]
    AlreadySent,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refused unless the actor is an Admin whose domain includes the root.
fn require_root_admin(hub: &Hub, actor: &Actor) -> Result<(), MailError> {
    actor.require(Role::Admin)?;
    let (tree, _) = load_tree(&hub.store)?;
    if actor.is_root_level(&tree) {
        Ok(())
    } else {
        Err(MailError::NotRootLevel)
    }
}

/// Outbox entries, oldest first: the newest `limit` that match.
///
/// # Errors
/// [`MailError`].
pub fn list_outbox(
    hub: &Hub,
    actor: &Actor,
    filter: &OutboxFilter,
) -> Result<Vec<OutboxView>, MailError> {
    require_root_admin(hub, actor)?;
    let limit = filter
        .limit
        .unwrap_or(MAX_OUTBOX_PAGE)
        .clamp(1, MAX_OUTBOX_PAGE);
    let mut matching: Vec<OutboxEntry> = entries(&hub.store)?
        .into_iter()
        .filter(|e| filter.status.is_none_or(|s| e.status() == s))
        .collect();
    let skip = matching.len().saturating_sub(limit);
    matching.drain(..skip);
    Ok(matching.into_iter().map(OutboxView::from).collect())
}

/// Makes a queued or failed message due now, with a fresh count of
/// attempts; audited as `mail.retry`; wakes the sender after the commit.
///
/// # Errors
/// [`MailError`].
pub async fn retry(hub: &Hub, actor: &Actor, id: &str) -> Result<OutboxView, MailError> {
    require_root_admin(hub, actor)?;
    if id.len() > MAX_ID_LEN {
        return Err(MailError::NotFound);
    }
    let now = hub.now();
    let entry = hub
        .store
        .transact(|tx| {
            let mut entry: OutboxEntry = tx.get(OUTBOX, id)?.ok_or(MailError::NotFound)?;
            let previous = entry.status();
            if previous == OutboxStatus::Sent {
                return Err(MailError::AlreadySent);
            }
            let detail = serde_json::json!({"to": entry.mail.to, "previous_status": previous,
                "previous_attempts": entry.attempts, "last_error": entry.last_error});
            entry.attempts = 0;
            entry.failed_at = None;
            entry.next_attempt_at = now;
            tx.put(OUTBOX, &entry.id, &entry)?;
            actor
                .audit(now, "mail.retry", &entry.id, None, detail)
                .put(tx)?;
            Ok(entry)
        })
        .await?;
    hub.mail_wake.notify_one();
    Ok(OutboxView::from(entry))
}

#[cfg(test)]
mod tests {
    use signet_common::permissions::Role;

    use super::*;
    use crate::identity::testing::fixture;
    use crate::mail::{Mail, enqueue_in};

    #[tokio::test]
    async fn l6_only_root_admins_retry_and_a_sent_message_stays_sent() {
        let f = fixture().await;
        let mail = Mail {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
        };
        let now = f.hub.now();
        let id = f
            .hub
            .store
            .transact(|tx| enqueue_in(tx, mail.clone(), now))
            .await
            .unwrap();
        let a = f.node("n-a", &f.root).await;
        let tenant_admin = f.user("ada", Role::Admin, &[&a]).await;
        assert!(matches!(
            retry(&f.hub, &tenant_admin, &id).await,
            Err(MailError::NotRootLevel)
        ));
        let manager = f.user("mia", Role::Manager, &[&f.root]).await;
        assert!(matches!(
            list_outbox(&f.hub, &manager, &OutboxFilter::default()),
            Err(MailError::RoleTooLow(_))
        ));
        let retried = retry(&f.hub, &f.admin, &id).await.unwrap();
        assert_eq!(retried.status, OutboxStatus::Queued);
        let mut entry: OutboxEntry = f.hub.store.get(OUTBOX, &id).unwrap().unwrap();
        entry.sent_at = Some(now);
        f.hub
            .store
            .transact(|tx| tx.put(OUTBOX, &id, &entry))
            .await
            .unwrap();
        assert!(matches!(
            retry(&f.hub, &f.admin, &id).await,
            Err(MailError::AlreadySent)
        ));
        assert!(matches!(
            retry(&f.hub, &f.admin, "nope").await,
            Err(MailError::NotFound)
        ));
        let listed = list_outbox(&f.hub, &f.admin, &OutboxFilter::default()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, OutboxStatus::Sent);
    }
}
