//! The GStreamer player against real GStreamer, headless (D6, D7, D8).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use signet_common::approval::{
    ApprovalState, Canvas, Rect, Template, TextAlign, TextStyle, Zone, ZoneKind,
};
use signet_common::digest::Sha256;
use signet_common::documents::{ItemKind, ManifestItem};
use signet_common::ids::ItemId;
use tokio::sync::Notify;

use super::GstPlayer;
use crate::config::VideoSink;
use crate::player::{Player, Showable, Source};

/// Runs a `gst-launch` style description to its end.
fn run(description: &str) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{description}: {msg:?}");
    pipeline.set_state(gst::State::Null).unwrap();
}

/// A solid `argb` VP8/WebM video of `frames` frames at 25 fps.
fn video(dir: &Path, name: &str, argb: u32, frames: u32) -> PathBuf {
    let path = dir.join(name);
    run(&format!(
        "videotestsrc pattern=solid-color foreground-color={argb:#x} num-buffers={frames} \
         ! video/x-raw,width=160,height=90,framerate=25/1 ! vp8enc deadline=1 \
         ! webmmux ! filesink location={}",
        path.display()
    ));
    path
}

/// A solid `argb` PNG of `width`×`height`.
fn still(dir: &Path, name: &str, argb: u32) -> PathBuf {
    let path = dir.join(name);
    run(&format!(
        "videotestsrc pattern=solid-color foreground-color={argb:#x} num-buffers=1 \
         ! video/x-raw,width=64,height=36 ! pngenc ! filesink location={}",
        path.display()
    ));
    path
}

fn item(id: &str, kind: ItemKind) -> ManifestItem {
    let sha = Sha256::of(id.as_bytes());
    ManifestItem {
        id: ItemId::from(id),
        kind,
        sha256: sha,
        size: 1,
        url: "http://127.0.0.1:9/x".into(),
        approval: ApprovalState::Active,
        approved_hash: Some(sha),
        categories: vec![],
        renditions: Vec::new(),
    }
}

fn media(id: &str, kind: ItemKind, path: PathBuf) -> Showable {
    Showable::Media {
        item: item(id, kind),
        source: Source::open(kind, path).unwrap(),
    }
}

/// What a pixel is: R, G, B, K (black) or ? (anything else).
fn colour(px: [u8; 3]) -> char {
    match px {
        [r, g, b] if r > 200 && g < 60 && b < 60 => 'R',
        [r, g, b] if r < 60 && g > 200 && b < 60 => 'G',
        [r, g, b] if r < 60 && g < 60 && b > 200 => 'B',
        [r, g, b] if r < 40 && g < 40 && b < 40 => 'K',
        _ => '?',
    }
}

/// Decodes a PNG to RGB with GStreamer: (width, height, pixels).
fn decode_png(png: &[u8]) -> (usize, usize, Vec<u8>) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let pipeline = gst::parse::launch(
        "appsrc name=src ! pngdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gstreamer_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    src.set_caps(Some(&gst::Caps::builder("image/png").build()));
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(gst::Buffer::from_slice(png.to_vec()))
        .unwrap();
    src.end_of_stream().unwrap();
    let sample = sink.pull_sample().unwrap();
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let map = sample.buffer().unwrap().map_readable().unwrap();
    let stride = info.stride()[0] as usize;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        rgb.extend_from_slice(&map.as_slice()[y * stride..y * stride + w * 3]);
    }
    drop(map);
    pipeline.set_state(gst::State::Null).unwrap();
    (w, h, rgb)
}

fn pixel(shot: &(usize, usize, Vec<u8>), x: usize, y: usize) -> [u8; 3] {
    let at = (y * shot.0 + x) * 3;
    [shot.2[at], shot.2[at + 1], shot.2[at + 2]]
}

