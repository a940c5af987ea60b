//! One transcode with GStreamer (M3): `filesrc ! decodebin`, its video
//! through `videoconvert ! videoscale ! videorate` to square pixels within
//! the profile's box (aspect kept, never enlarged, even sizes) at the
//! profile's frame rate, `x264enc` (speed preset fast, profile high) or
//! else `openh264enc`, `h264parse ! mp4mux ! filesink`. Audio is dropped
//! (the rendition is silent); streams other than the first video go to a
//! fake sink.
//!
//! Owns: the pipeline, its progress (position over duration) and its
//! bounds: it blocks (run it in `spawn_blocking`), stops at `deadline` or
//! when `stop` is set, and answers why it failed. Must not: touch the
//! store or the blob directory beyond writing `target`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::Profile;
use crate::content::thumbnail::DisplayFit;

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Made {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The size a `width` × `height` picture with pixel aspect `par_n`/`par_d`
/// gets in `profile`: square pixels, within the box, the display aspect
/// kept, never enlarged, even (H.264 4:2:0); `None` for an empty picture.
#[must_use]
pub fn fitted(
    width: u32,
    height: u32,
    par_n: i32,
    par_d: i32,
    profile: &Profile,
) -> Option<(u32, u32)> {
    let bounds = (profile.max_width, profile.max_height);
    let fit = DisplayFit::of(width, height, (par_n, par_d), bounds)?;
    // Bounded by the profile's box: the casts cannot overflow.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let even =
        |length: f64, max: u32| (((length * fit.scale / 2.0).round() as u32) * 2).clamp(2, max);
    Some((
        even(fit.width, profile.max_width),
        even(fit.height, profile.max_height),
    ))
}

/// Transcodes `source` into `target` (MP4) in `profile`, calling
/// `progress` with 0–99 as it goes. Blocks.
///
/// # Errors
/// Why it failed: no encoder, not decodable, no video, the deadline, a stop.
pub fn transcode(
    source: &Path,
    target: &Path,
    profile: Profile,
    deadline: Instant,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(u8),
) -> Result<Made, String> {
    gst::init().map_err(|e| e.to_string())?;
    let made: Linked = Arc::default();
    let no_more_pads = Arc::new(AtomicBool::new(false));
    let pipeline = build(source, target, profile, &made, &no_more_pads)?;
    // A video that could not be linked, or none at all, never ends.
    let stuck = || match &*made.lock().unwrap_or_else(PoisonError::into_inner) {
        Some(Err(reason)) => Some(reason.clone()),
        None if no_more_pads.load(Ordering::Acquire) => Some("the file has no video stream".into()),
        _ => None,
    };
    let outcome = drive(&pipeline, deadline, stop, &stuck, progress);
    let _ = pipeline.set_state(gst::State::Null);
    outcome?;
    let linked = made.lock().unwrap_or_else(PoisonError::into_inner).take();
    linked.unwrap_or_else(|| Err("the file has no video stream".into()))
}

fn element(name: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|_| format!("the GStreamer element {name} is missing"))
}

/// The H.264 encoder: x264enc (gstreamer1.0-plugins-ugly) or openh264enc.
fn encoder() -> Result<gst::Element, String> {
    if let Ok(x264) = gst::ElementFactory::make("x264enc")
        .property("key-int-max", 60_u32)
        .property("bitrate", 6000_u32)
        .build()
    {
        x264.set_property_from_str("speed-preset", "fast");
        return Ok(x264);
    }
    gst::ElementFactory::make("openh264enc")
        .property("bitrate", 6_000_000_u32)
        .build()
        .map_err(|_| {
            "no H.264 encoder: install gstreamer1.0-plugins-ugly (x264enc) on the hub".to_owned()
        })
}

/// How linking the video went, once decodebin offered it.
type Linked = Arc<Mutex<Option<Result<Made, String>>>>;

/// The pipeline up to decodebin; its video pad is linked when it appears
/// (the outcome of that goes into `made`).
fn build(
    source: &Path,
    target: &Path,
    profile: Profile,
    made: &Linked,
    no_more_pads: &Arc<AtomicBool>,
) -> Result<gst::Pipeline, String> {
    let pipeline = gst::Pipeline::new();
    let file = gst::ElementFactory::make("filesrc")
        .property("location", source.display().to_string())
        .build()
        .map_err(|e| e.to_string())?;
    let decode = element("decodebin")?;
    let convert = element("videoconvert")?;
    let scale = element("videoscale")?;
    let rate = element("videorate")?;
    let raw = element("capsfilter")?;
    let encode = encoder()?;
    let h264 = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field(
                    "profile",
                    if encode.factory().is_some_and(|f| f.name() == "x264enc") {
                        "high"
                    } else {
                        "main"
                    },
                )
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    let parse = element("h264parse")?;
    let mux = element("mp4mux")?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", target.display().to_string())
        .build()
        .map_err(|e| e.to_string())?;
    let chain = [
        &convert, &scale, &rate, &raw, &encode, &h264, &parse, &mux, &sink,
    ];
    pipeline
        .add_many([&file, &decode])
        .map_err(|e| e.to_string())?;
    pipeline.add_many(chain).map_err(|e| e.to_string())?;
    file.link(&decode).map_err(|e| e.to_string())?;
    gst::Element::link_many(chain).map_err(|e| e.to_string())?;
    let no_more = Arc::clone(no_more_pads);
    decode.connect_no_more_pads(move |_| no_more.store(true, Ordering::Release));
    let weak = pipeline.downgrade();
    let made = Arc::clone(made);
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let mut slot = made.lock().unwrap_or_else(PoisonError::into_inner);
        let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
        let structure = caps
            .as_ref()
            .and_then(|c| c.structure(0).map(|s| s.to_owned()));
        let is_video = structure
            .as_ref()
            .is_some_and(|s| s.name().starts_with("video/"));
        if !is_video || slot.is_some() {
            // Audio and further streams are dropped.
            if let Ok(drop_sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
                && pipeline.add(&drop_sink).is_ok()
            {
                let _ = drop_sink.sync_state_with_parent();
                if let Some(sink_pad) = drop_sink.static_pad("sink") {
                    let _ = pad.link(&sink_pad);
                }
            }
            return;
        }
        let outcome = link_video(pad, structure.as_ref(), &raw, &convert, profile);
        *slot = Some(outcome);
    });
    Ok(pipeline)
}

