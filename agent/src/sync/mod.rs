//! The sync core (S1, S3, S4, S5, S6, S9; DESIGN §5): `signet-agent run`.
//!
//! Owns: the MQTT session of a paired device — a persistent session
//! (`clean_session = false`, client id = device id) with manual
//! acknowledgements and a retained last will marking the device offline;
//! the subscriptions (trust, hub time, the device's assignment and commands,
//! and the manifest of every group of the current assignment); and the
//! verifier task that takes each message through [`apply::decide`], makes
//! its effect durable ([`crate::state::Store::commit`], flushed), only then
//! acknowledges it, and publishes the device's retained state, signed
//! with the device key from pairing (S11; the last will too). May call:
//! [`crate::state`], [`crate::clock`], `signet-common`'s rules. Must not:
//! play, download or cache content: it tells the content task and the
//! player through [`Links`] that documents changed, and reports what they
//! report.
//!
//! The last will is fixed when the connection is made (MQTT 3.1.1), so it
//! carries the device state as of the last (re)connection with
//! `online: false`; the retained state published after every change is the
//! up-to-date one, and the hub should keep the last online `applied` map of a
//! device whose will fired.
//!
//! Two tasks: [`connection::drive`] owns the rumqttc event loop and never
//! waits on anything but the network; the verifier owns everything else and
//! is fed through a bounded queue.
//!
//! The broker is an accelerator, never the only path (S4, DESIGN §1): when
//! a needed document is missing or a retained one is refused (poisoned or
//! cleared on the broker), or the broker is down, the verifier fetches the
//! current signed documents from the hub over HTTP(S) ([`fetch`], in a task
//! of its own) and takes each through the same path as an MQTT message
//! (the verifier's `apply_document`: verify → rollback guard → durable commit),
//! only without an acknowledgement. Each refusal is kept by document key
//! until that document is accepted, and reported (U4).

pub mod apply;
pub mod connection;
pub mod fetch;
pub mod report;
pub mod subscriptions;
mod verifier;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS, Transport};
use signet_common::clock::TrustedClock;
use signet_common::documents::{CommandAction, DeviceAssignment};
use signet_common::envelope::{DocumentKind, MAX_DOCUMENT_BYTES};
use signet_common::sync::{
    AppliedDocument, CacheProgress, NowPlaying, PendingActivation, state_topic,
};
use tokio::sync::{mpsc, watch};

use crate::clock::DeviceClock;
use crate::config::{AgentConfig, BrokerUrl};
use crate::retry::Backoff;
use crate::state::{StateError, Store};
use apply::Held;
use connection::Will;
use fetch::{DocumentFetcher, FetchSchedule};
use subscriptions::{Requested, Subscriptions};
use verifier::{Fetching, Verifier};

/// The largest MQTT packet read: a maximal document plus the topic and
/// header. Larger packets end the connection (rumqttc's limit).
pub const MAX_INCOMING_PACKET: usize = MAX_DOCUMENT_BYTES + 64 * 1024;
/// The largest packet the agent sends (its state message).
const MAX_OUTGOING_PACKET: usize = 512 * 1024;
// A signed state message, its topic and the MQTT header always fit.
const _: () =
    assert!(signet_common::sync::signed::MAX_SIGNED_REPORT_BYTES + 1024 <= MAX_OUTGOING_PACKET);
