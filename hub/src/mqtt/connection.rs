//! The hub's MQTT client: connection settings, the publisher, the event
//! loop with its back-off, and the session task that subscribes and
//! republishes on every connect (S4, S5).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, Transport};
use signet_common::envelope::MAX_DOCUMENT_BYTES;
use signet_common::sync::{HUB_TIME_TOPIC, TOPIC_PREFIX};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hub_time;
use super::reports::{self, DeviceReports};
use super::retained::{self, WatchInbox};
use crate::app::Hub;
use crate::app::replica::Replica;
use crate::config::{BrokerUrl, MqttConfig, SHARE_GROUP, SYSTEM_CA_BUNDLE};
use crate::metrics::{Direction, Metrics};
use crate::publish::{PublishFailed, Publisher, RetainedMessage, TransientMessage};

/// The largest packet the hub sends: a signed document (≤ 1 MiB) plus the
/// topic and MQTT framing.
pub const MAX_OUTGOING_PACKET: usize = MAX_DOCUMENT_BYTES + 64 * 1024;
/// The largest packet the hub accepts. Larger than a device message may be
/// ([`signet_common::sync::MAX_MESSAGE_BYTES`]) so an oversized one is read, refused with a
/// logged reason and acknowledged instead of breaking the connection.
pub const MAX_INCOMING_PACKET: usize = 2 * MAX_DOCUMENT_BYTES;

/// Why the MQTT side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A TLS file could not be read or holds no PEM.
    #[error("{file}: {reason}")]
    TlsFile {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The configuration names no usable broker.
    #[error("mqtt: {0}")]
    Config(String),
    /// The embedded broker could not start.
    #[error("embedded MQTT broker: {0}")]
    Broker(String),
}

/// PEM material for `mqtts://`.
#[derive(Clone)]
pub struct TlsPem {
    /// The CA certificate(s) that sign the broker's certificate.
    pub ca: Vec<u8>,
    /// Client certificate chain and private key, if the broker wants one.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Where the hub connects and as whom.
#[derive(Clone)]
pub struct BrokerConnection {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS, for `mqtts://`.
    pub tls: Option<TlsPem>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// The stable client id of the hub's persistent session.
    pub client_id: String,
}

impl fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl BrokerConnection {
    /// The external broker of `config` (`embedded = false`): parses the URL
    /// and reads the TLS files.
    ///
    /// # Errors
    /// [`MqttError::Config`] without a URL; [`MqttError::TlsFile`] naming a
    /// file that cannot be read or holds no PEM.
    pub fn external(config: &MqttConfig) -> Result<Self, MqttError> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| MqttError::Config("mqtt.url is not set".into()))?;
        let url = BrokerUrl::parse(url).map_err(|e| MqttError::Config(format!("mqtt.url {e}")))?;
        let tls = if url.tls {
            let ca_file = config
                .ca_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
            let ca = read_pem(&ca_file)?;
            let client = match (&config.client_cert_file, &config.client_key_file) {
                (Some(cert), Some(key)) => Some((read_pem(cert)?, read_pem(key)?)),
                _ => None,
            };
            Some(TlsPem { ca, client })
        } else {
            None
        };
        let credentials = config
            .username
            .clone()
            .map(|user| (user, config.password.clone().unwrap_or_default()));
        Ok(Self {
            host: url.host,
            port: url.port,
            tls,
            credentials,
            client_id: config.client_id.clone(),
        })
    }
}

/// The largest PEM file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

