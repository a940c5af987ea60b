//! `signet-sim`: a fleet of simulated screens in one process (X1).
//!
//! Owns: running, for each screen paired by [`pair`], the agent's real
//! sync core ([`signet_agent::sync::run`]: its own MQTT connection with its
//! own credentials, verification, the rollback guard, the durable commit
//! before the acknowledgement, the signed state as heartbeat), its real
//! content task without a player ([`signet_agent::activate::Activator`]:
//! downloads, verification, the atomic switch of the playing manifest),
//! and its proof-of-play queue and upload ([`signet_agent::events`]) fed at
//! a configurable rate; a [`Probe`] per screen records when each watched
//! document became durable and when each group's manifest became the
//! playing one. All screens keep their records in one sled database, one
//! tree each ([`signet_agent::state::Store::open_in`]), so 10,000 screens
//! cost one log and one flusher. Must not: decide anything an agent
//! decides — every rule runs in the agent's own code.

pub mod pair;
pub mod raw;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use signet_agent::activate::{self, Activator};
use signet_agent::cache::Cache;
use signet_agent::cache::download::{DownloadSettings, Downloader, HubCredentials};
use signet_agent::clock::DeviceClock;
use signet_agent::config::AgentConfig;
use signet_agent::events::EventLog;
use signet_agent::events::upload::{self, Uploader};
use signet_agent::retry::Backoff;
use signet_agent::state::Store;
use signet_agent::sync::{self, LocalReport};
use signet_common::envelope::DocumentKind;
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::{Outcome, PlayEvent};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

pub use pair::{Approver, Paired, pair_fleet};

/// How the simulated screens behave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The state heartbeat of every screen, in seconds (the agent's
    /// `heartbeat_secs`).
    pub heartbeat_secs: u64,
    /// One proof-of-play event per screen this often; `None`: no events.
    pub events_every: Option<Duration>,
    /// Whether each screen runs the content task (downloads and the switch
    /// of playing manifests).
    pub activate: bool,
    /// The pause between two screens' starts, so the broker is not hit by
    /// every connection at once.
    pub start_spacing: Duration,
    /// The groups whose manifests the probes watch.
    pub groups: Vec<String>,
}

/// When one screen's watched documents became durable and playing.
#[derive(Debug, Default)]
pub struct Probe {
    /// `{kind}/{subject}` → the newest version held and when it was seen.
    applied: Mutex<BTreeMap<String, (u64, Instant)>>,
    /// Group → the playing manifest's version and when it became so.
    activated: Mutex<BTreeMap<String, (u64, Instant)>>,
}

impl Probe {
    /// The held version of `kind`/`subject` and when it became durable.
    #[must_use]
    pub fn applied(&self, kind: DocumentKind, subject: &str) -> Option<(u64, Instant)> {
        let key = format!("{kind}/{subject}");
        let applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        applied.get(&key).copied()
    }

    /// The playing manifest version of `group` and when it began to play.
    #[must_use]
    pub fn activated(&self, group: &str) -> Option<(u64, Instant)> {
        let activated = self
            .activated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        activated.get(group).copied()
    }

    fn record(&self, key: String, version: u64, at: Instant) {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        if applied.get(&key).is_none_or(|(held, _)| *held < version) {
            applied.insert(key, (version, at));
        }
    }

    fn record_activated(&self, group: String, version: u64, at: Instant) {
        let mut activated = self
            .activated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if activated
            .get(&group)
            .is_none_or(|(held, _)| *held < version)
        {
            activated.insert(group, (version, at));
        }
    }
}

/// One running screen.
#[derive(Debug, Clone)]
pub struct Screen {
    /// Its device id.
    pub device: DeviceId,
    /// What it did when.
    pub probe: Arc<Probe>,
}

