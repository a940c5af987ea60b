//! The MQTT event loop task (S5): polls rumqttc, hands every received
//! message to the verifier through a bounded queue, and reconnects with
//! exponential backoff and full jitter up to a cap.
//!
//! Owns: the [`rumqttc::EventLoop`] and the reconnect policy. Must not:
//! block on anything but the network — it never waits for the verifier
//! (`try_send` only), never touches the state, never acknowledges. When the
//! queue is full it drops the connection instead of the message: the message
//! is not acknowledged, so the broker delivers it again on the next session.
//!
//! It also matches each SUBSCRIBE it sends to the topics the verifier asked
//! for ([`Requested`], in queue order) and each SUBACK to those topics, so
//! the verifier learns which ones the broker refused (S10).

use std::collections::HashMap;

use rumqttc::{Event, EventLoop, Incoming, LastWill, Outgoing, Publish, QoS, SubscribeReasonCode};
use tokio::sync::{mpsc, watch};

use super::subscriptions::Requested;
use crate::retry::Backoff;

/// What the event loop hands the verifier.
#[derive(Debug)]
pub enum Inbound {
    /// The broker accepted the connection.
    Connected {
        /// Whether the broker kept the session (subscriptions and queued
        /// messages); when false, everything must be subscribed again.
        session_present: bool,
        /// Topics whose SUBSCRIBE was sent on the previous connection but
        /// never answered: the broker may not hold them.
        unconfirmed: Vec<String>,
    },
    /// A message to verify, persist and then acknowledge.
    Message(Publish),
    /// The broker answered a SUBSCRIBE.
    Subscribed {
        /// The topics it accepted.
        granted: Vec<String>,
        /// The topics it refused (return code 0x80: not authorized).
        refused: Vec<String>,
    },
}

/// Where the last will goes and what it says: the verifier keeps the
/// payload current (the device's offline state), the loop installs it
/// before each reconnect.
#[derive(Debug)]
pub struct Will {
    /// The device's state topic.
    pub topic: String,
    /// The current offline-state payload.
    pub payload: watch::Receiver<Vec<u8>>,
}

/// Runs the event loop until `stop` turns true, the verifier goes away, or
/// a clean disconnect was sent.
pub async fn drive(
    mut eventloop: EventLoop,
    queue: mpsc::Sender<Inbound>,
    will: Will,
    backoff: Backoff,
    requested: Requested,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    // SUBSCRIBEs sent and not yet answered, by packet id.
    let mut in_flight: HashMap<u16, Vec<String>> = HashMap::new();
    // Those of a connection that ended before their SUBACK.
    let mut unconfirmed: Vec<String> = Vec::new();
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = stop.changed() => return,
        };
        let overloaded = match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                failures = 0;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                match queue.try_send(Inbound::Connected {
                    session_present: ack.session_present,
                    unconfirmed: std::mem::take(&mut unconfirmed),
                }) {
                    Ok(()) => false,
                    Err(mpsc::error::TrySendError::Full(_)) => true,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                match queue.try_send(Inbound::Message(publish)) {
                    Ok(()) => false,
                    Err(mpsc::error::TrySendError::Full(_)) => true,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                let topics = requested
                    .lock()
                    .ok()
                    .and_then(|mut r| r.pop_front())
                    .unwrap_or_default();
                in_flight.insert(pkid, topics);
                false
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                let topics = in_flight.remove(&ack.pkid).unwrap_or_default();
                let (mut granted, mut refused) = (Vec::new(), Vec::new());
                for (topic, code) in topics.into_iter().zip(&ack.return_codes) {
                    match code {
                        SubscribeReasonCode::Success(_) => granted.push(topic),
                        SubscribeReasonCode::Failure => refused.push(topic),
                    }
                }
                match queue.try_send(Inbound::Subscribed { granted, refused }) {
                    Ok(()) => false,
                    Err(mpsc::error::TrySendError::Full(answer)) => {
                        // Asked for again after the reconnect.
                        if let Inbound::Subscribed { refused, .. } = answer {
                            unconfirmed.extend(refused);
                        }
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                tracing::info!("disconnected from the broker");
                return;
            }
            Ok(_) => false,
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = backoff.delay(failures);
                tracing::warn!(%error, ?delay, failures, "broker connection failed; reconnecting");
                unconfirmed.extend(in_flight.drain().flat_map(|(_, topics)| topics));
                install_will(&mut eventloop, &will);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                false
            }
        };
        if overloaded {
            failures = failures.saturating_add(1);
            let delay = backoff.delay(failures);
            tracing::warn!(
                ?delay,
                "verification queue full: dropping the connection so the broker delivers the unacknowledged messages again"
            );
            eventloop.clean();
            unconfirmed.extend(in_flight.drain().flat_map(|(_, topics)| topics));
            install_will(&mut eventloop, &will);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

fn install_will(eventloop: &mut EventLoop, will: &Will) {
    let payload = will.payload.borrow().clone();
    eventloop.mqtt_options.set_last_will(LastWill::new(
        will.topic.clone(),
        payload,
        QoS::AtLeastOnce,
        true,
    ));
}