fn read_pem(file: &Path) -> Result<Vec<u8>, MqttError> {
    let error = |reason: String| MqttError::TlsFile {
        file: file.to_owned(),
        reason,
    };
    let size = std::fs::metadata(file)
        .map_err(|e| error(e.to_string()))?
        .len();
    if size > MAX_PEM_BYTES {
        return Err(error(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    let bytes = std::fs::read(file).map_err(|e| error(e.to_string()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(error("holds no PEM block".into()));
    }
    Ok(bytes)
}

/// How the link paces and bounds itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOptions {
    /// Requests (publishes, acks, subscribes) the client queues for its
    /// event loop; a publish that finds it full fails at once.
    pub queue_capacity: usize,
    /// Device messages waiting for the store; the broker's in-flight window
    /// (QoS 1) normally keeps this far from full.
    pub inbox_capacity: usize,
    /// The first wait after a failed connection.
    pub backoff_initial: Duration,
    /// The longest wait between attempts (S5: the cap).
    pub backoff_max: Duration,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Time between signed `hub_time` publishes.
    pub hub_time_interval: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            inbox_capacity: 1024,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            keep_alive: Duration::from_secs(30),
            hub_time_interval: Duration::from_secs(60),
        }
    }
}

/// The publisher over the hub's MQTT client: QoS 1, queued without
/// waiting (S5). Cheap to clone.
#[derive(Clone)]
pub struct MqttPublisher {
    /// The client's request queue.
    client: AsyncClient,
    /// Counts what is queued.
    metrics: Arc<Metrics>,
}

impl MqttPublisher {
    fn queue(&self, topic: String, payload: Vec<u8>, retain: bool) -> Result<(), PublishFailed> {
        self.client
            .try_publish(topic.clone(), QoS::AtLeastOnce, retain, payload)
            .map_err(|e| PublishFailed {
                topic: topic.clone(),
                reason: format!("MQTT queue refused it: {e}"),
            })?;
        self.metrics.count_mqtt(Direction::Published, &topic);
        Ok(())
    }
}

impl Publisher for MqttPublisher {
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        let result = self.queue(message.topic, message.payload, true);
        Box::pin(async move { result })
    }

    fn send(&self, message: TransientMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        let result = self.queue(message.topic, message.payload, false);
        Box::pin(async move { result })
    }
}

/// Publishes by waiting for queue space: used only by the hub's own
/// session task (republishing everything), never by a caller that must not
/// wait.
struct WaitingPublisher {
    /// The client.
    client: AsyncClient,
    /// Stops a wait when the hub shuts down.
    cancel: CancellationToken,
    /// Counts what is queued.
    metrics: Arc<Metrics>,
}

impl WaitingPublisher {
    /// Queues `payload` on `topic` once the client has room.
    async fn queue(
        &self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), PublishFailed> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(PublishFailed { topic, reason: "shutting down".into() }),
            r = self.client.publish(topic.clone(), QoS::AtLeastOnce, retain, payload) => {
                r.map_err(|e| PublishFailed { topic: topic.clone(), reason: e.to_string() })?;
                self.metrics.count_mqtt(Direction::Published, &topic);
                Ok(())
            }
        }
    }
}

impl Publisher for WaitingPublisher {
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        Box::pin(self.queue(message.topic, message.payload, true))
    }

    fn send(&self, message: TransientMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        Box::pin(self.queue(message.topic, message.payload, false))
    }
}

/// The hub's MQTT client before it runs: make it, install
/// [`HubLink::publisher`] in the state, then [`HubLink::spawn`].
pub struct HubLink {
    /// The request side.
    client: AsyncClient,
    /// The connection side, polled only by the event loop task.
    eventloop: EventLoop,
    /// Pacing and bounds.
    options: LinkOptions,
    /// Counts the messages published and received.
    metrics: Arc<Metrics>,
}

impl HubLink {
    /// A client for `connection` counting its messages in `metrics`;
    /// nothing connects until [`HubLink::spawn`].
    #[must_use]
    pub fn new(connection: &BrokerConnection, options: LinkOptions, metrics: Arc<Metrics>) -> Self {
        let mut mqtt = MqttOptions::new(
            connection.client_id.clone(),
            connection.host.clone(),
            connection.port,
        );
        mqtt.set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(options.keep_alive)
            .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
        if let Some((user, password)) = &connection.credentials {
            mqtt.set_credentials(user.clone(), password.clone());
        }
        if let Some(tls) = &connection.tls {
            mqtt.set_transport(Transport::tls(tls.ca.clone(), tls.client.clone(), None));
        }
        let (client, eventloop) = AsyncClient::new(mqtt, options.queue_capacity.max(1));
        Self {
            client,
            eventloop,
            options,
            metrics,
        }
    }

