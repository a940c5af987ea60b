//! The GStreamer player (D6, D7, D8): one long-lived output pipeline that
//! every shown item joins as a bin, seamless transitions, screenshots and
//! playback errors.
//!
//! Owns: the output pipeline, the item bins on it and their lifetimes, the
//! bus. Must not: decide what plays or for how long (the scheduler does),
//! read the cache or talk to the network.
//!
//! The output pipeline runs from [`GstPlayer::new`] until the player is
//! dropped: `compositor` (black background, live, driven by a tiny live
//! source so it outputs frames at [`FRAME_RATE`] whatever is shown) →
//! screen-sized `I420` caps → the display sink of the configured
//! [`VideoSink`] (a real-time `fakesink` when headless; for `auto` the first
//! usable display of KMS, Wayland and X, see [`display`], else headless).
//! Nothing else runs
//! per frame: [`Player::screenshot`] asks the probe that already watches the
//! compositor's output for the next composed frame and encodes that one, so
//! screenshots cost nothing while nobody asks for them.
//!
//! Transitions (D7): `show` builds the next item's bin on a new compositor
//! pad above everything else, with its first buffer held back by a blocking
//! probe, and waits (at most [`PREROLL_TIMEOUT`]) until the decoders have
//! produced that buffer. It then shifts the bin's timing to "now" and lets
//! it flow. The item on screen stays underneath until a composed frame
//! contains the new item; only then is the old bin's pad released and the
//! bin removed, so no black frame appears between items. `preroll` does the
//! first half ahead of time. A video shorter than its slot holds its last
//! frame (it does not loop); images are shown until the next `show`/`clear`.
//!
//! Errors: any error on the bus from inside an item's bin (a file that does
//! not decode, a missing file, a preroll that times out) becomes a
//! [`PlaybackError`] for [`Player::take_errors`], the attached `Notify` is
//! woken and that bin is removed; the output pipeline keeps running and
//! whatever was on screen before stays. `show` itself only fails when the
//! bin cannot be built at all (a missing GStreamer element, a template zone
//! whose file was not given).

mod build;
pub mod display;
mod pipeline;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use signet_common::ids::ItemId;
use tokio::sync::Notify;

use super::{PlaybackError, Player, Showable};
use crate::config::VideoSink;
use pipeline::{bus_loop, report, retire, watch_composed};

/// Frames per second of the composed output.
pub const FRAME_RATE: i32 = 25;
/// The longest `show` waits for a new item's first frame.
pub const PREROLL_TIMEOUT: Duration = Duration::from_secs(2);
/// How far ahead of "now" a new item's first frame is timed, so it is
/// never late at the compositor.
const START_MARGIN: gst::ClockTime = gst::ClockTime::from_mseconds(40);
/// The prefix of every item bin's name, followed by its sequence number.
const BIN_PREFIX: &str = "signet-item-";
/// The application message a composed frame posts when it first contains
/// the incoming item.
const COMPOSED: &str = "signet-composed";
/// The longest `screenshot` waits for the next composed frame.
const SHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// The application message that stops the bus thread.
const STOP: &str = "signet-stop";
/// The most errors kept for `take_errors` between two calls.
const MAX_ERRORS: usize = 256;
/// The longest error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;

/// Why the player could not start or build an item.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    /// GStreamer itself could not be initialised.
    #[error("GStreamer could not start: {0}")]
    Init(String),
    /// An element is not installed.
    #[error("GStreamer element {factory} is missing: {message}")]
    Element {
        /// The factory name.
        factory: String,
        /// GStreamer's message.
        message: String,
    },
    /// Elements could not be linked or added.
    #[error("GStreamer link failed: {0}")]
    Link(String),
    /// The output pipeline refused to start.
    #[error("the output pipeline did not start: {0}")]
    State(String),
    /// A template zone whose item's file was not given.
    #[error("template zone {0:?} has no file for its item")]
    MissingSource(String),
    /// Something this player cannot show.
    #[error("cannot show it: {0}")]
    Unsupported(String),
}

