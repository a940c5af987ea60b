//! Rotating the hub's keys (S2) end to end over the real binaries: a real
//! mosquitto the test starts on a free loopback port, a real `signet-hub
//! serve` administering it, real agents, and `signet-hub keys
//! rotate-signing` / `keys rotate-root` run as an operator would, with the
//! root key kept outside the data directory. The running hub picks the
//! files up without a restart; paired agents follow without re-pairing —
//! running, or stopped across two rotations.
//!
//! "Plays" is the agent's own proof of play, uploaded over HTTP.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::json;
use signet_tests::rig::{Rig, Site};
use signet_tests::{Agent, Hub};

/// How long an agent may take to show a change.
const WITHIN: Duration = Duration::from_secs(60);
/// Events uploaded every second.
const FAST_EVENTS: &str = "event_upload_secs = 1\n";

/// A hub on an external broker with one site playing one item from one
/// playlist, published; the root key moved out of the data directory.
struct Rotation {
    rig: Rig,
    site: Site,
    root_key: PathBuf,
}

impl Rotation {
    async fn start() -> Self {
        let rig = Rig::external(&[]).await;
        // The operator keeps the root key offline: the hub never reads it.
        let root_key = rig.path().join("offline-root.key");
        std::fs::rename(rig.hub.data.join("keys/root.key"), &root_key).unwrap();
        let site = rig.site("Lobby", "first", 0x11_2233).await;
        site.publish(&rig.hub).await;
        Self {
            rig,
            site,
            root_key,
        }
    }

    /// A started rig with agent `lobby` paired at the site, running and
    /// playing the first item; returns the rig, the agent and that item.
    async fn playing() -> (Self, Agent, String) {
        let rig = Self::start().await;
        let mut agent = rig.rig.pair("lobby", &rig.site.node, FAST_EVENTS).await;
        let first_item = first_item(&rig).await;
        agent.run();
        plays(&rig.rig.hub, &agent, &first_item, Utc::now()).await;
        (rig, agent, first_item)
    }

    /// Makes the site play `name` (a new item) instead, published.
    async fn show(&self, name: &str, rgb: u32) -> String {
        let hub = &self.rig.hub;
        let id = self.rig.image(&self.site.node, name, rgb).await;
        let (status, answer) = hub
            .call(
                Method::PATCH,
                &format!("/api/v1/playlists/{}", self.site.playlist),
                Some(json!({"items": [{"item": id, "duration_ms": 1_000}]})),
            )
            .await;
        assert!(status.is_success(), "{status} {answer}");
        self.site.publish(hub).await;
        id
    }

    /// Runs `signet-hub keys ARGS --data DATA`.
    fn keys(&self, args: &[&str]) -> Output {
        keys_command(&self.rig.hub.data, args)
    }

    /// The retained envelope on `topic`, as a fresh subscriber gets it.
    async fn retained(&self, topic: &str) -> Vec<u8> {
        self.rig.retained(topic, Duration::from_secs(10)).await
    }
}

