//! End to end over the real binaries (issue 18 point 5): licences that
//! deliver. A licence limited to Germany serves its content to a screen at
//! a node in Germany (the country set on an ancestor, inherited) and plays
//! there; a screen in France does not fetch it, reports why it skips it, and
//! the fleet view says which group and why (`licence_country`) instead of
//! "in sync". A licence counting from first use starts at the screen's
//! first play: the hub stores `first_used_at`, the window shrinks to first
//! use + the duration, the assignment is re-signed, and the screen stops at
//! the new end (L2, L3, U1, U4).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use signet_tests::{Agent, Hub};

/// How long pairing, publishing and the first plays may take on a shared
/// machine (a bound on waiting, not a speed claim).
const CONVERGE: Duration = Duration::from_secs(120);

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

/// A node under `parent`, with `country` when given; its id.
async fn node(hub: &Hub, parent: &str, name: &str, country: Option<&str>) -> String {
    let mut body = json!({"parent": parent, "name": name});
    if let Some(country) = country {
        body["country"] = json!(country);
    }
    hub.post("/api/v1/nodes", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An access group at `node` under `license`, with `devices` as members,
/// `item` as its content, scheduled all day (one-second slots) and
/// published; its id.
async fn licensed(hub: &Hub, node: &str, license: Value, devices: &[&str], item: &str) -> String {
    let group = hub.access_group(node, "Licensed", license, devices).await;
    let (status, saved) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{group}/items"),
            Some(json!({"items": [{"id": item}]})),
        )
        .await;
    assert!(status.is_success(), "{saved}");
    let playlist = hub
        .post(
            "/api/v1/playlists",
            json!({"node": node, "name": "Licensed loop",
                "items": [{"item": item, "duration_ms": 1_000}]}),
        )
        .await;
    hub.post(
        "/api/v1/schedules",
        json!({"target": {"kind": "access_group", "id": group},
            "entries": [{"id": "all-day", "playlist": playlist["id"], "priority": 0}]}),
    )
    .await;
    hub.post(
        "/api/v1/publish",
        json!({"scope": {"kind": "access_group", "id": group}}),
    )
    .await;
    group
}

/// The usage rows of `device` for `item` (one page is plenty here).
async fn plays(hub: &Hub, device: &str, item: &str) -> Vec<Value> {
    let path = format!("/api/v1/reports/usage?device={device}&limit=1000");
    let (status, page) = hub.call(Method::GET, &path, None).await;
    assert!(status.is_success(), "{page}");
    let rows = page["events"].as_array().unwrap();
    rows.iter().filter(|r| r["item"] == item).cloned().collect()
}

/// The fleet entry of `device`.
async fn fleet_entry(hub: &Hub, device: &str) -> Value {
    let (status, entry) = hub
        .call(Method::GET, &format!("/api/v1/fleet/{device}"), None)
        .await;
    assert!(status.is_success(), "{status} {entry}");
    entry
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// L2, L3, U1, U4: a DE-only licence plays on a screen whose node inherits
/// DE from its parent (before the fix the content route judged every device
/// "country unknown" and answered 404); a screen in FR never fetches it,
/// reports each skipped slot with the licence's reason, and the fleet view
/// names the group, the item and `licence_country`, and does not call it
/// in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_a_de_only_licence_plays_in_de_and_fr_reports_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let germany = node(&hub, &root, "Germany", Some("de")).await;
    let berlin = node(&hub, &germany, "Berlin store", None).await;
    let france = node(&hub, &root, "France", Some("FR")).await;
    let paris = node(&hub, &france, "Paris store", None).await;
    let bytes = signet_tests::solid_png(dir.path(), "de.png", 0x22_8844, 64, 36);
    let item = hub.upload(&root, "DE only", bytes.clone()).await;
    let item_id = item["id"].as_str().unwrap().to_owned();
    let config = "event_upload_secs = 1\n";
    let mut de = Agent::pair(&hub, dir.path(), "berlin", &berlin, config).await;
    let mut fr = Agent::pair(&hub, dir.path(), "paris", &paris, config).await;
    de.run();
    fr.run();
    let license = json!({"allow_offline": true, "offline_grace_secs": 86_400,
        "allow_export": false, "allowed_countries": ["DE"]});
    let group = licensed(&hub, &root, license, &[&de.device, &fr.device], &item_id).await;

    // DE: fetched over the content route and played.
    let played = until("the DE screen to play the DE-only item", async || {
        let rows = plays(&hub, &de.device, &item_id).await;
        let played: Vec<Value> = rows
            .into_iter()
            .filter(|r| r["outcome"] == "played")
            .collect();
        (played.len() >= 2).then_some(played)
    })
    .await;
    assert!(
        played
            .iter()
            .all(|r| r["access_group"] == group.as_str() && r["country"] == "DE")
    );
    let blob = de
        .data
        .join("cache")
        .join("blobs")
        .join(item["sha256"].as_str().unwrap());
    assert_eq!(
        std::fs::read(blob).unwrap(),
        bytes,
        "the DE screen cached the bytes"
    );
    let entry = until("the DE screen in sync", async || {
        let entry = fleet_entry(&hub, &de.device).await;
        (entry["in_sync"] == true).then_some(entry)
    })
    .await;
    assert_eq!(entry["licence_refusals"], json!([]), "{entry:#}");

    // FR: skipped with the licence's reason, never fetched, never played.
    let skipped = until("the FR screen to report why it skips", async || {
        let rows = plays(&hub, &fr.device, &item_id).await;
        rows.into_iter().find(|r| {
            r["outcome"] == "skipped"
                && r["skip_reason"]
                    .as_str()
                    .is_some_and(|s| s.contains("country"))
        })
    })
    .await;
    let reason = skipped["skip_reason"].as_str().unwrap();
    assert!(reason.contains("does not allow country FR"), "{skipped:#}");
    assert!(reason.contains(&group), "{skipped:#}");
    let entry = fleet_entry(&hub, &fr.device).await;
    assert_eq!(entry["in_sync"], false, "{entry:#}");
    let refusals = entry["licence_refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "{entry:#}");
    assert_eq!(refusals[0]["group"], group.as_str());
    assert_eq!(refusals[0]["code"], "licence_country");
    assert_eq!(refusals[0]["items"], json!([item_id]));
    assert!(
        refusals[0]["reason"].as_str().unwrap().contains("FR"),
        "{entry:#}"
    );
    let fr_rows = plays(&hub, &fr.device, &item_id).await;
    assert!(
        fr_rows.iter().all(|r| r["outcome"] == "skipped"),
        "{fr_rows:#?}"
    );
    let fr_blob = fr
        .data
        .join("cache")
        .join("blobs")
        .join(item["sha256"].as_str().unwrap());
    assert!(!fr_blob.exists(), "the FR screen must not hold the bytes");
    de.kill();
    fr.kill();
}

/// L2: with a duration from first use, the screen's first play sets the
/// member's `first_used_at` (once, no later than that play began), the
/// window ends at first use + the duration, the assignment is re-signed
/// with that end, and the screen stops playing at it and says why. Before
/// the fix `first_used_at` stayed null however often the item played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_first_play_starts_the_duration_and_the_screen_stops_at_its_end() {
    const DURATION_SECS: i64 = 15;
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = node(&hub, &root, "Kiosks", None).await;
    let bytes = signet_tests::solid_png(dir.path(), "trial.png", 0x66_2299, 64, 36);
    let item = hub.upload(&site, "Trial", bytes).await;
    let item_id = item["id"].as_str().unwrap().to_owned();
    let mut agent = Agent::pair(&hub, dir.path(), "kiosk", &site, "event_upload_secs = 1\n").await;
    agent.run();
    let license = json!({"allow_offline": true, "offline_grace_secs": 86_400,
        "allow_export": false, "duration_from_first_use_secs": DURATION_SECS,
        "duration_from_join_secs": 86_400});
    let group = licensed(&hub, &site, license, &[&agent.device], &item_id).await;
    let members_path = format!("/api/v1/access-groups/{group}/members");
    let (_, members) = hub.call(Method::GET, &members_path, None).await;
    assert!(members[0]["first_used_at"].is_null(), "{members:#}");
    let assignment_version = |entry: &Value| {
        entry["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == "device_assignment")
            .and_then(|d| d["desired_version"].as_u64())
    };
    let before = assignment_version(&fleet_entry(&hub, &agent.device).await).unwrap();

    // The first play sets first use, once; the window shrinks to it + 15 s.
    let member = until("first_used_at to be set by the first play", async || {
        let (_, members) = hub.call(Method::GET, &members_path, None).await;
        let member = members.as_array()?.first()?.clone();
        (!member["first_used_at"].is_null()).then_some(member)
    })
    .await;
    let first_use = time(&member["first_used_at"]);
    let end = first_use + TimeDelta::seconds(DURATION_SECS);
    assert_eq!(time(&member["window"]["ends_at"]), end, "{member:#}");
    assert_eq!(member["window"]["ended_by"], "duration_from_first_use");
    assert!(first_use >= time(&member["joined_at"]), "{member:#}");

    // Re-signed: a newer assignment, accepted by the screen.
    until("the re-signed assignment in use", async || {
        let entry = fleet_entry(&hub, &agent.device).await;
        let version = assignment_version(&entry)?;
        let in_use = entry["documents"]
            .as_array()?
            .iter()
            .any(|d| d["kind"] == "device_assignment" && d["in_sync"] == true);
        (version > before && in_use).then_some(())
    })
    .await;

    // It stops at the end, and says why: three slots skipped for it.
    let ended = |r: &&Value| {
        r["outcome"] == "skipped"
            && r["skip_reason"]
                .as_str()
                .is_some_and(|s| s.contains("duration from first use"))
    };
    let skipped = until("slots skipped because the licence ended", async || {
        let rows = plays(&hub, &agent.device, &item_id).await;
        let skipped: Vec<Value> = rows.iter().filter(ended).cloned().collect();
        (skipped.len() >= 3).then_some(skipped)
    })
    .await;
    // The device judges by its trusted time, which may differ from the
    // hub's by the correction a hub_time brings: a second of slack.
    let slack = TimeDelta::seconds(1);
    for skip in &skipped {
        assert!(
            time(&skip["start"]) >= end - slack,
            "skipped before the end {end}: {skip:#}"
        );
    }
    let rows = plays(&hub, &agent.device, &item_id).await;
    let played: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "played").collect();
    assert!(!played.is_empty());
    let earliest = played.iter().map(|r| time(&r["start"])).min().unwrap();
    assert!(
        first_use <= earliest,
        "first use {first_use} after the first play {earliest}"
    );
    let last_skip = skipped.iter().map(|r| time(&r["start"])).max().unwrap();
    for play in &played {
        let start = time(&play["start"]);
        assert!(
            start < end + slack && start < last_skip,
            "a play after the licence ended at {end}: {play:#}\nskipped: {skipped:#?}"
        );
    }
    let (_, members) = hub.call(Method::GET, &members_path, None).await;
    assert_eq!(time(&members[0]["first_used_at"]), first_use, "set once");
    let entry = fleet_entry(&hub, &agent.device).await;
    let refusals = entry["licence_refusals"].as_array().unwrap();
    assert_eq!(refusals[0]["code"], "licence_ended", "{entry:#}");
    agent.kill();
}

/// L3, L2: content whose licence window opens later is fetched and played
/// when the window opens. The screen holds the group's manifest and its
/// assignment before the window's start, so nothing it receives wakes it
/// at the start; before the fix it looked again only a minute later, so
/// the first play came up to 60 s late (seen in the console's purge test).
/// A bound on waiting of 20 s after the start separates the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_l2_content_is_fetched_when_its_window_opens_not_a_minute_later() {
    const OPENS_IN_SECS: i64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &[]).await;
    let root = hub.root().await;
    let site = node(&hub, &root, "Later", None).await;
    let bytes = signet_tests::solid_png(dir.path(), "later.png", 0x22_6699, 64, 36);
    let item = hub.upload(&site, "Later", bytes).await;
    let item_id = item["id"].as_str().unwrap().to_owned();
    let mut agent = Agent::pair(&hub, dir.path(), "later", &site, "event_upload_secs = 1\n").await;
    agent.run();
    let opens = Utc::now() + TimeDelta::seconds(OPENS_IN_SECS);
    let license = json!({"allow_offline": true, "offline_grace_secs": 86_400,
        "allow_export": false, "fixed_start": opens});
    let group = licensed(&hub, &site, license, &[&agent.device], &item_id).await;

    // The screen holds the group's manifest before the window opens.
    until(
        "the group's manifest accepted before the window",
        async || {
            let entry = fleet_entry(&hub, &agent.device).await;
            let held = entry["documents"].as_array()?.iter().any(|d| {
                d["kind"] == "group_manifest"
                    && d["subject"] == group.as_str()
                    && d["accepted_version"] == d["desired_version"]
            });
            held.then_some(())
        },
    )
    .await;
    assert!(
        Utc::now() < opens,
        "set-up took longer than {OPENS_IN_SECS} s"
    );
    let early = plays(&hub, &agent.device, &item_id).await;
    assert!(
        early.iter().all(|r| r["outcome"] != "played"),
        "played before its window: {early:#?}"
    );

    let first = until("the first play after the window opened", async || {
        let rows = plays(&hub, &agent.device, &item_id).await;
        rows.iter()
            .filter(|r| r["outcome"] == "played")
            .map(|r| time(&r["start"]))
            .min()
    })
    .await;
    // The device judges by its trusted time: a second of slack before.
    assert!(
        first >= opens - TimeDelta::seconds(1),
        "played at {first}, before {opens}"
    );
    assert!(
        first < opens + TimeDelta::seconds(20),
        "L3: first played at {first}, {} s after the window opened at {opens}",
        (first - opens).num_seconds()
    );
    agent.kill();
}