    /// The publisher to install as [`Hub::publisher`].
    #[must_use]
    pub fn publisher(&self) -> MqttPublisher {
        MqttPublisher {
            client: self.client.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Runs the event loop, the session task (subscribe, `trust`,
    /// `hub_time`, republish on every connect; `hub_time` every interval)
    /// and the inbox (device reports to `reports`, acknowledged once
    /// stored) until `cancel`.
    #[must_use]
    pub fn spawn(
        self,
        state: Hub,
        reports: Arc<dyn DeviceReports>,
        cancel: CancellationToken,
    ) -> RunningLink {
        let tracker = TaskTracker::new();
        let (connected_tx, connected_rx) = watch::channel(0_u64);
        let (inbox_tx, inbox_rx) = mpsc::channel(self.options.inbox_capacity.max(1));
        let (watch_tx, watch_rx) = retained::channel();
        let restorer = Arc::new(self.publisher());
        tracker.spawn(event_loop(
            self.eventloop,
            self.options.clone(),
            connected_tx,
            Inboxes {
                reports: inbox_tx,
                retained: watch_tx,
                replica: state.replica.clone(),
            },
            self.metrics.clone(),
            cancel.clone(),
        ));
        tracker.spawn(retained::run(
            state.clone(),
            restorer,
            self.client.clone(),
            watch_rx,
            cancel.clone(),
        ));
        tracker.spawn(session(
            WaitingPublisher {
                client: self.client.clone(),
                cancel: cancel.clone(),
                metrics: self.metrics.clone(),
            },
            state,
            self.options.hub_time_interval,
            connected_rx.clone(),
            cancel.clone(),
        ));
        tracker.spawn(reports::inbox(
            self.client,
            reports,
            self.metrics,
            inbox_rx,
            cancel.clone(),
        ));
        tracker.close();
        RunningLink {
            cancel,
            spawned: tracker.len(),
            tracker,
            connected: connected_rx,
        }
    }
}

/// The running link; stop it with [`RunningLink::stop`] or by cancelling
/// the token it was spawned with.
pub struct RunningLink {
    /// Stops every task.
    cancel: CancellationToken,
    /// The tasks.
    tracker: TaskTracker,
    /// How many times the link has connected (a ConnAck arrived).
    connected: watch::Receiver<u64>,
    /// How many tasks [`HubLink::spawn`] started; all run until cancelled.
    spawned: usize,
}

impl RunningLink {
    /// How many times the link has connected so far; changes on every
    /// (re)connect.
    #[must_use]
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connected.clone()
    }

    /// Whether all of the link's tasks still run (they end only when
    /// cancelled; the systemd health tick checks this, O1).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.tracker.len() == self.spawned
    }

    /// Stops the tasks and waits until they have stopped.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}

/// The wait before attempt `failures + 1`: `initial · 2^(failures-1)`
/// capped at `max`, then a random part of it (full jitter between half and
/// all of it), so a fleet of hubs or a restarted broker is not hit in step.
#[must_use]
pub fn backoff(options: &LinkOptions, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = options
        .backoff_initial
        .saturating_mul(1_u32 << exponent)
        .min(options.backoff_max);
    let mut bytes = [0_u8; 4];
    let fraction =
        match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
            Err(_) => 1.0,
        };
    full.mul_f64(0.5 + 0.5 * fraction)
}

/// Where the event loop hands received messages.
struct Inboxes {
    /// Device reports, for the store (acknowledged once stored).
    reports: mpsc::Sender<Publish>,
    /// Messages on the hub's own retained topics, for the watch (on the
    /// leader only, X5: followers drop them).
    retained: WatchInbox,
    /// Whether this replica leads.
    replica: Arc<Replica>,
}

/// Polls the connection: forwards ConnAcks to the session task, device
/// messages to the inbox and messages on the hub's retained topics to the
/// watch, never waiting on any of them (S5).
async fn event_loop(
    mut eventloop: EventLoop,
    options: LinkOptions,
    connected: watch::Sender<u64>,
    inboxes: Inboxes,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut failures: u32 = 0;
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                connected.send_modify(|n| *n = n.wrapping_add(1));
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                metrics.count_mqtt(Direction::Received, &publish.topic);
                if retained::owned_topic(&publish.topic).is_some() {
                    if inboxes.replica.is_leader() {
                        inboxes.retained.offer(publish);
                    }
                } else if let Err(e) = inboxes.reports.try_send(publish) {
                    // Left unacknowledged: the broker redelivers it when the
                    // session resumes (QoS 1, persistent session).
                    tracing::error!(error = %e, "device message inbox full; message left for redelivery");
                }
            }
            Ok(_) => {}
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(&options, failures);
                tracing::warn!(error = %e, failures, wait_ms = wait.as_millis(), "MQTT connection failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    tracing::info!("MQTT event loop stopped");
}

/// On every connect: subscribe to device reports (through the shared
/// subscription with `mqtt.shared_subscriptions`, X5) and (QoS 0) to the
/// hub's own retained topics for the watch; then, on the leader only
/// (X5), publish a fresh `hub_time` and republish `trust` and every
/// stored document (S4), which a replica also does when it becomes the
/// leader (what its predecessor stored but did not send goes out). Every
/// `interval`, on the leader: a fresh `hub_time`.
async fn session(
    waiting: WaitingPublisher,
    state: Hub,
    interval: Duration,
    mut connected: watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = state.replica.watch();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = connected.changed() => {
                if changed.is_err() {
                    break;
                }
                subscribe(&state, &waiting).await;
                if state.replica.is_leader() {
                    on_lead(&state, &waiting).await;
                }
            }
            changed = leading.changed() => {
                if changed.is_err() {
                    break;
                }
                if *leading.borrow_and_update() {
                    on_lead(&state, &waiting).await;
                }
            }
            _ = ticker.tick() => if state.replica.is_leader() {
                publish_hub_time(&state, &waiting).await;
            },
        }
    }
}

