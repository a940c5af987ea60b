//! Screens that never go black through a content update (issue 14, points
//! 1 and 6), over the real binaries: a hub with its embedded broker and a
//! headless agent playing real GStreamer-decoded images.
//!
//! Version 1 of a site plays; version 2 adds a large image that downloads
//! slowly (`download_rate_kib`), or that the cache refuses (`cache_limit_mb`).
//! The agent's own proof of play is the evidence that version 1 kept
//! playing: the played events of the item on screen are laid end to end and
//! every gap between them is measured (D1, D3). The fleet view is polled at
//! the same time: it must say *not in sync* from the publish of version 2
//! until the agent activates it, with the reason (downloading with
//! progress, or refused by the cache), and what plays (U4).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::rig::{Rig, Site};
use signet_tests::{Agent, Hub};

/// How long a converging step may take on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(90);
/// The longest pause between two plays that still counts as continuous:
/// the player's events are written per slot, and an event's start and
/// duration are measured in whole milliseconds by the agent's own clock.
const SEAM_MS: i64 = 250;

/// A PNG of `width`×`height` noise (incompressible, so its size is about
/// 3 bytes a pixel), made by GStreamer's own encoder in `dir`.
fn noise_png(dir: &std::path::Path, width: u32, height: u32) -> Vec<u8> {
    let path = dir.join("noise.png");
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "pattern=snow",
            "num-buffers=1",
            "!",
            &format!("video/x-raw,format=RGB,width={width},height={height}"),
            "!",
            "pngenc",
            "compression-level=0",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "gst-launch-1.0 made no PNG");
    std::fs::read(path).unwrap()
}

/// Every usage row of `device` (all pages), oldest first.
async fn usage(hub: &Hub, device: &str) -> Vec<Value> {
    let mut rows = hub.usage(device).await;
    rows.sort_by_key(start_of);
    rows
}

fn start_of(row: &Value) -> DateTime<Utc> {
    row["start"].as_str().unwrap().parse().unwrap()
}

/// The time in `[from, to)` not covered by any played event of `rows`,
/// counting only pauses longer than [`SEAM_MS`], in milliseconds; and the
/// number of skipped events that started in that span.
fn dark_ms(rows: &[Value], from: DateTime<Utc>, to: DateTime<Utc>) -> (i64, usize) {
    let mut covered_until = from;
    let mut dark = 0;
    let mut skipped = 0;
    for row in rows {
        let start = start_of(row);
        if row["outcome"] != "played" {
            if start >= from && start < to {
                skipped += 1;
            }
            continue;
        }
        let end = start + chrono::TimeDelta::milliseconds(row["duration_ms"].as_i64().unwrap());
        if end <= from || start >= to {
            continue;
        }
        let gap = (start - covered_until).num_milliseconds();
        if gap > SEAM_MS {
            eprintln!("dark from {covered_until} to {start} ({gap} ms) before {row}");
            dark += gap;
        }
        covered_until = covered_until.max(end);
    }
    let tail = (to - covered_until).num_milliseconds();
    if tail > SEAM_MS {
        eprintln!("dark from {covered_until} to the end of the span {to} ({tail} ms)");
        for row in rows {
            let start = start_of(row);
            if (start - to).num_seconds().abs() <= 3 {
                eprintln!(
                    "  {} {} {} {}",
                    row["start"], row["duration_ms"], row["outcome"], row["item"]
                );
            }
        }
        dark += tail;
    }
    (dark, skipped)
}

/// The fleet view of one device.
async fn fleet_device(hub: &Hub, device: &str) -> Value {
    let (status, view) = hub
        .call(Method::GET, &format!("/api/v1/fleet/{device}"), None)
        .await;
    assert!(status.is_success(), "{view}");
    view
}

/// The fleet view's entry for the manifest of `group`.
fn manifest_entry<'a>(view: &'a Value, group: &str) -> &'a Value {
    view["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "group_manifest" && d["subject"] == group)
        .unwrap_or_else(|| panic!("no manifest of {group} in {view:#}"))
}

/// A site playing one small image (its item) all day, and an agent
/// playing it.
struct Scene {
    rig: Rig,
    site: Site,
    agent: Agent,
}

