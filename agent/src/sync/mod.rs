//! The sync core (S1, S3, S4, S5, S6, S9; DESIGN §5): `signet-agent run`.
//!
//! Owns: the MQTT session of a paired device — a persistent session
//! (`clean_session = false`, client id = device id) with manual
//! acknowledgements and a retained last will marking the device offline;
//! the subscriptions (trust, hub time, the device's assignment and commands,
//! and the manifest of every group of the current assignment); and the
//! verifier task that takes each message through [`apply::decide`], makes
//! its effect durable ([`crate::state::Store::commit`], flushed), only then
//! acknowledges it, and publishes the device's retained state. May call:
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

pub mod apply;
pub mod connection;
pub mod report;

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, Publish, QoS, SubscribeFilter, Transport};
use signet_common::clock::TrustedClock;
use signet_common::documents::{CommandAction, DeviceAssignment};
use signet_common::envelope::{DocumentKind, MAX_DOCUMENT_BYTES};
use signet_common::sync::{CacheProgress, NowPlaying};
use signet_common::sync::{
    HUB_TIME_TOPIC, TRUST_TOPIC, assignment_topic, commands_topic, manifest_topic, state_topic,
};
use tokio::sync::{mpsc, watch};

use crate::clock::DeviceClock;
use crate::config::{AgentConfig, BrokerUrl};
use crate::state::{StateError, Store};
use apply::{Decision, FollowUp, Held, Route};
use connection::{Backoff, Inbound, Will};

/// The largest MQTT packet read: a maximal document plus the topic and
/// header. Larger packets end the connection (rumqttc's limit).
pub const MAX_INCOMING_PACKET: usize = MAX_DOCUMENT_BYTES + 64 * 1024;
/// The largest packet the agent sends (its state message).
const MAX_OUTGOING_PACKET: usize = 512 * 1024;
/// Requests (acks, subscriptions, state) waiting for the event loop.
const REQUEST_CAPACITY: usize = 64;

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