/// The running fleet.
pub struct Fleet {
    /// Every screen, in pairing order.
    pub screens: Vec<Screen>,
    /// Tells every task to stop.
    stop: watch::Sender<bool>,
    /// Every task of every screen.
    tasks: JoinSet<()>,
    /// Why a screen's sync core stopped early, if one did.
    failures: Arc<Mutex<Vec<String>>>,
    /// The runtime, on a thread of its own, that runs every screen's
    /// [`watch_applied`]: woken by the verifier's commit, it stamps the
    /// apply when it happened, not when the screens' busy worker threads
    /// get round to a probe task (X2: at 100 screens that waiting alone
    /// was ~180 ms of the measured p99).
    probes: tokio::runtime::Handle,
}

/// What a whole fleet reached.
#[derive(Debug)]
pub struct Reached {
    /// Per screen, when it reached it (in screen order); `None` when it
    /// did not within the limit.
    pub at: Vec<Option<Instant>>,
}

impl Reached {
    /// How many screens did not reach it.
    #[must_use]
    pub fn missing(&self) -> usize {
        self.at.iter().filter(|a| a.is_none()).count()
    }

    /// The times since `start` of those that did.
    #[must_use]
    pub fn since(&self, start: Instant) -> Vec<Duration> {
        self.at
            .iter()
            .flatten()
            .map(|at| at.saturating_duration_since(start))
            .collect()
    }
}

