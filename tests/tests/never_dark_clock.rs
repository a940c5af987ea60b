//! Screens that never go dark after a clock correction (issue 14, defect 2;
//! S6, D1, D4, U1, U4), end to end over the real binaries: `signet-hub`
//! signing `hub_time` every 2 s (`hub_time_interval_secs`) through a real
//! mosquitto whose per-device access it administers (O3), and a real
//! headless `signet-agent` whose wall
//! clock — and only its wall clock — is moved by libfaketime
//! (`FAKETIME_TIMESTAMP_FILE`, re-read on every call with
//! `FAKETIME_NO_CACHE=1`; `DONT_FAKE_MONOTONIC=1` leaves `CLOCK_MONOTONIC`
//! to tokio and GStreamer, and `/proc/uptime`, the agent's boot-time clock,
//! is never faked), as a Raspberry Pi without a real-time clock sees it.
//!
//! The broker is an external mosquitto (the hub's default broker is a
//! mosquitto too since issue 15); the embedded rumqttd of before dropped a
//! connection whose acknowledgements arrive out of order ("out of order
//! ack"), which the agent's batching by kind (trust, time, assignment,
//! manifests) produces whenever a `hub_time` lands in the same batch as
//! another document — every few seconds at a 2 s interval — and the
//! re-established session then lacked the group subscriptions made just
//! before (seen here: the manifest never arrived). That is a defect of its
//! own, not of the clock.
//!
//! "Playing" is what the agent itself reports: `now_playing` and
//! `clock_offset_ms` in the fleet view (`GET /api/v1/fleet/{id}`, from its
//! signed state) and its proof of play in the usage report.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::Value;
use signet_tests::rig::Rig;
use signet_tests::{Agent, Hub};

/// The hub's `hub_time` interval in these tests.
const HUB_TIME_INTERVAL: Duration = Duration::from_secs(2);
/// Slack on top of one `hub_time` interval: the agent's state message after
/// the `hub_time` (spaced 1 s) and the fleet view's poll.
const REPORT_SLACK: Duration = Duration::from_secs(3);
/// The longest wait for a fresh agent to fetch its content and play.
const FIRST_PLAY: Duration = Duration::from_secs(90);
/// A day, in milliseconds.
const DAY_MS: i64 = 86_400_000;

/// The libfaketime preload library.
fn libfaketime() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/arm-linux-gnueabihf/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("libfaketime is missing: install the Debian package faketime (make deps does)")
}

/// A wall clock shifted by the offset written in a file, which the agent
/// re-reads on every clock call.
struct ShiftedWall {
    /// The timestamp file (`+0`, `-10d`, `+365d`).
    file: PathBuf,
    /// `LD_PRELOAD` path of libfaketime.
    preload: String,
}

impl ShiftedWall {
    fn new(dir: &Path, offset: &str) -> Self {
        let wall = Self {
            file: dir.join("faketime"),
            preload: libfaketime().display().to_string(),
        };
        wall.set(offset);
        wall
    }

    /// Sets the wall clock's offset from real time (an NTP step, or a hand).
    fn set(&self, offset: &str) {
        std::fs::write(&self.file, format!("{offset}\n")).unwrap();
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("LD_PRELOAD", self.preload.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
            ("NO_FAKE_STAT", "1"),
        ]
    }
}

/// A hub on an external mosquitto signing `hub_time` every
/// [`HUB_TIME_INTERVAL`], a site with one image scheduled all day, and an
/// agent paired there (with the real clock), not yet running; the site is
/// published.
async fn world() -> (Rig, Agent, String) {
    let interval = HUB_TIME_INTERVAL.as_secs().to_string();
    let rig = Rig::external(&[("SIGNET_HUB_HUB_TIME_INTERVAL_SECS", &interval)]).await;
    let site = rig.site("Kiosk", "Welcome", 0x22_8844).await;
    let agent = rig.pair("pi", &site.node, "event_upload_secs = 1\n").await;
    site.publish(&rig.hub).await;
    (rig, agent, site.item)
}

/// The fleet view of `device`, as the agent last reported it.
async fn fleet(hub: &Hub, device: &str) -> Value {
    let (status, view) = hub
        .call(Method::GET, &format!("/api/v1/fleet/{device}"), None)
        .await;
    assert!(status.is_success(), "{status} {view}");
    view
}

/// What the agent reports as playing and its clock offset (trusted time
/// minus its wall clock), in ms.
fn playing_and_offset(view: &Value) -> (Option<String>, Option<i64>) {
    (
        view["now_playing"]["item"].as_str().map(str::to_owned),
        view["clock_offset_ms"].as_i64(),
    )
}

