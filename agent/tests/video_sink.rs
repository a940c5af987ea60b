//! The shipped default `video_sink = "auto"` without any display (D7, U4):
//! the agent picks the sink itself (KMS, Wayland, X, never
//! `autovideosink`, which crashes without a display), and with none usable
//! it plays headless, says so in one log line and reports it as the device
//! state's `last_error`, which the fleet view shows.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use signet_common::sync::Outcome;
use support::{Agent, content_world, entry, image, paired_dir, pattern_png, queued_events};

/// The log line the agent writes when `auto` finds no display.
const NO_DISPLAY: &str = "video_sink auto: no usable display";

/// Whether this machine has a DRM card (the test needs one without).
fn has_drm_card() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("card"))
    })
}

/// D7, U4: `auto` with no DISPLAY, no WAYLAND_DISPLAY and no DRM device:
/// the agent does not crash, plays headless (its state shows the item
/// playing and it records plays), logs the reason once, and its state's
/// `last_error` carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_u4_auto_without_a_display_plays_headless_and_reports_why() {
    assert!(
        !has_drm_card(),
        "this test needs a machine without a DRM device"
    );
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
            vec![entry("e", &["red"], 1_000, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start_without(
        data.path(),
        &[("SIGNET_AGENT_VIDEO_SINK", "auto")],
        &["DISPLAY", "WAYLAND_DISPLAY"],
    );
    let state = hub
        .wait_state("red playing, with the display problem reported", |s| {
            s.now_playing
                .as_ref()
                .is_some_and(|n| n.item.as_str() == "red")
                && s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains(NO_DISPLAY))
        })
        .await;
    let error = state.last_error.unwrap();
    for reason in [
        "kms: no DRM device",
        "wayland: WAYLAND_DISPLAY is not set",
        "x: DISPLAY is not set",
        "playing headless",
    ] {
        assert!(error.contains(reason), "{error}");
    }
    // A few 1 s slots go by, recorded as played.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let log = agent.log_text();
    assert!(
        agent.stop().success(),
        "the agent ran until stopped:\n{log}"
    );
    assert_eq!(log.matches(NO_DISPLAY).count(), 1, "one log line:\n{log}");
    assert!(!log.contains("autovideosink"), "{log}");
    let played = queued_events(data.path())
        .into_iter()
        .filter(|e| e.item.as_str() == "red" && e.outcome == Outcome::Played)
        .count();
    assert!(played >= 1, "headless playback records plays");
}
