//! The mail sender (A5, L6, S9): a background task that delivers due outbox
//! entries over SMTP and records each outcome durably.
//!
//! Owns: the delivery loop, the retry policy ([`SenderOptions`], [`backoff`])
//! and pruning of old entries. Must not: lose or duplicate state — every
//! outcome is one transaction per entry that re-reads the entry, so an
//! admin's retry is never overwritten with a stale copy. Delivery is at-least-once: a crash between the
//! server's acceptance and the durable `sent_at` sends the message again.
//!
//! Without `smtp` in the configuration the task does nothing: mail waits in
//! the outbox, where admins can read it (`GET /api/v1/mail/outbox`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Mail, OUTBOX, OutboxEntry, entries};
use crate::app::Hub;
use crate::background::{self, Background};
use crate::config::SmtpConfig;
use crate::store::StoreError;

/// The longest `last_error` kept, in bytes.
pub const MAX_ERROR_LEN: usize = 1000;

/// How the sender paces itself. The defaults suit production; tests shorten
/// the poll interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderOptions {
    /// Real time between passes when there is nothing more to do.
    pub poll_interval: Duration,
    /// The most entries one pass attempts.
    pub batch_size: usize,
    /// The delay before the first retry; it doubles with every failure.
    pub first_retry: TimeDelta,
    /// The longest delay between two attempts.
    pub max_retry: TimeDelta,
    /// Attempts before an entry is marked failed.
    pub max_attempts: u32,
    /// How long one SMTP command may take.
    pub smtp_timeout: Duration,
    /// How long delivered entries stay listed before they are pruned.
    pub sent_retention: TimeDelta,
    /// How long failed entries stay listed before they are pruned.
    pub failed_retention: TimeDelta,
    /// The most entries one pass prunes.
    pub prune_batch: usize,
}

impl Default for SenderOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            batch_size: 32,
            first_retry: TimeDelta::seconds(30),
            max_retry: TimeDelta::hours(1),
            max_attempts: 16,
            smtp_timeout: Duration::from_secs(30),
            sent_retention: TimeDelta::days(7),
            failed_retention: TimeDelta::days(30),
            prune_batch: 256,
        }
    }
}

/// The delay after the `attempts`-th failed attempt: `first_retry` doubled
/// per earlier failure, capped at `max_retry`, then shortened by up to a
/// quarter (`jitter` in `0..=u16::MAX` scales that quarter) so that mail
/// queued together does not retry in lockstep.
#[must_use]
pub fn backoff(options: &SenderOptions, attempts: u32, jitter: u16) -> TimeDelta {
    let doublings = attempts.saturating_sub(1).min(30);
    let full = options
        .first_retry
        .checked_mul(1_i32 << doublings)
        .unwrap_or(options.max_retry)
        .min(options.max_retry)
        .max(TimeDelta::zero());
    let quarter = full.num_milliseconds() / 4;
    let cut = quarter * i64::from(jitter) / i64::from(u16::MAX);
    full - TimeDelta::milliseconds(cut)
}

fn random_jitter() -> u16 {
    let mut bytes = [0u8; 2];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u16::from_le_bytes(bytes),
        Err(_) => u16::MAX / 2,
    }
}

/// A running sender; stop it with [`MailSender::stop`] or by cancelling the
/// token it was spawned with.
pub struct MailSender {
    /// Wakes the loop before its timer.
    wake: Arc<Notify>,
    /// The loop.
    task: Background,
}

impl MailSender {
    /// Starts the sender on the runtime. It stops when `cancel` is
    /// cancelled (or [`MailSender::stop`] is called).
    pub fn spawn(state: Hub, options: SenderOptions, cancel: CancellationToken) -> Self {
        let wake = Arc::clone(&state.mail_wake);
        let task = run(state, options, cancel.clone(), Arc::clone(&wake));
        let task = Background::spawn("mail sender", cancel, task);
        Self { wake, task }
    }