async fn scene(agent_config: &str) -> Scene {
    let rig = Rig::embedded(&[]).await;
    let site = rig.site("Lobby", "Welcome", 0x11_8844).await;
    let mut agent = rig
        .pair(
            "lobby",
            &site.node,
            &format!("event_upload_secs = 1\n{agent_config}"),
        )
        .await;
    agent.run();
    site.publish(&rig.hub).await;
    let scene = Scene { rig, site, agent };
    // Version 1 plays and is in sync.
    let started = Instant::now();
    loop {
        let view = fleet_device(&scene.rig.hub, &scene.agent.device).await;
        if view["in_sync"] == true && view["now_playing"]["item"] == scene.site.item.as_str() {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "version 1 never played: {view:#}\nagent:\n{}",
            scene.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    scene
}

impl Scene {
    /// Adds `bytes` to the playlist as a second item and publishes:
    /// version 2. Returns the new item's id and when the publish answered.
    async fn publish_with(&self, bytes: Vec<u8>) -> (String, DateTime<Utc>) {
        let big = self.rig.hub.upload(&self.site.node, "Poster", bytes).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, answer) = self
            .rig
            .hub
            .call(
                Method::PATCH,
                &format!("/api/v1/playlists/{}", self.site.playlist),
                Some(json!({"items": [
                    {"item": self.site.item, "duration_ms": 1_000},
                    {"item": big, "duration_ms": 1_000},
                ]})),
            )
            .await;
        assert!(status.is_success(), "{answer}");
        self.site.publish(&self.rig.hub).await;
        (big, Utc::now())
    }

    fn agent_log(&self) -> String {
        self.agent.log()
    }
}

/// D1, D3, U4: through a slow download of version 2's new content, version
/// 1 keeps playing every second (0 s with nothing on screen, measured from
/// the agent's proof of play); the fleet view says not in sync, with
/// accepted 2, activated 1 and the download's progress, until the one
/// switch; then version 2 plays and the device is in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d3_u4_the_old_version_plays_through_a_slow_download_until_the_switch() {
    // About 11 MB at 1 MiB/s: some ten seconds of download.
    let scene = scene("download_rate_kib = 1024\n").await;
    let v1 = manifest_entry(
        &fleet_device(&scene.rig.hub, &scene.agent.device).await,
        &scene.site.node,
    )["desired_version"]
        .as_u64()
        .unwrap();
    let poster = noise_png(scene.rig.path(), 2_200, 1_700);
    assert!(poster.len() > 10_000_000, "{} bytes", poster.len());
    let (big, published) = scene.publish_with(poster).await;

    // Poll the fleet view until the switch: never in sync before it.
    let started = Instant::now();
    let mut saw_progress = false;
    let mut polls = 0;
    let switched_at = loop {
        let view = fleet_device(&scene.rig.hub, &scene.agent.device).await;
        let entry = manifest_entry(&view, &scene.site.node);
        let desired = entry["desired_version"].as_u64().unwrap();
        if desired > v1 && entry["activated_version"].as_u64() == Some(desired) {
            assert_eq!(entry["status"], "in_sync", "{entry:#}");
            break Utc::now();
        }
        polls += 1;
        assert_eq!(
            view["in_sync"], false,
            "in sync before activation: {view:#}"
        );
        assert_eq!(entry["in_sync"], false, "{entry:#}");
        if entry["accepted_version"].as_u64() == Some(desired) && desired > v1 {
            assert_eq!(entry["activated_version"].as_u64(), Some(v1), "{entry:#}");
            // Between the verifier accepting version 2 and the content
            // task's first report on it, the hub says "waiting"; then
            // "downloading", with progress.
            match entry["status"].as_str() {
                Some("downloading") => {
                    let progress = &entry["progress"];
                    let needed = progress["bytes_needed"].as_u64().unwrap();
                    let cached = progress["bytes_cached"].as_u64().unwrap();
                    assert!(cached <= needed, "{progress}");
                    saw_progress |= cached > 0 && cached < needed;
                }
                Some("waiting") => {}
                _ => panic!("neither downloading nor waiting: {entry:#}"),
            }
        }
        if view["online"] == true {
            assert_eq!(
                view["now_playing"]["item"],
                scene.site.item.as_str(),
                "version 1 plays on during the download: {view:#}"
            );
        }
        assert!(
            started.elapsed() < CONVERGE * 2,
            "version 2 never activated: {view:#}\nagent:\n{}",
            scene.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        polls >= 4,
        "the download took under a second: nothing was proven"
    );
    assert!(saw_progress, "the fleet view never showed partial progress");

    // Version 2 plays: the poster shows up in the proof of play, and the
    // plays reported reach past the switch (a play is reported when it
    // ends, so the one on screen at the switch may still be going).
    let started = Instant::now();
    let rows = loop {
        let rows = usage(&scene.rig.hub, &scene.agent.device).await;
        let poster_played = rows
            .iter()
            .any(|r| r["item"] == big.as_str() && r["outcome"] == "played");
        let past_the_switch = rows
            .iter()
            .any(|r| r["outcome"] == "played" && start_of(r) > switched_at);
        if poster_played && past_the_switch {
            break rows;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the poster never played\nagent:\n{}",
            scene.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (dark, skipped) = dark_ms(&rows, published, switched_at);
    eprintln!(
        "D3 figure: {} s from publish to activation, {dark} ms with nothing playing, {skipped} skipped events",
        (switched_at - published).num_milliseconds() as f64 / 1000.0
    );
    assert_eq!(dark, 0, "the screen went dark during the update: {rows:#?}");
    assert_eq!(
        skipped, 0,
        "slots were skipped during the update: {rows:#?}"
    );
}

/// D3, D10, U4: a version 2 the cache refuses (over its limit) leaves
/// version 1 playing, whole, every second; the fleet view says refused by
/// the cache, with the reason, and not in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d3_d10_u4_a_manifest_refused_for_the_cache_limit_leaves_the_old_playing() {
    let scene = scene("cache_limit_mb = 2\n").await;
    let poster = noise_png(scene.rig.path(), 1_200, 1_000);
    assert!(poster.len() > 2 * 1024 * 1024, "{} bytes", poster.len());
    let (big, published) = scene.publish_with(poster).await;

    let started = Instant::now();
    let view = loop {
        let view = fleet_device(&scene.rig.hub, &scene.agent.device).await;
        let entry = manifest_entry(&view, &scene.site.node);
        assert_eq!(view["in_sync"], false, "{view:#}");
        if entry["status"] == "refused" {
            break view;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the refusal never showed: {view:#}\nagent:\n{}",
            scene.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let entry = manifest_entry(&view, &scene.site.node);
    let reason = entry["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cache limit"), "{entry:#}");
    assert!(
        view["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cache limit")),
        "the refusal is the device's last error: {view:#}"
    );
    // Version 1 keeps playing, whole, for a while longer.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let view = fleet_device(&scene.rig.hub, &scene.agent.device).await;
    assert_eq!(view["in_sync"], false, "{view:#}");
    assert_eq!(
        view["now_playing"]["item"],
        scene.site.item.as_str(),
        "{view:#}"
    );
    let until = Utc::now();
    let started = Instant::now();
    let rows = loop {
        // A play is reported when it ends: wait until the reports reach
        // past `until`.
        let rows = usage(&scene.rig.hub, &scene.agent.device).await;
        if rows
            .iter()
            .any(|r| r["outcome"] == "played" && start_of(r) > until)
        {
            break rows;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "no plays reported after {until}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        !rows.iter().any(|r| r["item"] == big.as_str()),
        "the refused poster is never due: {rows:#?}"
    );
    let (dark, skipped) = dark_ms(&rows, published, until);
    eprintln!(
        "D3/D10 figure: {} s after the refused publish, {dark} ms with nothing playing, {skipped} skipped events",
        (until - published).num_milliseconds() as f64 / 1000.0
    );
    assert_eq!(dark, 0, "the screen went dark: {rows:#?}");
    assert_eq!(skipped, 0, "slots were skipped: {rows:#?}");
}
