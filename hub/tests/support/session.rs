//! A plain MQTT client session for broker tests (S7, S10): one rumqttc
//! connection driven by a background task, what it saw queued for the
//! test. It does not reconnect: a closed connection is [`Seen::Down`].
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;

/// How long a session waits for what must arrive.
pub const WITHIN: Duration = Duration::from_secs(5);

/// What one MQTT session saw.
#[derive(Debug)]
pub enum Seen {
    /// A message (topic, payload).
    Message { topic: String, payload: Vec<u8> },
    /// A SUBACK's codes.
    SubAck(Vec<SubscribeReasonCode>),
    /// A PUBACK.
    PubAck,
    /// The connection ended, and why.
    Down(String),
}

/// An MQTT client session (a device, the hub, an observer).
pub struct Session {
    /// Sends requests.
    pub client: AsyncClient,
    /// What the connection saw.
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Messages that arrived while waiting for an acknowledgement.
    early: Vec<(String, String)>,
    /// The event loop's task.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a connection attempt was refused for its credentials or client id.
pub fn refused_as_bad_login(outcome: Result<Session, ConnectionError>) -> bool {
    matches!(
        outcome,
        Err(ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
        ))
    )
}

async fn wait_connack(eventloop: &mut EventLoop) -> Result<(), ConnectionError> {
    loop {
        match eventloop.poll().await? {
            Event::Incoming(Packet::ConnAck(_)) => return Ok(()),
            Event::Outgoing(Outgoing::Disconnect) => {
                return Err(ConnectionError::RequestsDone);
            }
            _ => {}
        }
    }
}

impl Session {
    /// Connects to `127.0.0.1:port` as `client_id`, with `login` (user,
    /// password) or anonymously, clean session; the broker's refusal as an
    /// error.
    pub async fn connect(
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> Result<Self, ConnectionError> {
        Self::connect_with(port, client_id, login, true).await
    }

    /// As [`Self::connect`], keeping the broker's session (its
    /// subscriptions) across connections when `clean` is false, as the
    /// agent does.
    pub async fn connect_with(
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
        clean: bool,
    ) -> Result<Self, ConnectionError> {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        tokio::time::timeout(WITHIN, wait_connack(&mut eventloop))
            .await
            .expect("CONNACK within the bound")?;
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    },
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Seen::Down(e.to_string()));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            client,
            seen,
            early: Vec::new(),
            task,
        })
    }

    /// Subscribes to one filter and returns the broker's verdict.
    pub async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match self.next(WITHIN).await.expect("SUBACK within the bound") {
                Seen::SubAck(codes) => return codes[0],
                Seen::Down(why) => panic!("connection lost while subscribing: {why}"),
                Seen::Message { topic, payload } => self.keep(topic, payload),
                Seen::PubAck => {}
            }
        }
    }

    /// Subscribes and asserts the broker granted it.
    pub async fn subscribe_granted(&mut self, filter: &str) {
        let code = self.subscribe(filter).await;
        assert!(
            matches!(code, SubscribeReasonCode::Success(_)),
            "subscription to {filter} refused: {code:?}"
        );
    }

    /// Publishes (QoS 1) and waits for the broker's PUBACK. Mosquitto acks
    /// a publish it drops for ACL reasons too (MQTT 3.1.1 has no way to say
    /// no), so this proves only that the broker processed it.
    pub async fn publish(&mut self, topic: &str, retain: bool, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .unwrap();
        loop {
            match self.next(WITHIN).await.expect("PUBACK within the bound") {
                Seen::PubAck => return,
                Seen::Down(why) => panic!("connection lost while publishing: {why}"),
                Seen::Message { topic, payload } => self.keep(topic, payload),
                Seen::SubAck(codes) => panic!("unexpected SUBACK {codes:?}"),
            }
        }
    }

    fn keep(&mut self, topic: String, payload: Vec<u8>) {
        self.early
            .push((topic, String::from_utf8_lossy(&payload).into_owned()));
    }

    /// The next thing seen within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Seen> {
        tokio::time::timeout(within, self.seen.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every message arriving within `within` after the last one (bounded
    /// by the quiet period), as (topic, payload).
    pub async fn messages(&mut self, within: Duration) -> Vec<(String, String)> {
        let mut messages = std::mem::take(&mut self.early);
        while let Some(seen) = self.next(within).await {
            if let Seen::Message { topic, payload } = seen {
                messages.push((topic, String::from_utf8_lossy(&payload).into_owned()));
            }
        }
        messages
    }

    /// Waits for a message on `topic`, returning everything seen before it
    /// (and it).
    pub async fn until_message_on(&mut self, topic: &str) -> Vec<(String, String)> {
        let mut messages = std::mem::take(&mut self.early);
        if messages.iter().any(|(t, _)| t == topic) {
            return messages;
        }
        loop {
            match self.next(WITHIN).await {
                Some(Seen::Message { topic: t, payload }) => {
                    let done = t == topic;
                    messages.push((t, String::from_utf8_lossy(&payload).into_owned()));
                    if done {
                        return messages;
                    }
                }
                Some(Seen::Down(why)) => panic!("connection lost waiting for {topic}: {why}"),
                Some(_) => {}
                None => panic!("nothing on {topic} within {WITHIN:?}; saw {messages:?}"),
            }
        }
    }

    /// Waits until the broker closes this session.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Seen::Down(_)) => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }
}
