//! Bad media on the real agent with its GStreamer player (D7, U1): a file
//! that does not decode is skipped and reported with GStreamer's error,
//! and the next item plays.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use signet_common::sync::Outcome;
use support::{Agent, content_world, entry, image, noise_png, paired_dir, random_bytes};

/// D7, U1: the corrupt item is reported as skipped with the player's
/// message and never as played; the good item after it plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d7_u1_a_file_that_does_not_decode_is_skipped_and_the_next_item_plays() {
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