    /// Makes the sender look at the outbox now instead of at its next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether the sender still runs ([`Background::is_running`], O1).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.task.is_running()
    }

    /// Stops the loop and waits until it has stopped. A send in flight is
    /// abandoned; its entry stays queued and is sent by the next start.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

/// The SMTP side: the transport and the From address.
struct Smtp {
    /// Talks to the server; one connection per message.
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The From of every message.
    from: Mailbox,
}

impl Smtp {
    fn new(config: &SmtpConfig, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("smtp.from {:?} is not an address: {e}", config.from))?;
        let builder = if config.starttls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("smtp.host {:?}: {e}", config.host))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
        };
        let mut builder = builder.port(config.port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// The message to send, or why it can never be sent.
    fn message(&self, mail: &Mail) -> Result<Message, String> {
        mail.check().map_err(|e| e.to_string())?;
        let to: lettre::Address = mail
            .to
            .parse()
            .map_err(|e| format!("invalid recipient {:?}: {e}", mail.to))?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| format!("cannot build the message: {e}"))
    }
}

/// What one attempt came to.
enum Outcome {
    /// The server accepted the message.
    Delivered,
    /// Worth trying again later (network, timeout, 4xx).
    Transient(String),
    /// Never worth trying again (invalid message, 5xx).
    Permanent(String),
}