/// Runs of equal colour: (colour, first frame ms, last frame ms, frames).
fn runs(frames: &[(u64, [u8; 3])]) -> Vec<(char, u64, u64, usize)> {
    let mut out: Vec<(char, u64, u64, usize)> = Vec::new();
    for &(rt, px) in frames {
        let c = colour(px);
        match out.last_mut() {
            Some(run) if run.0 == c => {
                run.2 = rt;
                run.3 += 1;
            }
            _ => out.push((c, rt, rt, 1)),
        }
    }
    out
}

/// D7: red video, green PNG, blue video shown at 1 s intervals: each colour
/// stays 1 s ± 100 ms and the next colour follows in the very next frame,
/// with no black or other frame between.
#[test]
fn d7_transitions_are_seamless() {
    let dir = tempfile::tempdir().unwrap();
    let red = video(dir.path(), "red.webm", 0xffff_0000, 50);
    let green = still(dir.path(), "green.png", 0xff00_ff00);
    let blue = video(dir.path(), "blue.webm", 0xff00_00ff, 50);
    let mut player = GstPlayer::new(VideoSink::None, 320, 180).unwrap();
    let frames = player.record();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let playlist = [
        media("red", ItemKind::Video, red),
        media("green", ItemKind::Image, green),
        media("blue", ItemKind::Video, blue),
    ];
    for (k, what) in playlist.iter().enumerate() {
        let due = start + Duration::from_secs(u64::try_from(k).unwrap());
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        player.show(what).unwrap();
    }
    std::thread::sleep(
        (start + Duration::from_millis(3300)).saturating_duration_since(Instant::now()),
    );
    assert!(player.take_errors().is_empty());
    let frames = frames.lock().unwrap().clone();
    let runs = runs(&frames);
    eprintln!("D7 runs (colour, first ms, last ms, frames): {runs:?}");
    let shown: Vec<_> = runs.iter().filter(|r| r.0 != 'K').collect();
    assert_eq!(
        shown.iter().map(|r| r.0).collect::<String>(),
        "RGB",
        "colours on screen in order, nothing else between: {runs:?}"
    );
    assert_eq!(
        runs.last().unwrap().0,
        'B',
        "blue stays to the end: {runs:?}"
    );
    let frame_ms = 1000 / u64::try_from(super::FRAME_RATE).unwrap();
    for pair in shown.windows(2) {
        let duration = pair[1].1 - pair[0].1;
        eprintln!(
            "D7 {} on screen {duration} ms, gap to {} {} ms",
            pair[0].0,
            pair[1].0,
            pair[1].1 - pair[0].2
        );
        assert!(
            (900..=1100).contains(&duration),
            "{} shown {duration} ms, not 1000 ± 100: {runs:?}",
            pair[0].0
        );
        assert!(
            pair[1].1 - pair[0].2 <= frame_ms + 50,
            "gap between {} and {}: {runs:?}",
            pair[0].0,
            pair[1].0
        );
    }
}

