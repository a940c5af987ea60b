//! The seam between publishing and the MQTT transport (S4, DESIGN §5).
//!
//! Owns: the [`Publisher`] trait, the contract topic names, and two
//! implementations: [`LogPublisher`] (what `serve` uses until the sync issue
//! plugs MQTT in) and [`RecordingPublisher`] (tests). Must not: decide what
//! to publish or sign anything — [`super`] does that and stores every signed
//! document durably before it calls a publisher.

use std::sync::Mutex;

use futures_util::future::BoxFuture;

/// The topic of a group's signed manifest (contract, DESIGN §5).
#[must_use]
pub fn manifest_topic(group_id: &str) -> String {
    format!("signet/v1/groups/{group_id}/manifest")
}

/// The topic of a device's signed assignment (contract, DESIGN §5).
#[must_use]
pub fn assignment_topic(device_id: &str) -> String {
    format!("signet/v1/devices/{device_id}/assignment")
}

/// The topic of the root-signed trust document (contract, DESIGN §5).
pub const TRUST_TOPIC: &str = "signet/v1/trust";

/// One message: QoS 1 on `topic`, retained unless `retained` is false
/// (commands, DESIGN §5, are the one non-retained kind the hub sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// The contract topic.
    pub topic: String,
    /// The signed envelope, byte for byte as stored.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it for later subscribers: true for state
    /// (manifests, assignments, trust, hub time), false for commands.
    pub retained: bool,
}

/// Why a message was not handed to the transport. The document stays
/// stored: the next publish of its subject or [`super::republish_all`] (run
/// at every start) sends it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing on {topic} failed: {reason}")]
pub struct PublishFailed {
    /// The topic.
    pub topic: String,
    /// Why.
    pub reason: String,
}

/// Puts retained state on the broker. The MQTT sync issue implements this
/// over its client: `publish` hands the message to the client's queue as a
/// retained QoS 1 publish and returns without waiting for the broker (the
/// event loop must never block, S5). Implementations must be cheap to call
/// for every document of a run and must not reorder messages of one topic.
pub trait Publisher: Send + Sync + 'static {
    /// Publishes `message` with QoS 1, retained when `message.retained`.
    ///
    /// # Errors
    /// [`PublishFailed`] when the transport refused it (queue full, not
    /// connected and not buffering).
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>>;
}

/// The publisher `serve` uses until MQTT exists: it logs each message and
/// delivers nothing. Documents are still signed and stored, and
/// [`super::republish_all`] sends all of them once a real transport is
/// plugged in.
#[derive(Debug, Default)]
pub struct LogPublisher;

impl Publisher for LogPublisher {
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        tracing::info!(
            topic = %message.topic,
            bytes = message.payload.len(),
            retained = message.retained,
            "message (no MQTT transport yet: stored, not delivered)"
        );
        Box::pin(async { Ok(()) })
    }
}

/// Keeps every message, in order, for tests; can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    /// What was published, oldest first.
    messages: Mutex<Vec<RetainedMessage>>,
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
        self.messages
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Takes every message so far, leaving none.
    pub fn take(&self) -> Vec<RetainedMessage> {
        match self.messages.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// Makes every later publish fail with `reason` (`None`: succeed again).
    pub fn fail_with(&self, reason: Option<&str>) {
        match self.failing.lock() {
            Ok(mut f) => *f = reason.map(str::to_owned),
            Err(poisoned) => *poisoned.into_inner() = reason.map(str::to_owned),
        }
    }
}

impl Publisher for RecordingPublisher {
    fn publish(&self, message: RetainedMessage) -> BoxFuture<'_, Result<(), PublishFailed>> {
        let failing = self.failing.lock().ok().and_then(|f| f.clone());
        let result = match failing {
            Some(reason) => Err(PublishFailed {
                topic: message.topic,
                reason,
            }),
            None => {
                match self.messages.lock() {
                    Ok(mut m) => m.push(message),
                    Err(poisoned) => poisoned.into_inner().push(message),
                }
                Ok(())
            }
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s4_contract_topics() {
        assert_eq!(manifest_topic("n-1"), "signet/v1/groups/n-1/manifest");
        assert_eq!(assignment_topic("d-1"), "signet/v1/devices/d-1/assignment");
        assert_eq!(TRUST_TOPIC, "signet/v1/trust");
    }
}
