//! The change feed of the PostgreSQL store (X5, issue 21): every replica
//! hears of every commit, whoever made it, so views kept in memory (the
//! fleet index) stay exact on a store other processes write.
//!
//! Owns: the announcement a commit makes inside its transaction
//! ([`announce`]: `pg_notify` on [`CHANNEL`] with the keys it wrote, which
//! PostgreSQL delivers at commit, in commit order, or the id of a
//! `store_changes` row holding them when they are over a payload's size)
//! and the listener ([`listen`]): one dedicated connection per process
//! that `LISTEN`s and hands what it hears to a [`CommitFeed`]. A dropped
//! connection makes the feed [`CommitFeed::deaf`] until it listens again
//! ([`CommitFeed::hearing`]: everything may have changed); a notification
//! it cannot read is [`CommitFeed::lost`]. Must not: know what the keys
//! mean (as every engine).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{CommitFeed, Write};

/// The channel commits are announced on.
pub const CHANNEL: &str = "signet_commits";
/// The `application_name` of the listening connection (seen in
/// `pg_stat_activity`).
pub const LISTENER_NAME: &str = "signet-hub change feed";
/// The largest payload sent in the notification itself (PostgreSQL
/// refuses 8,000 bytes and over).
const MAX_PAYLOAD: usize = 7_900;
/// The payload that says "everything may have changed".
const EVERYTHING: &str = "*";
/// How long `store_changes` rows are kept for listeners to read.
const KEEP_CHANGES: &str = "10 minutes";
/// The largest `store_changes` payload a listener reads.
const MAX_STORED_PAYLOAD: usize = 64 << 20;
/// Notifications held between the connection and the feed; beyond, they
/// are dropped and the feed told it [`CommitFeed::lost`] some.
const QUEUE: usize = 4096;
/// The wait before listening again after the connection dropped.
const RECONNECT_AFTER: Duration = Duration::from_millis(250);
/// Tree names the listener keeps (interned once each, for [`Write`]'s
/// `&'static str`); a name beyond them is a lost notification.
const MAX_TREES: usize = 1024;

const NOTIFY: &str = "SELECT pg_notify($1, $2)";
const STORE: &str = "INSERT INTO store_changes (payload) VALUES ($1) RETURNING id";
const PRUNE: &str = "DELETE FROM store_changes WHERE at < now() - $1::text::interval";
const READ: &str = "SELECT payload FROM store_changes WHERE id = $1";