/// The output's size and whether it has a real display.
#[derive(Debug, Clone, Copy)]
struct VideoOut {
    /// Width in pixels.
    width: u32,
    /// Height in pixels.
    height: u32,
    /// No display: sinks are real-time `fakesink`s.
    headless: bool,
}

/// How an item's preroll ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GateState {
    /// The decoders have not produced the first buffer yet.
    Waiting,
    /// The first buffer waits at the gate, at this running time (ns).
    Ready(i64),
    /// The bin failed before its first buffer.
    Failed,
}

/// Where a new item's first buffer waits until it is shown.
struct Gate {
    /// The preroll's state.
    state: Mutex<GateState>,
    /// Woken when the state leaves `Waiting`.
    changed: Condvar,
}

/// What the streaming threads learn about an item, without locks held by
/// the control side.
struct Arrival {
    /// The item's first buffer reached the compositor.
    arrived: AtomicBool,
    /// Its running time there, in nanoseconds.
    first_rt: AtomicI64,
}

/// One item's bin on the output pipeline.
struct Entry {
    /// Its sequence number (also in the bin's name).
    seq: u64,
    /// What it shows.
    what: Showable,
    /// The bin.
    bin: gst::Bin,
    /// The pad whose data the gate holds back and whose offset times it.
    gate_pad: gst::Pad,
    /// The blocking probe on `gate_pad`, until shown.
    gate_probe: Option<gst::PadProbeId>,
    /// The preroll's progress.
    gate: Arc<Gate>,
    /// The compositor pad it draws on (`None` for audio).
    comp_pad: Option<gst::Pad>,
    /// Its first composed buffer.
    arrival: Arc<Arrival>,
    /// The text overlay elements by zone id (templates).
    texts: BTreeMap<String, gst::Element>,
}

/// The incoming item the compositor's output is watched for.
struct Awaiting {
    /// The incoming item's sequence number.
    seq: u64,
    /// Its arrival flags.
    arrival: Arc<Arrival>,
    /// Whether its first buffer had arrived when the previous frame left.
    seen: bool,
}

/// The items on the pipeline and what is to be reported.
#[derive(Default)]
struct Stage {
    /// The item fully on screen.
    on_screen: Option<Entry>,
    /// The item shown on top, not yet in a composed frame.
    incoming: Option<Entry>,
    /// An item prepared by `preroll`, not yet shown.
    prerolled: Option<Entry>,
    /// Failures not yet taken.
    errors: Vec<PlaybackError>,
    /// Woken when there are errors.
    wake: Option<Arc<Notify>>,
}

/// A composed frame asked for by `screenshot`, taken by the output probe.
#[derive(Default)]
struct ShotSlot {
    /// A screenshot waits for the next composed frame.
    wanted: AtomicBool,
    /// The frame taken for it.
    frame: Mutex<Option<gst::Sample>>,
    /// Woken when `frame` is filled.
    taken: Condvar,
}

/// Everything the player and its bus thread share.
struct Shared {
    /// The output pipeline.
    pipeline: gst::Pipeline,
    /// The output compositor.
    compositor: gst::Element,
    /// Where the output probe leaves a frame for `screenshot`.
    shot: Arc<ShotSlot>,
    /// The items and errors.
    stage: Mutex<Stage>,
    /// The incoming item the compositor's output is watched for.
    awaiting: Arc<Mutex<Option<Awaiting>>>,
}

/// The GStreamer [`Player`] (D7).
pub struct GstPlayer {
    /// What the bus thread shares.
    shared: Arc<Shared>,
    /// The output size.
    out: VideoOut,
    /// The next item bin's sequence number.
    next_seq: u64,
    /// The bus thread.
    bus_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GstPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GstPlayer")
            .field("width", &self.out.width)
            .field("height", &self.out.height)
            .finish_non_exhaustive()
    }
}

/// A composed frame as tests record it: running time in ms, centre RGB.
#[cfg(test)]
type Frame = (u64, [u8; 3]);

/// Locks `mutex`, taking the data even if a thread panicked holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The sequence number of the item bin `object` is in, if any.
fn item_of(object: &gst::Object) -> Option<u64> {
    let mut current = Some(object.clone());
    while let Some(object) = current {
        if let Some(seq) = object
            .name()
            .strip_prefix(BIN_PREFIX)
            .and_then(|s| s.parse().ok())
        {
            return Some(seq);
        }
        current = object.parent();
    }
    None
}

