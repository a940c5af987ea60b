//! The shipped default `video_sink = "auto"` on a machine without any
//! display, end to end over the real binaries (D7, U4): the agent does not
//! crash, plays headless, and the hub's fleet view shows why nothing is on
//! a screen in the device's `last_error`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::{Agent, Hub};

const CONVERGE: Duration = Duration::from_secs(90);

/// D7, U4: `auto` with DISPLAY and WAYLAND_DISPLAY empty and no DRM device:
/// `GET /api/v1/fleet/{id}` shows the item playing and the display problem
/// as `last_error`; the agent keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_u4_auto_without_a_display_plays_headless_and_the_fleet_view_says_why() {
    assert!(
        std::fs::read_dir("/dev/dri").is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            || !std::fs::read_dir("/dev/dri")
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("card")),
        "this test needs a machine without a DRM device"
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = hub.node(&root, "Kiosk").await;
    let red = hub
        .upload(
            &site,
            "Red",
            signet_tests::solid_png(dir.path(), "red.png", 0xff_0000, 64, 36),
        )
        .await;
    let red_id = red["id"].as_str().unwrap().to_owned();
    hub.schedule_all_day(&site, &red_id, 2_000).await;
    let mut agent = Agent::pair(&hub, dir.path(), "kiosk", &site, "").await;
    agent.run_with(&[
        ("SIGNET_AGENT_VIDEO_SINK", "auto"),
        ("DISPLAY", ""),
        ("WAYLAND_DISPLAY", ""),
    ]);
    hub.post(
        "/api/v1/publish",
        json!({"scope": {"kind": "node", "id": site}}),
    )
    .await;

    let deadline = Instant::now() + CONVERGE;
    let device: Value = loop {
        let (status, device) = hub
            .call(
                Method::GET,
                &format!("/api/v1/fleet/{}", agent.device),
                None,
            )
            .await;
        let playing = device["now_playing"]["item"] == red_id.as_str();
        let reported = device["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("video_sink auto: no usable display"));
        if status.is_success() && playing && reported {
            break device;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet view never showed the item playing headless with the reason: {status} {device:#}\n{}",
            agent.process.as_ref().unwrap().output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let error = device["last_error"].as_str().unwrap();
    assert!(error.contains("playing headless"), "{error}");
    let process = agent.process.as_mut().unwrap();
    assert!(!process.exited(), "the agent is still running");
    let lines = process.output();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("video_sink auto: no usable display"))
            .count(),
        1,
        "one log line:\n{}",
        lines.join("\n")
    );
    agent.kill();
}
