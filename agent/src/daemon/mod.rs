//! `signet-agent run`: the tasks of a running agent and their wiring.
//!
//! Owns: starting, linking and stopping the tasks — the sync verifier
//! ([`crate::sync`]), the content task ([`crate::activate`]), the playback
//! loop ([`crate::player`]) with its player (GStreamer, or one that skips
//! everything with the reason when GStreamer cannot start), the data feeds
//! ([`crate::feeds`]), the screenshot upload ([`crate::screenshot`]), the
//! event uploader ([`crate::events`]) and the file watcher
//! ([`crate::watch`]) with what its changes mean: a changed
//! cached file is verified again (and quarantined and fetched again if it no
//! longer matches, D9), and between changes every cached file found at the
//! start is hashed before it may play (A8); a changed config file is validated and applied where
//! that can be done live, or rejected with a logged reason; and the link to
//! systemd: readiness once all runs, a health tick that pings the watchdog
//! while every essential task runs (O1). Must not: hold any rule of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use signet_common::clock::TrustedClock;
use signet_common::digest::Sha256;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::activate::{self, Activator};
use crate::cache::download::{DownloadSettings, Downloader, HubCredentials};
use crate::cache::{Cache, Reverified};
use crate::clock::DeviceClock;
use crate::config::AgentConfig;
use crate::config::VideoSink;
use crate::events::EventLog;
use crate::events::upload::{self, Uploader};
use crate::feeds::Feeds;
use crate::player::gst::GstPlayer;
use crate::player::{self, Playback, Player, PlayerFactory, UnavailablePlayer};
use crate::retry::Backoff;
use crate::sensors::{self, Readings};
use crate::state::Store;
use crate::sync::{self, LocalReport, SyncError};
use crate::systemd::{self, NotifyState};
use crate::watch::{Change, Watcher};

mod tasks;
use tasks::EssentialTasks;

/// How many download attempts one pass makes per file before the content
/// task tries again later.
const DOWNLOAD_ATTEMPTS: u32 = 4;
/// A download request that receives nothing for this long is retried.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often free disk and temperature are read for the state message (U4).
const READINGS_EVERY: Duration = Duration::from_secs(30);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The sync core failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The cache could not be opened.
    #[error("content cache: {0}")]
    Cache(String),
    /// The event queue could not be opened.
    #[error("event queue: {0}")]
    Events(String),
    /// The file watcher could not start.
    #[error("file watcher: {0}")]
    Watch(String),
    /// The feed store could not be opened.
    #[error("data feeds: {0}")]
    Feeds(String),
}

/// Runs the agent until `shutdown` completes; then stops every task
/// cleanly (the playback loop records what was on screen, the verifier
/// publishes the offline state).
///
/// # Errors
/// [`DaemonError`] when a part cannot start.
pub async fn run(
    config: AgentConfig,
    config_path: Option<PathBuf>,
    store: Store,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (sink, width, height) = (config.video_sink, config.screen_width, config.screen_height);
    let (problem_tx, problem_rx) = watch::channel(None);
    let factory: PlayerFactory =
        Box::new(move || gstreamer_player(sink, width, height, &problem_tx));
    run_with_player(config, config_path, store, factory, problem_rx, shutdown).await
}

/// The GStreamer player for `sink` (for `auto`, the first usable display,
/// else headless); when GStreamer cannot start, a player that refuses every
/// item with the reason, so nothing is reported as played that was not
/// shown, and sync and reporting go on (D7). Why it does not show as
/// configured goes to `problem`, for the device state (U4).
fn gstreamer_player(
    sink: VideoSink,
    width: u32,
    height: u32,
    problem: &watch::Sender<Option<String>>,
) -> Box<dyn Player> {
    let started = if sink == VideoSink::Auto {
        GstPlayer::auto(width, height)
    } else {
        GstPlayer::new(sink, width, height).map(|player| (player, None))
    };
    match started {
        Ok((player, trouble)) => {
            problem.send_replace(trouble);
            Box::new(player)
        }
        Err(error) => {
            tracing::error!(%error, ?sink, "the GStreamer player cannot start; every item is skipped");
            problem.send_replace(Some(format!("the player cannot start: {error}")));
            Box::new(UnavailablePlayer {
                reason: error.to_string(),
            })
        }
    }
}