/// The running time of `buffer` in the segment `pad` holds.
fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    let pts = buffer.pts()?;
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
    segment.to_running_time(pts)
}

/// Cuts `message` to [`MAX_MESSAGE_CHARS`].
fn bounded(message: String) -> String {
    if message.chars().count() > MAX_MESSAGE_CHARS {
        message.chars().take(MAX_MESSAGE_CHARS).collect()
    } else {
        message
    }
}

impl GstPlayer {
    /// Starts the output pipeline on `sink` at `width`×`height`; the screen
    /// is black until something is shown. `auto` is [`Self::auto`].
    ///
    /// # Errors
    /// GStreamer does not start, an element is missing (the sink of `sink`
    /// among them), or the pipeline refuses to play.
    pub fn new(sink: VideoSink, width: u32, height: u32) -> Result<GstPlayer, PlayerError> {
        if sink == VideoSink::Auto {
            return Self::auto(width, height).map(|(player, _)| player);
        }
        gst::init().map_err(|e| PlayerError::Init(e.to_string()))?;
        let out = VideoOut {
            width: width.max(1),
            height: height.max(1),
            headless: sink == VideoSink::None,
        };
        let pipeline = gst::Pipeline::with_name("signet-output");
        // Live whatever the items' upstream answers to latency queries (a
        // bin that failed to typefind answers none), and with no item at all:
        // it outputs a frame every 1/FRAME_RATE s whether or not items have
        // data.
        let compositor = gst::ElementFactory::make("compositor")
            .property("force-live", true)
            .build()
            .map_err(|e| PlayerError::Element {
                factory: "compositor".to_owned(),
                message: e.to_string(),
            })?;
        compositor.set_property_from_str("background", "black");
        let out_caps = build::raw_caps(out.width, out.height, Some("I420"), true)?;
        let display_convert = build::make("videoconvert")?;
        let display = match display::factory(sink) {
            Some(factory) => build::make(factory)?,
            None => {
                let sink = build::make("fakesink")?;
                sink.set_property("sync", true);
                sink
            }
        };
        let elements = [&compositor, &out_caps, &display_convert, &display];
        pipeline
            .add_many(elements)
            .map_err(|e| PlayerError::Link(e.to_string()))?;
        gst::Element::link_many([&compositor, &out_caps, &display_convert, &display])
            .map_err(|e| PlayerError::Link(e.to_string()))?;

        let awaiting: Arc<Mutex<Option<Awaiting>>> = Arc::new(Mutex::new(None));
        let shot = Arc::new(ShotSlot::default());
        watch_composed(&compositor, awaiting.clone(), shot.clone())?;

        let shared = Arc::new(Shared {
            pipeline: pipeline.clone(),
            compositor,
            shot,
            stage: Mutex::new(Stage::default()),
            awaiting,
        });
        let bus = pipeline
            .bus()
            .ok_or_else(|| PlayerError::State("the pipeline has no bus".to_owned()))?;
        let thread_shared = shared.clone();
        let bus_thread = std::thread::Builder::new()
            .name("signet-gst-bus".to_owned())
            .spawn(move || bus_loop(&bus, &thread_shared))
            .map_err(|e| PlayerError::State(e.to_string()))?;
        let player = GstPlayer {
            shared,
            out,
            next_seq: 1,
            bus_thread: Some(bus_thread),
        };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| PlayerError::State(e.to_string()))?;
        Ok(player)
    }

    /// The player for `video_sink = "auto"` (D7): the first display of
    /// [`display::ORDER`] that is usable and starts; without one, headless
    /// (as `none`), with one error line in the log and the reason returned
    /// for the device state. Never `autovideosink`: it falls through to
    /// sinks that crash the process without a display.
    ///
    /// # Errors
    /// As [`Self::new`] for the headless player.
    pub fn auto(width: u32, height: u32) -> Result<(GstPlayer, Option<String>), PlayerError> {
        gst::init().map_err(|e| PlayerError::Init(e.to_string()))?;
        let env = |key: &str| std::env::var(key).ok();
        let mut reasons = Vec::new();
        for sink in display::ORDER {
            let name = display::name(sink);
            let started = display::usable(sink, &env)
                .and_then(|()| GstPlayer::new(sink, width, height).map_err(|e| e.to_string()));
            match started {
                Ok(player) => {
                    tracing::info!(sink = name, "video_sink auto: showing on {name}");
                    return Ok((player, None));
                }
                Err(reason) => {
                    tracing::debug!(sink = name, %reason, "video_sink auto: not usable");
                    reasons.push(format!("{name}: {reason}"));
                }
            }
        }
        let problem = format!(
            "video_sink auto: no usable display ({}); playing headless, nothing is shown",
            reasons.join("; ")
        );
        tracing::error!("{problem}");
        let player = GstPlayer::new(VideoSink::None, width, height)?;
        Ok((player, Some(problem)))
    }

    /// Builds `what`'s bin on the pipeline, held at its first buffer.
    fn prepare(&mut self, what: &Showable) -> Result<Entry, PlayerError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!("{BIN_PREFIX}{seq}");
        let built = build::item_bin(what, &name, &self.out)?;
        let gate_pad = built
            .video
            .clone()
            .or_else(|| built.audio.clone())
            .ok_or_else(|| PlayerError::Link("the item has no output".to_owned()))?;
        let gate = Arc::new(Gate {
            state: Mutex::new(GateState::Waiting),
            changed: Condvar::new(),
        });
        let probe_gate = gate.clone();
        let gate_probe = gate_pad.add_probe(
            gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER,
            move |pad, info| {
                let rt = info
                    .buffer()
                    .and_then(|b| running_time(pad, b))
                    .map_or(0, |t| i64::try_from(t.nseconds()).unwrap_or(0));
                let mut state = lock(&probe_gate.state);
                if *state == GateState::Waiting {
                    *state = GateState::Ready(rt);
                    probe_gate.changed.notify_all();
                }
                gst::PadProbeReturn::Ok
            },
        );
        let arrival = Arc::new(Arrival {
            arrived: AtomicBool::new(false),
            first_rt: AtomicI64::new(0),
        });
        let pipeline = &self.shared.pipeline;
        pipeline
            .add(&built.bin)
            .map_err(|e| PlayerError::Link(e.to_string()))?;
        let comp_pad = match &built.video {
            Some(video) => {
                let pad = self
                    .shared
                    .compositor
                    .request_pad_simple("sink_%u")
                    .ok_or_else(|| PlayerError::Link("no compositor pad".to_owned()))?;
                pad.set_property("zorder", u32::try_from(seq).unwrap_or(u32::MAX));
                pad.set_property("repeat-after-eos", true);
                let mark = arrival.clone();
                pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                    let rt = info
                        .buffer()
                        .and_then(|b| running_time(pad, b))
                        .map_or(0, |t| i64::try_from(t.nseconds()).unwrap_or(0));
                    mark.first_rt.store(rt, Ordering::SeqCst);
                    mark.arrived.store(true, Ordering::SeqCst);
                    gst::PadProbeReturn::Remove
                });
                if let Err(e) = video.link(&pad) {
                    self.shared.compositor.release_request_pad(&pad);
                    let _ = pipeline.remove(&built.bin);
                    return Err(PlayerError::Link(e.to_string()));
                }
                Some(pad)
            }
            None => None,
        };
        let entry = Entry {
            seq,
            what: what.clone(),
            bin: built.bin,
            gate_pad,
            gate_probe,
            gate,
            comp_pad,
            arrival,
            texts: built.texts,
        };
        // A file that cannot be read fails here and on the bus; the bus
        // thread reports it.
        if let Err(e) = entry.bin.sync_state_with_parent() {
            tracing::debug!(error = %e, seq, "an item bin did not start");
        }
        Ok(entry)
    }

    /// Waits (at most [`PREROLL_TIMEOUT`]) for an item's first buffer.
    fn wait_ready(gate: &Gate) -> GateState {
        let deadline = Instant::now() + PREROLL_TIMEOUT;
        let mut state = lock(&gate.state);
        while *state == GateState::Waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = gate
                .changed
                .wait_timeout(state, left)
                .map_or_else(|e| e.into_inner().0, |(s, _)| s);
        }
        state.clone()
    }

    /// Records every composed frame as (running time in ms, RGB of the
    /// centre pixel) (tests).
    #[cfg(test)]
    fn record(&self) -> Arc<Mutex<Vec<Frame>>> {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = frames.clone();
        let (width, height) = (self.out.width as usize, self.out.height as usize);
        let src = self.shared.compositor.static_pad("src").unwrap();
        src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let rt = running_time(pad, buffer).map_or(0, gst::ClockTime::mseconds);
            let info = pad
                .current_caps()
                .and_then(|caps| gstreamer_video::VideoInfo::from_caps(&caps).ok());
            if let (Ok(map), Some(info)) = (buffer.map_readable(), info) {
                let (x, y) = (width / 2, height / 2);
                let plane = |i: usize, px: usize, row: usize| -> Option<f32> {
                    let offset =
                        info.offset()[i] + row * usize::try_from(info.stride()[i]).ok()? + px;
                    map.as_slice().get(offset).map(|v| f32::from(*v))
                };
                // I420: full-size Y, quarter-size U and V (BT.601).
                if let (Some(luma), Some(u), Some(v)) = (
                    plane(0, x, y),
                    plane(1, x / 2, y / 2),
                    plane(2, x / 2, y / 2),
                ) {
                    let (c, d, e) = (1.164 * (luma - 16.0), u - 128.0, v - 128.0);
                    let clamp = |f: f32| f.round().clamp(0.0, 255.0) as u8;
                    lock(&sink).push((
                        rt,
                        [
                            clamp(c + 1.596 * e),
                            clamp(c - 0.392 * d - 0.813 * e),
                            clamp(c + 2.017 * d),
                        ],
                    ));
                }
            }
            gst::PadProbeReturn::Ok
        });
        frames
    }

    /// The text a zone of the template on screen (or coming) shows (tests).
    #[cfg(test)]
    fn zone_text(&self, zone: &str) -> Option<String> {
        let stage = lock(&self.shared.stage);
        stage
            .incoming
            .as_ref()
            .or(stage.on_screen.as_ref())
            .and_then(|e| e.texts.get(zone))
            .and_then(|o| o.property::<Option<String>>("text"))
    }
}

