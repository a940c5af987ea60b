//! Playback and proof of play (D1, D4, A7, A8, U1).
//!
//! Owns: the playback loop — it combines the playing manifests' schedules,
//! asks [`signet_common::play::may_play`] about every due item at trusted
//! time, shows what may play through a [`Player`], and records every play
//! (when it ends, with its real duration) and every skip (with its reason)
//! durably in the [`EventLog`] before anything else learns of it; then it
//! wakes the uploader. It also keeps the status report file current. May
//! call: [`crate::cache`] (read only), [`crate::events`], `signet-common`'s
//! rules. Must not: download, accept documents or talk to the network.
//!
//! Plays come only from the local cache (D1): losing the hub or the broker
//! changes nothing here but the offline grace of licensed content.

pub mod decide;
pub mod gst;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::approval::FeedBinding;
use signet_common::approval::Template;
use signet_common::clock::TrustedClock;
use signet_common::documents::CommandAction;
use signet_common::documents::{ItemKind, ManifestItem};
use signet_common::ids::{EntryId, ItemId};
use signet_common::play::{Permit, SkipReason};
use signet_common::schedule::Slot;
use signet_common::sync::{NowPlaying, Outcome, PlayEvent, clip_text};
use tokio::sync::{Notify, mpsc, watch};

use crate::activate::Documents;
use crate::cache::Cache;
use crate::clock::DeviceClock;
use crate::events::{EventLog, new_event_id};
use crate::state::Store;
use decide::Decider;

/// How often the loop looks again even when nothing announced a change.
const IDLE_WAKE: Duration = Duration::from_secs(5);
/// How many recent skips are remembered, so one due slot is reported once.
const RECENT_SKIPS: usize = 512;
/// The status report file in the data dir, for `signet-agent status` while
/// the agent runs.
pub const STATUS_FILE: &str = "status.txt";

/// A file the player reads: a verified cached item, held open (A8).
#[derive(Debug, Clone)]
pub struct Source {
    /// What the bytes are (video, image, audio).
    pub kind: ItemKind,
    /// The file's path in the cache (for messages).
    pub path: PathBuf,
    /// The file as opened when it was checked: the player reads through
    /// this handle ([`Self::location`]), never through `path`, so a file
    /// put at `path` after the check is never read.
    pub file: Arc<std::fs::File>,
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.path == other.path && Arc::ptr_eq(&self.file, &other.file)
    }
}

impl Eq for Source {}

impl Source {
    /// A source reading the file at `path` as it is now (for files that
    /// are not in the cache: tests, tools).
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(kind: ItemKind, path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::File::open(&path)?;
        Ok(Self {
            kind,
            path,
            file: Arc::new(file),
        })
    }

    /// Where a reader that needs a path (GStreamer's `filesrc`) opens the
    /// held file: `/proc/self/fd/{fd}`, which opens the very file held
    /// even if `path` now names another one.
    #[must_use]
    pub fn location(&self) -> PathBuf {
        use std::os::fd::AsRawFd as _;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// What the player is asked to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Showable {
    /// A video, image or audio item, full screen.
    Media {
        /// The item as the manifest lists it.
        item: ManifestItem,
        /// Its verified file.
        source: Source,
    },
    /// A template: zones composed on its canvas (D6).
    Template {
        /// The template item as the manifest lists it.
        item: ManifestItem,
        /// The parsed, validated, approved layout.
        template: Template,
        /// The verified files of the items its video and image zones show.
        sources: BTreeMap<ItemId, Source>,
        /// The text each text or ticker zone shows now, by zone id: the
        /// feed's last good value, else the zone's static text.
        texts: BTreeMap<String, String>,
    },
}

impl Showable {
    /// The item shown.
    #[must_use]
    pub fn item(&self) -> &ManifestItem {
        match self {
            Self::Media { item, .. } | Self::Template { item, .. } => item,
        }
    }
}

/// A failure the player found after it started showing something (a file
/// that does not decode): the scheduler reports it as a skip and moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackError {
    /// The item that failed.
    pub item: ItemId,
    /// The player's message (GStreamer's error).
    pub message: String,
}

