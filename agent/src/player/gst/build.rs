//! Builds one shown item as a GStreamer bin (D6, D7): full-screen media, or a
//! template's zones composed on its canvas.
//!
//! Owns: the elements inside an item's bin and their links. Must not: touch
//! the output pipeline (the player links the bin) or decide what plays.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use signet_common::approval::{TextAlign, TextStyle, Zone, ZoneKind};
use signet_common::documents::ItemKind;

use super::{FRAME_RATE, PlayerError, VideoOut};
use crate::player::{Showable, Source};

/// An item's bin before it is linked: its elements and the pad it feeds.
pub(super) struct ItemBin {
    /// The bin holding every element of the item.
    pub bin: gst::Bin,
    /// Where the item's pixels leave the bin (`None` for audio).
    pub video: Option<gst::Pad>,
    /// Where the item's sound enters its audio sink (audio items only).
    pub audio: Option<gst::Pad>,
    /// The text, ticker and clock overlay elements, by zone id.
    pub texts: BTreeMap<String, gst::Element>,
}

/// Makes one element of `factory`.
pub(super) fn make(factory: &str) -> Result<gst::Element, PlayerError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| PlayerError::Element {
            factory: factory.to_owned(),
            message: e.to_string(),
        })
}

/// A capsfilter for raw video of `width`×`height`, optionally of `format`
/// and at the player's frame rate.
pub(super) fn raw_caps(
    width: u32,
    height: u32,
    format: Option<&str>,
    rate: bool,
) -> Result<gst::Element, PlayerError> {
    let filter = make("capsfilter")?;
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("width", i32::try_from(width).unwrap_or(i32::MAX))
        .field("height", i32::try_from(height).unwrap_or(i32::MAX))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(format) = format {
        caps = caps.field("format", format);
    }
    if rate {
        caps = caps.field("framerate", gst::Fraction::new(FRAME_RATE, 1));
    }
    filter.set_property("caps", caps.build());
    Ok(filter)
}

/// Links `elements` one after the other.
fn chain(elements: &[&gst::Element]) -> Result<(), PlayerError> {
    gst::Element::link_many(elements.iter().copied())
        .map_err(|e| PlayerError::Link(format!("{e}: {elements:?}")))
}

/// Adds `elements` to `bin`.
fn add(bin: &gst::Bin, elements: &[&gst::Element]) -> Result<(), PlayerError> {
    bin.add_many(elements.iter().copied())
        .map_err(|e| PlayerError::Link(e.to_string()))
}

/// The bin of `what`, named `name`, drawn at `out` size.
pub(super) fn item_bin(
    what: &Showable,
    name: &str,
    out: &VideoOut,
) -> Result<ItemBin, PlayerError> {
    let bin = gst::Bin::builder().name(name).build();
    // A sink inside an item bin must not make the running pipeline wait.
    bin.set_property("async-handling", true);
    match what {
        Showable::Media { source, .. } => match source.kind {
            ItemKind::Audio => audio_bin(bin, source, out),
            ItemKind::Video | ItemKind::Image => {
                let tail = decoded_video(&bin, source, out.width, out.height)?;
                let video = ghost(&bin, &tail)?;
                Ok(ItemBin {
                    bin,
                    video: Some(video),
                    audio: None,
                    texts: BTreeMap::new(),
                })
            }
            ItemKind::Template => Err(PlayerError::Unsupported(
                "a template item must come as Showable::Template".to_owned(),
            )),
        },
        Showable::Template {
            template,
            sources,
            texts,
            ..
        } => {
            let canvas = template.canvas;
            let inner = make("compositor")?;
            inner.set_property_from_str("background", "black");
            let canvas_caps = raw_caps(canvas.width, canvas.height, Some("BGRA"), true)?;
            let convert = make("videoconvert")?;
            let scale = make("videoscale")?;
            let screen = raw_caps(out.width, out.height, None, false)?;
            add(&bin, &[&inner, &canvas_caps, &convert, &scale, &screen])?;
            chain(&[&inner, &canvas_caps, &convert, &scale, &screen])?;
            let mut overlays = BTreeMap::new();
            for (index, zone) in template.zones.iter().enumerate() {
                let tail = match zone.kind {
                    ZoneKind::Video | ZoneKind::Image => {
                        let source = zone
                            .source
                            .as_ref()
                            .and_then(|id| sources.get(id))
                            .ok_or_else(|| PlayerError::MissingSource(zone.id.clone()))?;
                        decoded_video(&bin, source, zone.rect.width, zone.rect.height)?
                    }
                    ZoneKind::Text | ZoneKind::Clock | ZoneKind::Ticker => {
                        let text = texts
                            .get(&zone.id)
                            .cloned()
                            .or_else(|| zone.text.clone())
                            .unwrap_or_default();
                        let (tail, overlay) = text_zone(&bin, zone, &text)?;
                        overlays.insert(zone.id.clone(), overlay);
                        tail
                    }
                };
                let pad = inner
                    .request_pad_simple("sink_%u")
                    .ok_or_else(|| PlayerError::Link("no compositor pad".to_owned()))?;
                pad.set_property("xpos", i32::try_from(zone.rect.x).unwrap_or(0));
                pad.set_property("ypos", i32::try_from(zone.rect.y).unwrap_or(0));
                pad.set_property("width", i32::try_from(zone.rect.width).unwrap_or(1));
                pad.set_property("height", i32::try_from(zone.rect.height).unwrap_or(1));
                pad.set_property("zorder", u32::try_from(index + 1).unwrap_or(u32::MAX));
                // A zone video shorter than the slot holds its last frame.
                pad.set_property("repeat-after-eos", true);
                let src = tail
                    .static_pad("src")
                    .ok_or_else(|| PlayerError::Link("zone has no src pad".to_owned()))?;
                src.link(&pad)
                    .map_err(|e| PlayerError::Link(format!("zone {}: {e}", zone.id)))?;
            }
            let video = ghost(&bin, &screen)?;
            Ok(ItemBin {
                bin,
                video: Some(video),
                audio: None,
                texts: overlays,
            })
        }
    }
}