/// Requests (acks, subscriptions, state) waiting for the event loop.
const REQUEST_CAPACITY: usize = 64;
/// How long the verifier waits to queue a subscription change; when the
/// event loop cannot take it (no broker), it is made at the next connect.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Why the sync core could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The broker URL (configured or from pairing) is unusable.
    #[error("broker URL: {0}")]
    BadBrokerUrl(String),
    /// A stored document no longer parses.
    #[error("stored {key} is corrupt: {reason}")]
    Corrupt {
        /// The document key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The MQTT client refused a request (the event loop is gone).
    #[error("mqtt client: {0}")]
    Client(#[from] rumqttc::ClientError),
    /// A blocking task panicked or was cancelled.
    #[error("background task: {0}")]
    Task(String),
}

/// The shortest spacing of state messages caused by what plays and by
/// download progress.
const STATE_SPACING: Duration = Duration::from_secs(1);

/// What the other tasks report for the state message (U4).
#[derive(Debug, Clone, Default)]
pub struct LocalReport {
    /// What plays now.
    pub now_playing: Option<NowPlaying>,
    /// Bytes in the content cache.
    pub cache_bytes: u64,
    /// Download progress and the cache's refusal.
    pub cache: Option<CacheProgress>,
    /// The playing manifests, keyed `group_manifest/{group}` (D3).
    pub activated: BTreeMap<String, AppliedDocument>,
    /// Accepted manifests waiting for their content, and why (D3, U4).
    pub pending: BTreeMap<String, PendingActivation>,
    /// Free disk and temperature, as last read.
    pub readings: crate::sensors::Readings,
    /// Why the player does not show as configured (no usable display for
    /// `video_sink = "auto"`, GStreamer cannot start), if it does not.
    pub player_problem: Option<String>,
}

/// The verifier's links to the rest of the agent.
#[derive(Debug)]
pub struct Links {
    /// Bumped after every durable change of the accepted documents.
    pub documents: watch::Sender<u64>,
    /// The trusted clock as held, sent after every change.
    pub clock: watch::Sender<TrustedClock>,
    /// What the player and the content task report.
    pub local: watch::Receiver<LocalReport>,
    /// `purge_cache` commands for the content task.
    pub purge: mpsc::Sender<()>,
    /// `screenshot` and `restart_player` commands for the player.
    pub player: mpsc::Sender<CommandAction>,
}

/// Loads the held state of a paired device from its store.
///
/// # Errors
/// [`SyncError`] when the device is not paired or the state is corrupt.
pub fn load_held(store: &Store, clock: &DeviceClock) -> Result<Held, SyncError> {
    let identity = store.require_identity()?;
    let trust = store.trust()?;
    let guard = store.guard()?;
    let clock_state = store
        .clock()?
        .unwrap_or_else(|| TrustedClock::new(&clock.read()));
    let mut documents = std::collections::BTreeMap::new();
    let mut assignment = None;
    let assignment_key =
        apply::document_key(DocumentKind::DeviceAssignment, identity.device_id.as_str());
    for (key, bytes) in store.documents()? {
        if key == assignment_key {
            assignment = Some(apply::stored_payload::<DeviceAssignment>(&bytes).map_err(
                |reason| SyncError::Corrupt {
                    key: key.clone(),
                    reason,
                },
            )?);
        }
        documents.insert(key, signet_common::digest::Sha256::of(&bytes));
    }
    Ok(Held {
        device: identity.device_id,
        trust,
        guard,
        clock: clock_state,
        assignment,
        documents,
    })
}

/// Runs the sync core until `shutdown` completes; then publishes the
/// offline state and disconnects cleanly.
///
/// # Errors
/// [`SyncError`] when the device is not paired, its state is corrupt or the
/// broker URL is unusable. Connection failures are not errors: the agent
/// keeps reconnecting.
pub async fn run(
    config: &AgentConfig,
    store: Store,
    held: Held,
    links: Links,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SyncError> {
    let identity = store.require_identity()?;
    let secret = store.secret()?;
    let device_clock = DeviceClock::new();
    let broker_url = config
        .broker_url
        .clone()
        .unwrap_or_else(|| identity.broker_url.clone());
    let broker = BrokerUrl::parse(&broker_url).map_err(SyncError::BadBrokerUrl)?;
    let os = report::os_name();
    let key = store.device_key()?;

    let mut options = MqttOptions::new(identity.device_id.as_str(), &broker.host, broker.port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        .set_credentials(&identity.username, &secret)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    if broker.tls {
        options.set_transport(match &identity.ca_pem {
            Some(pem) => Transport::tls(pem.as_bytes().to_vec(), None, None),
            None => Transport::tls_with_default_config(),
        });
    }
    let topic = state_topic(&held.device);
    let reading = device_clock.read();
    let offline = report::device_state(
        report::Reporter { key: &key, os: &os },
        &held,
        &reading,
        false,
        None,
        &links.local.borrow().clone(),
        &BTreeMap::new(),
    );
    options.set_last_will(LastWill::new(
        topic.clone(),
        offline.clone(),
        QoS::AtLeastOnce,
        true,
    ));
    let (will_tx, will_rx) = watch::channel(offline);
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity);
    let (stop_tx, stop_rx) = watch::channel(false);
    let backoff = Backoff {
        base: config.reconnect_base(),
        cap: config.reconnect_cap(),
    };
    let hub_url = config
        .hub_url
        .clone()
        .unwrap_or_else(|| identity.hub_url.clone());
    let fetcher = match DocumentFetcher::new(&hub_url, identity.device_id.as_str(), &secret) {
        Ok(fetcher) => Some(fetcher),
        Err(error) => {
            tracing::error!(%error, "no HTTP path to the hub's documents; only the broker brings them");
            None
        }
    };
    let (fetched_tx, fetched_rx) = mpsc::channel(1);
    let requested = Requested::default();
    let connection = tokio::spawn(connection::drive(
        eventloop,
        queue_tx,
        Will {
            topic: topic.clone(),
            payload: will_rx,
        },
        backoff,
        requested.clone(),
        stop_rx,
    ));
    tracing::info!(
        device = %held.device,
        broker = %broker_url,
        device_key = %key.key_id(),
        "sync starting"
    );
    let mut verifier = Verifier {
        store,
        client,
        held,
        device_clock,
        os,
        key,
        state_topic: topic,
        will: will_tx,
        subscribed_groups: BTreeSet::new(),
        last_error: None,
        settle: Duration::from_millis(config.settle_ms),
        queue_capacity: config.queue_capacity,
        links,
        state_dirty: false,
        refused: BTreeMap::new(),
        resubscribe_on_connect: false,
        subscriptions: Subscriptions::new(requested, backoff),
        fetch: Fetching {
            fetcher,
            schedule: FetchSchedule::new(backoff, tokio::time::Instant::now()),
            results: fetched_tx,
            unavailable: BTreeSet::new(),
        },
    };
    let result = verifier
        .run(
            queue_rx,
            fetched_rx,
            shutdown,
            Duration::from_secs(config.clock_persist_secs),
            config.heartbeat(),
        )
        .await;
    // Let the event loop send the offline state and the DISCONNECT (it
    // ends by itself once the DISCONNECT is out); stop it only if the
    // broker is unreachable.
    let mut connection = connection;
    if tokio::time::timeout(Duration::from_secs(5), &mut connection)
        .await
        .is_err()
    {
        let _ = stop_tx.send(true);
        let _ = connection.await;
    }
    result
}
