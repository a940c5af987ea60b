//! Templates on the real agent (A7, A8, D6, U1): a template whose bytes are
//! not the approved version is skipped and reported as skipped, never
//! shown, while the approved template in the same playlist plays.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use signet_common::approval::{ApprovalState, Template};
use signet_common::digest::Sha256;
use signet_common::documents::{ItemKind, ManifestItem};
use signet_common::ids::ItemId;
use signet_common::sync::Outcome;
use support::{Agent, content_world, entry, paired_dir};

/// A valid one-zone text template saying `text`.
fn template(text: &str) -> (Template, Vec<u8>) {
    let json = serde_json::json!({
        "canvas": {"width": 640, "height": 360},
        "zones": [{
            "id": "headline",
            "kind": "text",
            "rect": {"x": 0, "y": 0, "width": 640, "height": 360},
            "text": text,
            "style": {"font_size_px": 48, "color_rgb": 0xff_ffff, "background_rgb": 0, "align": "center"}
        }]
    });
    let bytes = serde_json::to_vec(&json).unwrap();
    let parsed: Template = serde_json::from_slice(&bytes).unwrap();
    parsed.validate().unwrap();
    (parsed, bytes)
}

fn template_item(id: &str, bytes: &[u8], url: &str, approved: Sha256) -> ManifestItem {
    ManifestItem {
        id: ItemId::from(id),
        kind: ItemKind::Template,
        sha256: Sha256::of(bytes),
        size: bytes.len() as u64,
        url: url.to_owned(),
        approval: ApprovalState::Active,
        approved_hash: Some(approved),
        categories: vec![],
        renditions: Vec::new(),
    }
}

/// A7, A8, U1: the edited template (its layout hash is not the approved
/// one) is skipped with the reason in status and in proof of play, and never
/// played; the approved one plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a7_a8_u1_an_unapproved_template_is_skipped_and_never_shown() {
    let (server, broker, keys, mut hub) = content_world(&["n-1"]).await;
    let (approved, approved_bytes) = template("Lunch 12:00");
    let (_, edited_bytes) = template("Lunch 13:00");
    let (_, ok_url) = server.add(approved_bytes.clone());
    let (_, edited_url) = server.add(edited_bytes.clone());
    // The edited template carries the hash that was approved before the edit.
    let good = template_item("menu", &approved_bytes, &ok_url, approved.content_hash());
    let edited = template_item(
        "menu-edited",
        &edited_bytes,
        &edited_url,
        approved.content_hash(),
    );
    hub.publish_manifest(
        "n-1",
        keys.manifest_with(
            "n-1",
            1,
            vec![good, edited],
            vec![entry("e", &["menu", "menu-edited"], 500, 0)],
            None,
        ),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    agent
        .wait_log("now playing manifest version 1 of group n-1")
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet-agent"))
            .arg("status")
            .env("SIGNET_AGENT_DATA_DIR", data.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("menu-edited [n-1]: SKIPPED") {
            break text;
        }
        assert!(Instant::now() < deadline, "never skipped:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(text.contains("not the approved"), "{text}");
    assert!(text.contains("menu [n-1]: may play"), "{text}");
    let seen = hub
        .wait_state("the approved template on screen", |s| {
            s.now_playing
                .as_ref()
                .is_some_and(|n| n.item.as_str() == "menu")
        })
        .await;
    assert_eq!(seen.now_playing.unwrap().item.as_str(), "menu");
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.kill();
    assert!(
        hub.seen.iter().all(|s| s
            .now_playing
            .as_ref()
            .is_none_or(|n| n.item.as_str() != "menu-edited")),
        "the edited template was never on screen"
    );

    let events = support::queued_events(data.path());
    let edited: Vec<_> = events
        .iter()
        .filter(|e| e.item.as_str() == "menu-edited")
        .collect();
    assert!(!edited.is_empty(), "{events:#?}");
    for event in edited {
        assert_eq!(event.outcome, Outcome::Skipped, "{event:?}");
        assert!(
            event
                .skip_reason
                .as_deref()
                .unwrap()
                .contains("not the approved"),
            "{event:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.item.as_str() == "menu" && e.outcome == Outcome::Played),
        "{events:#?}"
    );
}
