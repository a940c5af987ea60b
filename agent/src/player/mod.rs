//! Playback and proof of play (D1, D4, A7, A8, U1).
//!
//! Owns: what a player is ([`Player`], [`Showable`], the [`NullPlayer`]
//! and the [`UnavailablePlayer`]; the GStreamer one is [`gst`]) and the
//! playback loop, in two halves: [`plan`] decides without I/O what changes
//! on screen and which plays and skips to record (a [`Plan`] from
//! [`Screen::step`]), and [`playback`] ([`Playback`]) carries the plan out —
//! shows through a [`Player`], records every play and skip durably in the
//! [`crate::events::EventLog`] before anything else learns of it, then
//! wakes the uploader, and keeps the status report file current. May call:
//! [`crate::decide`] (what may play), [`crate::cache`] (read only),
//! [`crate::events`], [`crate::status`], `signet-common`'s rules. Must not:
//! download, accept documents or talk to the network.
//!
//! Plays come only from the local cache (D1): losing the hub or the broker
//! changes nothing here but the offline grace of licensed content.

pub mod gst;
pub mod plan;
pub mod playback;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use signet_common::approval::Template;
use signet_common::documents::{ItemKind, ManifestItem};
use signet_common::ids::ItemId;
use tokio::sync::Notify;

pub use plan::{Look, MainChange, Plan, Screen};
pub use playback::{Links, Playback, PlayerFactory};

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
