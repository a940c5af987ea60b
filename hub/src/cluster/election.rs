//! The leader election on PostgreSQL (X5): a session-level advisory lock
//! held on a dedicated connection, pinged continuously; and the wake-ups
//! between replicas (`LISTEN`/`NOTIFY`). See [`super`] for the picture.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_util::sync::CancellationToken;

use crate::app::Hub;

/// The advisory lock the leader holds (next to the store's migration lock).
pub const LEADER_LOCK: i64 = 0x5349_474e_4554_0002;
/// The `NOTIFY` channel followers wake the leader's loops on.
pub const WAKE_CHANNEL: &str = "signet_wake";
/// How often a follower tries the lock and the leader pings.
pub const TICK: Duration = Duration::from_millis(500);
/// How long a ping or a try may take before the replica gives up the
/// leadership (and its connection).
pub const PROBE_WAIT: Duration = Duration::from_secs(2);
/// How long connecting may take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the election for `hub` until `cancel`: on sled the hub leads at
/// once and for good; on PostgreSQL it competes for [`LEADER_LOCK`].
pub fn spawn(hub: Hub, cancel: CancellationToken) -> JoinHandle<()> {
    if !crate::store::is_postgres(&hub.config.store) {
        hub.replica.set_leader(true);
        return tokio::spawn(async {});
    }
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            let outcome = campaign(&hub, &cancel).await;
            hub.replica.set_leader(false);
            match outcome {
                Ok(()) => return,
                Err(reason) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%reason, replica = hub.replica.id(),
                        "leader election connection lost; not leading");
                }
            }
            let wait = (TICK * (1 << failures.min(4))).min(MAX_BACKOFF);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// The connection settings: the store's URL, named after the replica, with
/// TCP keepalives on both ends so a leader cut off by the network loses
/// its session (and the lock) within seconds on the server too.
fn session_config(store: &str, replica: &str) -> Result<tokio_postgres::Config, String> {
    let mut config: tokio_postgres::Config = store
        .parse()
        .map_err(|e| format!("the PostgreSQL store URL: {e}"))?;
    let keepalive = "-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 \
                     -c tcp_keepalives_count=3 -c tcp_user_timeout=5000";
    let options = match config.get_options() {
        Some(options) => format!("{options} {keepalive}"),
        None => keepalive.to_owned(),
    };
    config
        .options(&options)
        .application_name(format!("signet-hub leader election ({replica})"))
        .connect_timeout(CONNECT_WAIT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(2));
    Ok(config)
}

/// One connection's life: tries the lock every [`TICK`] while following,
/// pings while leading, relays wake-ups. `Ok` when cancelled; `Err` when
/// the connection failed (the caller ends the leadership).
async fn campaign(hub: &Hub, cancel: &CancellationToken) -> Result<(), String> {
    let config = session_config(&hub.config.store, hub.replica.id())?;
    let (client, mut connection) = tokio::time::timeout(CONNECT_WAIT, config.connect(NoTls))
        .await
        .map_err(|_| "connecting took too long".to_owned())?
        .map_err(|e| format!("connecting: {e}"))?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    let _ = notes_tx.send(note.payload().to_owned());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "leader election connection ended");
                    return;
                }
            }
        }
    });
    let result = follow_and_lead(hub, &client, &mut notes, cancel).await;
    driver.abort();
    if result.is_ok() && hub.replica.is_leader() {
        // A clean stop hands the leadership over at once.
        let _ = tokio::time::timeout(
            PROBE_WAIT,
            client.execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK]),
        )
        .await;
    }
    result
}

async fn follow_and_lead(
    hub: &Hub,
    client: &Client,
    notes: &mut mpsc::UnboundedReceiver<String>,
    cancel: &CancellationToken,
) -> Result<(), String> {
    probe(client.batch_execute(&format!("LISTEN {WAKE_CHANNEL}"))).await?;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let leading = hub.replica.is_leader();
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {
                if leading {
                    probe(client.simple_query("SELECT 1")).await?;
                } else {
                    let row = probe(client.query_one(
                        "SELECT pg_try_advisory_lock($1)",
                        &[&LEADER_LOCK],
                    ))
                    .await?;
                    if row.try_get::<_, bool>(0).map_err(|e| e.to_string())? {
                        tracing::info!(replica = hub.replica.id(), "this replica leads now");
                        hub.replica.set_leader(true);
                    }
                }
            }
            note = notes.recv() => match note {
                None => return Err("the connection closed".to_owned()),
                Some(kind) if leading => wake_here(hub, &kind),
                Some(_) => {}
            },
            () = hub.publish_wake.notified(), if !leading => notify(client, "publish").await?,
            () = hub.mail_wake.notified(), if !leading => notify(client, "mail").await?,
        }
    }
}

/// Waits for `query` at most [`PROBE_WAIT`].
async fn probe<T>(
    query: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    tokio::time::timeout(PROBE_WAIT, query)
        .await
        .map_err(|_| format!("PostgreSQL did not answer within {PROBE_WAIT:?}"))?
        .map_err(|e| e.to_string())
}

/// Tells the leader (whichever replica it is) to look at `kind`'s queue.
async fn notify(client: &Client, kind: &str) -> Result<(), String> {
    probe(client.execute("SELECT pg_notify($1, $2)", &[&WAKE_CHANNEL, &kind]))
        .await
        .map(|_| ())
}

/// Wakes this (leading) replica's loop for `kind`.
fn wake_here(hub: &Hub, kind: &str) {
    match kind {
        "publish" => hub.publish_wake.notify_one(),
        "mail" => hub.mail_wake.notify_one(),
        other => tracing::debug!(kind = other, "unknown wake-up ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::session_config;

    #[test]
    fn x5_the_election_connection_keeps_the_urls_options_and_adds_keepalives() {
        let config =
            session_config("postgres://u@127.0.0.1:5/db?options=-c%20work_mem%3D1MB", "a")
                .unwrap_or_else(|e| panic!("{e}"));
        let options = config.get_options().unwrap_or_default();
        assert!(options.starts_with("-c work_mem=1MB"), "{options}");
        assert!(options.contains("tcp_keepalives_idle=2"), "{options}");
        assert_eq!(
            config.get_application_name(),
            Some("signet-hub leader election (a)")
        );
    }
}
