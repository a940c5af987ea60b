//! The dynamic-security admin link: one MQTT connection as the plugin's
//! admin user, kept up by a task that reconnects with back-off, and the
//! exchange of control messages over it (commands tagged with
//! `correlationData`, answers matched to their waiting callers).
//!
//! Owns: [`DynsecAdmin::connect`], `execute`, the connection task and the
//! reconnection back-off. Must not: decide what to ask the broker
//! (`super::commands` does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::{CONTROL_TOPIC, DynsecAdmin, DynsecSettings, MAX_RESPONSE_BYTES, RESPONSE_TOPIC};
use crate::config::BrokerUrl;
use crate::mqtt::admin::BrokerAdminError;

/// The longest pause between reconnection attempts.
const LONGEST_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

/// The pauses between reconnection attempts: 100 ms, doubling up to
/// [`LONGEST_RECONNECT_PAUSE`], for as long as the link is down (afresh
/// after every CONNACK).
const RECONNECT_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_factor(2.0)
    .with_max_delay(LONGEST_RECONNECT_PAUSE)
    .without_max_times();

/// One answer of the plugin.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Response {
    /// The command it answers.
    command: String,
    /// Why it failed, if it did.
    #[serde(default)]
    error: Option<String>,
    /// What a `get…` command returns.
    #[serde(default)]
    pub(super) data: Option<Value>,
}

impl Response {
    /// `Ok` unless the broker reported an error.
    pub(super) fn ok(self) -> Result<Self, BrokerAdminError> {
        match &self.error {
            Some(error) => Err(BrokerAdminError(format!("{}: {error}", self.command))),
            None => Ok(self),
        }
    }

    /// Whether the broker said the object does not exist.
    pub(super) fn not_found(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.contains("not found"))
    }
}

#[derive(Deserialize)]
struct ResponseBatch {
    responses: Vec<ResponseItem>,
}

#[derive(Deserialize)]
struct ResponseItem {
    #[serde(rename = "correlationData")]
    correlation_data: Option<String>,
    #[serde(flatten)]
    response: Value,
}

/// The admin connection's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Link {
    /// Not (yet) connected and subscribed; the last failure, if any.
    Down(Option<String>),
    /// Connected and subscribed to [`RESPONSE_TOPIC`].
    Up,
}

/// What the connection task and the callers share.
pub(super) struct Shared {
    /// Waiting commands by correlation id.
    pending: Mutex<HashMap<String, oneshot::Sender<Response>>>,
    /// Whether commands can be sent.
    link: watch::Sender<Link>,
}

impl Shared {
    /// Hands each answer of a response message to its waiting command.
    fn dispatch(&self, payload: &[u8]) {
        let batch: ResponseBatch = match serde_json::from_slice(payload) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable dynamic-security response ignored");
                return;
            }
        };
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for item in batch.responses {
            let Some(id) = item.correlation_data else {
                continue;
            };
            let Some(waiter) = pending.remove(&id) else {
                continue;
            };
            match serde_json::from_value::<Response>(item.response) {
                Ok(response) => {
                    let _ = waiter.send(response);
                }
                Err(e) => tracing::warn!(error = %e, "malformed dynamic-security answer"),
            }
        }
    }

    /// Fails every waiting command: the connection they were sent on is
    /// gone, and with it their answers.
    fn fail_pending(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.clear();
        }
    }

    fn forget(&self, ids: &[String]) {
        if let Ok(mut pending) = self.pending.lock() {
            for id in ids {
                pending.remove(id);
            }
        }
    }
}