/// Sets the raw caps for the video pad's picture and links it.
fn link_video(
    pad: &gst::Pad,
    structure: Option<&gst::Structure>,
    raw: &gst::Element,
    convert: &gst::Element,
    profile: Profile,
) -> Result<Made, String> {
    let structure = structure.ok_or("the video stream has no format")?;
    let width = structure.get::<i32>("width").map_err(|e| e.to_string())?;
    let height = structure.get::<i32>("height").map_err(|e| e.to_string())?;
    let par = structure
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .unwrap_or_else(|_| gst::Fraction::new(1, 1));
    let (width, height) = fitted(
        u32::try_from(width).unwrap_or(0),
        u32::try_from(height).unwrap_or(0),
        par.numer(),
        par.denom(),
        &profile,
    )
    .ok_or("the video has no picture size")?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("width", i32::try_from(width).unwrap_or(2))
        .field("height", i32::try_from(height).unwrap_or(2))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field(
            "framerate",
            gst::Fraction::new(i32::try_from(profile.fps).unwrap_or(30), 1),
        )
        .build();
    raw.set_property("caps", &caps);
    let sink = convert
        .static_pad("sink")
        .ok_or("videoconvert has no sink pad")?;
    pad.link(&sink)
        .map_err(|e| format!("cannot link the video: {e:?}"))?;
    Ok(Made { width, height })
}

/// Plays the pipeline to its end, reporting progress; the first error,
/// the deadline or `stop` ends it.
fn drive(
    pipeline: &gst::Pipeline,
    deadline: Instant,
    stop: &AtomicBool,
    stuck: &dyn Fn() -> Option<String>,
    progress: &mut dyn FnMut(u8),
) -> Result<(), String> {
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| read_error(&bus).unwrap_or_else(|| "the file cannot be decoded".into()))?;
    let mut last = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("the hub stopped during the transcode".into());
        }
        if Instant::now() >= deadline {
            return Err("the transcode took too long".into());
        }
        let message = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(250),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match message.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => return Ok(()),
            Some(gst::MessageView::Error(error)) => return Err(describe(error)),
            _ => {}
        }
        if let Some(reason) = stuck() {
            return Err(reason);
        }
        let position = pipeline.query_position::<gst::ClockTime>();
        let duration = pipeline.query_duration::<gst::ClockTime>();
        if let (Some(position), Some(duration)) = (position, duration)
            && duration.nseconds() > 0
        {
            let percent = (position.nseconds().saturating_mul(100) / duration.nseconds()).min(99);
            let percent = u8::try_from(percent).unwrap_or(99);
            if last != Some(percent) {
                last = Some(percent);
                progress(percent);
            }
        }
    }
}

fn describe(error: &gst::message::Error) -> String {
    format!("GStreamer: {}", error.error())
}

fn read_error(bus: &gst::Bus) -> Option<String> {
    bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(100),
        &[gst::MessageType::Error],
    )
    .and_then(|m| match m.view() {
        gst::MessageView::Error(error) => Some(describe(error)),
        _ => None,
    })
}

/// How long a job may run: ten minutes, plus four times the media's
/// playing time.
#[must_use]
pub fn time_limit(duration_ms: Option<u64>) -> Duration {
    Duration::from_secs(600) + Duration::from_millis(duration_ms.unwrap_or(0).saturating_mul(4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::renditions::PI;

    /// M3: renditions fit 1920×1080, keep the shape, are never enlarged,
    /// have even sizes and square pixels.
    #[test]
    fn m3_rendition_sizes() {
        assert_eq!(fitted(3840, 2160, 1, 1, &PI), Some((1920, 1080)));
        assert_eq!(fitted(1920, 1080, 1, 1, &PI), Some((1920, 1080)));
        assert_eq!(fitted(320, 240, 1, 1, &PI), Some((320, 240)));
        assert_eq!(fitted(2160, 3840, 1, 1, &PI), Some((608, 1080)));
        assert_eq!(fitted(4096, 1024, 1, 1, &PI), Some((1920, 480)));
        assert_eq!(fitted(720, 576, 16, 15, &PI), Some((768, 576)));
        assert_eq!(fitted(321, 241, 1, 1, &PI), Some((322, 242)));
        assert_eq!(fitted(0, 10, 1, 1, &PI), None);
    }
}
