//! The playback loop (D1, D4, D6, D7, D8, U1): the executor of the
//! [`Screen`]'s plans.
//!
//! Owns: the I/O around the pure decision — it reads the documents, the
//! trusted clock and the player's failures, asks [`crate::decide`] what may
//! play, hands both to [`Screen::step`], and carries out the [`Plan`]: shows
//! or clears through the [`Player`], prepares the next item, records the
//! events durably in the [`EventLog`] and then wakes the uploader,
//! publishes what plays and the feed bindings, and keeps the status report
//! file current ([`crate::status`]). It also carries out the player's
//! commands (screenshot, restart). Must not: decide what plays (the plan
//! does), download or talk to the network.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use signet_common::approval::FeedBinding;
use signet_common::clock::TrustedClock;
use signet_common::documents::{CommandAction, DecodeLimit, ItemKind, ManifestItem};
use signet_common::ids::ItemId;
use signet_common::play::SkipReason;
use signet_common::schedule::Slot;
use signet_common::sync::{NowPlaying, PlayEvent};
use tokio::sync::{Notify, mpsc, watch};

use super::plan::{Look, MainChange, Plan, Screen};
use super::{Player, Showable, Source};
use crate::cache::Cache;
use crate::clock::DeviceClock;
use crate::decide::Decider;
use crate::events::EventLog;
use crate::state::{Documents, Store};
use crate::status;

/// How often the loop looks again even when nothing announced a change.
const IDLE_WAKE: Duration = Duration::from_secs(5);

/// The playback loop's links to the rest of the agent.
#[derive(Debug)]
pub struct Links {
    /// Bumped when a playing manifest switched or stopped.
    pub playing: watch::Receiver<u64>,
    /// Bumped when the accepted documents changed (the assignment).
    pub documents: watch::Receiver<u64>,
    /// The trusted clock as the verifier holds it.
    pub clock: watch::Receiver<TrustedClock>,
    /// Notified when a cached file was quarantined or added.
    pub cache_changed: Arc<Notify>,
    /// What plays now, for the device state.
    pub now_playing: watch::Sender<Option<NowPlaying>>,
    /// Woken after events were recorded.
    pub upload: Arc<Notify>,
    /// `screenshot` and `restart_player` commands from the verifier.
    pub commands: mpsc::Receiver<CommandAction>,
    /// Screenshots (PNG) to upload to the hub (D8).
    pub screenshots: mpsc::Sender<Vec<u8>>,
    /// The feed bindings of the template on screen, by zone id (D6).
    pub feed_wanted: watch::Sender<Vec<(String, FeedBinding)>>,
    /// This device's feed variables `[1]`…`[25]`, from its assignment.
    pub feed_variables: watch::Sender<BTreeMap<u8, String>>,
    /// The bound zones' current texts, from the feed task.
    pub feed_texts: watch::Receiver<BTreeMap<String, String>>,
}

/// Makes a new player (for `restart_player`).
pub type PlayerFactory = Box<dyn Fn() -> Box<dyn Player> + Send>;

/// The playback loop's state.
pub struct Playback {
    /// The durable state (documents).
    store: Store,
    /// This device.
    device: String,
    /// The verified content.
    cache: Cache,
    /// The screen.
    player: Box<dyn Player>,
    /// The durable event queue.
    events: EventLog,
    /// The device clocks.
    device_clock: DeviceClock,
    /// Where the status report goes.
    status_path: PathBuf,
    /// Item decisions and the parsed templates they need.
    decider: Decider,
    /// What the scheduler put on screen, and the plans.
    screen: Screen,
    /// Notified by the player when it has something to report.
    player_wake: Arc<Notify>,
    /// Makes a fresh player for `restart_player`, if the player can be
    /// restarted.
    factory: Option<PlayerFactory>,
    /// What video this device decodes (M3): which rendition it plays.
    decode: Option<DecodeLimit>,
}

impl Playback {
    /// A playback loop showing through `player`.
    #[must_use]
    pub fn new(
        store: Store,
        device: String,
        cache: Cache,
        player: Box<dyn Player>,
        events: EventLog,
        os: String,
    ) -> Self {
        let status_path = store.dir().join(status::STATUS_FILE);
        let mut player = player;
        let player_wake = Arc::new(Notify::new());
        player.attach(player_wake.clone());
        Self {
            decider: Decider::new(cache.clone()),
            screen: Screen::new(device.clone(), os),
            store,
            device,
            cache,
            player,
            events,
            device_clock: DeviceClock::new(),
            status_path,
            player_wake,
            factory: None,
            decode: None,
        }
    }

