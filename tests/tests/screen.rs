//! The screen end to end (issue 7) over the real binaries: a template with
//! an image zone and a text zone bound to a data feed whose URL carries the
//! device's variable is published by the hub, composed by the agent's
//! headless GStreamer player, its feed fetched by the agent, and a signed
//! `screenshot` command brings the composed frame to the hub (D6, D7, D8).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use signet_tests::{Agent, Hub};

const CONVERGE: Duration = Duration::from_secs(90);
const WIDTH: usize = 320;
const HEIGHT: usize = 180;

/// The RGB pixels of a PNG, decoded by GStreamer.
fn pixels(dir: &Path, png: &[u8]) -> Vec<u8> {
    let input = dir.join("shot.png");
    let output = dir.join("shot.rgb");
    std::fs::write(&input, png).unwrap();
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", input.display()))
        .args([
            "!",
            "pngdec",
            "!",
            "videoconvert",
            "!",
            "video/x-raw,format=RGB",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", output.display()))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(output).unwrap()
}

/// D6, D7, D8: the template is composed with its image and the feed's
/// value, and the screenshot the hub receives shows the image zone where
/// the layout puts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d6_d7_d8_a_template_with_a_feed_is_composed_and_its_screenshot_reaches_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = hub.node(&root, "Store 3").await;

    // The feed: a real HTTP server answering per store.
    let feed = axum::Router::new().route(
        "/prices/{store}",
        axum::routing::get(
            |axum::extract::Path(store): axum::extract::Path<String>| async move {
                axum::Json(json!({"price": format!("{store}: 2.49 EUR")}))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed_url = format!("http://{}/prices/[1]", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, feed).await;
    });

    let green = hub
        .upload(
            &site,
            "Green",
            signet_tests::solid_png(dir.path(), "green.png", 0x00_ff00, 64, 36),
        )
        .await;
    let (status, template) = hub
        .call(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"node": site, "name": "Price board", "template": {
            "canvas": {"width": 320, "height": 180},
            "zones": [
                {"id": "left", "kind": "image", "source": green["id"],
                 "rect": {"x": 0, "y": 0, "width": 160, "height": 180}},
                {"id": "price", "kind": "text", "text": "…",
                 "rect": {"x": 160, "y": 0, "width": 160, "height": 180},
                 "feed": {"url": feed_url, "json_pointer": "/price", "refresh_secs": 5,
                          "last_value": null}}
            ]}})),
        )
        .await;
    assert!(status.is_success(), "{template}");
    hub.schedule_all_day(&site, template["id"].as_str().unwrap(), 60_000)
        .await;

    let mut agent = Agent::pair(
        &hub,
        dir.path(),
        "board",
        &site,
        &format!("screen_width = {WIDTH}\nscreen_height = {HEIGHT}\n"),
    )
    .await;
    let (status, answer) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/devices/{}/variables", agent.device),
            Some(json!({"variables": {"1": "store-3"}})),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    agent.run();
    hub.post(
        "/api/v1/publish",
        json!({"scope": {"kind": "node", "id": site}}),
    )
    .await;

    // The feed's value, fetched with the device's variable, reaches the
    // template on screen.
    let process = agent.process.as_ref().unwrap();
    let line = process.line_containing("store-3: 2.49 EUR", CONVERGE).await;
    assert!(line.contains("template texts updated"), "{line}");

    // Signed screenshot commands; the hub keeps what the agent sends. The
    // first may come before the template's first frame is composed, so ask
    // until the image zone shows (bounded).
    let started = Instant::now();
    let at = |rgb: &[u8], x: usize, y: usize| {
        let i = (y * WIDTH + x) * 3;
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    loop {
        let (status, answer) = hub
            .call(
                Method::POST,
                &format!("/api/v1/devices/{}/commands", agent.device),
                Some(json!({"action": "screenshot"})),
            )
            .await;
        assert!(status.is_success(), "{answer}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let response = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/devices/{}/screenshot",
                hub.base, agent.device
            ))
            .bearer_auth(&hub.token)
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            assert_eq!(response.headers()["content-type"], "image/png");
            let png = response.bytes().await.unwrap().to_vec();
            let rgb = pixels(dir.path(), &png);
            assert_eq!(rgb.len(), WIDTH * HEIGHT * 3, "the screen size");
            let (r, g, b) = at(&rgb, 80, 90);
            if g > 200 && r < 60 && b < 60 {
                break;
            }
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the image zone never showed green in a screenshot:\n{}",
            process.output().join("\n")
        );
    }
    agent.kill();
}