impl DynsecAdmin {
    /// Starts connecting to the broker as the admin user; does not wait
    /// for the connection (commands do, up to the timeout). Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// When the URL is not `mqtt://host[:port]` or `mqtts://host[:port]`,
    /// or `mqtts` lacks a CA.
    pub fn connect(settings: DynsecSettings) -> Result<Self, BrokerAdminError> {
        let (tls, host, port) = parse_url(&settings.url)?;
        let client_id = crate::identity::new_id("signet-dynsec-");
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_credentials(settings.username.clone(), settings.password.clone())
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES);
        if tls {
            let Some(ca) = settings.ca_pem.clone() else {
                return Err(BrokerAdminError(
                    "an mqtts:// broker needs the PEM of its CA".to_owned(),
                ));
            };
            options.set_transport(Transport::Tls(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            }));
        }
        let (client, eventloop) = AsyncClient::new(options, 64);
        let (link, _) = watch::channel(Link::Down(None));
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            link,
        });
        let task = tokio::spawn(drive(eventloop, client.clone(), Arc::clone(&shared)));
        Ok(Self {
            client,
            shared,
            timeout: settings.timeout,
            url: settings.url,
            admin_user: settings.username,
            next_id: AtomicU64::new(1),
            changes: tokio::sync::Mutex::new(()),
            queued: Mutex::new(Vec::new()),
            control_messages: AtomicU64::new(0),
            missing_passwords: Mutex::new(std::collections::HashSet::new()),
            task,
        })
    }

    /// Sends `commands` in one control message and waits for every answer.
    pub(super) async fn execute(
        &self,
        commands: Vec<Value>,
    ) -> Result<Vec<Response>, BrokerAdminError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.wait_up(deadline).await?;
        let mut ids = Vec::with_capacity(commands.len());
        let mut waiters = Vec::with_capacity(commands.len());
        let mut tagged = Vec::with_capacity(commands.len());
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .map_err(|_| BrokerAdminError("admin state poisoned".to_owned()))?;
            for mut command in commands {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
                if let Value::Object(fields) = &mut command {
                    fields.insert("correlationData".to_owned(), Value::String(id.clone()));
                }
                let (tx, rx) = oneshot::channel();
                pending.insert(id.clone(), tx);
                ids.push(id);
                waiters.push(rx);
                tagged.push(command);
            }
        }
        let outcome = self.send_and_wait(tagged, waiters, deadline).await;
        self.shared.forget(&ids);
        outcome
    }

    async fn send_and_wait(
        &self,
        commands: Vec<Value>,
        waiters: Vec<oneshot::Receiver<Response>>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Response>, BrokerAdminError> {
        let payload = serde_json::to_vec(&json!({"commands": commands}))
            .map_err(|e| BrokerAdminError(e.to_string()))?;
        self.control_messages.fetch_add(1, Ordering::Relaxed);
        let late = || {
            BrokerAdminError(format!(
                "no answer from the broker at {} within {:?}",
                self.url, self.timeout
            ))
        };
        tokio::time::timeout_at(
            deadline,
            self.client
                .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, payload),
        )
        .await
        .map_err(|_| late())?
        .map_err(|e| BrokerAdminError(format!("control message not sent: {e}")))?;
        let mut answers = Vec::with_capacity(waiters.len());
        for waiter in waiters {
            let answer = tokio::time::timeout_at(deadline, waiter)
                .await
                .map_err(|_| late())?
                .map_err(|_| {
                    BrokerAdminError(format!(
                        "the connection to the broker at {} closed before it answered",
                        self.url
                    ))
                })?;
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Waits until the admin connection is up and subscribed, or `deadline`.
    async fn wait_up(&self, deadline: tokio::time::Instant) -> Result<(), BrokerAdminError> {
        let mut link = self.shared.link.subscribe();
        let up = tokio::time::timeout_at(deadline, link.wait_for(|l| *l == Link::Up))
            .await
            .is_ok_and(|r| r.is_ok());
        if up {
            return Ok(());
        }
        let why = match &*self.shared.link.borrow() {
            Link::Down(Some(why)) => format!(": {why}"),
            Link::Down(None) | Link::Up => String::new(),
        };
        Err(BrokerAdminError(format!(
            "not connected to the broker at {} as {}{why}",
            self.url, self.admin_user
        )))
    }

    /// Sends `changes` in one control message (none: nothing); `Err` with
    /// the first one the broker refused.
    pub(super) async fn apply(&self, changes: Vec<Value>) -> Result<(), BrokerAdminError> {
        if changes.is_empty() {
            return Ok(());
        }
        for answer in self.execute(changes).await? {
            answer.ok()?;
        }
        Ok(())
    }

    /// [`Self::execute`] for a fixed number of commands.
    pub(super) async fn execute_n<const N: usize>(
        &self,
        commands: [Value; N],
    ) -> Result<[Response; N], BrokerAdminError> {
        let answers = self.execute(commands.into()).await?;
        answers.try_into().map_err(|_| {
            BrokerAdminError("the broker answered a different number of commands".to_owned())
        })
    }
}

/// `(tls, host, port)` of `mqtt://host[:port]` or `mqtts://host[:port]`,
/// as [`BrokerUrl::parse`] reads it.
pub(super) fn parse_url(url: &str) -> Result<(bool, String, u16), BrokerAdminError> {
    let parsed =
        BrokerUrl::parse(url).map_err(|e| BrokerAdminError(format!("broker URL {url:?} {e}")))?;
    Ok((parsed.tls, parsed.host, parsed.port))
}

/// Keeps the admin connection up: subscribes to [`RESPONSE_TOPIC`] after
/// every CONNACK, hands answers to their commands, and backs off between
/// failed connection attempts. Runs until aborted.
async fn drive(mut eventloop: EventLoop, client: AsyncClient, shared: Arc<Shared>) {
    let mut backoff = RECONNECT_BACKOFF.build();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = RECONNECT_BACKOFF.build();
                // `try_`: the request queue is drained by this very loop.
                if let Err(e) = client.try_subscribe(RESPONSE_TOPIC, QoS::AtLeastOnce) {
                    shared
                        .link
                        .send_replace(Link::Down(Some(format!("cannot subscribe: {e}"))));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                {
                    shared.link.send_replace(Link::Up);
                } else {
                    let why = format!(
                        "the broker refused the subscription to {RESPONSE_TOPIC}: \
                         the user lacks the dynamic-security admin role"
                    );
                    tracing::error!("{why}");
                    shared.link.send_replace(Link::Down(Some(why)));
                }
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                if message.topic == RESPONSE_TOPIC {
                    shared.dispatch(&message.payload);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let why = e.to_string();
                tracing::warn!(error = %why, "broker admin connection down; retrying");
                shared.link.send_replace(Link::Down(Some(why)));
                shared.fail_pending();
                let pause = backoff.next().unwrap_or(LONGEST_RECONNECT_PAUSE);
                tokio::time::sleep(pause).await;
            }
        }
    }
}
