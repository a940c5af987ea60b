//! The verifier task (S1, S3, S4, S5, S6, U4): takes each message from the
//! event loop and each document fetched from the hub through
//! [`super::apply::decide`], makes its effect durable, only then
//! acknowledges it, keeps the subscriptions and the fetches in step with
//! the assignment, and publishes the device's signed state.
//!
//! Owns: the in-memory copy of what is durable ([`super::apply::Held`]),
//! the refusals per document key and the state messages. Must not: block
//! the event loop (it hands requests to rumqttc's client queue) or play,
//! download or cache content.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use signet_common::documents::{Command, CommandAction, DeviceAssignment, GroupManifest, HubTime};
use signet_common::envelope::{Document, DocumentKind, SigningKey};
use signet_common::ids::DeviceId;
use signet_common::sync::documents::DeviceDocuments;
use signet_common::sync::{
    HUB_TIME_TOPIC, MAX_APPLIED, RefusedDocument, TRUST_TOPIC, assignment_topic, commands_topic,
    manifest_topic,
};
use tokio::sync::{mpsc, watch};

use super::apply::{self, Decision, FollowUp, Held, Route};
use super::connection::Inbound;
use super::fetch::{self, DocumentFetcher, FetchError, FetchSchedule};
use super::subscriptions::Subscriptions;
use super::{Links, STATE_SPACING, SUBSCRIBE_WAIT, SyncError, report};
use crate::clock::DeviceClock;
use crate::state::Store;

/// The verifier task's state.
pub(super) struct Verifier {
    /// The durable state.
    pub(super) store: Store,
    /// Sends acks, subscriptions and state to the event loop.
    pub(super) client: AsyncClient,
    /// The in-memory copy of what is durable.
    pub(super) held: Held,
    /// Reads the device clocks.
    pub(super) device_clock: DeviceClock,
    /// The OS name reported in the state.
    pub(super) os: String,
    /// The device key from pairing: signs every state message (S11).
    pub(super) key: SigningKey,
    /// `signet/v1/devices/{id}/state`.
    pub(super) state_topic: String,
    /// The current last-will payload, for the event loop's reconnects.
    pub(super) will: watch::Sender<Vec<u8>>,
    /// The group manifest topics subscribed now.
    pub(super) subscribed_groups: BTreeSet<String>,
    /// The last refusal or failure, reported in the state (U4).
    pub(super) last_error: Option<String>,
    /// How long to let a backlog arrive after a reconnect.
    pub(super) settle: Duration,
    /// The most messages taken as one batch.
    pub(super) queue_capacity: usize,
    /// The links to the content task and the player.
    pub(super) links: Links,
    /// Whether the local report changed since the last state message.
    pub(super) state_dirty: bool,
    /// The latest refusal per document key, until that key is accepted
    /// (U4).
    pub(super) refused: BTreeMap<String, RefusedDocument>,
    /// Whether a subscription change could not be queued (no broker): made
    /// in full at the next connect.
    pub(super) resubscribe_on_connect: bool,
    /// The topics the broker refused, retried with back-off (S10).
    pub(super) subscriptions: Subscriptions,
    /// The HTTP path to the hub's documents.
    pub(super) fetch: Fetching,
}

/// The verifier's HTTP path to the hub's documents (S4).
pub(super) struct Fetching {
    /// Fetches them; `None` when the hub URL is unusable.
    pub(super) fetcher: Option<DocumentFetcher>,
    /// When to fetch.
    pub(super) schedule: FetchSchedule,
    /// Where the fetch task hands its result.
    pub(super) results: mpsc::Sender<Result<DeviceDocuments, FetchError>>,
    /// Groups whose manifest the last fetch did not bring (the hub has
    /// none, or it was refused): not fetched for again until a refusal or
    /// the anti-entropy check, so such a group does not cost a fetch every
    /// back-off period.
    pub(super) unavailable: BTreeSet<String>,
}

/// What became of one document offered to the verifier.
#[derive(Debug)]
enum Applied {
    /// Already held: nothing changes.
    Unchanged,
    /// Refused with a reason: nothing changes but the report.
    Refused,
    /// Accepted and durable; what to do next.
    Committed(FollowUp),
    /// Accepted but the write failed: not durable, so not acknowledged.
    NotDurable,
}