/// How often the state is published even when nothing changed (the hub's
/// heartbeat, U4).
const HEARTBEAT: Duration = Duration::from_secs(60);
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
    /// Free disk and temperature, as last read.
    pub readings: crate::sensors::Readings,
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
        &held,
        &reading,
        &os,
        false,
        None,
        &links.local.borrow().clone(),
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
    let connection = tokio::spawn(connection::drive(
        eventloop,
        queue_tx,
        Will {
            topic: topic.clone(),
            payload: will_rx,
        },
        backoff,
        stop_rx,
    ));
    tracing::info!(
        device = %held.device,
        broker = %broker_url,
        "sync starting"
    );
    let mut verifier = Verifier {
        store,
        client,
        held,
        device_clock,
        os,
        state_topic: topic,
        will: will_tx,
        subscribed_groups: BTreeSet::new(),
        last_error: None,
        settle: Duration::from_millis(config.settle_ms),
        queue_capacity: config.queue_capacity,
        links,
        state_dirty: false,
    };
    let result = verifier
        .run(
            queue_rx,
            shutdown,
            Duration::from_secs(config.clock_persist_secs),
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

/// The verifier task's state.
struct Verifier {
    /// The durable state.
    store: Store,
    /// Sends acks, subscriptions and state to the event loop.
    client: AsyncClient,
    /// The in-memory copy of what is durable.
    held: Held,
    /// Reads the device clocks.
    device_clock: DeviceClock,
    /// The OS name reported in the state.
    os: String,
    /// `signet/v1/devices/{id}/state`.
    state_topic: String,
    /// The current last-will payload, for the event loop's reconnects.
    will: watch::Sender<Vec<u8>>,
    /// The group manifest topics subscribed now.
    subscribed_groups: BTreeSet<String>,
    /// The last refusal or failure, reported in the state (U4).
    last_error: Option<String>,
    /// How long to let a backlog arrive after a reconnect.
    settle: Duration,
    /// The most messages taken as one batch.
    queue_capacity: usize,
    /// The links to the content task and the player.
    links: Links,
    /// Whether the local report changed since the last state message.
    state_dirty: bool,
}

impl Verifier {
    async fn run(
        &mut self,
        mut queue: mpsc::Receiver<Inbound>,
        shutdown: impl Future<Output = ()>,
        clock_persist: Duration,
    ) -> Result<(), SyncError> {
        tokio::pin!(shutdown);
        let mut persist = tokio::time::interval(clock_persist);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut spacing = tokio::time::interval(STATE_SPACING);
        spacing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut local_open = true;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = persist.tick() => self.persist_clock().await,
                _ = heartbeat.tick() => self.publish_state().await,
                changed = self.links.local.changed(), if local_open => {
                    match changed {
                        Ok(()) => self.state_dirty = true,
                        Err(_) => local_open = false,
                    }
                }
                _ = spacing.tick(), if self.state_dirty => self.publish_state().await,
                item = queue.recv() => {
                    let Some(first) = item else { break };
                    let mut batch = vec![first];
                    self.drain(&mut queue, &mut batch);
                    self.handle_batch(&mut queue, batch).await?;
                }
            }
        }
        self.go_offline().await;
        Ok(())
    }

    fn drain(&self, queue: &mut mpsc::Receiver<Inbound>, batch: &mut Vec<Inbound>) {
        while batch.len() < self.queue_capacity {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
    }

    async fn handle_batch(
        &mut self,
        queue: &mut mpsc::Receiver<Inbound>,
        batch: Vec<Inbound>,
    ) -> Result<(), SyncError> {
        let mut messages = Vec::new();
        let mut connected = false;
        for item in batch {
            match item {
                Inbound::Connected { session_present } => {
                    connected = true;
                    if !session_present {
                        tracing::info!("the broker holds no session: subscribing to everything");
                        self.subscribe_all().await?;
                    }
                    self.publish_state().await;
                }
                Inbound::Message(publish) => messages.push(publish),
            }
        }
        if connected {
            // Let the broker's backlog arrive, so several queued versions
            // of one retained document collapse into the newest.
            tokio::time::sleep(self.settle).await;
            let mut more = Vec::new();
            self.drain(queue, &mut more);
            for item in more {
                match item {
                    Inbound::Connected { session_present } => {
                        if !session_present {
                            self.subscribe_all().await?;
                        }
                    }
                    Inbound::Message(publish) => messages.push(publish),
                }
            }
        }
        if messages.is_empty() {
            return Ok(());
        }
        // Order: by kind (trust, time, assignment, manifests, commands);
        // within one retained topic newest first, so an older queued
        // version is never applied once a newer one is held; commands in
        // arrival order.
        let mut ordered: Vec<(Route, Publish, usize)> = messages
            .into_iter()
            .enumerate()
            .map(|(i, p)| (Route::of(&p.topic, &self.held.device), p, i))
            .collect();
        ordered.sort_by_key(|(route, _, i)| {
            let order = if route.is_retained_state() {
                Reverse(*i)
            } else {
                Reverse(usize::MAX - *i)
            };
            (route.priority(), route.clone(), order)
        });
        let mut changed = false;
        for (route, publish, _) in ordered {
            changed |= self.handle_message(&route, &publish).await?;
        }
        if changed {
            self.publish_state().await;
        }
        Ok(())
    }

    /// Verifies, persists, acknowledges. Returns whether the reported state
    /// changed.
    async fn handle_message(
        &mut self,
        route: &Route,
        publish: &Publish,
    ) -> Result<bool, SyncError> {
        let reading = self.device_clock.read();
        let now = self.held.clock.tick(&reading);
        let store = self.store.clone();
        let nonce_seen = move |nonce: &str| store.nonce_seen(nonce).map_err(|e| e.to_string());
        let decision = apply::decide(
            &self.held,
            route,
            &publish.payload,
            now,
            &reading,
            &nonce_seen,
        );
        let plan = match decision {
            Decision::Apply(plan) => *plan,
            Decision::Unchanged(what) => {
                tracing::debug!(topic = %publish.topic, %what, "re-delivery; nothing changes");
                self.ack(publish).await?;
                return Ok(false);
            }
            Decision::Refused(reason) => {
                tracing::warn!(topic = %publish.topic, %reason, "refused a document; keeping the last good state");
                self.last_error = Some(signet_common::sync::clip_text(&format!(
                    "refused {}: {reason}",
                    publish.topic
                )));
                self.ack(publish).await?;
                return Ok(true);
            }
        };
        let expired_nonces = if matches!(route, Route::Commands) {
            self.store.nonces_expired_before(now).unwrap_or_default()
        } else {
            Vec::new()
        };
        let commit = plan.commit(&self.held.clock, expired_nonces);
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || store.commit(&commit))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))?;
        if let Err(error) = written {
            // Not durable, so not acknowledged: the broker delivers it
            // again on the next session.
            tracing::error!(topic = %publish.topic, %error, "could not persist; not acknowledging");
            self.last_error = Some(signet_common::sync::clip_text(&format!(
                "state write failed: {error}"
            )));
            return Ok(true);
        }
        let follow_up = plan.follow_up.clone();
        tracing::info!(topic = %publish.topic, applied = %plan.summary, "applied");
        plan.adopt(&mut self.held);
        self.links
            .documents
            .send_modify(|generation| *generation += 1);
        self.links.clock.send_replace(self.held.clock.clone());
        self.ack(publish).await?;
        match follow_up {
            FollowUp::Nothing => {}
            FollowUp::Resubscribe => {
                tracing::info!(
                    "trust or trusted time changed: subscribing again to receive every retained document"
                );
                self.subscribe_all().await?;
            }
            FollowUp::UpdateGroups => self.update_groups().await?,
            FollowUp::Command(action) => self.carry_out(action).await?,
        }
        Ok(true)
    }

    async fn ack(&self, publish: &Publish) -> Result<(), SyncError> {
        self.client.ack(publish).await?;
        Ok(())
    }

    async fn carry_out(&mut self, action: CommandAction) -> Result<(), SyncError> {
        match action {
            CommandAction::Resync => {
                tracing::info!("command resync: subscribing again to every topic");
                self.subscribe_all().await?;
            }
            CommandAction::Screenshot | CommandAction::RestartPlayer => {
                tracing::info!(?action, "command for the player");
                if self.links.player.try_send(action).is_err() {
                    tracing::warn!(
                        ?action,
                        "the player has commands waiting; this one is dropped"
                    );
                }
            }
            CommandAction::PurgeCache => {
                tracing::info!("command purge_cache: the content task purges what nothing needs");
                if self.links.purge.try_send(()).is_err() {
                    tracing::info!("a purge is already queued");
                }
            }
        }
        Ok(())
    }

    /// Subscribes (again) to every topic; the broker then re-sends every
    /// retained message on them.
    async fn subscribe_all(&mut self) -> Result<(), SyncError> {
        let device = &self.held.device;
        let groups = self.held.groups();
        let mut filters = vec![
            SubscribeFilter::new(TRUST_TOPIC.to_owned(), QoS::AtLeastOnce),
            SubscribeFilter::new(HUB_TIME_TOPIC.to_owned(), QoS::AtLeastOnce),
            SubscribeFilter::new(assignment_topic(device), QoS::AtLeastOnce),
            SubscribeFilter::new(commands_topic(device), QoS::AtLeastOnce),
        ];
        filters.extend(
            groups
                .iter()
                .map(|g| SubscribeFilter::new(manifest_topic(g), QoS::AtLeastOnce)),
        );
        self.client.subscribe_many(filters).await?;
        self.subscribed_groups = groups;
        Ok(())
    }

    async fn update_groups(&mut self) -> Result<(), SyncError> {
        let wanted = self.held.groups();
        let added: Vec<SubscribeFilter> = wanted
            .difference(&self.subscribed_groups)
            .map(|g| SubscribeFilter::new(manifest_topic(g), QoS::AtLeastOnce))
            .collect();
        for gone in self.subscribed_groups.difference(&wanted) {
            tracing::info!(group = %gone, "no longer assigned: unsubscribing");
            self.client.unsubscribe(manifest_topic(gone)).await?;
        }
        if !added.is_empty() {
            tracing::info!(count = added.len(), "newly assigned groups: subscribing");
            self.client.subscribe_many(added).await?;
        }
        self.subscribed_groups = wanted;
        Ok(())
    }

    async fn persist_clock(&mut self) {
        let reading = self.device_clock.read();
        self.held.clock.tick(&reading);
        self.links.clock.send_replace(self.held.clock.clone());
        let commit = crate::state::Commit {
            clock: Some(self.held.clock.clone()),
            ..Default::default()
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.commit(&commit)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "could not persist the trusted clock"),
            Err(error) => tracing::error!(%error, "clock persistence task failed"),
        }
    }

    /// Publishes the retained state (online) and refreshes the last will
    /// and the status snapshot.
    async fn publish_state(&mut self) {
        self.state_dirty = false;
        let reading = self.device_clock.read();
        let local = self.links.local.borrow_and_update().clone();
        let online = report::device_state(
            &self.held,
            &reading,
            &self.os,
            true,
            self.last_error.as_deref(),
            &local,
        );
        let offline = report::device_state(
            &self.held,
            &reading,
            &self.os,
            false,
            self.last_error.as_deref(),
            &local,
        );
        let _ = self.will.send(offline);
        // Never wait for the event loop: offline, its queue fills, and a
        // state message that cannot be queued is replaced by the next one
        // (the state is retained: only the newest counts).
        if let Err(error) =
            self.client
                .try_publish(self.state_topic.clone(), QoS::AtLeastOnce, true, online)
        {
            tracing::debug!(%error, "state message not queued; the next one carries it");
        }
    }

    async fn go_offline(&mut self) {
        self.persist_clock().await;
        let reading = self.device_clock.read();
        let local = self.links.local.borrow().clone();
        let offline = report::device_state(
            &self.held,
            &reading,
            &self.os,
            false,
            self.last_error.as_deref(),
            &local,
        );
        let _ = self
            .client
            .try_publish(self.state_topic.clone(), QoS::AtLeastOnce, true, offline);
        let _ = self.client.try_disconnect();
        tracing::info!("sync stopped");
    }
}