/// Polls the fleet view until `done` holds, for at most `limit`; returns
/// the view and how long it took.
async fn wait_view(
    hub: &Hub,
    agent: &Agent,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let view = fleet(hub, &agent.device).await;
        if done(&view) {
            return (view, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "no {what} within {limit:?}; fleet view: {view:#}\nagent:\n{}",
            agent
                .process
                .as_ref()
                .map(|p| p.output().join("\n"))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `offset` (ms) is within a minute of `days` days.
fn offset_near(offset: Option<i64>, days: i64) -> bool {
    offset.is_some_and(|ms| (ms - days * DAY_MS).abs() < 60_000)
}

/// Proof of play of `item` by `device` that started at or after `since`
/// (the hub's usage report: what the agent recorded and uploaded).
async fn plays_since(hub: &Hub, device: &str, item: &str, since: DateTime<Utc>) -> Vec<Value> {
    hub.usage(device)
        .await
        .iter()
        .filter(|e| e["item"] == item && e["outcome"] == "played")
        .filter(|e| {
            e["start"]
                .as_str()
                .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                .is_some_and(|start| start >= since)
        })
        .cloned()
        .collect()
}

/// S6 (a), D1, U1, U4: the agent runs with its wall clock 10 days behind,
/// a signed `hub_time` arrives, then NTP sets the clock right. Trusted time
/// stays the hub's (it does not jump 10 days ahead, where every manifest is
/// expired): the agent reports playing within one `hub_time` interval of
/// the fix and keeps playing, with proof of play at the real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_booted_10_days_behind_then_ntp_fix_keeps_playing_within_one_hub_time_interval() {
    let (rig, mut agent, item) = world().await;
    let hub = &rig.hub;
    let wall = ShiftedWall::new(rig.path(), "-10d");
    agent.run_with(&wall.env());

    // Playing, and the agent's wall clock is 10 days behind its trusted
    // time (the hub's): libfaketime took effect and a hub_time arrived.
    wait_view(
        hub,
        &agent,
        "play with the clock 10 days behind",
        FIRST_PLAY,
        |v| {
            let (playing, offset) = playing_and_offset(v);
            playing.as_deref() == Some(item.as_str()) && offset_near(offset, 10)
        },
    )
    .await;

    // NTP steps the wall clock to the right time.
    wall.set("+0");
    let fixed_at = Utc::now();
    let (_, took) = wait_view(
        hub,
        &agent,
        "trusted time agreeing with the corrected wall clock while playing",
        HUB_TIME_INTERVAL + REPORT_SLACK,
        |v| {
            let (playing, offset) = playing_and_offset(v);
            playing.as_deref() == Some(item.as_str()) && offset_near(offset, 0)
        },
    )
    .await;
    eprintln!("after the NTP fix: reported playing with the right offset in {took:?}");

    // It keeps playing (measured over several hub_time intervals) ...
    let hold = Instant::now();
    while hold.elapsed() < 5 * HUB_TIME_INTERVAL {
        let view = fleet(hub, &agent.device).await;
        let (playing, offset) = playing_and_offset(&view);
        assert_eq!(
            playing.as_deref(),
            Some(item.as_str()),
            "went dark: {view:#}"
        );
        assert!(offset_near(offset, 0), "trusted time moved off: {view:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // ... and its proof of play carries the real time, not 10 days ahead.
    let since = fixed_at - TimeDelta::seconds(5);
    let started = Instant::now();
    let plays = loop {
        let plays = plays_since(hub, &agent.device, &item, since).await;
        if plays.len() >= 3 {
            break plays;
        }
        assert!(
            started.elapsed() < FIRST_PLAY,
            "no proof of play after the fix: {plays:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let latest = Utc::now() + TimeDelta::minutes(1);
    for play in &plays {
        let start: DateTime<Utc> = play["start"].as_str().unwrap().parse().unwrap();
        assert!(start <= latest, "a play stamped in the future: {play}");
    }
    agent.kill();
}

/// S6 (b), D1, U4: one run with the wall clock a year ahead (trusted time
/// followed it, so every manifest looked expired and the signing key might
/// look expired too): the signed `hub_time` sets trusted time back — its key
/// is checked at the time it states — and the agent, subscribing again,
/// takes the manifests it refused and plays, with the clock still a year
/// ahead. Killed, its clock set right and restarted, it plays at once: no
/// high-water mark a year ahead keeps it dark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_a_run_with_the_clock_a_year_ahead_ends_playing_and_never_stays_dark() {
    let (rig, mut agent, item) = world().await;
    let hub = &rig.hub;
    let wall = ShiftedWall::new(rig.path(), "+365d");
    agent.run_with(&wall.env());
    let (_, took) = wait_view(
        hub,
        &agent,
        "play with the clock a year ahead",
        FIRST_PLAY,
        |v| {
            let (playing, offset) = playing_and_offset(v);
            playing.as_deref() == Some(item.as_str()) && offset_near(offset, -365)
        },
    )
    .await;
    eprintln!("with the clock a year ahead: playing after {took:?}");

    // Powered off; the clock is right when it boots again.
    agent.kill();
    wall.set("+0");
    agent.run_with(&wall.env());
    let (_, took) = wait_view(
        hub,
        &agent,
        "play after the restart with the clock right",
        HUB_TIME_INTERVAL + REPORT_SLACK + Duration::from_secs(10),
        |v| {
            let (playing, offset) = playing_and_offset(v);
            v["online"] == true
                && playing.as_deref() == Some(item.as_str())
                && offset_near(offset, 0)
        },
    )
    .await;
    eprintln!("after the restart with the right clock: playing in {took:?}");
    agent.kill();
}
