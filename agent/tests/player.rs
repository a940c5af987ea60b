//! Bad media on the real agent with its GStreamer player (D7, U1): a file
//! that does not decode is skipped and reported with GStreamer's error,
//! and the next item plays.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use signet_common::sync::Outcome;
use support::{
    Agent, content_world, entry, image, noise_png, paired_dir, pattern_png, random_bytes,
};

/// D7, U1: the corrupt item is reported as skipped with the player's
/// message and never as played; the good item after it plays.
/// The tests here run real players and time the scheduler's slots: one at a
/// time, so the X display tests' decoding does not eat into the timing
/// test's slots on a two-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_u1_a_file_that_does_not_decode_is_skipped_and_the_next_item_plays() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let corrupt = random_bytes(31, 20_000);
    let good = noise_png(40);
    let good_len = good.len() as u64;
    let (bad_sha, bad_url) = server.add(corrupt);
    let (good_sha, good_url) = server.add(good);
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![
                image("broken", bad_sha, 20_000, &bad_url),
                image("fine", good_sha, good_len, &good_url),
            ],
            vec![entry("e", &["broken", "fine"], 700, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    agent.wait_log("the player could not play it").await;
    hub.wait_state("the good item on screen", |s| {
        s.now_playing
            .as_ref()
            .is_some_and(|n| n.item.as_str() == "fine")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.kill();

    let events = support::queued_events(data.path());
    let broken: Vec<_> = events
        .iter()
        .filter(|e| e.item.as_str() == "broken")
        .collect();
    assert!(!broken.is_empty(), "{events:#?}");
    assert!(
        broken.iter().all(|e| e.outcome == Outcome::Skipped),
        "{broken:#?}"
    );
    assert!(
        broken
            .iter()
            .any(|e| e.skip_reason.as_deref().unwrap().starts_with("player: ")),
        "the first skip carries GStreamer's message: {broken:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.item.as_str() == "fine" && e.outcome == Outcome::Played),
        "{events:#?}"
    );
}

/// D5, D7, U1: the scheduler, on its own timers, drives the player through a
/// three-item playlist in order, each item shown for its 1 s slot within
/// ±100 ms, with each next item prerolled before it is shown, and one play
/// event of about 1 s per item. The agent syncs and caches the content for
/// real; then its playback loop runs in-process on the same data dir with
/// the recording null player, so the timing is the scheduler's, not a test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_d7_scheduler_timers_drive_a_playlist_in_order() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use signet_agent::cache::Cache;
    use signet_agent::events::EventLog;
    use signet_agent::player::{Links, NullPlayer, Playback, PlayerCall};
    use signet_agent::state::Store;
    use tokio::sync::{Notify, mpsc, watch};

    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let mut items = Vec::new();
    for id in ["a", "b", "c"] {
        let png = noise_png(24);
        let len = png.len() as u64;
        let (sha, url) = server.add(png);
        items.push(image(id, sha, len, &url));
    }
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            items,
            vec![entry("e", &["a", "b", "c"], 1000, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    hub.wait_state("the playlist on screen", |s| s.now_playing.is_some())
        .await;
    assert!(agent.stop().success());

    let store = Store::open(data.path()).unwrap();
    let clock = store
        .clock()
        .unwrap()
        .expect("the agent kept a trusted clock");
    let cache = Cache::open(data.path(), &store, 1 << 30).unwrap();
    // Nothing opened is trusted before it hashed to its name (A8); the
    // agent's file task does this in the background.
    while cache.verify_next().unwrap().is_some() {}
    let events = EventLog::open(&store).unwrap();
    let before = events.oldest(10_000).unwrap().len();
    let null = NullPlayer::default();
    let (_playing_tx, playing) = watch::channel(0u64);
    let (_documents_tx, documents) = watch::channel(0u64);
    let (_clock_tx, clock) = watch::channel(clock);
    let (now_playing, _now_playing_rx) = watch::channel(None);
    let (_commands_tx, commands) = mpsc::channel(1);
    let (screenshots, _screenshots_rx) = mpsc::channel(1);
    let (feed_wanted, _feed_wanted_rx) = watch::channel(Vec::new());
    let (feed_variables, _feed_variables_rx) = watch::channel(Default::default());
    let (_feed_texts_tx, feed_texts) = watch::channel(Default::default());
    let links = Links {
        playing,
        documents,
        clock,
        cache_changed: std::sync::Arc::new(Notify::new()),
        now_playing,
        upload: std::sync::Arc::new(Notify::new()),
        commands,
        screenshots,
        feed_wanted,
        feed_variables,
        feed_texts,
    };
    Playback::new(
        store.clone(),
        support::device().as_str().to_owned(),
        cache,
        Box::new(null.clone()),
        events.clone(),
        "test".to_owned(),
    )
    .run(links, tokio::time::sleep(Duration::from_millis(5_500)))
    .await;

    let calls = null.calls();
    let shows: Vec<_> = calls
        .iter()
        .enumerate()
        .filter_map(|(i, (at, call))| match call {
            PlayerCall::Show(item) => Some((i, *at, item.as_str().to_owned())),
            _ => None,
        })
        .collect();
    assert!(shows.len() >= 5, "{calls:#?}");
    for pair in shows.windows(2) {
        let ((i, at, item), (j, next_at, next)) = (&pair[0], &pair[1]);
        let order = ["a", "b", "c"];
        let k = order.iter().position(|o| o == item).unwrap();
        assert_eq!(next, order[(k + 1) % 3], "out of order: {calls:#?}");
        if *i != shows[0].0 {
            // The first show starts mid-slot; every later one fills a slot.
            let ms = next_at.duration_since(*at).as_millis();
            eprintln!("{item} on screen for {ms} ms, then {next}");
            assert!((900..=1100).contains(&ms), "{item} showed {ms} ms");
        }
        assert!(
            calls[i + 1..*j]
                .iter()
                .any(|(_, c)| *c == PlayerCall::Preroll(next.as_str().into())),
            "{next} was not prerolled before it was shown: {calls:#?}"
        );
    }
    let plays: Vec<_> = events.oldest(10_000).unwrap()[before..]
        .iter()
        .map(|(_, e)| e.clone())
        .filter(|e| e.outcome == Outcome::Played)
        .collect();
    // Every play but the first (mid-slot) and the last (cut by the stop).
    assert!(plays.len() >= 4, "{plays:#?}");
    for play in &plays[1..plays.len() - 1] {
        eprintln!("play event: {} for {} ms", play.item, play.duration_ms);
        assert!(
            (900..=1100).contains(&play.duration_ms),
            "{} played {} ms",
            play.item,
            play.duration_ms
        );
    }
}

/// A virtual X display (Xvfb) for the lifetime of the value; killed by pid.
struct XDisplay {
    /// The Xvfb process.
    server: std::process::Child,
    /// Its display name, `:N`.
    name: String,
}

impl XDisplay {
    /// Starts Xvfb at `width`×`height` on a free display number.
    fn start(width: u32, height: u32) -> Self {
        for _ in 0..20 {
            let number = 100 + support::free_port() % 800;
            if std::path::Path::new(&format!("/tmp/.X{number}-lock")).exists() {
                continue;
            }
            let name = format!(":{number}");
            let mut server = std::process::Command::new("Xvfb")
                .args([&name, "-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("Xvfb (Debian package xvfb; `make test` installs it)");
            let socket = format!("/tmp/.X11-unix/X{number}");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if std::path::Path::new(&socket).exists() {
                    return Self { server, name };
                }
                if server.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        panic!("no Xvfb display could be started");
    }

    /// The screen's pixels as RGB rows, grabbed by GStreamer's `ximagesrc`.
    fn grab(&self) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("screen.rgb");
        let status = std::process::Command::new("gst-launch-1.0")
            .args(["-q", "ximagesrc"])
            .arg(format!("display-name={}", self.name))
            .args([
                "use-damage=false",
                "num-buffers=1",
                "!",
                "videoconvert",
                "!",
            ])
            .args(["video/x-raw,format=RGB", "!", "filesink"])
            .arg(format!("location={}", raw.display()))
            .status()
            .unwrap();
        assert!(status.success(), "ximagesrc could not grab the screen");
        std::fs::read(raw).unwrap()
    }
}

impl Drop for XDisplay {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// D7: with `video_sink = "x"` the agent's player really draws on an X
/// display: a red image scheduled on the node fills the (virtual) screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_the_x_sink_shows_the_item_on_an_x_display() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (width, height) = (320u32, 180u32);
    let display = XDisplay::start(width, height);
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let red = pattern_png("red", 64, 36);
    let len = red.len() as u64;
    let (sha, url) = server.add(red);
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![image("red", sha, len, &url)],
            vec![entry("e", &["red"], 5_000, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start_with(
        data.path(),
        &[
            ("SIGNET_AGENT_VIDEO_SINK", "x"),
            ("DISPLAY", display.name.as_str()),
        ],
    );
    hub.wait_state("the red image on screen", |s| {
        s.now_playing
            .as_ref()
            .is_some_and(|n| n.item.as_str() == "red")
    })
    .await;
    // The image is on screen once a frame has been drawn; look a few times.
    let mut red_share = 0.0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pixels = display.grab();
        assert_eq!(pixels.len(), (width * height * 3) as usize);
        let red = pixels
            .chunks_exact(3)
            .filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60)
            .count();
        red_share = red as f64 / f64::from(width * height);
        if red_share > 0.95 {
            break;
        }
    }
    assert!(agent.stop().success());
    assert!(
        red_share > 0.95,
        "only {:.0}% of the X screen is red",
        red_share * 100.0
    );
}

/// D7: with `video_sink = "auto"` and DISPLAY pointing at an X server (and
/// no Wayland compositor, no DRM device), the agent picks the X sink itself:
/// a red image fills the (virtual) screen, the log names the choice and the
/// state reports no display problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_auto_picks_the_x_display_when_display_points_at_an_x_server() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (width, height) = (320u32, 180u32);
    let display = XDisplay::start(width, height);
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let red = pattern_png("red", 64, 36);
    let len = red.len() as u64;
    let (sha, url) = server.add(red);
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![image("red", sha, len, &url)],
            vec![entry("e", &["red"], 5_000, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start_without(
        data.path(),
        &[
            ("SIGNET_AGENT_VIDEO_SINK", "auto"),
            ("DISPLAY", display.name.as_str()),
        ],
        &["WAYLAND_DISPLAY"],
    );
    let state = hub
        .wait_state("the red image on screen", |s| {
            s.now_playing
                .as_ref()
                .is_some_and(|n| n.item.as_str() == "red")
        })
        .await;
    assert_eq!(state.last_error, None);
    let mut red_share = 0.0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pixels = display.grab();
        let red = pixels
            .chunks_exact(3)
            .filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60)
            .count();
        red_share = red as f64 / f64::from(width * height);
        if red_share > 0.95 {
            break;
        }
    }
    let log = agent.log_text();
    assert!(agent.stop().success());
    assert!(log.contains("video_sink auto: showing on x"), "{log}");
    assert!(
        red_share > 0.95,
        "only {:.0}% of the X screen is red",
        red_share * 100.0
    );
}