/// A ghost src pad on `bin` for `tail`'s src pad.
fn ghost(bin: &gst::Bin, tail: &gst::Element) -> Result<gst::Pad, PlayerError> {
    let target = tail
        .static_pad("src")
        .ok_or_else(|| PlayerError::Link("no src pad to ghost".to_owned()))?;
    let ghost = gst::GhostPad::builder_with_target(&target)
        .map_err(|e| PlayerError::Link(e.to_string()))?
        .name("src")
        .build();
    bin.add_pad(&ghost)
        .map_err(|e| PlayerError::Link(e.to_string()))?;
    Ok(ghost.upcast())
}

/// `filesrc ! decodebin` and the chain that scales its video to
/// `width`×`height` (letterboxed); images are frozen into a stream. Returns
/// the last element. Audio streams of a video file are discarded.
fn decoded_video(
    bin: &gst::Bin,
    source: &Source,
    width: u32,
    height: u32,
) -> Result<gst::Element, PlayerError> {
    let file = file_source(&source.location())?;
    let decode = make("decodebin")?;
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let size = raw_caps(width, height, None, false)?;
    add(bin, &[&file, &decode, &convert, &scale, &size])?;
    chain(&[&file, &decode])?;
    chain(&[&convert, &scale, &size])?;
    let tail = if source.kind == ItemKind::Image {
        let freeze = make("imagefreeze")?;
        let rate = make("capsfilter")?;
        rate.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("framerate", gst::Fraction::new(FRAME_RATE, 1))
                .build(),
        );
        add(bin, &[&freeze, &rate])?;
        chain(&[&size, &freeze, &rate])?;
        rate
    } else {
        size
    };
    let video_in = convert
        .static_pad("sink")
        .ok_or_else(|| PlayerError::Link("videoconvert has no sink".to_owned()))?;
    let weak_bin = bin.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if is_video {
            if !video_in.is_linked()
                && let Err(e) = pad.link(&video_in)
            {
                tracing::warn!(error = %e, "could not link the decoded video");
            }
        } else if let Some(bin) = weak_bin.upgrade() {
            discard(&bin, pad);
        }
    });
    Ok(tail)
}

/// Links a decoded stream the item does not use to a sink that drops it.
fn discard(bin: &gst::Bin, pad: &gst::Pad) {
    let Ok(sink) = make("fakesink") else { return };
    sink.set_property("sync", false);
    sink.set_property("async", false);
    if bin.add(&sink).is_err() {
        return;
    }
    let _ = sink.sync_state_with_parent();
    if let Some(sink_pad) = sink.static_pad("sink") {
        let _ = pad.link(&sink_pad);
    }
}

/// A `filesrc` reading `path` (a [`Source::location`]: the verified file
/// held open, A8).
fn file_source(path: &Path) -> Result<gst::Element, PlayerError> {
    let file = make("filesrc")?;
    file.set_property("location", path.to_string_lossy().as_ref());
    Ok(file)
}