impl Player for GstPlayer {
    fn show(&mut self, what: &Showable) -> Result<(), String> {
        let prerolled = lock(&self.shared.stage).prerolled.take();
        let entry = match prerolled {
            Some(entry) if entry.what == *what => entry,
            other => {
                if let Some(stale) = other {
                    retire(&self.shared, stale);
                }
                self.prepare(what).map_err(|e| e.to_string())?
            }
        };
        // While it prerolls it sits in the prerolled place, where the bus
        // thread finds it when it fails.
        let (seq, gate) = (entry.seq, entry.gate.clone());
        lock(&self.shared.stage).prerolled = Some(entry);
        let waited = Self::wait_ready(&gate);
        let mut stage = lock(&self.shared.stage);
        let Some(mut entry) = stage.prerolled.take_if(|e| e.seq == seq) else {
            // The bus thread reported it and removed the bin.
            return Ok(());
        };
        drop(stage);
        let first_rt = match waited {
            GateState::Ready(rt) => rt,
            GateState::Failed => {
                retire(&self.shared, entry);
                return Ok(());
            }
            GateState::Waiting => {
                let message = format!("it did not start within {} ms", PREROLL_TIMEOUT.as_millis());
                let mut stage = lock(&self.shared.stage);
                report(&mut stage, what.item().id.clone(), message);
                drop(stage);
                retire(&self.shared, entry);
                return Ok(());
            }
        };
        let now = self
            .shared
            .pipeline
            .current_running_time()
            .unwrap_or(gst::ClockTime::ZERO);
        let start = i64::try_from((now + START_MARGIN).nseconds()).unwrap_or(i64::MAX);
        entry.gate_pad.set_offset(start - first_rt);

        let mut stage = lock(&self.shared.stage);
        let superseded = stage.incoming.take();
        if entry.comp_pad.is_some() {
            *lock(&self.shared.awaiting) = Some(Awaiting {
                seq: entry.seq,
                arrival: entry.arrival.clone(),
                seen: false,
            });
            if let Some(probe) = entry.gate_probe.take() {
                entry.gate_pad.remove_probe(probe);
            }
            stage.incoming = Some(entry);
            drop(stage);
            if let Some(old) = superseded {
                retire(&self.shared, old);
            }
        } else {
            // Audio shows black: what was on screen goes now.
            *lock(&self.shared.awaiting) = None;
            if let Some(probe) = entry.gate_probe.take() {
                entry.gate_pad.remove_probe(probe);
            }
            let old = stage.on_screen.replace(entry);
            drop(stage);
            for old in [superseded, old].into_iter().flatten() {
                retire(&self.shared, old);
            }
        }
        Ok(())
    }