/// D6/D8: a template's image zones appear at their rects in the
/// screenshot; its text zone shows the given text, and `set_texts`
/// replaces it.
#[test]
fn d6_d8_template_zones_and_screenshot() {
    let dir = tempfile::tempdir().unwrap();
    let red = still(dir.path(), "red.png", 0xffff_0000);
    let blue = still(dir.path(), "blue.png", 0xff00_00ff);
    let zone = |id: &str, kind, rect: Rect, source: Option<&str>| Zone {
        id: id.to_owned(),
        kind,
        rect,
        source: source.map(ItemId::from),
        text: None,
        style: None,
        feed: None,
    };
    let mut headline = zone(
        "headline",
        ZoneKind::Text,
        Rect {
            x: 0,
            y: 300,
            width: 640,
            height: 60,
        },
        None,
    );
    headline.text = Some("static".to_owned());
    headline.style = Some(TextStyle {
        font_size_px: 24,
        color_rgb: 0xFF_FFFF,
        background_rgb: Some(0x20_2020),
        align: TextAlign::Center,
    });
    let template = Template {
        canvas: Canvas {
            width: 640,
            height: 360,
        },
        zones: vec![
            zone(
                "left",
                ZoneKind::Image,
                Rect {
                    x: 0,
                    y: 0,
                    width: 320,
                    height: 300,
                },
                Some("red"),
            ),
            zone(
                "right",
                ZoneKind::Image,
                Rect {
                    x: 320,
                    y: 0,
                    width: 320,
                    height: 300,
                },
                Some("blue"),
            ),
            headline,
        ],
    };
    let sources = BTreeMap::from([
        (
            ItemId::from("red"),
            Source::open(ItemKind::Image, red).unwrap(),
        ),
        (
            ItemId::from("blue"),
            Source::open(ItemKind::Image, blue).unwrap(),
        ),
    ]);
    let texts = BTreeMap::from([("headline".to_owned(), "Hello".to_owned())]);
    let mut player = GstPlayer::new(VideoSink::None, 640, 360).unwrap();
    player
        .show(&Showable::Template {
            item: item("layout", ItemKind::Template),
            template,
            sources,
            texts,
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let shot = decode_png(&player.screenshot().unwrap());
    assert_eq!((shot.0, shot.1), (640, 360));
    assert_eq!(colour(pixel(&shot, 160, 150)), 'R', "left zone is red");
    assert_eq!(colour(pixel(&shot, 480, 150)), 'B', "right zone is blue");
    assert_eq!(player.zone_text("headline").as_deref(), Some("Hello"));
    player.set_texts(&BTreeMap::from([(
        "headline".to_owned(),
        "Fresh".to_owned(),
    )]));
    assert_eq!(player.zone_text("headline").as_deref(), Some("Fresh"));
    assert!(player.take_errors().is_empty());
}

/// D7 bad media: a corrupt file is reported with GStreamer's message and
/// wakes the scheduler; the next good item plays.
#[test]
fn d7_corrupt_file_is_reported_and_next_item_plays() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.webm");
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&bad, noise).unwrap();
    let green = video(dir.path(), "green.webm", 0xff00_ff00, 50);
    let mut player = GstPlayer::new(VideoSink::None, 320, 180).unwrap();
    let wake = Arc::new(Notify::new());
    player.attach(wake.clone());
    let frames = player.record();
    player.show(&media("broken", ItemKind::Video, bad)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut errors = Vec::new();
    while errors.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        errors = player.take_errors();
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].item, ItemId::from("broken"));
    assert!(!errors[0].message.is_empty());
    eprintln!("corrupt file: {}", errors[0].message);
    // The notify holds a permit: it fired.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(1), wake.notified())
            .await
            .unwrap();
    });
    let before = frames.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(200));
    eprintln!(
        "frames before {before}, 200 ms later {}",
        frames.lock().unwrap().len()
    );
    player
        .show(&media("green", ItemKind::Video, green))
        .unwrap();
    // Within a few seconds on a loaded machine (the preroll bound is 2 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let after: Vec<char> = frames.lock().unwrap()[before..]
            .iter()
            .map(|f| colour(f.1))
            .collect();
        if after.contains(&'G') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the good item plays after the bad one: {after:?}"
        );
    }
    assert!(player.take_errors().is_empty());
}

/// D8: before anything is shown the screenshot is a black frame; after
/// `clear` the screen is black again.
#[test]
fn d8_clear_shows_black_and_first_screenshot_is_black() {
    let dir = tempfile::tempdir().unwrap();
    let red = still(dir.path(), "red.png", 0xffff_0000);
    let mut player = GstPlayer::new(VideoSink::None, 320, 180).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let shot = decode_png(&player.screenshot().unwrap());
    assert_eq!(
        colour(pixel(&shot, 160, 90)),
        'K',
        "black before anything is shown"
    );
    player.show(&media("red", ItemKind::Image, red)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let shot = decode_png(&player.screenshot().unwrap());
    assert_eq!(colour(pixel(&shot, 160, 90)), 'R');
    player.clear();
    std::thread::sleep(Duration::from_millis(300));
    let shot = decode_png(&player.screenshot().unwrap());
    assert_eq!(colour(pixel(&shot, 160, 90)), 'K', "black after clear");
}