/// An audio item: decoded, converted and played by the audio sink; it
/// shows no pixels (the screen is black).
fn audio_bin(bin: gst::Bin, source: &Source, out: &VideoOut) -> Result<ItemBin, PlayerError> {
    let file = file_source(&source.location())?;
    let decode = make("decodebin")?;
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let sink = if out.headless {
        let sink = make("fakesink")?;
        sink.set_property("sync", true);
        sink
    } else {
        make("autoaudiosink")?
    };
    add(&bin, &[&file, &decode, &convert, &resample, &sink])?;
    chain(&[&file, &decode])?;
    chain(&[&convert, &resample, &sink])?;
    let audio_in = convert
        .static_pad("sink")
        .ok_or_else(|| PlayerError::Link("audioconvert has no sink".to_owned()))?;
    let linked = audio_in.clone();
    let weak_bin = bin.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let is_audio = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
            .unwrap_or(false);
        if is_audio && !linked.is_linked() {
            if let Err(e) = pad.link(&linked) {
                tracing::warn!(error = %e, "could not link the decoded audio");
            }
        } else if let Some(bin) = weak_bin.upgrade() {
            discard(&bin, pad);
        }
    });
    Ok(ItemBin {
        bin,
        video: None,
        audio: Some(audio_in),
        texts: BTreeMap::new(),
    })
}

/// A text, ticker or clock zone: its background (transparent unless the
/// style has one) with the overlay drawing `text` on it. Returns the last
/// element and the overlay.
fn text_zone(
    bin: &gst::Bin,
    zone: &Zone,
    text: &str,
) -> Result<(gst::Element, gst::Element), PlayerError> {
    let style = zone.style.unwrap_or(TextStyle {
        font_size_px: 32,
        color_rgb: 0x00FF_FFFF,
        background_rgb: None,
        align: TextAlign::Left,
    });
    let background = make("videotestsrc")?;
    background.set_property_from_str("pattern", "solid-color");
    background.set_property(
        "foreground-color",
        style.background_rgb.map_or(0, |rgb| 0xFF00_0000 | rgb),
    );
    let size = raw_caps(zone.rect.width, zone.rect.height, Some("BGRA"), true)?;
    let overlay = if zone.kind == ZoneKind::Clock {
        let clock = make("clockoverlay")?;
        clock.set_property("time-format", text);
        clock
    } else {
        let overlay = make("textoverlay")?;
        overlay.set_property("text", text);
        overlay
    };
    overlay.set_property("font-desc", format!("Sans {}px", style.font_size_px.max(1)));
    overlay.set_property("color", 0xFF00_0000 | style.color_rgb);
    overlay.set_property("draw-shadow", false);
    overlay.set_property("draw-outline", false);
    overlay.set_property("shaded-background", false);
    overlay.set_property_from_str("valignment", "center");
    let align = match style.align {
        TextAlign::Left => "left",
        TextAlign::Center => "center",
        TextAlign::Right => "right",
    };
    if zone.kind == ZoneKind::Ticker {
        overlay.set_property_from_str("halignment", "left");
        overlay.set_property("wrap-mode", -1i32);
        scroll(&background, &overlay, zone.rect.width, style.font_size_px);
    } else {
        overlay.set_property_from_str("halignment", align);
    }
    add(bin, &[&background, &size, &overlay])?;
    chain(&[&background, &size, &overlay])?;
    Ok((overlay.clone(), overlay))
}

/// Scrolls a ticker: before each frame the overlay's text moves left, at
/// four font heights a second, entering from the right edge again once it
/// has left on the left.
fn scroll(background: &gst::Element, overlay: &gst::Element, width: u32, font_px: u32) {
    let Some(pad) = background.static_pad("src") else {
        return;
    };
    let overlay = overlay.downgrade();
    let width = i64::from(width);
    let speed = i64::from(font_px.max(1)) * 4;
    // The text's length is read from the element, which `set_texts` changes.
    let last = Arc::new(Mutex::new(0i32));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let (Some(overlay), Some(buffer)) = (overlay.upgrade(), info.buffer()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Ok;
        };
        let chars = overlay
            .property::<Option<String>>("text")
            .map_or(0, |t| t.chars().count());
        let text_width = i64::try_from(chars).unwrap_or(i64::MAX / 4) * speed / 4 * 6 / 10;
        let travel = (width + text_width).max(1);
        let moved = i64::try_from(pts.mseconds()).unwrap_or(0) * speed / 1000;
        let x = width - moved % travel;
        let x = i32::try_from(x).unwrap_or(0);
        if let Ok(mut last) = last.lock()
            && *last != x
        {
            *last = x;
            overlay.set_property("deltax", x);
        }
        gst::PadProbeReturn::Ok
    });
}
