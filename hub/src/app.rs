//! The application core: [`Hub`], what every part of the hub shares.
//!
//! Owns: the store, the clock, the keys, the publisher, the broker admin,
//! the mailer's wake-up, the metrics, the live fleet feed and the fleet
//! ingest queue. The HTTP API
//! (`api::AppState` wraps a [`Hub`]), the MQTT subscriber, the
//! background loops and the demo are all built on it. Must not: know about
//! HTTP; nothing here imports `crate::api`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::fleet::FleetIngest;
use crate::fleet::stream::FleetFeed;
use crate::identity::{LoginThrottle, PasswordHashing};
use crate::keys::HubKeys;
use crate::metrics::Metrics;
use crate::mqtt::admin::BrokerAdmin;
use crate::publish::Publisher;
use crate::store::Store;

/// Where the hub reads the time: the system clock, or a test's.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What the services, the loops and the API share. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    /// The durable store.
    pub store: Store,
    /// The configuration the hub started with.
    pub config: Arc<Config>,
    /// Failed-login counts.
    pub throttle: Arc<LoginThrottle>,
    /// Password hashing, bounded in concurrency and memory (S12).
    pub hashing: Arc<PasswordHashing>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Wakes the mail sender: call `notify_one` after a batch that enqueued
    /// mail is applied, so it goes out now rather than at the next poll.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// The pinned root, the signing key and its trust document: what
    /// publishing signs with and republishes (S1, S2).
    pub keys: Arc<HubKeys>,
    /// Where signed documents go as retained messages (S4): MQTT once the
    /// hub's link is up, [`crate::publish::LogPublisher`] before.
    pub publisher: Arc<dyn Publisher>,
    /// Wakes the publishing loop: call `notify_one` after a job is stored
    /// or cancelled, so it is seen before the next poll.
    pub publish_wake: Arc<tokio::sync::Notify>,
    /// Device access on the broker (S7, S10): mosquitto's dynamic security on
    /// the managed broker and with `mqtt.dynsec`; else
    /// [`crate::mqtt::admin::StoreAuthenticated`].
    pub broker_admin: Arc<dyn BrokerAdmin>,
    /// The counters and histogram `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Live fleet changes for the console's stream (C3): call
    /// [`FleetFeed::device_changed`] after a change to a device's fleet
    /// view is stored.
    pub fleet_feed: Arc<FleetFeed>,
    /// Device states and event batches on their way into the store, many
    /// to a commit (U2, U4, S9): [`crate::fleet::record_state`] and
    /// [`crate::fleet::ingest_events`] go through it.
    pub fleet_ingest: Arc<FleetIngest>,
}

impl Hub {
    /// Now, by the hub's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