/// The `{kind}/{subject}` key of the document a route carries for
/// `device`, as the state's `applied` and `refused` maps name it.
fn route_key(route: &Route, device: &DeviceId) -> Option<String> {
    let key = match route {
        Route::Trust => apply::document_key(DocumentKind::Trust, "trust"),
        Route::HubTime => apply::document_key(DocumentKind::HubTime, "hub"),
        Route::Assignment => apply::document_key(DocumentKind::DeviceAssignment, device.as_str()),
        Route::Manifest(group) => apply::document_key(DocumentKind::GroupManifest, group),
        Route::Commands => apply::document_key(DocumentKind::Command, device.as_str()),
        Route::Unknown => return None,
    };
    Some(key)
}

/// The version a refused document claims, when it verifies at all (an
/// envelope that does not is never parsed).
fn claimed_version(
    held: &Held,
    route: &Route,
    bytes: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<u64> {
    fn version<D: Document>(
        held: &Held,
        bytes: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<u64> {
        held.trust
            .verify::<D>(bytes, now)
            .ok()
            .map(|v| v.payload().version())
    }
    match route {
        Route::HubTime => version::<HubTime>(held, bytes, now),
        Route::Assignment => version::<DeviceAssignment>(held, bytes, now),
        Route::Manifest(_) => version::<GroupManifest>(held, bytes, now),
        Route::Commands => version::<Command>(held, bytes, now),
        Route::Trust | Route::Unknown => None,
    }
}

impl Verifier {
    /// Runs the verifier until `shutdown` or a fatal error.
    pub(super) async fn run(
        &mut self,
        mut queue: mpsc::Receiver<Inbound>,
        mut fetched: mpsc::Receiver<Result<DeviceDocuments, FetchError>>,
        shutdown: impl Future<Output = ()>,
        clock_persist: Duration,
        heartbeat_every: Duration,
    ) -> Result<(), SyncError> {
        tokio::pin!(shutdown);
        let mut persist = tokio::time::interval(clock_persist);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut spacing = tokio::time::interval(STATE_SPACING);
        spacing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut anti_entropy = tokio::time::interval_at(
            tokio::time::Instant::now() + fetch::ANTI_ENTROPY,
            fetch::ANTI_ENTROPY,
        );
        anti_entropy.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut local_open = true;
        loop {
            let fetch_due = self.fetch.schedule.due();
            let retry_due = self.subscriptions.due();
            tokio::select! {
                () = &mut shutdown => break,
                () = sleep_until(retry_due), if retry_due.is_some() => self.retry_refused().await?,
                () = sleep_until(fetch_due), if fetch_due.is_some() => self.fetch_due(),
                result = fetched.recv() => {
                    if let Some(result) = result {
                        self.apply_fetched(result).await?;
                    }
                }
                _ = anti_entropy.tick() => {
                    self.fetch.schedule.want(tokio::time::Instant::now(), true);
                }
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

    /// The groups of the assignment whose manifest is not held.
    fn groups_without_manifest(&self) -> BTreeSet<String> {
        self.held
            .groups()
            .into_iter()
            .filter(|group| {
                !self
                    .held
                    .documents
                    .contains_key(&apply::document_key(DocumentKind::GroupManifest, group))
            })
            .collect()
    }

    /// Whether a document the device needs is missing: its assignment, or
    /// the manifest of a group the assignment names that the last fetch
    /// did not already find unavailable.
    fn documents_missing(&self) -> bool {
        self.held.assignment.is_none()
            || self
                .groups_without_manifest()
                .difference(&self.fetch.unavailable)
                .next()
                .is_some()
    }

    /// The schedule says a fetch (or a check) is due: starts the fetch in a
    /// task of its own when it is forced or something is missing.
    fn fetch_due(&mut self) {
        let Some(fetcher) = self.fetch.fetcher.clone() else {
            self.fetch.schedule.skip();
            return;
        };
        if !self.fetch.schedule.forced() && !self.documents_missing() {
            self.fetch.schedule.skip();
            return;
        }
        self.fetch.schedule.started(tokio::time::Instant::now());
        tracing::info!("fetching the current signed documents from the hub over HTTP");
        let results = self.fetch.results.clone();
        tokio::spawn(async move {
            let _ = results.send(fetcher.fetch().await).await;
        });
    }

    /// Applies what a fetch brought, in dependency order, through the same
    /// path as MQTT messages (nothing to acknowledge).
    async fn apply_fetched(
        &mut self,
        result: Result<DeviceDocuments, FetchError>,
    ) -> Result<(), SyncError> {
        let documents = match result {
            Ok(documents) => documents,
            Err(error) => {
                tracing::warn!(%error, "could not fetch the documents from the hub; retrying later");
                self.fetch.schedule.finished(
                    tokio::time::Instant::now(),
                    true,
                    self.documents_missing(),
                );
                return Ok(());
            }
        };
        if !documents.omitted.is_empty() {
            tracing::warn!(
                omitted = documents.omitted.len(),
                "the hub left manifests out of its answer; the broker brings them"
            );
        }
        let mut changed = false;
        let mut applied = 0_usize;
        for (route, bytes) in fetch::in_order(documents, self.held.trust.version()) {
            let source = format!("{route:?} from the hub over HTTP");
            match self.apply_document(&route, &bytes, &source).await? {
                Applied::Unchanged => {}
                Applied::Refused | Applied::NotDurable => changed = true,
                Applied::Committed(follow_up) => {
                    changed = true;
                    applied += 1;
                    self.follow_up(follow_up).await?;
                }
            }
        }
        self.fetch.unavailable = self.groups_without_manifest();
        if !self.fetch.unavailable.is_empty() {
            tracing::info!(groups = ?self.fetch.unavailable, "the hub has no acceptable manifest for these groups now");
        }
        let missing = self.documents_missing();
        tracing::info!(applied, missing, "documents fetched from the hub");
        self.fetch
            .schedule
            .finished(tokio::time::Instant::now(), false, missing);
        if changed {
            self.publish_state().await;
        }
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
                Inbound::Connected {
                    session_present,
                    unconfirmed,
                } => {
                    connected = true;
                    self.connected(session_present, unconfirmed).await?;
                    self.publish_state().await;
                }
                Inbound::Message(publish) => messages.push(publish),
                Inbound::Subscribed { granted, refused } => {
                    self.subscribed(&granted, &refused).await;
                }
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
                    Inbound::Connected {
                        session_present,
                        unconfirmed,
                    } => self.connected(session_present, unconfirmed).await?,
                    Inbound::Message(publish) => messages.push(publish),
                    Inbound::Subscribed { granted, refused } => {
                        self.subscribed(&granted, &refused).await;
                    }
                }
            }
            // Connected and settled: what the broker did not bring comes
            // over HTTP (S4).
            self.fetch.schedule.want(tokio::time::Instant::now(), false);
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
    /// changed. A refused document on a retained topic makes the hub's own
    /// copy be fetched over HTTP (S4).
    async fn handle_message(
        &mut self,
        route: &Route,
        publish: &Publish,
    ) -> Result<bool, SyncError> {
        let applied = self
            .apply_document(route, &publish.payload, &publish.topic)
            .await?;
        if !matches!(applied, Applied::NotDurable) {
            // Not durable, so not acknowledged: the broker delivers it
            // again on the next session.
            self.ack(publish).await?;
        }
        match applied {
            Applied::Unchanged => Ok(false),
            Applied::NotDurable => Ok(true),
            Applied::Refused => {
                if route.is_retained_state() {
                    self.fetch.schedule.want(tokio::time::Instant::now(), true);
                }
                Ok(true)
            }
            Applied::Committed(follow_up) => {
                self.follow_up(follow_up).await?;
                Ok(true)
            }
        }
    }

    /// Takes one document (from `source`: a topic, or the hub over HTTP)
    /// through [`apply::decide`] and, when accepted, makes its effect
    /// durable and adopts it. Records each refusal by document key and
    /// forgets it once that document is held (U4). Acknowledges nothing.
    async fn apply_document(
        &mut self,
        route: &Route,
        bytes: &[u8],
        source: &str,
    ) -> Result<Applied, SyncError> {
        let reading = self.device_clock.read();
        let now = self.held.clock.tick(&reading);
        let store = self.store.clone();
        let nonce_seen = move |nonce: &str| store.nonce_seen(nonce).map_err(|e| e.to_string());
        let decision = apply::decide(&self.held, route, bytes, now, &reading, &nonce_seen);
        let key = route_key(route, &self.held.device);
        let plan = match decision {
            Decision::Apply(plan) => *plan,
            Decision::Unchanged(what) => {
                tracing::debug!(%source, %what, "re-delivery; nothing changes");
                if let Some(key) = key {
                    self.refused.remove(&key);
                }
                return Ok(Applied::Unchanged);
            }
            Decision::Refused(reason) => {
                tracing::warn!(%source, %reason, "refused a document; keeping the last good state");
                self.last_error = Some(signet_common::sync::clip_text(&format!(
                    "refused {source}: {reason}"
                )));
                if let Some(key) = key
                    && (self.refused.len() < MAX_APPLIED || self.refused.contains_key(&key))
                {
                    let version = claimed_version(&self.held, route, bytes, now);
                    self.refused.insert(
                        key,
                        RefusedDocument {
                            version,
                            reason: signet_common::sync::clip_text(&reason),
                            at: now,
                        },
                    );
                }
                return Ok(Applied::Refused);
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
            tracing::error!(%source, %error, "could not persist; not acknowledging");
            self.last_error = Some(signet_common::sync::clip_text(&format!(
                "state write failed: {error}"
            )));
            return Ok(Applied::NotDurable);
        }
        let follow_up = plan.follow_up.clone();
        tracing::info!(%source, applied = %plan.summary, "applied");
        plan.adopt(&mut self.held);
        if let Some(key) = key {
            self.refused.remove(&key);
        }
        // Refusals of documents this device no longer follows go.
        let groups = self.held.groups();
        self.refused.retain(|key, _| {
            key.strip_prefix("group_manifest/")
                .is_none_or(|group| groups.contains(group))
        });
        self.links
            .documents
            .send_modify(|generation| *generation += 1);
        self.links.clock.send_replace(self.held.clock.clone());
        Ok(Applied::Committed(follow_up))
    }

    /// What an accepted document asks for once it is durable (and, for an
    /// MQTT message, acknowledged).
    async fn follow_up(&mut self, follow_up: FollowUp) -> Result<(), SyncError> {
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
        Ok(())
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
        if self.subscribe(filters).await? {
            self.subscribed_groups = groups;
            self.resubscribe_on_connect = false;
        }
        Ok(())
    }

    /// Queues one SUBSCRIBE for `filters`, recording its topics so that its
    /// SUBACK is matched to them: `false` when it could not be queued.
    async fn subscribe(&mut self, filters: Vec<SubscribeFilter>) -> Result<bool, SyncError> {
        self.subscriptions
            .queued(filters.iter().map(|f| f.path.clone()).collect());
        let client = self.client.clone();
        let queued = self.queue_request(client.subscribe_many(filters)).await;
        if !matches!(queued, Ok(true)) {
            self.subscriptions.not_queued();
        }
        queued
    }

    /// Queues a subscription request, waiting at most [`SUBSCRIBE_WAIT`]
    /// (without a broker the event loop takes none): `false` when it could
    /// not be queued, and then everything is subscribed at the next
    /// connect.
    async fn queue_request(
        &mut self,
        request: impl Future<Output = Result<(), rumqttc::ClientError>>,
    ) -> Result<bool, SyncError> {
        match tokio::time::timeout(SUBSCRIBE_WAIT, request).await {
            Ok(result) => {
                result?;
                Ok(true)
            }
            Err(_) => {
                tracing::info!(
                    "the broker connection takes no requests now; subscribing at the next connect"
                );
                self.resubscribe_on_connect = true;
                Ok(false)
            }
        }
    }

    async fn update_groups(&mut self) -> Result<(), SyncError> {
        let wanted = self.held.groups();
        let added: Vec<SubscribeFilter> = wanted
            .difference(&self.subscribed_groups)
            .map(|g| SubscribeFilter::new(manifest_topic(g), QoS::AtLeastOnce))
            .collect();
        let gone: Vec<String> = self
            .subscribed_groups
            .difference(&wanted)
            .cloned()
            .collect();
        for gone in gone {
            tracing::info!(group = %gone, "no longer assigned: unsubscribing");
            let client = self.client.clone();
            if !self
                .queue_request(client.unsubscribe(manifest_topic(&gone)))
                .await?
            {
                return Ok(());
            }
        }
        if !added.is_empty() {
            tracing::info!(count = added.len(), "newly assigned groups: subscribing");
            if !self.subscribe(added).await? {
                return Ok(());
            }
        }
        self.subscriptions.forget_unwanted(&self.wanted_topics());
        self.subscribed_groups = wanted;
        Ok(())
    }

    /// Every topic the device subscribes to now.
    fn wanted_topics(&self) -> BTreeSet<String> {
        let device = &self.held.device;
        let mut topics: BTreeSet<String> = [
            TRUST_TOPIC.to_owned(),
            HUB_TIME_TOPIC.to_owned(),
            assignment_topic(device),
            commands_topic(device),
        ]
        .into();
        topics.extend(self.held.groups().iter().map(|g| manifest_topic(g)));
        topics
    }

    /// The broker accepted the connection: everything is subscribed when it
    /// kept no session (or changes are waiting); otherwise the topics it
    /// refused or never answered are asked for again at once (mosquitto
    /// disconnects a client whose rights changed).
    async fn connected(
        &mut self,
        session_present: bool,
        unconfirmed: Vec<String>,
    ) -> Result<(), SyncError> {
        let wanted = self.wanted_topics();
        self.subscriptions.unconfirmed(unconfirmed, &wanted);
        if !session_present || self.resubscribe_on_connect {
            tracing::info!(
                "subscribing to everything (no session on the broker, or changes to make)"
            );
            self.subscribe_all().await
        } else if self.subscriptions.any_refused() {
            self.retry_refused().await
        } else {
            Ok(())
        }
    }

    /// A SUBACK arrived: refused topics are retried with back-off, and the
    /// state says which are refused until the broker accepts them (U4).
    async fn subscribed(&mut self, granted: &[String], refused: &[String]) {
        let wanted = self.wanted_topics();
        let now = tokio::time::Instant::now();
        if !self.subscriptions.answered(granted, refused, &wanted, now) {
            return;
        }
        match self.subscriptions.problem() {
            Some(problem) => self.last_error = Some(problem),
            None => {
                if self
                    .last_error
                    .as_deref()
                    .is_some_and(Subscriptions::is_problem)
                {
                    self.last_error = None;
                }
            }
        }
        self.publish_state().await;
    }

    /// Subscribes again to the topics the broker refused.
    async fn retry_refused(&mut self) -> Result<(), SyncError> {
        let topics = self.subscriptions.take_retry();
        if topics.is_empty() {
            return Ok(());
        }
        tracing::debug!(?topics, "subscribing again to refused topics");
        let filters = topics
            .into_iter()
            .map(|t| SubscribeFilter::new(t, QoS::AtLeastOnce))
            .collect();
        self.subscribe(filters).await.map(drop)
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

    /// The signed state message as of `reading` and `local`, saying
    /// `online` (the retained state) or not (the last will, going offline).
    fn state_message(
        &self,
        reading: &signet_common::clock::ClockReading,
        local: &super::LocalReport,
        online: bool,
    ) -> Vec<u8> {
        report::device_state(
            report::Reporter {
                key: &self.key,
                os: &self.os,
            },
            &self.held,
            reading,
            online,
            self.last_error.as_deref(),
            local,
            &self.refused,
        )
    }

    /// Publishes the retained state (online) and refreshes the last will
    /// and the status snapshot.
    async fn publish_state(&mut self) {
        self.state_dirty = false;
        let reading = self.device_clock.read();
        let local = self.links.local.borrow_and_update().clone();
        let online = self.state_message(&reading, &local, true);
        let offline = self.state_message(&reading, &local, false);
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
        let offline = self.state_message(&reading, &local, false);
        let _ = self
            .client
            .try_publish(self.state_topic.clone(), QoS::AtLeastOnce, true, offline);
        let _ = self.client.try_disconnect();
        tracing::info!("sync stopped");
    }
}

/// Waits until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
