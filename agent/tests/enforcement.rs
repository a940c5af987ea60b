//! Enforcement on the real agent process (D1, D4, D9, L4, S1, S3, S6):
//! tampered cache files, bad documents, and offline play with licenses.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use signet_common::license::{AccessWindow, LicenseTerms};
use support::{
    Agent, Broker, ContentServer, Hub, Keys, blobs_on_disk, content_world, entry, image,
    paired_dir, playing_versions, publish_basics, random_bytes,
};

/// `signet-agent status` for `data` (the running agent's report); the
/// error text while the agent has not written its first report.
fn status(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("status")
        .env("SIGNET_AGENT_DATA_DIR", data)
        .output()
        .unwrap();
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Polls `status` until `pred` holds.
async fn wait_status(data: &Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = status(data);
        if pred(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// D9, D4: a cached file changed on disk is detected within 2 seconds,
/// quarantined, not played while it is missing, and fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d9_d4_a_tampered_cache_file_is_quarantined_within_2s_not_played_and_fetched_again() {
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let bytes = support::noise_png(256);
    let (sha, url) = server.add(bytes.clone());
    let item = image("c-1", sha, bytes.len() as u64, &url);
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![item],
            vec![entry("e", &["c-1"], 3_000, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    agent
        .wait_log("now playing manifest version 1 of group n-1")
        .await;
    wait_status(data.path(), "c-1 playing", |t| {
        t.contains("now playing: c-1")
    })
    .await;

    server.set_unavailable(&sha, true);
    let path = data
        .path()
        .join("cache")
        .join("blobs")
        .join(sha.to_string());
    let mut tampered = bytes.clone();
    tampered[1000] ^= 0xff;
    let changed_at = Instant::now();
    std::fs::write(&path, &tampered).unwrap();
    let deadline = changed_at + Duration::from_secs(5);
    while !agent.log_text().contains("quarantined") {
        assert!(
            Instant::now() < deadline,
            "never quarantined:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detected = changed_at.elapsed();
    eprintln!("tampered file quarantined {detected:?} after the write");
    assert!(
        detected < Duration::from_secs(2),
        "detected after {detected:?}"
    );
    let quarantine = std::fs::read_dir(data.path().join("cache").join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantine, 1, "the changed file is kept aside");

    let text = wait_status(data.path(), "c-1 skipped", |t| {
        t.contains("now playing: nothing") && t.contains("c-1 [n-1]: SKIPPED")
    })
    .await;
    assert!(text.to_lowercase().contains("not cached"), "{text}");

    let requests = server.served(&sha).requests;
    server.set_unavailable(&sha, false);
    wait_status(data.path(), "c-1 again", |t| t.contains("now playing: c-1")).await;
    assert!(server.served(&sha).requests > requests, "fetched again");
    agent.kill();
    assert!(
        blobs_on_disk(data.path())
            .iter()
            .any(|(name, actual)| *name == sha.to_string() && *actual == sha),
        "the right bytes are back"
    );
}

/// S1, S3, D2, D3: truncated, oversized, wrongly signed, tampered, older
/// and wrong-content-hash documents change nothing and are logged with
/// their reason; the playing manifest stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_s3_bad_documents_change_nothing_and_are_logged_with_their_reason() {
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let (sha, url) = server.add(random_bytes(2, 50_000));
    let good = image("c-1", sha, 50_000, &url);
    let manifest = |version: u64, items| {
        keys.manifest_with(
            "n-1",
            version,
            items,
            vec![entry("e", &["c-1"], 3_000, 0)],
            None,
        )
    };
    hub.publish_manifest("n-1", manifest(2, vec![good.clone()]))
        .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    agent
        .wait_log("now playing manifest version 2 of group n-1")
        .await;

    // Truncated.
    let v3 = manifest(3, vec![good.clone()]);
    let mark = agent.log_text().len();
    hub.publish_manifest("n-1", v3[..v3.len() / 2].to_vec())
        .await;
    refused(&agent, mark, "malformed envelope").await;
    // Oversized (over 1 MiB, under the MQTT packet limit).
    let mut big = manifest(3, vec![good.clone()]);
    big.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    let mark = agent.log_text().len();
    hub.publish_manifest("n-1", big).await;
    refused(&agent, mark, "-byte limit").await;
    // Signed by a key the trust document does not certify.
    let stranger = support::new_key();
    let mark = agent.log_text().len();
    hub.publish_manifest("n-1", keys.manifest_by(&stranger, "n-1", 3))
        .await;
    refused(&agent, mark, "is not certified by the trust document").await;
    // A payload byte changed after signing.
    let text = String::from_utf8(manifest(3, vec![good.clone()])).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let payload = value["payload"].as_str().unwrap();
    let mut bad_payload = payload.as_bytes().to_vec();
    bad_payload[10] = if bad_payload[10] == b'A' { b'B' } else { b'A' };
    let forged = text.replace(payload, std::str::from_utf8(&bad_payload).unwrap());
    let mark = agent.log_text().len();
    hub.publish_manifest("n-1", forged.into_bytes()).await;
    refused(&agent, mark, "bad signature").await;
    // An older version.
    let mark = agent.log_text().len();
    hub.publish_manifest("n-1", manifest(1, vec![good.clone()]))
        .await;
    refused(&agent, mark, "version 1 is older than the held version 2").await;
    // A manifest whose item's bytes do not hash to the declared SHA-256:
    // accepted (it is well signed), but never played.
    let (_, other_url) = server.add(random_bytes(3, 50_000));
    let declared = random_sha();
    let wrong = image("c-1", declared, 50_000, &other_url);
    let mark = agent.log_text().len();
    hub.publish_manifest("n-1", manifest(4, vec![wrong])).await;
    wait_new_log(&agent, mark, &declared.to_string()).await;
    let text = agent.log_text();
    assert!(
        text[mark..].contains(&format!("not the wanted {declared}")),
        "{}",
        &text[mark..]
    );
    wait_status(data.path(), "v4 waiting", |t| {
        t.contains("n-1: version 2 (version 4 accepted, waiting for its content)")
    })
    .await;
    agent.kill();
    assert_eq!(playing_versions(data.path())["n-1"].0, 2, "v2 still plays");
    for (name, actual) in blobs_on_disk(data.path()) {
        assert_eq!(name, actual.to_string(), "no wrong bytes were cached");
    }
}

/// Waits until the log after byte `mark` contains `needle`.
async fn wait_new_log(agent: &Agent, mark: usize, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = agent.log_text();
        if text.get(mark..).is_some_and(|t| t.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "log never said {needle:?} after {mark}:\n{}",
            text.get(mark..).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a refusal with `reason` after byte `mark` of the log.
async fn refused(agent: &Agent, mark: usize, reason: &str) {
    wait_new_log(
        agent,
        mark,
        "refused a document; keeping the last good state",
    )
    .await;
    wait_new_log(agent, mark, reason).await;
}

fn random_sha() -> signet_common::digest::Sha256 {
    signet_common::digest::Sha256::of(&random_bytes(99, 64))
}

/// D1, L4, S6: with the hub and broker gone, licensed content stops when
/// the offline grace ends (±1 minute of trusted time) and unlicensed
/// approved content keeps playing. The grace (90 s) is below the 180 s the
/// agent used to raise every grace to: it is honoured as signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_l4_s6_offline_licensed_content_stops_at_the_grace_end_unlicensed_keeps_playing() {
    let server = ContentServer::start().await;
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    let window = AccessWindow {
        starts_at: Utc::now() - TimeDelta::days(1),
        ends_at: Some(Utc::now() + TimeDelta::days(30)),
        ended_by: Some(signet_common::license::Limit::FixedEnd),
    };
    // The agent honours the signed grace as it is (issue 14, defect 8),
    // even below the contact tolerance of 180 s it used to raise it to.
    let grace: i64 = 90;
    publish_basics(
        &mut hub,
        &keys,
        keys.assignment_with(1, &["n-1"], &[("ag-1", window)], 3_600),
    )
    .await;
    let (free, paid) = (support::noise_png(64), support::noise_png(64));
    let (free_len, paid_len) = (free.len() as u64, paid.len() as u64);
    let (free_sha, free_url) = server.add(free);
    let (paid_sha, paid_url) = server.add(paid);
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![image("free", free_sha, free_len, &free_url)],
            vec![entry("e", &["free"], 2_000, 0)],
            None,
        ),
    )
    .await;
    hub.publish_manifest(
        "ag-1",
        keys.manifest_with(
            "ag-1",
            1,
            vec![image("paid", paid_sha, paid_len, &paid_url)],
            vec![entry("e", &["paid"], 2_000, 10)],
            Some(LicenseTerms {
                allow_offline: true,
                offline_grace_secs: u64::try_from(grace).unwrap(),
                ..LicenseTerms::default()
            }),
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    wait_status(data.path(), "paid playing", |t| {
        t.contains("now playing: paid")
    })
    .await;
    let contact = Utc::now();

    drop(hub);
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap() + 90);
    let stopped_at = loop {
        let text = status(data.path());
        if text.contains("now playing: free") {
            break Utc::now();
        }
        assert!(
            Instant::now() < deadline,
            "licensed content never stopped:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let offline = (stopped_at - contact).num_seconds();
    eprintln!("licensed content stopped after {offline} s offline; grace {grace} s");
    assert!(
        (offline - grace).abs() <= 60,
        "stopped after {offline} s offline; grace {grace} s"
    );
    let text = status(data.path());
    assert!(text.contains("paid [ag-1]: SKIPPED"), "{text}");
    assert!(text.contains("free [n-1]: may play"), "{text}");
    agent.kill();
}

/// D10, L3: a manifest needing more than the cache limit is refused and the
/// refusal is reported in the device state while the playing manifest
/// stays; a manifest that fits plays, and content no manifest lists any
/// more is purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d10_l3_over_the_limit_is_refused_and_reported_unlisted_content_is_purged() {
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let add = |seed: u64, id: &str| {
        let (sha, url) = server.add(random_bytes(seed, 400_000));
        image(id, sha, 400_000, &url)
    };
    let (a, b, c, d) = (add(11, "a"), add(12, "b"), add(13, "c"), add(14, "d"));
    let publish = |version: u64, items: Vec<signet_common::documents::ManifestItem>| {
        let ids: Vec<String> = items.iter().map(|i| i.id.as_str().to_owned()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        keys.manifest_with(
            "n-1",
            version,
            items.clone(),
            vec![entry("e", &ids, 2_000, 0)],
            None,
        )
    };
    hub.publish_manifest("n-1", publish(1, vec![a.clone()]))
        .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start_with(data.path(), &[("SIGNET_AGENT_CACHE_LIMIT_MB", "1")]);
    let state = hub
        .wait_state("v1 content cached", |s| {
            s.cache
                .as_ref()
                .is_some_and(|c| c.items_needed == 1 && c.items_cached == 1)
        })
        .await;
    assert_eq!(state.cache.unwrap().limit_bytes, 1024 * 1024);

    // 3 × 400 kB is over 1 MiB: refused, reported, v1 keeps playing.
    hub.publish_manifest("n-1", publish(2, vec![a.clone(), b.clone(), c.clone()]))
        .await;
    let state = hub
        .wait_state("the refusal", |s| {
            s.cache.as_ref().is_some_and(|c| c.refusal.is_some())
        })
        .await;
    let progress = state.cache.unwrap();
    assert!(
        progress
            .refusal
            .as_deref()
            .unwrap()
            .contains("over the cache limit"),
        "{progress:?}"
    );
    assert_eq!(progress.waiting_groups, vec!["n-1".to_owned()]);
    wait_status(data.path(), "v1 still playing", |t| {
        t.contains("n-1: version 1 (version 2 accepted, waiting for its content)")
    })
    .await;

    // Two items fit; `a` is listed no more, so it goes.
    hub.publish_manifest("n-1", publish(3, vec![b.clone(), d.clone()]))
        .await;
    agent
        .wait_log("now playing manifest version 3 of group n-1")
        .await;
    hub.wait_state("no refusal", |s| {
        s.cache
            .as_ref()
            .is_some_and(|c| c.refusal.is_none() && c.items_cached == 2)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = blobs_on_disk(data.path())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if !names.contains(&a.sha256.to_string()) {
            assert!(names.contains(&b.sha256.to_string()) && names.contains(&d.sha256.to_string()));
            break;
        }
        assert!(Instant::now() < deadline, "a was never purged: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.kill();
}

/// A7, U1: a pending item in the playlist never plays; each of its turns is
/// recorded as a skip with the reason, the approved item's plays as plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a7_u1_pending_items_are_skipped_with_their_reason_and_never_played() {
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let ok = support::noise_png(48);
    let ok_len = ok.len() as u64;
    let (sha, url) = server.add(ok);
    let (pending_sha, pending_url) = server.add(random_bytes(22, 10_000));
    let mut pending = image("pending", pending_sha, 10_000, &pending_url);
    pending.approval = signet_common::approval::ApprovalState::Pending;
    pending.approved_hash = None;
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![image("ok", sha, ok_len, &url), pending],
            vec![entry("e", &["ok", "pending"], 500, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    let text = wait_status(data.path(), "the pending item skipped", |t| {
        t.contains("pending [n-1]: SKIPPED")
    })
    .await;
    assert!(text.contains("ok [n-1]: may play"), "{text}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent.kill();
    assert_eq!(
        server.served(&pending_sha).requests,
        0,
        "a pending item is never fetched"
    );

    let events = support::queued_events(data.path());
    let played: Vec<_> = events
        .iter()
        .filter(|e| e.outcome == signet_common::sync::Outcome::Played)
        .collect();
    let skipped: Vec<_> = events
        .iter()
        .filter(|e| e.outcome == signet_common::sync::Outcome::Skipped)
        .collect();
    assert!(!played.is_empty() && !skipped.is_empty(), "{events:#?}");
    assert!(
        played.iter().all(|e| e.item.as_str() == "ok"),
        "{played:#?}"
    );
    for skip in &skipped {
        assert_eq!(skip.item.as_str(), "pending");
        assert_eq!(skip.duration_ms, 0);
        assert!(
            skip.skip_reason.as_deref().unwrap().contains("pending"),
            "{skip:?}"
        );
    }
    let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
}

/// D9: a changed config file is validated and applied live; a bad one is
/// rejected with its reason and the running configuration stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d9_config_changes_are_validated_then_applied_or_rejected_with_the_reason() {
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_basics(
        &mut hub,
        &keys,
        keys.assignment_with(1, &["n-1"], &[], 86_400),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let config = data.path().join("agent.toml");
    let base = format!(
        "data_dir = {:?}\nreconnect_base_ms = 100\nreconnect_cap_secs = 1\n",
        data.path().display().to_string()
    );
    std::fs::write(&config, format!("{base}cache_limit_mb = 100\n")).unwrap();
    let agent = Agent::start_config(data.path(), &config);
    agent.wait_log("sync starting").await;

    // A typo: rejected, named, nothing changes.
    let mark = agent.log_text().len();
    let tmp = data.path().join("agent.toml.new");
    std::fs::write(&tmp, format!("{base}cache_limt_mb = 5\n")).unwrap();
    std::fs::rename(&tmp, &config).unwrap();
    wait_new_log(&agent, mark, "config change rejected").await;
    wait_new_log(&agent, mark, "cache_limt_mb").await;

    // A valid change: applied live.
    let mark = agent.log_text().len();
    std::fs::write(
        &config,
        format!("{base}cache_limit_mb = 100\ndownload_rate_kib = 512\n"),
    )
    .unwrap();
    wait_new_log(&agent, mark, "config change validated and applied").await;
    wait_new_log(&agent, mark, "download_rate_kib").await;
    agent.kill();
}