fn keys_command(data: &Path, args: &[&str]) -> Output {
    std::process::Command::new(signet_tests::hub_binary())
        .arg("keys")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

/// Runs `signet-hub keys rotate-root --root-key ROOT_KEY
/// --new-root-key-out OUT --data DATA`.
fn rotate_root(data: &Path, root_key: &str, out: &Path) -> Output {
    keys_command(
        data,
        &[
            "rotate-root",
            "--root-key",
            root_key,
            "--new-root-key-out",
            &out.display().to_string(),
        ],
    )
}

fn stdout(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keys command failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Waits until `agent` reported playing `item` with a play that began
/// after `after`.
async fn plays(hub: &Hub, agent: &Agent, item: &str, after: DateTime<Utc>) {
    let started = Instant::now();
    loop {
        let played = hub.usage(&agent.device).await.iter().any(|r| {
            r["item"] == item
                && r["outcome"] == "played"
                && r["start"]
                    .as_str()
                    .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|start| start > after)
        });
        if played {
            return;
        }
        assert!(
            started.elapsed() < WITHIN,
            "{} did not play {item} after {after}:\n{}\nhub:\n{}",
            agent.name,
            agent.log(),
            hub.process.output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asserts that `agent` ran on through it all, then kills it.
fn ran_on_then_kill(agent: &mut Agent) {
    assert!(
        !agent.process.as_mut().unwrap().exited(),
        "the agent ran on"
    );
    agent.kill();
}

/// The key id an envelope names.
fn key_id(envelope: &[u8]) -> String {
    signet_common::envelope::open(envelope)
        .unwrap()
        .key_id()
        .to_string()
}

/// The word after `label` in `text`.
fn word_after<'a>(text: &'a str, label: &str) -> &'a str {
    text.split(label)
        .nth(1)
        .and_then(|rest| rest.split([' ', ';', '\n']).next())
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
}

/// S2: `keys rotate-signing` on a running hub: the hub picks the new key
/// up without a restart, publishes trust version 2 and re-signs the site's
/// documents with it; the paired agent keeps playing, accepts the new
/// trust without re-pairing, and plays a publication made afterwards,
/// which the new key signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_signing_key_rotation_needs_no_restart_and_no_re_pairing() {
    let (rig, mut agent, first_item) = Rotation::playing().await;
    let hub = &rig.rig.hub;
    let manifest_topic = format!("signet/v1/groups/{}/manifest", rig.site.node);
    let old_key = key_id(&rig.retained(&manifest_topic).await);

    let root_key = rig.root_key.display().to_string();
    let output = stdout(&rig.keys(&["rotate-signing", "--root-key", &root_key]));
    assert!(output.contains("trust version 1 -> 2"), "{output}");
    let new_key = word_after(&output, "new signing key ").to_owned();
    assert_ne!(new_key, old_key);
    let rotated = Utc::now();

    agent.logged("trust version 2", WITHIN).await;
    // The hub re-signed the site's manifest with the new key by itself.
    let started = Instant::now();
    while key_id(&rig.retained(&manifest_topic).await) != new_key {
        assert!(started.elapsed() < WITHIN, "the manifest was not re-signed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // It kept playing, and plays what is published next.
    plays(hub, &agent, &first_item, rotated).await;
    let second = rig.show("second", 0x44_5566).await;
    plays(hub, &agent, &second, rotated).await;
    assert_eq!(key_id(&rig.retained(&manifest_topic).await), new_key);
    let trust = rig.retained("signet/v1/trust").await;
    assert_eq!(
        trust,
        std::fs::read(hub.data.join("keys/signing.trust")).unwrap()
    );
    ran_on_then_kill(&mut agent);
}

/// S2: `keys rotate-root` on a running hub: root.pub becomes the new root,
/// whose private half is written 0600 where the operator said; the agent,
/// which pinned the old root at pairing, follows the rotation (version
/// N+1 signed by the old root) without re-pairing and plays a publication
/// made afterwards; a screen paired afterwards pins the new root and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_root_rotation_needs_no_restart_and_no_re_pairing() {
    let (rig, mut agent, first_item) = Rotation::playing().await;
    let hub = &rig.rig.hub;

    let root_key = rig.root_key.display().to_string();
    let new_root = rig.rig.path().join("new-root.key");
    let output = stdout(&rotate_root(&hub.data, &root_key, &new_root));
    assert!(output.contains("trust version 1 -> 3"), "{output}");
    let fingerprint = word_after(&output, "new root key fingerprint ").to_owned();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&new_root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let rotated = Utc::now();
    agent
        .logged(&format!("new root {fingerprint}"), WITHIN)
        .await;
    plays(hub, &agent, &first_item, rotated).await;
    let second = rig.show("second", 0x44_5566).await;
    plays(hub, &agent, &second, rotated).await;

    let mut later = rig.rig.pair("later", &rig.site.node, FAST_EVENTS).await;
    later.run();
    plays(hub, &later, &second, rotated).await;
    ran_on_then_kill(&mut agent);
    later.kill();
}

/// S2: an agent stopped while the signing key and then the root are
/// rotated (with a publication after each) catches up when started again:
/// it gets the trust chain from the hub, accepts the root rotation at
/// exactly N+1, and plays the latest publication — no re-pairing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_an_agent_stopped_across_two_rotations_catches_up() {
    let (rig, mut agent, _) = Rotation::playing().await;
    let hub = &rig.rig.hub;
    agent.kill();

    let root_key = rig.root_key.display().to_string();
    stdout(&rig.keys(&["rotate-signing", "--root-key", &root_key]));
    wait_for_hub(&rig, "trust_version=2").await;
    rig.show("second", 0x44_5566).await;
    let new_root = rig.rig.path().join("new-root.key");
    let output = stdout(&rotate_root(&hub.data, &root_key, &new_root));
    assert!(output.contains("trust version 2 -> 4"), "{output}");
    let fingerprint = word_after(&output, "new root key fingerprint ").to_owned();
    wait_for_hub(&rig, "trust_version=4").await;
    let third = rig.show("third", 0x77_8899).await;

    let restarted = Utc::now();
    agent.run();
    plays(hub, &agent, &third, restarted).await;
    agent
        .logged(&format!("new root {fingerprint}"), WITHIN)
        .await;
    agent.kill();
}

/// S2: `keys rotate-signing` given a key that is not the hub's root (another
/// installation's) is refused with a message naming the file, and no file
/// of the keys directory changes; so is `rotate-root`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_rotation_with_the_wrong_root_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = Hub::init(&dir.path().join("ours"));
    let (other, _) = Hub::init(&dir.path().join("theirs"));
    let wrong = other.join("keys/root.key");
    let before = snapshot(&data.join("keys"));
    let wrong_text = wrong.display().to_string();
    let output = keys_command(&data, &["rotate-signing", "--root-key", &wrong_text]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&wrong_text), "{stderr}");
    assert!(stderr.contains("not the hub's root"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let output = rotate_root(&data, &wrong_text, &dir.path().join("new-root.key"));
    assert!(!output.status.success());
    assert!(!dir.path().join("new-root.key").exists());
    let output = keys_command(
        &data,
        &[
            "rotate-signing",
            "--root-key",
            &wrong_text,
            "--overlap",
            "soon",
        ],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("e.g. 30m"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(snapshot(&data.join("keys")), before);
}

/// Every file under `dir`, by path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Waits until the hub logged `needle` (its key watch took the new files).
async fn wait_for_hub(rig: &Rotation, needle: &str) {
    rig.rig.hub.process.line_containing(needle, WITHIN).await;
}

/// The one item the site's playlist starts with.
async fn first_item(rig: &Rotation) -> String {
    let (status, playlist) = rig
        .rig
        .hub
        .call(
            Method::GET,
            &format!("/api/v1/playlists/{}", rig.site.playlist),
            None,
        )
        .await;
    assert!(status.is_success(), "{playlist}");
    playlist["items"][0]["item"].as_str().unwrap().to_owned()
}