/// Announces, inside the committing transaction `tx`, the keys written:
/// (tree, key, whether put). `prune` also deletes old `store_changes`.
///
/// # Errors
/// When PostgreSQL fails (the commit fails with it).
pub async fn announce(
    tx: &impl GenericClient,
    writes: &[(&'static str, &[u8], bool)],
    prune: bool,
) -> Result<(), tokio_postgres::Error> {
    let payload = encode(writes);
    let payload = if payload.len() <= MAX_PAYLOAD {
        payload
    } else {
        let store = tx.prepare_cached(STORE).await?;
        let id: i64 = tx.query_one(&store, &[&payload]).await?.try_get(0)?;
        if prune {
            let prune = tx.prepare_cached(PRUNE).await?;
            tx.execute(&prune, &[&KEEP_CHANGES]).await?;
        }
        format!("#{id}")
    };
    notify(tx, &payload).await
}

/// Announces that anything may have changed (writes made outside a
/// commit: a migration's copy).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn announce_everything(tx: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    notify(tx, EVERYTHING).await
}

async fn notify(tx: &impl GenericClient, payload: &str) -> Result<(), tokio_postgres::Error> {
    let notify = tx.prepare_cached(NOTIFY).await?;
    tx.execute(&notify, &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// The payload naming `writes`: a JSON array of `[tree, key, put]`, or
/// [`EVERYTHING`] when a key is not UTF-8 (the hub's never are).
fn encode(writes: &[(&'static str, &[u8], bool)]) -> String {
    let mut named = Vec::with_capacity(writes.len());
    for (tree, key, put) in writes {
        let Ok(key) = std::str::from_utf8(key) else {
            return EVERYTHING.to_owned();
        };
        named.push((*tree, key, *put));
    }
    serde_json::to_string(&named).unwrap_or_else(|_| EVERYTHING.to_owned())
}

/// What a payload says.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// These writes.
    Writes(Vec<Write>),
    /// The writes are in `store_changes` row `id`.
    Stored(i64),
    /// Anything may have changed.
    Everything,
}

/// Reads a payload; one it cannot read is [`Heard::Everything`].
fn decode(payload: &str) -> Heard {
    if let Some(id) = payload.strip_prefix('#') {
        return id.parse().map_or(Heard::Everything, Heard::Stored);
    }
    let Ok(named) = serde_json::from_str::<Vec<(String, String, bool)>>(payload) else {
        return Heard::Everything;
    };
    let mut writes = Vec::with_capacity(named.len());
    for (tree, key, put) in named {
        let Some(tree) = intern(&tree) else {
            return Heard::Everything;
        };
        let key = key.into_bytes();
        writes.push(if put {
            Write::Put {
                tree,
                key,
                value: Vec::new(),
            }
        } else {
            Write::Delete { tree, key }
        });
    }
    Heard::Writes(writes)
}

/// `tree` as a `&'static str`: each name is leaked once, at most
/// [`MAX_TREES`] of them (a process's store has a few dozen trees).
fn intern(tree: &str) -> Option<&'static str> {
    static TREES: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    let mut trees = TREES.lock().unwrap_or_else(PoisonError::into_inner);
    let trees = trees.get_or_insert_with(HashMap::new);
    if let Some(name) = trees.get(tree) {
        return Some(name);
    }
    if trees.len() >= MAX_TREES {
        return None;
    }
    let name: &'static str = Box::leak(tree.to_owned().into_boxed_str());
    trees.insert(tree.to_owned(), name);
    Some(name)
}

/// Listens on [`CHANNEL`] with a connection of its own made from
/// `config`, handing what it hears to `feed`; listens again whenever the
/// connection drops. Runs until its runtime stops.
pub async fn listen(mut config: tokio_postgres::Config, feed: Arc<dyn CommitFeed>) {
    config.application_name(LISTENER_NAME);
    // A peer gone without a word is noticed, not waited on for ever.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    loop {
        match listen_once(&config, &*feed).await {
            Ok(()) => tracing::warn!("the store's change feed closed; listening again"),
            Err(e) => tracing::warn!(error = %e, "the store's change feed failed; listening again"),
        }
        feed.deaf();
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// One connection's listening: returns when it ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    feed: &dyn CommitFeed,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (send, mut receive) = tokio::sync::mpsc::channel::<String>(QUEUE);
    let (overflow_send, mut overflowed) = tokio::sync::mpsc::channel::<()>(1);
    let messages = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) =
                        send.try_send(n.payload().to_owned())
                    {
                        let _ = overflow_send.try_send(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the store's change feed connection failed");
                    break;
                }
            }
        }
    });
    // The task ends with the connection; stop it should this return first.
    let _stop = AbortOnDrop(messages);
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    feed.hearing();
    tracing::info!("the store's change feed is listening");
    let read = client.prepare(READ).await?;
    loop {
        tokio::select! {
            biased;
            Some(()) = overflowed.recv() => feed.lost(),
            payload = receive.recv() => {
                let Some(payload) = payload else {
                    return Ok(());
                };
                let heard = match decode(&payload) {
                    Heard::Stored(id) => match client.query_opt(&read, &[&id]).await? {
                        Some(row) => {
                            let stored: String = row.try_get(0)?;
                            if stored.len() > MAX_STORED_PAYLOAD {
                                Heard::Everything
                            } else {
                                decode(&stored)
                            }
                        }
                        None => Heard::Everything,
                    },
                    heard => heard,
                };
                match heard {
                    Heard::Writes(writes) => feed.heard(&writes),
                    Heard::Stored(_) | Heard::Everything => feed.lost(),
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::{EVERYTHING, Heard, decode, encode};
    use crate::store::Write;

    #[test]
    fn x5_a_payload_names_each_write_and_reads_back() {
        let payload = encode(&[
            ("devices", b"d-1", true),
            ("node_devices", b"n/d\t\"1", false),
        ]);
        assert_eq!(
            decode(&payload),
            Heard::Writes(vec![
                Write::Put {
                    tree: "devices",
                    key: b"d-1".to_vec(),
                    value: Vec::new()
                },
                Write::Delete {
                    tree: "node_devices",
                    key: b"n/d\t\"1".to_vec()
                },
            ])
        );
        assert_eq!(decode("#42"), Heard::Stored(42));
        assert_eq!(encode(&[("t", &[0xff], true)]), EVERYTHING);
        for unreadable in [EVERYTHING, "#x", "[[1,2,3]]", "", "{}"] {
            assert_eq!(decode(unreadable), Heard::Everything, "{unreadable}");
        }
    }
}
