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
use crate::app::fleet_feed::{FleetChange, RELAY_CAPACITY, Relayed};
use signet_common::ids::{DeviceId, NodeId};

/// The advisory lock the leader holds (next to the store's migration lock).
pub const LEADER_LOCK: i64 = 0x5349_474e_4554_0002;
/// The `NOTIFY` channel followers wake the leader's loops on.
pub const WAKE_CHANNEL: &str = "signet_wake";
/// The `NOTIFY` channel replicas tell each other about fleet changes on
/// (the console's live stream, C3).
pub const FLEET_CHANNEL: &str = "signet_fleet";
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
    // A follower until it holds the lock (before any leader work starts).
    hub.replica.set_leader(false);
    let (relay, mut relayed) = mpsc::channel(RELAY_CAPACITY);
    hub.fleet_feed.relay_to(relay);
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            let outcome = campaign(&hub, &mut relayed, &cancel).await;
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
async fn campaign(
    hub: &Hub,
    relayed: &mut mpsc::Receiver<Relayed>,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let config = session_config(&hub.config.store, hub.replica.id())?;
    let (client, mut connection) = tokio::time::timeout(CONNECT_WAIT, config.connect(NoTls))
        .await
        .map_err(|_| "connecting took too long".to_owned())?
        .map_err(|e| format!("connecting: {e}"))?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<(String, String)>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    let _ = notes_tx.send((note.channel().to_owned(), note.payload().to_owned()));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "leader election connection ended");
                    return;
                }
            }
        }
    });
    let result = follow_and_lead(hub, &client, &mut notes, relayed, cancel).await;
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
    notes: &mut mpsc::UnboundedReceiver<(String, String)>,
    relayed: &mut mpsc::Receiver<Relayed>,
    cancel: &CancellationToken,
) -> Result<(), String> {
    probe(client.batch_execute(&format!("LISTEN {WAKE_CHANNEL}; LISTEN {FLEET_CHANNEL}"))).await?;
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
                Some((channel, payload)) if channel == FLEET_CHANNEL => {
                    if let Some(note) = from_peer(hub.replica.id(), &payload) {
                        hub.fleet_feed.apply_relayed(note);
                    }
                }
                Some((_, kind)) if leading => wake_here(hub, &kind),
                Some(_) => {}
            },
            Some(note) = relayed.recv() => {
                let payload = to_peers(hub.replica.id(), &note);
                probe(client.execute("SELECT pg_notify($1, $2)", &[&FLEET_CHANNEL, &payload]))
                    .await?;
            }
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

/// The `NOTIFY` payload telling the other replicas about `note`.
fn to_peers(replica: &str, note: &Relayed) -> String {
    let value = match note {
        Relayed::Changed(change) => serde_json::json!({
            "from": replica, "kind": "changed", "device": change.device.as_str(),
            "node": change.node.as_ref().map(NodeId::as_str),
        }),
        Relayed::Deadline { device, deadline } => serde_json::json!({
            "from": replica, "kind": "deadline", "device": device.as_str(),
            "deadline": deadline,
        }),
    };
    value.to_string()
}

/// What another replica relayed in `payload`; `None` for this replica's
/// own notes (PostgreSQL delivers them back) and anything malformed.
fn from_peer(replica: &str, payload: &str) -> Option<Relayed> {
    #[derive(serde::Deserialize)]
    struct Note {
        from: String,
        kind: String,
        device: String,
        #[serde(default)]
        node: Option<String>,
        #[serde(default)]
        deadline: Option<chrono::DateTime<chrono::Utc>>,
    }
    let note: Note = serde_json::from_str(payload).ok()?;
    if note.from == replica || note.device.is_empty() {
        return None;
    }
    let device = DeviceId::from(note.device.as_str());
    match note.kind.as_str() {
        "changed" => Some(Relayed::Changed(FleetChange {
            device,
            node: note.node.as_deref().map(NodeId::from),
        })),
        "deadline" => Some(Relayed::Deadline {
            device,
            deadline: note.deadline,
        }),
        _ => None,
    }
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
    use super::{from_peer, session_config, to_peers};
    use crate::app::fleet_feed::{FleetChange, Relayed};

    #[test]
    fn x5_fleet_notes_round_trip_between_replicas_and_own_notes_are_skipped() {
        let notes = [
            Relayed::Changed(FleetChange {
                device: "d-1".into(),
                node: Some("n-1".into()),
            }),
            Relayed::Changed(FleetChange {
                device: "d-2".into(),
                node: None,
            }),
            Relayed::Deadline {
                device: "d-3".into(),
                deadline: "2026-01-01T10:00:00Z".parse().ok(),
            },
        ];
        for note in notes {
            let payload = to_peers("hub-a", &note);
            assert_eq!(from_peer("hub-b", &payload), Some(note));
            assert_eq!(from_peer("hub-a", &payload), None, "own note");
        }
        assert_eq!(from_peer("hub-b", "not json"), None);
    }

    #[test]
    fn x5_the_election_connection_keeps_the_urls_options_and_adds_keepalives() {
        let config = session_config(
            "postgres://u@127.0.0.1:5/db?options=-c%20work_mem%3D1MB",
            "a",
        )
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
