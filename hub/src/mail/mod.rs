//! Mail (A5, L6, U4 alerts): a durable outbox and its SMTP sender.
//!
//! Owns: the outbox records, the rules a message must meet before it is
//! handed to SMTP ([`Mail::check`]), and the background [`sender`]. A handler
//! that sends mail adds it to the same [`WriteBatch`] as the change that
//! causes it ([`enqueue`]), so the mail is durable exactly when the change
//! is. Must not: send inline from a handler; delivery happens in the
//! background, with retries. The [`outbox`] service lets root-level
//! admins read and retry it.

pub mod links;
pub mod outbox;
pub mod password_reset;
pub mod sender;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::audit_id;
use crate::store::{Store, StoreError, Tx, WriteBatch};

/// Tree of outbox entries, keyed by time-ordered id.
pub const OUTBOX: &str = "mail_outbox";

// The message value and its check are below the domains (config checks
// `alert_email` with it); re-exported so `crate::mail::…` paths keep working.
pub use crate::values::mail::{InvalidMail, MAX_ADDRESS_LEN, MAX_BODY_LEN, MAX_SUBJECT_LEN, Mail};

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for its first or next attempt.
    Queued,
    /// Delivered to the SMTP server.
    Sent,
    /// Given up on: refused permanently, or out of attempts.
    Failed,
}

/// A message in the outbox and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    /// Time-ordered id (the record key).
    pub id: String,
    /// The message.
    pub mail: Mail,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered; `None` while waiting.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the sender gave up on it; `None` unless it failed for good.
    /// Absent in records written before failures were recorded.
    #[serde(default)]
    pub failed_at: Option<DateTime<Utc>>,
}

impl OutboxEntry {
    /// Where it stands.
    #[must_use]
    pub fn status(&self) -> OutboxStatus {
        if self.sent_at.is_some() {
            OutboxStatus::Sent
        } else if self.failed_at.is_some() {
            OutboxStatus::Failed
        } else {
            OutboxStatus::Queued
        }
    }

    /// Whether the sender should try it at `now`.
    #[must_use]
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.status() == OutboxStatus::Queued && self.next_attempt_at <= now
    }
}

/// Adds `mail` to the outbox as part of `batch`; returns its id.
///
/// # Errors
/// Never in practice (the entry always encodes).
pub fn enqueue(
    batch: &mut WriteBatch,
    mail: Mail,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let id = audit_id(now);
    let entry = OutboxEntry {
        id: id.clone(),
        mail,
        queued_at: now,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        sent_at: None,
        failed_at: None,
    };
    batch.put(OUTBOX, &id, &entry)?;
    Ok(id)
}

/// [`enqueue`] inside a transaction: the mail is durable exactly when the
/// change that causes it commits. Wake the sender (`Hub::mail_wake`) after
/// the commit.
///
/// # Errors
/// Never in practice (the entry always encodes).
pub fn enqueue_in(tx: &mut Tx, mail: Mail, now: DateTime<Utc>) -> Result<String, StoreError> {
    let mut batch = WriteBatch::new();
    let id = enqueue(&mut batch, mail, now)?;
    tx.include(batch);
    Ok(id)
}

/// Every outbox entry, oldest first. A record that does not decode is
/// logged and skipped, so one bad record cannot stop all mail.
///
/// # Errors
/// When the engine fails.
pub fn entries(store: &Store) -> Result<Vec<OutboxEntry>, StoreError> {
    Ok(store
        .scan::<serde_json::Value>(OUTBOX, "")?
        .into_iter()
        .filter_map(|value| match serde_json::from_value::<OutboxEntry>(value) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::error!(error = %e, "skipping an outbox record that does not decode");
                None
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str, subject: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: subject.to_owned(),
            body: "body\n".to_owned(),
        }
    }

    #[test]
    fn header_injection_is_refused() {
        for (to, subject, field) in [
            ("a@example.test\r\nBcc: b@example.test", "s", "recipient"),
            ("a@example.test", "s\nBcc: b@example.test", "subject"),
            ("a@example.test", "s\r", "subject"),
        ] {
            assert_eq!(
                mail(to, subject).check(),
                Err(InvalidMail::LineBreak { field })
            );
        }
        assert!(matches!(
            mail("a @example.test", "s").check(),
            Err(InvalidMail::ControlCharacter { .. })
        ));
    }

    #[test]
    fn bounds_and_addresses_are_checked() {
        assert_eq!(mail("a@example.test", "fine").check(), Ok(()));
        assert!(matches!(
            mail("not-an-address", "s").check(),
            Err(InvalidMail::Recipient { .. })
        ));
        assert!(matches!(
            mail("", "s").check(),
            Err(InvalidMail::Recipient { .. })
        ));
        let long = "s".repeat(MAX_SUBJECT_LEN + 1);
        assert!(matches!(
            mail("a@example.test", &long).check(),
            Err(InvalidMail::TooLong { .. })
        ));
        let mut big = mail("a@example.test", "s");
        big.body = "x".repeat(MAX_BODY_LEN + 1);
        assert!(matches!(big.check(), Err(InvalidMail::TooLong { .. })));
    }

    #[test]
    fn old_records_without_failed_at_still_decode() {
        let json = serde_json::json!({"id": "1", "mail": {"to": "a@example.test", "subject": "s", "body": "b"},
            "queued_at": "2025-01-01T00:00:00Z", "attempts": 0, "next_attempt_at": "2025-01-01T00:00:00Z",
            "last_error": null, "sent_at": null});
        let entry: OutboxEntry = serde_json::from_value(json).unwrap();
        assert_eq!(entry.status(), OutboxStatus::Queued);
    }
}