impl Fleet {
    /// Starts every paired screen.
    ///
    /// # Errors
    /// When a screen's state cannot be read or a part cannot start.
    pub async fn start(paired: Vec<Paired>, settings: &Settings) -> Result<Self, String> {
        let (stop, _) = watch::channel(false);
        let probes = probe_thread(stop.subscribe())?;
        let mut fleet = Self {
            screens: Vec::with_capacity(paired.len()),
            stop,
            tasks: JoinSet::new(),
            failures: Arc::new(Mutex::new(Vec::new())),
            probes,
        };
        for screen in paired {
            let probe = Arc::new(Probe::default());
            fleet.screens.push(Screen {
                device: screen.device.clone(),
                probe: probe.clone(),
            });
            fleet.start_one(screen, settings, probe).await?;
            tokio::time::sleep(settings.start_spacing).await;
        }
        Ok(fleet)
    }

    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    async fn start_one(
        &mut self,
        screen: Paired,
        settings: &Settings,
        probe: Arc<Probe>,
    ) -> Result<(), String> {
        let config = AgentConfig {
            heartbeat_secs: settings.heartbeat_secs,
            reconnect_cap_secs: 10,
            ..AgentConfig::default()
        };
        let store = screen.store.clone();
        let held = sync::load_held(&store, &DeviceClock::new()).map_err(|e| e.to_string())?;
        let (documents_tx, documents_rx) = watch::channel(0_u64);
        let (clock_tx, clock_rx) = watch::channel(held.clock.clone());
        let (local_tx, local_rx) = watch::channel(LocalReport::default());
        let (purge_tx, purge_rx) = mpsc::channel(1);
        let (player_tx, player_rx) = mpsc::channel(4);
        let backoff = Backoff {
            base: config.reconnect_base(),
            cap: config.reconnect_cap(),
        };
        // The screen's player: it takes the commands meant for it.
        let stopped = self.stopped();
        self.tasks.spawn(async move {
            let mut commands = player_rx;
            tokio::select! {
                () = stopped => {}
                () = async { while commands.recv().await.is_some() {} } => {}
            }
        });
        let watched: Vec<(DocumentKind, String)> = std::iter::once((
            DocumentKind::DeviceAssignment,
            screen.device.as_str().to_owned(),
        ))
        .chain(
            settings
                .groups
                .iter()
                .map(|g| (DocumentKind::GroupManifest, g.clone())),
        )
        .collect();
        self.tasks.spawn_on(
            watch_applied(
                store.clone(),
                documents_rx.clone(),
                watched,
                probe.clone(),
                self.stopped(),
            ),
            &self.probes,
        );
        if settings.activate {
            self.start_content(
                &screen,
                backoff,
                (documents_rx, clock_rx),
                purge_rx,
                local_tx,
                probe,
            )
            .await?;
        } else {
            self.tasks.spawn(async move {
                // Nothing activates: the purge commands go nowhere.
                let (_keep, mut purge) = (local_tx, purge_rx);
                while purge.recv().await.is_some() {}
            });
        }
        if let Some(every) = settings.events_every {
            self.start_events(&screen, every, backoff, &config)?;
        }
        let failures = self.failures.clone();
        let stopped = self.stopped();
        let device = screen.device.clone();
        self.tasks.spawn(async move {
            let links = sync::Links {
                documents: documents_tx,
                clock: clock_tx,
                local: local_rx,
                purge: purge_tx,
                player: player_tx,
            };
            if let Err(error) = sync::run(&config, store, held, links, stopped).await {
                failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("{device}: {error}"));
            }
        });
        Ok(())
    }

    /// The content task and what it reports for the state message.
    async fn start_content(
        &mut self,
        screen: &Paired,
        backoff: Backoff,
        (documents, clock): (
            watch::Receiver<u64>,
            watch::Receiver<signet_common::clock::TrustedClock>,
        ),
        purge: mpsc::Receiver<()>,
        local: watch::Sender<LocalReport>,
        probe: Arc<Probe>,
    ) -> Result<(), String> {
        let store = screen.store.clone();
        let cache = {
            let (store, dir) = (store.clone(), store.dir().to_owned());
            tokio::task::spawn_blocking(move || Cache::open(&dir, &store, 64 * 1024 * 1024))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        };
        let identity = store.require_identity().map_err(|e| e.to_string())?;
        let downloader = Downloader::new(
            cache.clone(),
            DownloadSettings {
                concurrency: 1,
                rate_bytes_per_sec: None,
                backoff,
                attempts: 4,
                credentials: Some(HubCredentials {
                    base_url: identity.hub_url.clone(),
                    device_id: screen.device.as_str().to_owned(),
                    secret: screen.password.clone(),
                }),
                timeout: Duration::from_secs(30),
            },
        )
        .map_err(|e| e.to_string())?;
        let (playing_tx, _playing_rx) = watch::channel(0_u64);
        let (progress_tx, mut progress_rx) = watch::channel(None);
        let activator = Activator::new(
            store,
            screen.device.as_str().to_owned(),
            cache.clone(),
            downloader,
            backoff,
        );
        let links = activate::Links {
            documents,
            clock,
            playing: playing_tx,
            progress: progress_tx,
            wake: Arc::new(Notify::new()),
            purge,
        };
        self.tasks.spawn(activator.run(links, self.stopped()));
        let stopped = self.stopped();
        self.tasks.spawn(async move {
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    () = &mut stopped => return,
                    changed = progress_rx.changed() => if changed.is_err() { return },
                }
                let at = Instant::now();
                let Some(content) = progress_rx.borrow_and_update().clone() else {
                    continue;
                };
                for (key, applied) in &content.activated {
                    if let Some(group) = key.strip_prefix("group_manifest/") {
                        probe.record_activated(group.to_owned(), applied.version, at);
                    }
                }
                local.send_replace(LocalReport {
                    cache_bytes: cache.used_bytes(),
                    cache: Some(content.cache),
                    activated: content.activated,
                    pending: content.pending,
                    ..LocalReport::default()
                });
            }
        });
        Ok(())
    }

    /// Proof-of-play events at one per `every`, queued durably and uploaded
    /// by the agent's uploader.
    fn start_events(
        &mut self,
        screen: &Paired,
        every: Duration,
        backoff: Backoff,
        config: &AgentConfig,
    ) -> Result<(), String> {
        let store = &screen.store;
        let log = EventLog::open(store).map_err(|e| e.to_string())?;
        let identity = store.require_identity().map_err(|e| e.to_string())?;
        let key = Arc::new(store.device_key().map_err(|e| e.to_string())?);
        let uploader = Uploader::new(
            &identity.hub_url,
            screen.device.as_str(),
            &screen.password,
            key,
        )
        .map_err(|e| e.to_string())?;
        let wake = Arc::new(Notify::new());
        self.tasks.spawn(upload::run(
            log.clone(),
            uploader,
            wake.clone(),
            Duration::from_secs(config.event_upload_secs),
            backoff,
            self.stopped(),
        ));
        let device = screen.device.clone();
        let stopped = self.stopped();
        // Spread the screens over the period.
        let offset =
            every.mul_f64(f64::from(u32::try_from(screen.index % 1000).unwrap_or(0)) / 1000.0);
        self.tasks.spawn(async move {
            tokio::pin!(stopped);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            loop {
                tokio::select! {
                    () = &mut stopped => return,
                    _ = tick.tick() => {}
                }
                let event = PlayEvent {
                    id: signet_agent::events::new_event_id(),
                    device_id: device.clone(),
                    item: ItemId::new("sim-item".to_owned()),
                    access_group: None,
                    license_version: None,
                    start: Utc::now(),
                    duration_ms: 10_000,
                    outcome: Outcome::Played,
                    skip_reason: None,
                    country: None,
                    region: None,
                    os: "signet-sim".to_owned(),
                    agent_version: signet_agent::VERSION.to_owned(),
                };
                let log = log.clone();
                if let Ok(Ok(())) = tokio::task::spawn_blocking(move || log.record(&[event])).await
                {
                    wake.notify_one();
                }
            }
        });
        Ok(())
    }

    /// Waits until every screen holds `kind`/`subject(device)` at
    /// `version` or above, for at most `limit`.
    pub async fn applied(
        &self,
        kind: DocumentKind,
        subject: impl Fn(&DeviceId) -> String,
        version: impl Fn(&DeviceId) -> u64,
        limit: Duration,
    ) -> Reached {
        self.reach(limit, |screen| {
            screen
                .probe
                .applied(kind, &subject(&screen.device))
                .filter(|(held, _)| *held >= version(&screen.device))
                .map(|(_, at)| at)
        })
        .await
    }

    /// Waits until every screen plays `group`'s manifest at `version` or
    /// above, for at most `limit`.
    pub async fn activated(&self, group: &str, version: u64, limit: Duration) -> Reached {
        self.reach(limit, |screen| {
            screen
                .probe
                .activated(group)
                .filter(|(held, _)| *held >= version)
                .map(|(_, at)| at)
        })
        .await
    }

    async fn reach(&self, limit: Duration, at: impl Fn(&Screen) -> Option<Instant>) -> Reached {
        let deadline = Instant::now() + limit;
        loop {
            let reached: Vec<Option<Instant>> = self.screens.iter().map(&at).collect();
            if reached.iter().all(Option::is_some) || Instant::now() >= deadline {
                return Reached { at: reached };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Why screens' sync cores stopped early.
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops every screen (each publishes its offline state and
    /// disconnects) and waits for all tasks, at most `limit`.
    pub async fn stop(mut self, limit: Duration) {
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(limit, all).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

/// Starts the probes' runtime on a thread of its own; it ends (and drops
/// what still runs on it) once `stop` says so.
fn probe_thread(mut stop: watch::Receiver<bool>) -> Result<tokio::runtime::Handle, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("sim-probes".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(handle)
}

/// Records in `probe` when each watched document became durable: the
/// verifier bumps `documents` after every commit, and the version is the
/// one the durable rollback guard holds.
async fn watch_applied(
    store: Store,
    mut documents: watch::Receiver<u64>,
    watched: Vec<(DocumentKind, String)>,
    probe: Arc<Probe>,
    stopped: impl Future<Output = ()>,
) {
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            changed = documents.changed() => if changed.is_err() { return },
        }
        let at = Instant::now();
        documents.borrow_and_update();
        let Ok(guard) = store.guard() else { continue };
        for (kind, subject) in &watched {
            if let Some(held) = guard.held(*kind, subject) {
                probe.record(format!("{kind}/{subject}"), held.version, at);
            }
        }
    }
}

/// Raises this process's open-file limit to its hard limit (children, the
/// hub and its broker, inherit it); returns the limit now in force.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_open_files() -> Result<u64, String> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(|e| e.to_string())?;
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}
