//! Mail (A5, L6, U4 alerts): a durable outbox and its SMTP sender.
//!
//! Owns: the outbox records. A handler that sends mail adds it to the same
//! [`WriteBatch`] as the change that causes it ([`enqueue`]), so the mail is
//! durable exactly when the change is. Must not: send inline from a handler;
//! delivery happens in the background, with retries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::audit_id;
use crate::store::{StoreError, WriteBatch};

/// Tree of outbox entries, keyed by time-ordered id.
pub const OUTBOX: &str = "mail_outbox";

/// The longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 998;
/// The longest body, in bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
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
    };
    batch.put(OUTBOX, &id, &entry)?;
    Ok(id)
}
