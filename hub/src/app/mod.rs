//! The application core: [`Hub`], what every part of the hub shares.
//!
//! Owns: the store, the clock, the keys, the mailer's wake-up, the
//! metrics, the login throttle and password hashing, and the ports the
//! domains reach the outside through: the [`publisher`] (signed documents
//! out as retained messages), the [`broker_admin`] (device access on the
//! broker), the [`fleet_feed`] (the live fleet broadcast), the fleet's
//! report [`ingest`] and the access groups' [`entitlements`]. The HTTP API (`api::AppState` wraps a [`Hub`]), the
//! MQTT subscriber, the background loops and the demo are all built on it.
//!
//! Must not: import a domain or an adapter — only the leaves below it
//! (`store`, `config`, `keys`, `metrics`, `login`, `values`); the ports'
//! real implementations (MQTT, mosquitto's dynamic security, the fleet's
//! ingest) live above and are installed by whoever opens the hub. Nothing
//! here knows HTTP.

pub mod broker_admin;
pub mod entitlements;
pub mod fleet_feed;
pub mod ingest;
pub mod login_counts;
pub mod publisher;
pub mod rate_limits;
pub mod replica;
pub mod store_watch;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use self::broker_admin::{BrokerAdmin, StoreAuthenticated};
use self::entitlements::Entitlements;
use self::fleet_feed::FleetFeed;
use self::ingest::ReportIngest;
use self::publisher::{LogPublisher, Publisher};
use self::replica::Replica;
use self::store_watch::{StoreWatch, Watched};
use crate::config::Config;
use crate::keys::{self, KeyRing};
use crate::login::{LoginThrottle, PasswordHashing};
use crate::metrics::Metrics;
use crate::store::{CommitFeed, Store, store_dir};

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
    /// publishing signs with and republishes (S1, S2); reloaded after a
    /// rotation (`publish::keys_watch`).
    pub keys: Arc<KeyRing>,
    /// Where signed documents go as retained messages (S4): MQTT once the
    /// hub's link is up, [`LogPublisher`] before.
    pub publisher: Arc<dyn Publisher>,
    /// Wakes the publishing loop: call `notify_one` after a job is stored
    /// or cancelled, so it is seen before the next poll.
    pub publish_wake: Arc<tokio::sync::Notify>,
    /// Device access on the broker (S7, S10): mosquitto's dynamic security on
    /// the managed broker and with `mqtt.dynsec`; else
    /// [`StoreAuthenticated`].
    pub broker_admin: Arc<dyn BrokerAdmin>,
    /// The counters and histogram `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Live fleet changes for the console's stream (C3): call
    /// [`FleetFeed::changed`] after a change to a device's fleet view is
    /// stored.
    pub fleet_feed: Arc<FleetFeed>,
    /// Device states and event batches on their way into the store, many
    /// to a commit (U2, U4, S9): `fleet::record_state` and
    /// `fleet::ingest_events` go through it.
    pub fleet_ingest: Arc<dyn ReportIngest>,
    /// Which access groups entitle a user now (P6, M1): content's view rule
    /// asks it; access groups answer it.
    pub entitlements: Arc<dyn Entitlements>,
    /// This replica's id and whether it leads (X5): the leader unless an
    /// election runs (`serve` starts one on PostgreSQL, `crate::cluster`).
    pub replica: Arc<Replica>,
    /// Hears of every commit to [`Hub::store`], for views kept in memory
    /// (the fleet's, `fleet::index`).
    pub store_watch: Arc<StoreWatch>,
}

/// The ports the domains above the core implement, handed to
/// [`Hub::open`] by whoever opens the hub (`serve::open`).
pub struct Installed {
    /// The fleet's report queue.
    pub fleet_ingest: Arc<dyn ReportIngest>,
    /// The access groups' entitlements.
    pub entitlements: Arc<dyn Entitlements>,
}

/// The hub was pointed at a data directory `init` never made.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is not a Signet data directory: run `signet-hub init --data {}` first",
    data.display(),
    data.display()
)]
pub struct NotInitialized {
    /// The directory.
    pub data: std::path::PathBuf,
}

impl Hub {
    /// Opens the data directory of `config` and builds the shared state,
    /// with the ports the domains above install (`serve::open` passes
    /// them),
    /// [`LogPublisher`] as its publisher (`serve` replaces it with the MQTT
    /// one; tests install a recording one) and [`StoreAuthenticated`] as its
    /// broker admin.
    ///
    /// # Errors
    /// When the keys or the store cannot be opened; the message says which file
    /// and suggests `init` when the directory was never initialized.
    pub fn open(
        config: Config,
        clock: Arc<dyn Clock>,
        installed: Installed,
    ) -> anyhow::Result<Self> {
        let Installed {
            fleet_ingest,
            entitlements,
        } = installed;
        let data = config.data.clone();
        // With sled the store is in the data directory `init` made; with
        // PostgreSQL (X4) only the keys and content are.
        let initialized = if crate::store::is_postgres(&config.store) {
            keys::key_dir(&data).exists()
        } else {
            store_dir(&data).exists()
        };
        if !initialized {
            return Err(NotInitialized { data }.into());
        }
        // A rotation a crash interrupted is finished or undone first (S2).
        keys::rotate::recover(&data)?;
        let keys = KeyRing::open(&data)?;
        let store_watch = Arc::new(StoreWatch::default());
        let engine = crate::store::open(&config.store, &data)?;
        // This process's commits are told to the watch as they return
        // (read-your-writes); on PostgreSQL other replicas (X5) commit too,
        // and the engine's change feed tells the watch of every commit.
        engine.feed_commits(Arc::clone(&store_watch) as Arc<dyn CommitFeed>);
        let store = Store::new(Arc::new(Watched::new(engine, Arc::clone(&store_watch))));
        let window = i64::try_from(config.login_lockout_secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .unwrap_or(TimeDelta::minutes(15));
        // Replicas on one PostgreSQL count failed logins together (X5).
        let throttle = Arc::new(if store.shares_counts() {
            LoginThrottle::counting_in(
                config.login_max_failures,
                window,
                Box::new(login_counts::StoreCounts::new(store.clone())),
            )
        } else {
            LoginThrottle::new(config.login_max_failures, window)
        });
        let hashing = Arc::new(PasswordHashing::new(
            config.password_hash_concurrency,
            Duration::from_millis(config.password_hash_wait_ms),
        ));
        // Live fleet streams hold a connection each: at most a quarter of them.
        let fleet_feed = Arc::new(FleetFeed::new(config.http_max_connections / 4));
        let replica = Arc::new(Replica::new(
            config
                .replica_id
                .clone()
                .unwrap_or_else(replica::default_id),
            // One hub leads; `cluster::election` (started by `serve`)
            // makes it a follower until it wins the election on PostgreSQL.
            true,
        ));
        Ok(Self {
            store,
            config: Arc::new(config),
            hashing,
            throttle,
            clock,
            mail_wake: Arc::new(tokio::sync::Notify::new()),
            keys: Arc::new(keys),
            publisher: Arc::new(LogPublisher),
            publish_wake: Arc::new(tokio::sync::Notify::new()),
            broker_admin: Arc::new(StoreAuthenticated),
            metrics: Arc::new(Metrics::default()),
            fleet_feed,
            fleet_ingest,
            entitlements,
            replica,
            store_watch,
        })
    }

    /// Now, by the hub's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