    /// Lets `restart_player` replace the player with a fresh one.
    #[must_use]
    pub fn with_factory(mut self, factory: PlayerFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Plays the renditions that fit `decode` instead of originals (M3).
    #[must_use]
    pub fn with_decode(mut self, decode: Option<DecodeLimit>) -> Self {
        self.decode = decode;
        self
    }

    /// Runs until `shutdown`; then records the plays on screen up to now.
    pub async fn run(mut self, mut links: Links, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut documents = self.load().await;
        let mut last_status = std::time::Instant::now();
        let mut status_due = true;
        let player_wake = self.player_wake.clone();
        loop {
            let clock = links.clock.borrow().clone();
            let now = clock.peek(&self.device_clock.read());
            let (wake_at, events) = self.tick(&documents, &clock, now, &links);
            self.record(events, &links).await;
            if status_due || last_status.elapsed() >= Duration::from_secs(2) {
                status_due = false;
                last_status = std::time::Instant::now();
                self.write_status(&documents, &clock).await;
            }
            let sleep = (wake_at - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(20), IDLE_WAKE);
            tokio::select! {
                () = &mut shutdown => break,
                changed = links.playing.changed() => {
                    if changed.is_err() { break }
                    documents = self.load().await;
                    status_due = true;
                }
                changed = links.documents.changed() => {
                    if changed.is_err() { break }
                    documents = self.load().await;
                    status_due = true;
                }
                () = links.cache_changed.notified() => self.decider.forget_templates(),
                () = player_wake.notified() => {}
                command = links.commands.recv() => {
                    if let Some(command) = command {
                        self.command(command, &links);
                    }
                }
                changed = links.feed_texts.changed() => {
                    if changed.is_ok() {
                        let texts = links.feed_texts.borrow_and_update().clone();
                        tracing::info!(?texts, "template texts updated from feeds");
                        self.player.set_texts(&texts);
                    }
                }
                () = tokio::time::sleep(sleep) => {}
            }
        }
        let clock = links.clock.borrow().clone();
        let now = clock.peek(&self.device_clock.read());
        let events = self.screen.finish(&documents, now);
        self.record(events, &links).await;
        self.write_status(&documents, &clock).await;
    }

    /// One look at the schedule at `now`: gathers what the plan needs
    /// (the player's failures, the decision, the files still to hash),
    /// lets [`Screen::step`] decide and applies its plan; returns when to
    /// look again and the events to record.
    fn tick(
        &mut self,
        documents: &Documents,
        clock: &TrustedClock,
        now: DateTime<Utc>,
        links: &Links,
    ) -> (DateTime<Utc>, Vec<PlayEvent>) {
        // Files the player could not decode are unusable from now on, so
        // the decision moves on to the next item.
        let errors = self.player.take_errors();
        for error in &errors {
            let listed = documents
                .playing_in_order()
                .into_iter()
                .find_map(|m| m.item(&error.item).cloned());
            if let Some(listed) = listed {
                self.decider
                    .mark_broken(listed.sha256, error.message.clone());
            }
        }
        let outlook = self.decider.outlook(documents, clock, now);
        let awaiting = outlook
            .iter()
            .flat_map(|o| &o.skipped)
            .filter(|(slot, reason)| {
                matches!(reason, SkipReason::NotCached)
                    && self.awaits_verification(documents, &slot.item)
            })
            .map(|(slot, _)| slot.item.clone())
            .collect();
        let mut plan = self.screen.step(Look {
            documents,
            now,
            errors,
            outlook,
            awaiting,
        });
        self.apply(&mut plan, documents, now, links);
        (plan.wake, plan.events)
    }

    /// Carries out `plan` on the player and the links: the main layer
    /// first (a show that fails is a skip and a blank screen), then the
    /// preroll.
    fn apply(&mut self, plan: &mut Plan, documents: &Documents, now: DateTime<Utc>, links: &Links) {
        match plan.main.clone() {
            Some(MainChange::Show(slot)) => {
                if let Err(reason) = self.show(documents, &slot, links) {
                    self.screen
                        .show_failed(plan, documents, &slot, &reason, now);
                    self.player.clear();
                }
            }
            Some(MainChange::Clear) => self.player.clear(),
            None => {}
        }
        links.now_playing.send_replace(plan.now_playing.clone());
        if let Some(next) = &plan.preroll
            && let Ok(showable) = self.showable(documents, next)
        {
            self.player.preroll(&showable);
        }
    }

    /// Shows `slot`'s item: builds what the player needs, hands the feed
    /// task the template's bindings and the device's feed variables (D6),
    /// and asks the player; why not when it cannot.
    fn show(&mut self, documents: &Documents, slot: &Slot, links: &Links) -> Result<(), String> {
        let mut showable = self.showable(documents, &slot.item)?;
        let bindings = match &mut showable {
            Showable::Template {
                template, texts, ..
            } => {
                let current = links.feed_texts.borrow();
                let bindings: Vec<(String, FeedBinding)> = template
                    .zones
                    .iter()
                    .filter_map(|zone| zone.feed.clone().map(|feed| (zone.id.clone(), feed)))
                    .collect();
                for (zone, feed) in &bindings {
                    if let Some(text) = current.get(zone).or(feed.last_value.as_ref()) {
                        texts.insert(zone.clone(), text.clone());
                    }
                }
                bindings
            }
            Showable::Media { .. } => Vec::new(),
        };
        if let Some(assignment) = &documents.assignment {
            links
                .feed_variables
                .send_if_modified(|v| replace_if_changed(v, &assignment.variables));
        }
        links
            .feed_wanted
            .send_if_modified(|w| replace_if_changed(w, &bindings));
        self.player.show(&showable)
    }

    /// Whether `item`'s file is on disk but not yet hashed; if so, it is
    /// hashed next (A8).
    fn awaits_verification(&self, documents: &Documents, item: &ItemId) -> bool {
        let Some(sha256) = documents
            .playing_in_order()
            .into_iter()
            .find_map(|m| m.item(item).map(|i| i.sha256))
        else {
            return false;
        };
        self.cache.prioritize(&sha256);
        self.cache.awaits_verification(&sha256)
    }

    /// Carries out a player command from the hub.
    fn command(&mut self, command: CommandAction, links: &Links) {
        match command {
            CommandAction::Screenshot => match self.player.screenshot() {
                Ok(png) => {
                    if links.screenshots.try_send(png).is_err() {
                        tracing::warn!(
                            "a screenshot upload is already waiting; this one is dropped"
                        );
                    }
                }
                Err(reason) => tracing::warn!(%reason, "no screenshot"),
            },
            CommandAction::RestartPlayer => match &self.factory {
                Some(factory) => {
                    tracing::info!("restarting the player");
                    self.player.clear();
                    self.player = factory();
                    self.player.attach(self.player_wake.clone());
                    // What was on screen is shown again by the next step;
                    // its play so far stays unrecorded (a restart is a cut).
                    self.screen.forget_main();
                }
                None => tracing::warn!("this player cannot be restarted"),
            },
            other => tracing::debug!(?other, "not a player command"),
        }
    }

    /// What the player needs to show `item`: its file, or for a template
    /// the layout, its sources' files and the zones' texts.
    fn showable(&self, documents: &Documents, item: &ItemId) -> Result<Showable, String> {
        let manifest = documents
            .playing_in_order()
            .into_iter()
            .find(|m| m.item(item).is_some())
            .ok_or_else(|| "no playing manifest lists it".to_owned())?;
        let listed = manifest
            .item(item)
            .cloned()
            .ok_or_else(|| "no playing manifest lists it".to_owned())?;
        // Only a file still as it was hashed is handed to the player (A8).
        let source = |item: &ManifestItem| -> Result<Source, String> {
            let file = self.cache.open_verified(&item.sha256).ok_or_else(|| {
                format!(
                    "the cached file of {} changed since it was verified; verifying it again",
                    item.id
                )
            })?;
            Ok(Source {
                kind: item.kind,
                path: self.cache.blob_path(&item.sha256),
                file: Arc::new(file),
            })
        };
        if listed.kind != ItemKind::Template {
            return Ok(Showable::Media {
                source: source(&listed)?,
                item: listed,
            });
        }
        let template = self.decider.template(&listed)?;
        let mut sources = BTreeMap::new();
        for zone in &template.zones {
            if let Some(id) = &zone.source {
                let zone_item = manifest
                    .item(id)
                    .ok_or_else(|| format!("zone {} shows {id}, which is not listed", zone.id))?;
                sources.insert(id.clone(), source(zone_item)?);
            }
        }
        let texts = template
            .zones
            .iter()
            .filter_map(|zone| zone.text.clone().map(|text| (zone.id.clone(), text)))
            .collect();
        Ok(Showable::Template {
            item: listed,
            template,
            sources,
            texts,
        })
    }

    /// Records `events` durably, then wakes the uploader.
    async fn record(&mut self, events: Vec<PlayEvent>, links: &Links) {
        if events.is_empty() {
            return;
        }
        let log = self.events.clone();
        let count = events.len();
        match tokio::task::spawn_blocking(move || log.record(&events)).await {
            Ok(Ok(())) => {
                tracing::debug!(count, "events recorded");
                links.upload.notify_one();
            }
            Ok(Err(error)) => tracing::error!(%error, count, "could not record play events"),
            Err(error) => tracing::error!(%error, "event task failed"),
        }
    }

    async fn load(&mut self) -> Documents {
        Documents::load_blocking(self.store.clone(), self.device.clone())
            .await
            .map(|documents| documents.for_device(self.decode.as_ref()))
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot read the playing manifests");
                Documents::default()
            })
    }

    async fn write_status(&mut self, documents: &Documents, clock: &TrustedClock) {
        let reading = self.device_clock.read();
        let text = status::report(
            &self.device,
            documents,
            clock,
            &reading,
            &mut self.decider,
            self.screen.now_showing(),
        );
        let path = self.status_path.clone();
        let result =
            tokio::task::spawn_blocking(move || status::write_replace(&path, text.as_bytes()))
                .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not write the status report"),
            Err(error) => tracing::warn!(%error, "status task failed"),
        }
    }
}

/// Replaces `current` with `new` if they differ; whether it did.
fn replace_if_changed<T: Clone + PartialEq>(current: &mut T, new: &T) -> bool {
    if current == new {
        return false;
    }
    new.clone_into(current);
    true
}
