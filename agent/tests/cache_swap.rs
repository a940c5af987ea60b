//! A cached file swapped while the agent is stopped (A8, D9): another valid
//! file of the same size copied over `cache/blobs/{sha256}` with its mtime
//! restored is never played as the original; it is hashed when the agent
//! starts, kept in `quarantine/`, fetched again, and then the real item
//! plays. The agent's own proof-of-play events are the evidence.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use signet_common::sync::Outcome;
use support::{Agent, blobs_on_disk, content_world, entry, image, paired_dir, queued_events};

/// A PNG of videotestsrc's `pattern` at 64×36 stored without compression:
/// its size depends on the dimensions only, so two patterns make two valid
/// images of the same size.
fn stored_png(pattern: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pattern.png");
    let status = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", &format!("pattern={pattern}")])
        .args(["num-buffers=1", "!", "video/x-raw,width=64,height=36"])
        .args(["!", "pngenc", "compression-level=0", "!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success(), "gst-launch-1.0 made no PNG");
    std::fs::read(path).unwrap()
}

/// Copies `bytes` over `path` in place and restores its mtime, as
/// `cp other path && touch -r saved path` does.
fn swap_keeping_mtime(path: &Path, bytes: &[u8]) {
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(
        meta.len(),
        bytes.len() as u64,
        "a substitute of the same size"
    );
    let mtime = meta.modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

/// A8, D9, D4: the substitute never plays as the original. After the swap
/// and a start, every `played` event of the item starts after the item was
/// fetched again; the substitute's bytes are in `quarantine/`, the blob on
/// disk hashes to its name again, and the real item plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a8_d9_a_cached_file_swapped_while_stopped_is_quarantined_refetched_and_never_played() {
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let original = stored_png("red");
    let substitute = stored_png("green");
    assert_eq!(original.len(), substitute.len());
    assert_ne!(original, substitute);
    let len = original.len() as u64;
    let (sha, url) = server.add(original);
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
    let agent = Agent::start(data.path());
    hub.wait_state("red on screen", |s| {
        s.now_playing
            .as_ref()
            .is_some_and(|n| n.item.as_str() == "red")
    })
    .await;
    assert_eq!(server.served(&sha).requests, 1);
    // SIGKILL by pid: the agent gets no chance to notice anything.
    agent.kill();

    let blob = data
        .path()
        .join("cache")
        .join("blobs")
        .join(sha.to_string());
    swap_keeping_mtime(&blob, &substitute);
    let restarted_at = Utc::now();
    let agent = Agent::start(data.path());

    // Fetched again: the mirror sees a second request.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.served(&sha).requests < 2 {
        assert!(
            Instant::now() < deadline,
            "the swapped file was never fetched again:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refetched_at = server.served(&sha).at[1];
    eprintln!(
        "fetched again {} ms after the restart",
        (refetched_at - restarted_at).num_milliseconds()
    );
    hub.wait_state("red on screen again", |s| {
        s.at > refetched_at
            && s.now_playing
                .as_ref()
                .is_some_and(|n| n.item.as_str() == "red")
    })
    .await;
    // A few 1 s slots, recorded when they end.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let log = agent.log_text();
    assert!(agent.stop().success());

    let quarantine = data.path().join("cache").join("quarantine");
    let kept: Vec<_> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{sha}.")),
        "{kept:?}"
    );
    assert_eq!(std::fs::read(&kept[0]).unwrap(), substitute);
    assert!(log.contains("kept in quarantine"), "{log}");
    assert_eq!(
        blobs_on_disk(data.path()),
        vec![(sha.to_string(), sha)],
        "the real bytes are back"
    );

    let events = queued_events(data.path());
    let after: Vec<_> = events
        .iter()
        .filter(|e| e.item.as_str() == "red" && e.start >= restarted_at)
        .collect();
    // The trusted clock follows the hub's signed time; allow it a margin.
    let margin = TimeDelta::milliseconds(250);
    let early: Vec<_> = after
        .iter()
        .filter(|e| e.outcome == Outcome::Played && e.start < refetched_at - margin)
        .collect();
    assert!(
        early.is_empty(),
        "played before the real bytes were fetched again (fetched at {refetched_at}): {early:#?}"
    );
    assert!(
        after
            .iter()
            .any(|e| e.outcome == Outcome::Played && e.duration_ms >= 900),
        "the real item plays after the fetch: {after:#?}"
    );
    let skipped = after
        .iter()
        .filter(|e| e.outcome == Outcome::Skipped)
        .count();
    assert!(skipped <= 3, "skips are not spammed: {after:#?}");
}