/// Shows content on the screen. The GStreamer player and the headless null
/// player implement it; tests may record. Methods never block for long:
/// the scheduler calls them from its loop.
pub trait Player: Send {
    /// Shows `what` until the next call, seamlessly after what was shown.
    ///
    /// # Errors
    /// Why it could not be shown; it is then reported as skipped.
    fn show(&mut self, what: &Showable) -> Result<(), String>;
    /// Prepares `next` so that a later [`Self::show`] of it starts without
    /// a gap. Optional.
    fn preroll(&mut self, next: &Showable) {
        let _ = next;
    }
    /// Updates the text zones of the template on screen (new feed values).
    fn set_texts(&mut self, texts: &BTreeMap<String, String>) {
        let _ = texts;
    }
    /// Shows nothing (a blank screen): nothing may play.
    fn clear(&mut self);
    /// A PNG of the composed frame on screen now (D8).
    ///
    /// # Errors
    /// Why there is none (nothing shown yet, no pixels in this player).
    fn screenshot(&mut self) -> Result<Vec<u8>, String>;
    /// Failures found since the last call.
    fn take_errors(&mut self) -> Vec<PlaybackError>;
    /// Gives the player a way to wake the scheduler when it has errors
    /// (or anything else) to report. Optional.
    fn attach(&mut self, wake: Arc<Notify>) {
        let _ = wake;
    }
}

/// The most calls a [`NullPlayer`] remembers (the oldest are dropped).
const MAX_RECORDED_CALLS: usize = 10_000;

/// One thing a [`NullPlayer`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayerCall {
    /// `show` of this item.
    Show(ItemId),
    /// `preroll` of this item.
    Preroll(ItemId),
    /// `clear`.
    Clear,
}

/// The null player: no pixels. It logs what it would show and records every
/// call with the moment it came (the last [`MAX_RECORDED_CALLS`]), for tests
/// that check the scheduler, not the screen. Clones share the record.
#[derive(Debug, Default, Clone)]
pub struct NullPlayer {
    /// The calls so far, oldest first.
    calls: Arc<std::sync::Mutex<VecDeque<(std::time::Instant, PlayerCall)>>>,
}

impl NullPlayer {
    /// The calls recorded so far, oldest first.
    #[must_use]
    pub fn calls(&self) -> Vec<(std::time::Instant, PlayerCall)> {
        self.lock().iter().cloned().collect()
    }

    /// The record, even if a holder panicked.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(std::time::Instant, PlayerCall)>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `call` now.
    fn record(&self, call: PlayerCall) {
        let mut calls = self.lock();
        if calls.len() >= MAX_RECORDED_CALLS {
            calls.pop_front();
        }
        calls.push_back((std::time::Instant::now(), call));
    }
}

impl Player for NullPlayer {
    fn show(&mut self, what: &Showable) -> Result<(), String> {
        tracing::info!(item = %what.item().id, "showing (no pixels)");
        self.record(PlayerCall::Show(what.item().id.clone()));
        Ok(())
    }

    fn preroll(&mut self, next: &Showable) {
        self.record(PlayerCall::Preroll(next.item().id.clone()));
    }

    fn clear(&mut self) {
        tracing::info!("nothing may play: screen cleared (no pixels)");
        self.record(PlayerCall::Clear);
    }

    fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        Err("the null player has no pixels".to_owned())
    }

    fn take_errors(&mut self) -> Vec<PlaybackError> {
        Vec::new()
    }
}

/// The player used when the real one cannot start: it shows nothing and
/// refuses every item with the reason, so each is reported as skipped.
#[derive(Debug)]
pub struct UnavailablePlayer {
    /// Why the real player could not start.
    pub reason: String,
}

impl Player for UnavailablePlayer {
    fn show(&mut self, _what: &Showable) -> Result<(), String> {
        Err(format!("the player is unavailable: {}", self.reason))
    }

    fn clear(&mut self) {}

    fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        Err(format!("the player is unavailable: {}", self.reason))
    }

    fn take_errors(&mut self) -> Vec<PlaybackError> {
        Vec::new()
    }
}

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

