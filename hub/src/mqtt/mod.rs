//! MQTT (DESIGN §5, S4, S5, S7, S10): the hub's broker connection, the
//! broker the hub manages, signed hub time, the subscriber for what devices report, and
//! managing device access on the broker.
//!
//! Owns:
//! - [`HubLink`] — the hub's one MQTT client (rumqttc): a stable client id
//!   with a persistent session (`clean_session = false`), QoS 1, `mqtt://`
//!   or `mqtts://` (rustls) with user name and password or a client
//!   certificate. Its event loop runs in its own task and never blocks: it
//!   only forwards what arrives; reconnects back off exponentially with
//!   jitter up to a cap (S5). On every (re)connect a session task
//!   subscribes, publishes `trust` and a fresh `hub_time`, and republishes
//!   every stored signed document ([`crate::publish::republish_all`]), so a
//!   broker that lost its store converges (S4).
//! - [`MqttPublisher`] — the [`crate::publish::Publisher`] `serve` installs
//!   in [`crate::app::Hub::publisher`]: it queues without waiting
//!   (`try_publish`); a full queue is [`crate::publish::PublishFailed`].
//! - [`hub_time`] — the signed `hub_time` document on `signet/v1/hub/time`
//!   every minute, its version persisted (see that module).
//! - [`reports`] — the subscriber side: `signet/v1/devices/+/state` and
//!   `+/events`, verified against the key the device registered at pairing
//!   (S11) and handed to [`crate::fleet`], acknowledged only after the
//!   store call returned (S9); refusals are acknowledged without effect and
//!   counted.
//! - [`retained`] — the watch over the hub's own retained topics: what
//!   someone else replaced or cleared is restored within seconds (S4).
//! - [`broker`] — the default broker: a local mosquitto the hub writes the
//!   config of, starts, supervises and administers like an external one.
//! - [`dynsec`] — the implementation of the [`admin::BrokerAdmin`] port
//!   (device credentials and topic access on the broker; the port itself
//!   is the application core's, `app::broker_admin`) for mosquitto's
//!   dynamic-security plugin.
//!
//! May call: [`crate::publish`] (republish, the publisher seam),
//! [`crate::fleet::record_state`] and [`crate::fleet::ingest_events`],
//! the store (its own `hub_time` tree
//! only), and `signet-common` for topics, wire types and signing. Must not:
//! decide what a document says (publishing does), or acknowledge a device
//! message before its effect is stored.

// The broker-admin port lives in the application core (below the domains);
// re-exported so `crate::mqtt::admin::…` keeps working.
pub use crate::app::broker_admin as admin;
pub mod broker;
mod connection;
pub mod dynsec;
pub mod hook;
pub mod hub_time;
pub mod reports;
pub mod retained;

pub use connection::{
    BrokerConnection, HubLink, LinkOptions, MqttError, MqttPublisher, RunningLink,
};

/// The user name the hub's own client uses on the managed broker, which
/// accepts it only with the password the hub made at start and only with
/// the hub's client id (`mqtt.client_id`).
pub const HUB_USERNAME: &str = "signet-hub";
