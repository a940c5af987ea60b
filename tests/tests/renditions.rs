//! End to end over the real binaries (issue 18, M3 "process media"): the
//! hub makes an H.264 rendition of a VP8 video with GStreamer, lists it in
//! the group manifest once every screen of the group declared it reads
//! renditions, and each real agent (headless GStreamer) picks by its
//! `max_decode`: a screen limited to `1080p30-h264` (a Raspberry Pi) cannot
//! play the VP8 original, fetches, verifies and plays the rendition; a
//! screen without a limit fetches and plays the original. Proof of play
//! names the item on both (M3, D2, D7, U1).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::{Agent, Hub};

/// How long processing, pairing, publishing and the first plays may take
/// on a shared machine (a bound on waiting, not a speed claim).
const CONVERGE: Duration = Duration::from_secs(180);

/// Polls `probe` every 250 ms until it returns `Some`, for at most
/// [`CONVERGE`].
async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "{what}: not within {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A two-second 320×240 VP8 video at 20 fps (WebM), made by GStreamer:
/// not H.264, so a screen limited to H.264 cannot play it.
fn vp8_video(dir: &Path) -> Vec<u8> {
    let path = dir.join("original.webm");
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=40",
            "pattern=ball",
            "!",
            "video/x-raw,width=320,height=240,framerate=20/1",
            "!",
            "vp8enc",
            "deadline=1",
            "!",
            "webmmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "gst-launch-1.0 made no video");
    std::fs::read(path).unwrap()
}

/// The rows of `device` for `item` that played.
async fn played(hub: &Hub, device: &str, item: &str) -> Vec<Value> {
    let path = format!("/api/v1/reports/usage?device={device}&limit=1000");
    let (status, page) = hub.call(Method::GET, &path, None).await;
    assert!(status.is_success(), "{page}");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["item"] == item && r["outcome"] == "played")
        .cloned()
        .collect()
}

/// Whether `agent` holds a verified cache file of `sha256`.
fn cached(agent: &Agent, sha256: &str) -> bool {
    agent
        .data
        .join("cache")
        .join("blobs")
        .join(sha256)
        .is_file()
}

/// M3, D2, D7, U1: a processed video reaches two real screens at one
/// node. The one limited to `1080p30-h264` fetches the H.264 rendition
/// (never the VP8 original) and plays it; the one without a limit fetches
/// the original (never the rendition) and plays it; both report the item
/// played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m3_a_pi_plays_the_rendition_and_a_pc_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let shop = hub.node(&root, "Shop").await;
    let item = hub.upload(&root, "Clip", vp8_video(dir.path())).await;
    let item_id = item["id"].as_str().unwrap().to_owned();
    let original = item["sha256"].as_str().unwrap().to_owned();

    // Process media: the job runs in the hub's background worker.
    let process = format!("/api/v1/content/{item_id}/process");
    let (status, job) = hub.call(Method::POST, &process, Some(json!({}))).await;
    assert_eq!(status.as_u16(), 202, "{job}");
    let renditions = format!("/api/v1/content/{item_id}/renditions");
    let job = until("the rendition job to finish", async || {
        let (status, jobs) = hub.call(Method::GET, &renditions, None).await;
        assert!(status.is_success(), "{jobs}");
        let job = jobs[0].clone();
        (job["state"] == "done" || job["state"] == "failed").then_some(job)
    })
    .await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["rendition"]["codec"], "h264", "{job}");
    let rendition = job["rendition"]["sha256"].as_str().unwrap().to_owned();

    let events = "event_upload_secs = 1\n";
    let mut pi = Agent::pair(
        &hub,
        dir.path(),
        "pi",
        &shop,
        &format!("{events}max_decode = \"1080p30-h264\"\n"),
    )
    .await;
    let mut pc = Agent::pair(
        &hub,
        dir.path(),
        "pc",
        &shop,
        &format!("{events}max_decode = \"none\"\n"),
    )
    .await;
    pi.run();
    pc.run();
    // Both have reported a state (declaring the document fields they
    // read) before the publication that lists the rendition.
    for agent in [&pi, &pc] {
        until("the screen to report its state", async || {
            let (status, entry) = hub
                .call(
                    Method::GET,
                    &format!("/api/v1/fleet/{}", agent.device),
                    None,
                )
                .await;
            (status.is_success() && entry["online"] == true).then_some(())
        })
        .await;
    }
    hub.schedule_all_day(&shop, &item_id, 1_000).await;
    hub.post(
        "/api/v1/publish",
        json!({"scope": {"kind": "node", "id": shop}}),
    )
    .await;

    let rows = until("the Pi to play the item", async || {
        let rows = played(&hub, &pi.device, &item_id).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert!(rows.iter().all(|r| r["item"] == item_id.as_str()));
    assert!(cached(&pi, &rendition), "the Pi fetched the rendition");
    assert!(!cached(&pi, &original), "the Pi never fetched the original");

    until("the PC to play the item", async || {
        let rows = played(&hub, &pc.device, &item_id).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert!(cached(&pc, &original), "the PC fetched the original");
    assert!(
        !cached(&pc, &rendition),
        "the PC never fetched the rendition"
    );
    pi.kill();
    pc.kill();
}