async fn run(state: Hub, options: SenderOptions, cancel: CancellationToken, wake: Arc<Notify>) {
    let Some(config) = state.config.smtp.clone() else {
        tracing::info!("no smtp configured: mail waits in the outbox");
        cancel.cancelled().await;
        return;
    };
    let smtp = match Smtp::new(&config, options.smtp_timeout) {
        Ok(smtp) => smtp,
        Err(reason) => {
            tracing::error!(%reason, "mail sender not started: mail waits in the outbox");
            cancel.cancelled().await;
            return;
        }
    };
    tracing::info!(host = %config.host, port = config.port, "mail sender started");
    let mut store_failures: u32 = 0;
    loop {
        let wait = match pass(&state, &smtp, &options, &cancel).await {
            Ok(attempted) => {
                store_failures = 0;
                if attempted >= options.batch_size {
                    // More may be due; let other tasks run, then go on.
                    Duration::ZERO
                } else {
                    options.poll_interval
                }
            }
            Err(e) => {
                store_failures = store_failures.saturating_add(1);
                tracing::error!(error = %e, "mail sender pass failed");
                background::backoff(
                    options.poll_interval,
                    store_failures,
                    Duration::from_secs(60),
                )
            }
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
    tracing::info!("mail sender stopped");
}

/// One pass: prune old entries, then attempt up to `batch_size` due ones,
/// oldest first. Returns how many were attempted.
async fn pass(
    state: &Hub,
    smtp: &Smtp,
    options: &SenderOptions,
    cancel: &CancellationToken,
) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let all = entries(&state.store)?;
    prune(state, options, &all, now).await?;
    let due: Vec<OutboxEntry> = all
        .into_iter()
        .filter(|e| e.is_due(now))
        .take(options.batch_size)
        .collect();
    let mut attempted = 0;
    for entry in due {
        let outcome = match smtp.message(&entry.mail) {
            Err(reason) => Outcome::Permanent(reason),
            Ok(message) => tokio::select! {
                () = cancel.cancelled() => return Ok(attempted),
                result = smtp.transport.send(message) => match result {
                    Ok(_) => Outcome::Delivered,
                    Err(e) if e.is_permanent() => Outcome::Permanent(format!("refused by the server: {e}")),
                    Err(e) => Outcome::Transient(e.to_string()),
                },
            },
        };
        record(state, options, &entry.id, outcome).await?;
        attempted += 1;
    }
    Ok(attempted)
}

/// Writes the outcome of one attempt to the entry, as stored now.
async fn record(
    state: &Hub,
    options: &SenderOptions,
    id: &str,
    outcome: Outcome,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let jitter = random_jitter();
    state
        .store
        .transact(|tx| {
            let Some(mut entry) = tx.get::<OutboxEntry>(OUTBOX, id)? else {
                return Ok(());
            };
            if entry.sent_at.is_some() {
                return Ok(());
            }
            apply_outcome(&mut entry, options, &outcome, now, jitter);
            tx.put(OUTBOX, id, &entry)
        })
        .await?;
    match &outcome {
        Outcome::Delivered => tracing::info!(id, "mail delivered"),
        Outcome::Permanent(reason) => tracing::warn!(id, %reason, "mail failed permanently"),
        Outcome::Transient(reason) => tracing::info!(id, %reason, "mail not delivered"),
    }
    Ok(())
}

/// The entry after one more attempt with `outcome` at `now`.
fn apply_outcome(
    entry: &mut OutboxEntry,
    options: &SenderOptions,
    outcome: &Outcome,
    now: DateTime<Utc>,
    jitter: u16,
) {
    entry.attempts = entry.attempts.saturating_add(1);
    match outcome {
        Outcome::Delivered => {
            entry.sent_at = Some(now);
            entry.failed_at = None;
            entry.last_error = None;
        }
        Outcome::Permanent(reason) => {
            entry.last_error = Some(bounded(reason.clone()));
            entry.failed_at = Some(now);
        }
        Outcome::Transient(reason) => {
            if entry.attempts >= options.max_attempts {
                entry.last_error = Some(bounded(format!(
                    "gave up after {} attempts; last: {reason}",
                    entry.attempts
                )));
                entry.failed_at = Some(now);
            } else {
                entry.last_error = Some(bounded(reason.clone()));
                entry.next_attempt_at = now + backoff(options, entry.attempts, jitter);
            }
        }
    }
}

/// Deletes delivered and failed entries older than their retention, at most
/// `prune_batch` per pass, re-checking each inside the transaction that deletes it.
async fn prune(
    state: &Hub,
    options: &SenderOptions,
    all: &[OutboxEntry],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let expired = |e: &OutboxEntry| {
        e.sent_at.is_some_and(|t| t + options.sent_retention <= now)
            || (e.sent_at.is_none()
                && e.failed_at
                    .is_some_and(|t| t + options.failed_retention <= now))
    };
    let candidates: Vec<&str> = all
        .iter()
        .filter(|e| expired(e))
        .take(options.prune_batch)
        .map(|e| e.id.as_str())
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let pruned = state
        .store
        .transact(|tx| {
            let mut pruned = 0;
            for id in &candidates {
                if tx
                    .get::<OutboxEntry>(OUTBOX, id)?
                    .is_some_and(|e| expired(&e))
                {
                    tx.delete(OUTBOX, id);
                    pruned += 1;
                }
            }
            Ok::<_, StoreError>(pruned)
        })
        .await?;
    if pruned > 0 {
        tracing::info!(pruned, "pruned old outbox entries");
    }
    Ok(())
}

/// `reason`, cut to [`MAX_ERROR_LEN`] bytes on a character boundary.
fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let options = SenderOptions::default();
        assert_eq!(backoff(&options, 1, 0), TimeDelta::seconds(30));
        assert_eq!(backoff(&options, 2, 0), TimeDelta::seconds(60));
        assert_eq!(backoff(&options, 3, 0), TimeDelta::seconds(120));
        assert_eq!(backoff(&options, 8, 0), TimeDelta::hours(1));
        assert_eq!(backoff(&options, 1000, 0), TimeDelta::hours(1));
        assert_eq!(
            backoff(&options, 1, u16::MAX),
            TimeDelta::milliseconds(22_500)
        );
        assert_eq!(backoff(&options, 50, u16::MAX), TimeDelta::minutes(45));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let cut = bounded("é".repeat(MAX_ERROR_LEN));
        assert!(cut.len() <= MAX_ERROR_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
