//! The seam between publishing and the MQTT transport (S4, DESIGN §5).
//!
//! Owns: the [`Publisher`] trait and two
//! implementations: [`LogPublisher`] (no transport) and
//! [`RecordingPublisher`] (tests); the MQTT one is
//! `mqtt::MqttPublisher`. Must not: decide what to publish or sign
//! anything — `publish` does that and stores every signed document durably
//! before it calls a publisher.

use std::sync::Mutex;

use futures_util::future::BoxFuture;

/// One retained message: QoS 1, retained, on `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// The contract topic.
    pub topic: String,
    /// The signed envelope, byte for byte as stored.
    pub payload: Vec<u8>,
}

/// One message that is not retained: QoS 1, on `topic` (commands on
/// `signet/v1/devices/{id}/commands`, DESIGN §5). A device that is offline
/// gets it from its persistent session when it reconnects, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientMessage {
    /// The contract topic.
    pub topic: String,
    /// The signed envelope.
    pub payload: Vec<u8>,
}

/// Why a message was not handed to the transport. The document stays
/// stored: the next publish of its subject or [`crate::publish::republish_all`] (run
/// at every start) sends it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing on {topic} failed: {reason}")]
pub struct PublishFailed {
    /// The topic.
    pub topic: String,
    /// Why.
    pub reason: String,
}

/// Puts retained state and commands on the broker. The MQTT implementation
/// ([`crate::mqtt::MqttPublisher`]) hands each message to the client's
/// bounded queue and returns without waiting for the broker (the event loop
/// must never block, S5); a full queue is [`PublishFailed`]. Implementations
/// must be cheap to call for every document of a run and must not reorder
/// messages of one topic.
pub trait Publisher: Send + Sync + 'static {
    /// Publishes `message` retained with QoS 1.
    ///
    /// # Errors
    /// [`PublishFailed`] when the transport refused it (queue full, not
    /// connected and not buffering).
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>>;

    /// Sends `message` with QoS 1, not retained.
    ///
    /// # Errors
    /// [`PublishFailed`] when the transport refused it.
    fn send(&self, message: TransientMessage) -> BoxFuture<'_, Result<(), PublishFailed>>;
}

/// A publisher without a transport: it logs each message and delivers
/// nothing. Documents are still signed and stored, and
/// [`crate::publish::republish_all`] sends all of them once a real transport is
/// plugged in.
#[derive(Debug, Default)]
pub struct LogPublisher;

impl Publisher for LogPublisher {
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        tracing::info!(
            topic = %message.topic,
            bytes = message.payload.len(),
            "retained message (no MQTT transport: stored, not delivered)"
        );
        Box::pin(async { Ok(()) })
    }

    fn send(&self, message: TransientMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        tracing::info!(
            topic = %message.topic,
            bytes = message.payload.len(),
            "message not delivered (no MQTT transport)"
        );
        Box::pin(async { Ok(()) })
    }
}

/// Keeps every message, in order, for tests; can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    /// What was published, oldest first.
    messages: Mutex<Vec<RetainedMessage>>,
    /// What was sent not retained, oldest first.
    sent: Mutex<Vec<TransientMessage>>,
    /// When set, every publish fails with this reason.
    failing: Mutex<Option<String>>,
}

impl RecordingPublisher {
    /// A publisher that records everything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message so far, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<RetainedMessage> {
        snapshot(&self.messages)
    }

    /// Every message sent not retained so far, oldest first.
    #[must_use]
    pub fn sent(&self) -> Vec<TransientMessage> {
        snapshot(&self.sent)
    }

    /// Takes every message so far, leaving none.
    pub fn take(&self) -> Vec<RetainedMessage> {
        match self.messages.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// Appends `message` to `list`, or fails as [`Self::fail_with`] says.
    fn record<M>(
        &self,
        list: &Mutex<Vec<M>>,
        topic: String,
        message: M,
    ) -> Result<(), PublishFailed> {
        if let Some(reason) = self.failing.lock().ok().and_then(|f| f.clone()) {
            return Err(PublishFailed { topic, reason });
        }
        match list.lock() {
            Ok(mut m) => m.push(message),
            Err(poisoned) => poisoned.into_inner().push(message),
        }
        Ok(())
    }

    /// Makes every later publish fail with `reason` (`None`: succeed again).
    pub fn fail_with(&self, reason: Option<&str>) {
        match self.failing.lock() {
            Ok(mut f) => *f = reason.map(str::to_owned),
            Err(poisoned) => *poisoned.into_inner() = reason.map(str::to_owned),
        }
    }
}

/// A copy of `list`, also after a panic poisoned its lock.
fn snapshot<M: Clone>(list: &Mutex<Vec<M>>) -> Vec<M> {
    list.lock()
        .map(|m| m.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

impl Publisher for RecordingPublisher {
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        let topic = message.topic.clone();
        let result = self.record(&self.messages, topic, message);
        Box::pin(async move { result })
    }

    fn send(&self, message: TransientMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        let topic = message.topic.clone();
        let result = self.record(&self.sent, topic, message);
        Box::pin(async move { result })
    }
}