/// One slot on screen.
#[derive(Debug, Clone)]
struct Showing {
    /// The slot as the schedule gave it.
    slot: Slot,
    /// Why it may play.
    permit: Permit,
    /// When it started showing (trusted time).
    since: DateTime<Utc>,
}

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
    /// The OS name for events.
    os: String,
    /// Where the status report goes.
    status_path: PathBuf,
    /// Item decisions and the parsed templates they need.
    decider: Decider,
    /// The main layer's slot on screen.
    main: Option<Showing>,
    /// The overlays on screen, by combined entry id.
    overlays: BTreeMap<EntryId, Showing>,
    /// Due slots already reported as skipped: (item, slot start).
    recent_skips: VecDeque<(ItemId, DateTime<Utc>)>,
    /// Notified by the player when it has something to report.
    player_wake: Arc<Notify>,
    /// The upcoming slot last prepared: (item, slot start).
    prerolled: Option<(ItemId, DateTime<Utc>)>,
    /// Makes a fresh player for `restart_player`, if the player can be
    /// restarted.
    factory: Option<PlayerFactory>,
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
        let status_path = store.dir().join(STATUS_FILE);
        let mut player = player;
        let player_wake = Arc::new(Notify::new());
        player.attach(player_wake.clone());
        Self {
            decider: Decider::new(cache.clone()),
            store,
            device,
            cache,
            player,
            events,
            device_clock: DeviceClock::new(),
            os,
            status_path,
            main: None,
            overlays: BTreeMap::new(),
            recent_skips: VecDeque::new(),
            player_wake,
            prerolled: None,
            factory: None,
        }
    }

    /// Lets `restart_player` replace the player with a fresh one.
    #[must_use]
    pub fn with_factory(mut self, factory: PlayerFactory) -> Self {
        self.factory = Some(factory);
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
            let (wake_at, events) = self.step(&documents, &clock, now, &links);
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
        let mut events = Vec::new();
        if let Some(showing) = self.main.take() {
            events.extend(self.played(&documents, &showing, now));
        }
        for showing in std::mem::take(&mut self.overlays).into_values() {
            events.extend(self.played(&documents, &showing, now));
        }
        self.record(events, &links).await;
        self.write_status(&documents, &clock).await;
    }

    /// One look at the schedule at `now`: changes what is on screen and
    /// returns when to look again and the events to record.
    fn step(
        &mut self,
        documents: &Documents,
        clock: &TrustedClock,
        now: DateTime<Utc>,
        links: &Links,
    ) -> (DateTime<Utc>, Vec<PlayEvent>) {
        let mut events = Vec::new();
        // Files the player could not decode: skipped with the player's
        // message, and unusable from now on, so the next item plays.
        for error in self.player.take_errors() {
            tracing::warn!(item = %error.item, message = %error.message, "the player could not play it; skipping it");
            let listed = documents
                .playing_in_order()
                .into_iter()
                .find_map(|m| m.item(&error.item).cloned());
            if let Some(listed) = listed {
                self.decider
                    .mark_broken(listed.sha256, error.message.clone());
            }
            if self
                .main
                .as_ref()
                .is_some_and(|s| s.slot.item == error.item)
            {
                self.main = None;
            }
            events.push(self.event(
                documents,
                &error.item,
                None,
                now,
                0,
                Some(format!("player: {}", error.message)),
            ));
        }
        let Some(outlook) = self.decider.outlook(documents, clock, now) else {
            // No assignment yet: nothing may play.
            if let Some(showing) = self.main.take() {
                events.extend(self.played(documents, &showing, now));
                self.player.clear();
            }
            links.now_playing.send_replace(None);
            return (now + TimeDelta::seconds(5), events);
        };

        // Skips: every due slot whose item may not play, once per slot;
        // not while its file on disk waits to be hashed (after a start):
        // that is asked for first and decides.
        for (slot, reason) in &outlook.skipped {
            if matches!(reason, SkipReason::NotCached)
                && self.awaits_verification(documents, &slot.item)
            {
                continue;
            }
            if !self.remember_skip(&slot.item, slot.started_at) {
                continue;
            }
            tracing::info!(item = %slot.item, %reason, "skipped");
            events.push(self.event(
                documents,
                &slot.item,
                None,
                slot.started_at.min(now),
                0,
                Some(reason.to_string()),
            ));
        }

        // The main layer.
        let same = match (&self.main, &outlook.main) {
            (Some(showing), Some((slot, _))) => {
                showing.slot.item == slot.item && showing.slot.started_at == slot.started_at
            }
            (None, None) => true,
            _ => false,
        };
        if !same {
            if let Some(showing) = self.main.take() {
                events.extend(self.played(documents, &showing, now));
            }
            match &outlook.main {
                Some((slot, permit)) => match self.show(documents, slot, links) {
                    Ok(()) => {
                        self.main = Some(Showing {
                            slot: slot.clone(),
                            permit: permit.clone(),
                            since: now,
                        });
                    }
                    Err(reason) => {
                        // Once per slot, however often the loop looks.
                        if self.remember_skip(&slot.item, slot.started_at) {
                            tracing::warn!(item = %slot.item, %reason, "the player could not show it");
                            events.push(self.event(
                                documents,
                                &slot.item,
                                None,
                                now,
                                0,
                                Some(format!("player: {reason}")),
                            ));
                        }
                        self.player.clear();
                    }
                },
                None => self.player.clear(),
            }
        }
        links
            .now_playing
            .send_replace(self.main.as_ref().map(|s| NowPlaying {
                item: s.slot.item.clone(),
                entry: s.slot.entry.clone(),
                since: s.since,
            }));

        // Overlays: tracked for proof of play; drawn by players that can.
        let wanted: BTreeMap<EntryId, (Slot, Permit)> = outlook
            .overlays
            .iter()
            .filter_map(|(slot, permit)| {
                slot.entry
                    .clone()
                    .map(|e| (e, (slot.clone(), permit.clone())))
            })
            .collect();
        let ended: Vec<EntryId> = self
            .overlays
            .iter()
            .filter(|(entry, showing)| {
                wanted.get(*entry).is_none_or(|(slot, _)| {
                    slot.item != showing.slot.item || slot.started_at != showing.slot.started_at
                })
            })
            .map(|(entry, _)| entry.clone())
            .collect();
        for entry in ended {
            if let Some(showing) = self.overlays.remove(&entry) {
                events.extend(self.played(documents, &showing, now));
            }
        }
        for (entry, (slot, permit)) in wanted {
            self.overlays.entry(entry).or_insert(Showing {
                slot,
                permit,
                since: now,
            });
        }

        // Prepare what comes next, once per slot (D7: no gap between items).
        if let Some(next) = &outlook.upcoming {
            let key = (next.item.clone(), next.started_at);
            if self.prerolled.as_ref() != Some(&key) {
                self.prerolled = Some(key);
                if let Ok(showable) = self.showable(documents, &next.item) {
                    self.player.preroll(&showable);
                }
            }
        }

        let mut wake = outlook.next_change;
        for showing in self.main.iter().chain(self.overlays.values()) {
            if let Some(until) = showing.permit.until {
                wake = wake.min(until);
            }
        }
        (wake, events)
    }

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

    /// Remembers a skip of `item`'s slot starting at `start`; false when it
    /// was reported already.
    fn remember_skip(&mut self, item: &ItemId, start: DateTime<Utc>) -> bool {
        let key = (item.clone(), start);
        if self.recent_skips.contains(&key) {
            return false;
        }
        if self.recent_skips.len() >= RECENT_SKIPS {
            self.recent_skips.pop_front();
        }
        self.recent_skips.push_back(key);
        true
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
                    self.main = None;
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

    /// The play event of `showing`, ended at `now`; none for a zero-length
    /// showing.
    fn played(
        &self,
        documents: &Documents,
        showing: &Showing,
        now: DateTime<Utc>,
    ) -> Option<PlayEvent> {
        let duration = (now - showing.since).num_milliseconds();
        let duration = u64::try_from(duration).ok().filter(|d| *d > 0)?;
        Some(self.event(
            documents,
            &showing.slot.item,
            Some(&showing.permit),
            showing.since,
            duration,
            None,
        ))
    }

    fn event(
        &self,
        documents: &Documents,
        item: &ItemId,
        permit: Option<&Permit>,
        start: DateTime<Utc>,
        duration_ms: u64,
        skip_reason: Option<String>,
    ) -> PlayEvent {
        let location = documents
            .assignment
            .as_ref()
            .map(|a| a.location.clone())
            .unwrap_or_default();
        PlayEvent {
            id: new_event_id(),
            device_id: self.device.as_str().into(),
            item: item.clone(),
            access_group: permit.and_then(|p| p.access_group.clone()),
            license_version: permit.and_then(|p| p.license_version),
            start,
            duration_ms,
            outcome: if skip_reason.is_some() {
                Outcome::Skipped
            } else {
                Outcome::Played
            },
            skip_reason: skip_reason.map(|r| clip_text(&r)),
            country: location.country,
            region: location.region,
            os: self.os.clone(),
            agent_version: crate::VERSION.to_owned(),
        }
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
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot read the playing manifests");
                Documents::default()
            })
    }

    async fn write_status(&mut self, documents: &Documents, clock: &TrustedClock) {
        let reading = self.device_clock.read();
        let text = crate::inspect::report(
            &self.device,
            documents,
            clock,
            &reading,
            &mut self.decider,
            self.main.as_ref().map(|s| (&s.slot.item, s.since)),
        );
        let path = self.status_path.clone();
        let result =
            tokio::task::spawn_blocking(move || write_replace(&path, text.as_bytes())).await;
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

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