    fn preroll(&mut self, next: &Showable) {
        let stale = lock(&self.shared.stage).prerolled.take();
        if let Some(stale) = stale {
            if stale.what == *next {
                lock(&self.shared.stage).prerolled = Some(stale);
                return;
            }
            retire(&self.shared, stale);
        }
        match self.prepare(next) {
            Ok(entry) => lock(&self.shared.stage).prerolled = Some(entry),
            Err(e) => tracing::warn!(item = %next.item().id, error = %e, "could not prepare it"),
        }
    }

    fn set_texts(&mut self, texts: &BTreeMap<String, String>) {
        let stage = lock(&self.shared.stage);
        for entry in [&stage.on_screen, &stage.incoming, &stage.prerolled]
            .into_iter()
            .flatten()
        {
            for (zone, text) in texts {
                if let Some(overlay) = entry.texts.get(zone) {
                    if overlay.has_property("time-format", None) {
                        continue;
                    }
                    overlay.set_property("text", text.as_str());
                }
            }
        }
    }

    fn clear(&mut self) {
        *lock(&self.shared.awaiting) = None;
        let mut stage = lock(&self.shared.stage);
        let gone = [stage.incoming.take(), stage.on_screen.take()];
        drop(stage);
        for entry in gone.into_iter().flatten() {
            retire(&self.shared, entry);
        }
    }

    fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        let slot = &self.shared.shot;
        let mut frame = lock(&slot.frame);
        *frame = None;
        slot.wanted.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + SHOT_TIMEOUT;
        while frame.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                slot.wanted.store(false, Ordering::SeqCst);
                return Err(format!(
                    "no frame was composed within {} s",
                    SHOT_TIMEOUT.as_secs()
                ));
            }
            frame = slot
                .taken
                .wait_timeout(frame, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let Some(sample) = frame.take() else {
            return Err("no frame was composed".to_owned());
        };
        drop(frame);
        let png = gst_video::convert_sample(
            &sample,
            &gst::Caps::builder("image/png").build(),
            gst::ClockTime::from_seconds(2),
        )
        .map_err(|e| format!("the frame could not be encoded as PNG: {e}"))?;
        let buffer = png
            .buffer()
            .ok_or_else(|| "the PNG encoder gave no buffer".to_owned())?;
        let map = buffer
            .map_readable()
            .map_err(|e| format!("the PNG could not be read: {e}"))?;
        Ok(map.as_slice().to_vec())
    }

    fn take_errors(&mut self) -> Vec<PlaybackError> {
        std::mem::take(&mut lock(&self.shared.stage).errors)
    }

    fn attach(&mut self, wake: Arc<Notify>) {
        lock(&self.shared.stage).wake = Some(wake);
    }
}

impl Drop for GstPlayer {
    fn drop(&mut self) {
        // Stop the bus thread first: a stopped pipeline flushes its bus.
        let stop = gst::message::Application::new(gst::Structure::new_empty(STOP));
        if let Some(bus) = self.shared.pipeline.bus() {
            let _ = bus.post(stop);
        }
        if let Some(thread) = self.bus_thread.take() {
            let _ = thread.join();
        }
        let _ = self.shared.pipeline.set_state(gst::State::Null);
    }
}