/// The filter for device reports under `filter`: in the replicas' share
/// group with `mqtt.shared_subscriptions`, so the broker hands each report
/// to one replica (X5, X6).
fn report_filter(state: &Hub, filter: &str) -> String {
    if state.config.mqtt.shared_subscriptions {
        format!("$share/{SHARE_GROUP}/{TOPIC_PREFIX}/{filter}")
    } else {
        format!("{TOPIC_PREFIX}/{filter}")
    }
}

async fn subscribe(state: &Hub, waiting: &WaitingPublisher) {
    for filter in reports::SUBSCRIPTIONS {
        let subscribed = tokio::select! {
            () = waiting.cancel.cancelled() => return,
            r = waiting.client.subscribe(report_filter(state, filter), QoS::AtLeastOnce) => r,
        };
        if let Err(e) = subscribed {
            tracing::error!(error = %e, filter, "subscribing failed");
        }
    }
    for filter in retained::WATCHED {
        let subscribed = tokio::select! {
            () = waiting.cancel.cancelled() => return,
            r = waiting.client.subscribe(format!("{TOPIC_PREFIX}/{filter}"), QoS::AtMostOnce) => r,
        };
        if let Err(e) = subscribed {
            tracing::error!(error = %e, filter, "subscribing to a retained hub topic failed");
        }
    }
}

/// The leader's part of a connect: `hub_time`, the manifests of groups
/// deleted before they were withdrawn cleared, then all retained state.
async fn on_lead(state: &Hub, waiting: &WaitingPublisher) {
    publish_hub_time(state, waiting).await;
    match crate::publish::withdraw_orphans(&state.store, waiting).await {
        Ok(0) => {}
        Ok(withdrawn) => tracing::info!(withdrawn, "withdrew the manifests of deleted groups"),
        Err(e) => tracing::error!(error = %e, "withdrawing deleted groups' manifests failed"),
    }
    match crate::publish::republish_all(&state.store, &state.keys.current().trust, waiting).await {
        Ok(report) => tracing::info!(
            sent = report.sent,
            failed = report.failed,
            "republished retained state after connecting"
        ),
        Err(e) => tracing::error!(error = %e, "republishing retained state failed"),
    }
}

async fn publish_hub_time(state: &Hub, waiting: &WaitingPublisher) {
    match hub_time::sign_next(state).await {
        Ok(envelope) => {
            let message = RetainedMessage {
                topic: HUB_TIME_TOPIC.to_owned(),
                payload: envelope,
            };
            if let Err(e) = waiting.publish(message).await {
                tracing::warn!(error = %e, "hub_time not published");
            }
        }
        Err(e) => tracing::error!(error = %e, "signing hub_time failed"),
    }
}