/// As [`run`], showing through the players `factory` makes (one at start,
/// another for each `restart_player` command); `player_problem` says why
/// the player does not show as configured, for the device state.
///
/// # Errors
/// As [`run`].
pub async fn run_with_player(
    config: AgentConfig,
    config_path: Option<PathBuf>,
    store: Store,
    factory: PlayerFactory,
    mut player_problem: watch::Receiver<Option<String>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let identity = store.require_identity().map_err(SyncError::from)?;
    let secret = store.secret().map_err(SyncError::from)?;
    let device = identity.device_id.as_str().to_owned();
    let hub_url = config
        .hub_url
        .clone()
        .unwrap_or_else(|| identity.hub_url.clone());
    let device_clock = DeviceClock::new();
    let held = sync::load_held(&store, &device_clock)?;

    let cache = {
        let (store, dir, limit) = (
            store.clone(),
            store.dir().to_owned(),
            config.cache_limit_bytes(),
        );
        tokio::task::spawn_blocking(move || Cache::open(&dir, &store, limit))
            .await
            .map_err(|e| DaemonError::Cache(e.to_string()))?
            .map_err(|e| DaemonError::Cache(e.to_string()))?
    };
    let backoff = Backoff {
        base: config.reconnect_base(),
        cap: config.reconnect_cap(),
    };
    let downloader = Downloader::new(
        cache.clone(),
        DownloadSettings {
            concurrency: config.download_concurrency,
            rate_bytes_per_sec: config.download_rate_bytes(),
            backoff,
            attempts: DOWNLOAD_ATTEMPTS,
            credentials: Some(HubCredentials {
                base_url: hub_url.clone(),
                device_id: device.clone(),
                secret: secret.clone(),
            }),
            timeout: DOWNLOAD_TIMEOUT,
        },
    )
    .map_err(|e| DaemonError::Cache(e.to_string()))?;
    let events = EventLog::open(&store).map_err(|e| DaemonError::Events(e.to_string()))?;
    let device_key = Arc::new(store.device_key().map_err(SyncError::from)?);
    let uploader = Uploader::new(&hub_url, &device, &secret, device_key)
        .map_err(|e| DaemonError::Events(e.to_string()))?;

    let (documents_tx, documents_rx) = watch::channel(0u64);
    let (clock_tx, clock_rx) = watch::channel::<TrustedClock>(held.clock.clone());
    let (playing_tx, playing_rx) = watch::channel(0u64);
    let (progress_tx, mut progress_rx) = watch::channel(None);
    let (now_playing_tx, mut now_playing_rx) = watch::channel(None);
    let (local_tx, local_rx) = watch::channel(LocalReport::default());
    let (purge_tx, purge_rx) = mpsc::channel(1);
    let (player_tx, player_rx) = mpsc::channel(4);
    let (shots_tx, mut shots_rx) = mpsc::channel::<Vec<u8>>(1);
    let (feed_wanted_tx, feed_wanted_rx) = watch::channel(Vec::new());
    let (feed_variables_tx, feed_variables_rx) = watch::channel(BTreeMap::new());
    let (feed_texts_tx, feed_texts_rx) = watch::channel(BTreeMap::new());
    let feeds = Feeds::new(&store).map_err(|e| DaemonError::Feeds(e.to_string()))?;
    let content_wake = Arc::new(Notify::new());
    let cache_changed = Arc::new(Notify::new());
    let upload_wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let mut tasks = EssentialTasks::new();

    let (change_tx, change_rx) = mpsc::channel(256);
    let watcher = Watcher::start(&cache.blobs_dir(), config_path.as_deref(), change_tx)
        .map_err(|e| DaemonError::Watch(e.to_string()))?;

    // M3: which renditions this screen fetches and plays.
    let decode = config.max_decode.resolve(crate::sensors::is_raspberry_pi());
    if let Some(limit) = &decode {
        tracing::info!(%limit, "videos play as renditions within this decode limit where the hub made one");
    }
    tasks.spawn(
        "content",
        Activator::new(
            store.clone(),
            device.clone(),
            cache.clone(),
            downloader.clone(),
            backoff,
        )
        .with_decode(decode.clone())
        .run(
            activate::Links {
                documents: documents_rx.clone(),
                clock: clock_rx.clone(),
                playing: playing_tx,
                progress: progress_tx,
                wake: content_wake.clone(),
                purge: purge_rx,
            },
            stop.clone().cancelled_owned(),
        ),
    );
    tasks.spawn(
        "player",
        Playback::new(
            store.clone(),
            device.clone(),
            cache.clone(),
            factory(),
            events.clone(),
            sync::report::os_name(),
        )
        .with_factory(factory)
        .with_decode(decode)
        .run(
            player::Links {
                playing: playing_rx,
                documents: documents_rx,
                clock: clock_rx,
                cache_changed: cache_changed.clone(),
                now_playing: now_playing_tx,
                upload: upload_wake.clone(),
                commands: player_rx,
                screenshots: shots_tx,
                feed_wanted: feed_wanted_tx,
                feed_variables: feed_variables_tx,
                feed_texts: feed_texts_rx,
            },
            stop.clone().cancelled_owned(),
        ),
    );
    tasks.spawn(
        "data feeds",
        crate::feeds::run(
            feeds,
            feed_wanted_rx,
            feed_variables_rx,
            feed_texts_tx,
            stop.clone().cancelled_owned(),
        ),
    );
    // Screenshots go to the hub over HTTP (D8; bulk bytes never go over MQTT).
    {
        let stop = stop.clone();
        let (hub_url, device, secret) = (hub_url.clone(), device.clone(), secret.clone());
        tasks.spawn("screenshot upload", async move {
            loop {
                let png = tokio::select! {
                    () = stop.cancelled() => return,
                    png = shots_rx.recv() => match png {
                        Some(png) => png,
                        None => return,
                    },
                };
                let bytes = png.len();
                match crate::screenshot::upload(&hub_url, &device, &secret, png).await {
                    Ok(()) => tracing::info!(bytes, "screenshot uploaded"),
                    Err(error) => tracing::warn!(%error, "screenshot upload failed"),
                }
            }
        });
    }
    tasks.spawn(
        "event upload",
        upload::run(
            events,
            uploader,
            upload_wake,
            Duration::from_secs(config.event_upload_secs),
            backoff,
            stop.clone().cancelled_owned(),
        ),
    );
    // The state message carries what the player and the content task say,
    // and the device's readings (U4), refreshed every READINGS_EVERY
    // without waking the verifier: its next message carries them.
    {
        let stop = stop.clone();
        let cache = cache.clone();
        let data_dir = store.dir().to_owned();
        tasks.spawn("local report", async move {
            let read = move || Readings::take(&data_dir, Path::new(sensors::SYSFS));
            let mut refresh = tokio::time::interval(READINGS_EVERY);
            loop {
                let changed = tokio::select! {
                    () = stop.cancelled() => return,
                    changed = progress_rx.changed() => changed.is_ok(),
                    changed = now_playing_rx.changed() => changed.is_ok(),
                    changed = player_problem.changed() => changed.is_ok(),
                    _ = refresh.tick() => {
                        let readings = read();
                        local_tx.send_if_modified(|report| {
                            report.readings = readings;
                            false
                        });
                        continue;
                    }
                };
                if !changed {
                    return;
                }
                let content = progress_rx.borrow_and_update().clone();
                let (progress, activated, pending) = match content {
                    Some(c) => (Some(c.cache), c.activated, c.pending),
                    None => Default::default(),
                };
                let report = LocalReport {
                    now_playing: now_playing_rx.borrow_and_update().clone(),
                    cache_bytes: cache.used_bytes(),
                    cache: progress,
                    activated,
                    pending,
                    readings: read(),
                    player_problem: player_problem.borrow_and_update().clone(),
                };
                local_tx.send_replace(report);
            }
        });
    }
    let startup = config.clone();
    tasks.spawn(
        "file changes",
        Changes {
            cache,
            downloader,
            config,
            config_path,
            content_wake,
            cache_changed,
        }
        .run(change_rx, stop.clone().cancelled_owned()),
    );

    let local_status = local_rx.clone();
    let shutdown = async {
        shutdown.await;
        systemd::notify(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: recording what was on screen, going offline"),
        ]);
    };
    // The MQTT session keeps the configuration it started with; a live
    // change of its keys takes effect at the next start.
    let sync = sync::run(
        &startup,
        store,
        held,
        sync::Links {
            documents: documents_tx,
            clock: clock_tx,
            local: local_rx,
            purge: purge_tx,
            player: player_tx,
        },
        shutdown,
    );
    tokio::pin!(sync);
    // The supervision runs in this task, beside the sync loop: a wedged
    // loop stops the health tick too.
    let result = tokio::select! {
        result = &mut sync => result,
        () = supervise(&mut tasks, &device, local_status) => sync.await,
    };
    stop.cancel();
    tasks.join_all().await;
    drop(watcher);
    result.map_err(DaemonError::from)
}

/// Tells systemd `READY=1` (the state is open and every task runs), keeps
/// the `STATUS=` line up to date with what plays, and, when systemd set a
/// watchdog, pings it from a health tick at half its period while every
/// essential task still runs; once one has ended the pings stop, so systemd
/// restarts the agent (O1). Runs until dropped.
async fn supervise(
    tasks: &mut EssentialTasks,
    device: &str,
    mut local: watch::Receiver<LocalReport>,
) {
    let mut status = systemd::status_line(device, &local.borrow_and_update());
    systemd::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!(%status, "ready");
    let mut tick = systemd::watchdog_period().map(|period| {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let mut local_open = true;
    let mut failing = false;
    loop {
        let next_tick = async {
            match &mut tick {
                Some(tick) => {
                    tick.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = local.changed(), if local_open => {
                if changed.is_err() {
                    local_open = false;
                    continue;
                }
                let line = systemd::status_line(device, &local.borrow_and_update());
                if !failing && line != status {
                    status = line;
                    systemd::notify(&[NotifyState::Status(&status)]);
                }
            }
            () = next_tick => match tasks.check() {
                Ok(()) => systemd::notify(&[NotifyState::Watchdog]),
                Err(reason) => {
                    if !failing {
                        tracing::error!(
                            %reason,
                            "health check failed: withholding the watchdog ping so systemd restarts the agent"
                        );
                        systemd::notify(&[NotifyState::Status(&format!("unhealthy: {reason}"))]);
                    }
                    failing = true;
                }
            },
        }
    }
}

/// What file-system changes mean (D9).
struct Changes {
    /// The cache, to verify changed files again.
    cache: Cache,
    /// The downloader, whose rate a config change may set.
    downloader: Downloader,
    /// The configuration in force.
    config: AgentConfig,
    /// The config file, if the agent was started with one.
    config_path: Option<PathBuf>,
    /// Wakes the content task (to fetch a quarantined file again).
    content_wake: Arc<Notify>,
    /// Tells the player that cached content changed.
    cache_changed: Arc<Notify>,
}

impl Changes {
    /// Handles file changes and, between them, hashes the cached files that
    /// wait for verification (all of them after a start, A8), one at a
    /// time, so a change is never kept waiting behind the whole cache.
    async fn run(mut self, mut changes: mpsc::Receiver<Change>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut verifying = false;
        loop {
            let waiting = self.cache.unverified_count() > 0;
            if verifying && !waiting {
                verifying = false;
                tracing::info!("cache: every cached file hashed to its name (A8)");
                self.content_wake.notify_one();
            }
            let change = if waiting {
                verifying = true;
                tokio::select! {
                    biased;
                    () = &mut stop => return,
                    change = changes.recv() => change,
                    () = std::future::ready(()) => {
                        self.verify_next().await;
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    () = &mut stop => return,
                    change = changes.recv() => change,
                    () = self.cache.unverified_added() => continue,
                }
            };
            let Some(change) = change else { return };
            match change {
                Change::Blob(path) => self.blob_changed(path).await,
                Change::Config => self.config_changed(),
                Change::Overflow => self.verify_all().await,
            }
        }
    }

    async fn blob_changed(&self, path: PathBuf) {
        let cache = self.cache.clone();
        let shown = path.display().to_string();
        match tokio::task::spawn_blocking(move || cache.reverify_path(&path)).await {
            Ok(Ok(Some((sha256, outcome)))) => self.hashed(sha256, outcome),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::error!(path = %shown, %error, "could not verify a changed cache file")
            }
            Err(error) => tracing::error!(%error, "cache task failed"),
        }
    }

    /// Reports what hashing `sha256` again found (D9, A8), in the same
    /// words whichever path hashed it: the watcher's change, or the
    /// verification queue — which also takes a file the player's play-time
    /// check saw change first (within the watcher's debounce; the watcher's
    /// own change then finds the file already gone) and the files waiting
    /// after a start.
    fn hashed(&self, sha256: Sha256, outcome: Reverified) {
        match outcome {
            Reverified::Intact => {}
            Reverified::Quarantined => tracing::warn!(
                %sha256,
                "cached file changed on disk and no longer matches its hash: quarantined, not played, fetching it again (D9)"
            ),
            Reverified::Absent => {
                tracing::warn!(%sha256, "cached file disappeared: fetching it again (D9)");
            }
        }
        self.cache_changed.notify_one();
        if outcome != Reverified::Intact {
            self.content_wake.notify_one();
        }
    }

    /// Hashes the next cached file waiting for verification (A8, D9).
    async fn verify_next(&self) {
        let cache = self.cache.clone();
        match tokio::task::spawn_blocking(move || cache.verify_next()).await {
            Ok(Ok(Some((sha256, outcome)))) => self.hashed(sha256, outcome),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "could not verify a cached file; it is not played and is fetched again");
                self.content_wake.notify_one();
            }
            Err(error) => tracing::error!(%error, "cache task failed"),
        }
    }

    async fn verify_all(&self) {
        tracing::warn!("too many file changes at once: verifying the whole cache again");
        let cache = self.cache.clone();
        let result = tokio::task::spawn_blocking(move || {
            cache
                .entries()
                .into_iter()
                .filter(|blob| {
                    matches!(
                        cache.reverify(&blob.sha256),
                        Ok(Reverified::Quarantined | Reverified::Absent)
                    )
                })
                .count()
        })
        .await;
        if let Ok(bad) = result
            && bad > 0
        {
            tracing::warn!(bad, "cached files quarantined after the full check (D9)");
        }
        self.cache_changed.notify_one();
        self.content_wake.notify_one();
    }

    fn config_changed(&mut self) {
        let Some(path) = &self.config_path else {
            return;
        };
        let new = match AgentConfig::load(Some(path)) {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(
                    %error,
                    "config change rejected; the running configuration stays (D9)"
                );
                return;
            }
        };
        if new == self.config {
            return;
        }
        let old = std::mem::replace(&mut self.config, new);
        let new = &self.config;
        let mut applied = Vec::new();
        if new.cache_limit_mb != old.cache_limit_mb {
            self.cache.set_limit(new.cache_limit_bytes());
            applied.push("cache_limit_mb");
            self.content_wake.notify_one();
        }
        if new.download_rate_kib != old.download_rate_kib {
            self.downloader.set_rate(new.download_rate_bytes());
            applied.push("download_rate_kib");
        }
        let at_restart: Vec<&str> = [
            ("data_dir", new.data_dir != old.data_dir),
            ("hub_url", new.hub_url != old.hub_url),
            ("broker_url", new.broker_url != old.broker_url),
            (
                "reconnect_base_ms",
                new.reconnect_base_ms != old.reconnect_base_ms,
            ),
            (
                "reconnect_cap_secs",
                new.reconnect_cap_secs != old.reconnect_cap_secs,
            ),
            (
                "keep_alive_secs",
                new.keep_alive_secs != old.keep_alive_secs,
            ),
            ("heartbeat_secs", new.heartbeat_secs != old.heartbeat_secs),
            ("queue_capacity", new.queue_capacity != old.queue_capacity),
            ("settle_ms", new.settle_ms != old.settle_ms),
            (
                "clock_persist_secs",
                new.clock_persist_secs != old.clock_persist_secs,
            ),
            (
                "download_concurrency",
                new.download_concurrency != old.download_concurrency,
            ),
            (
                "event_upload_secs",
                new.event_upload_secs != old.event_upload_secs,
            ),
            ("video_sink", new.video_sink != old.video_sink),
            ("screen_width", new.screen_width != old.screen_width),
            ("screen_height", new.screen_height != old.screen_height),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        tracing::info!(
            applied = ?applied,
            at_next_start = ?at_restart,
            "config change validated and applied (D9)"
        );
    }
}
