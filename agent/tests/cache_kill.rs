//! The kill matrix (D2, D3, S9): the real agent is killed with SIGKILL at
//! every named point of download and switch, and at random moments in a
//! loop of 50 runs. After every kill and every restart: every cached file
//! hashes to its name and belongs to a published manifest, the playing
//! manifest is a whole version (all its content present), and a resumed
//! file asks again for at most one chunk per interruption.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use signet_agent::cache::CHUNK_BYTES;
use signet_agent::killpoint;
use signet_common::digest::Sha256;
use signet_common::documents::ManifestItem;
use support::{
    Agent, Broker, ContentServer, Hub, Keys, blobs_on_disk, entry, image, paired_dir,
    playing_versions, publish_basics, random_bytes,
};

const GROUP: &str = "n-1";
/// Slow enough to be killed mid-file, fast enough for a short test.
const RATE: (&str, &str) = ("SIGNET_AGENT_DOWNLOAD_RATE_KIB", "2048");
/// Slower for the random kills, so that most of them land mid-file.
const SLOW: (&str, &str) = ("SIGNET_AGENT_DOWNLOAD_RATE_KIB", "512");

fn items(server: &ContentServer, seeds: &[(u64, usize)]) -> Vec<ManifestItem> {
    seeds
        .iter()
        .map(|(seed, len)| {
            let (sha, url) = server.add(random_bytes(*seed, *len));
            image(&format!("c-{seed}"), sha, *len as u64, &url)
        })
        .collect()
}

async fn publish(hub: &mut Hub, keys: &Keys, version: u64, items: &[ManifestItem]) {
    let ids: Vec<String> = items.iter().map(|i| i.id.as_str().to_owned()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    hub.publish_manifest(
        GROUP,
        keys.manifest_with(
            GROUP,
            version,
            items.to_vec(),
            vec![entry("e-1", &ids, 5_000, 0)],
            None,
        ),
    )
    .await;
}

/// The invariants after a kill, read from the stopped agent's state dir:
/// cached files are whole and known; the playing manifest is one whole
/// version. Returns the playing version.
fn check_state(data: &Path, known: &[Sha256]) -> Option<u64> {
    for (name, actual) in blobs_on_disk(data) {
        assert_eq!(
            name,
            actual.to_string(),
            "a cached file differs from its hash"
        );
        assert!(
            known.contains(&actual),
            "a cached file no manifest named: {name}"
        );
    }
    let playing = playing_versions(data);
    let (version, items) = playing.get(GROUP)?;
    let on_disk: Vec<String> = blobs_on_disk(data).into_iter().map(|(n, _)| n).collect();
    for item in items {
        assert!(
            on_disk.contains(&item.sha256.to_string()),
            "playing version {version} lacks {} (a mix)",
            item.id
        );
    }
    Some(*version)
}

/// What was on disk of each interrupted download at a kill, to check the
/// resume: the next request for it starts no earlier than one chunk before
/// what was on disk (with SIGKILL the page cache survives, so in practice
/// exactly there). Bytes asked for again ≤ one chunk per interruption.
#[derive(Default)]
struct Resumes {
    /// (blob, partial length at the kill, requests seen by then).
    pending: Vec<(Sha256, u64, usize)>,
    /// How many resumes were checked.
    checked: usize,
}

impl Resumes {
    fn after_kill(&mut self, data: &Path, server: &ContentServer) {
        self.check(server);
        let dir = data.join("cache").join("partial");
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let entry = entry.unwrap();
            let Ok(sha) = entry.file_name().to_string_lossy().parse::<Sha256>() else {
                continue;
            };
            let len = entry.metadata().unwrap().len();
            self.pending
                .push((sha, len, server.served(&sha).starts.len()));
        }
    }

    fn check(&mut self, server: &ContentServer) {
        let checked = &mut self.checked;
        self.pending.retain(|(sha, len, seen)| {
            let starts = server.served(sha).starts;
            let Some(start) = starts.get(*seen) else {
                return true;
            };
            assert!(
                start + CHUNK_BYTES >= *len,
                "{sha}: {len} bytes were on disk, the resume asked from {start} (starts {starts:?})"
            );
            *checked += 1;
            false
        });
    }
}

/// D2, D3: SIGKILL at each named point of a download and of the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_d3_sigkill_at_every_named_point_leaves_old_or_new_never_a_mix() {
    let server = ContentServer::start().await;
    for (n, point) in killpoint::POINTS.iter().enumerate() {
        let broker = Broker::start();
        let keys = Keys::new();
        let mut hub = Hub::connect(&broker).await;
        publish_basics(
            &mut hub,
            &keys,
            keys.assignment_with(1, &[GROUP], &[], 86_400),
        )
        .await;
        let base = 100 * n as u64;
        let v1 = items(&server, &[(base + 1, 100_000)]);
        let mut v2 = v1.clone();
        v2.extend(items(&server, &[(base + 2, 900_000), (base + 3, 700_000)]));
        let known: Vec<Sha256> = v2.iter().map(|i| i.sha256).collect();
        publish(&mut hub, &keys, 1, &v1).await;
        let data = paired_dir(&keys, &broker.url());

        let agent = Agent::start_with(data.path(), &[RATE]);
        agent
            .wait_log(&format!("now playing manifest version 1 of group {GROUP}"))
            .await;
        agent.kill();
        assert_eq!(check_state(data.path(), &known), Some(1));

        publish(&mut hub, &keys, 2, &v2).await;
        let agent = Agent::start_with(data.path(), &[RATE, (killpoint::ENV, point)]);
        agent.wait_log(&format!("kill point {point} reached")).await;
        agent.kill();
        let mut resumes = Resumes::default();
        resumes.after_kill(data.path(), &server);
        if *point == "download.after_chunk" {
            assert!(
                resumes
                    .pending
                    .iter()
                    .any(|(_, len, _)| *len >= CHUNK_BYTES),
                "a chunk was durable at the kill"
            );
        }
        let version = check_state(data.path(), &known);
        let expected = if *point == "apply.after_switch" { 2 } else { 1 };
        assert_eq!(version, Some(expected), "after a kill at {point}");

        if expected == 1 {
            let agent = Agent::start_with(data.path(), &[RATE]);
            agent
                .wait_log(&format!("now playing manifest version 2 of group {GROUP}"))
                .await;
            agent.kill();
        }
        assert_eq!(check_state(data.path(), &known), Some(2), "{point}");
        resumes.check(&server);
        if *point == "download.after_chunk" {
            assert!(resumes.checked > 0, "the interrupted file was resumed");
        }
    }
}

/// D2, D3: 50 SIGKILLs at random moments while new versions keep arriving;
/// then the newest version plays and nothing was fetched twice beyond one
/// chunk per interruption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_d3_fifty_random_sigkills_never_leave_a_bad_file_or_a_mix() {
    let server = ContentServer::start().await;
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_basics(
        &mut hub,
        &keys,
        keys.assignment_with(1, &[GROUP], &[], 86_400),
    )
    .await;
    let data = paired_dir(&keys, &broker.url());

    let mut current = items(&server, &[(10_001, 300_000)]);
    let mut all = current.clone();
    let mut version = 1;
    publish(&mut hub, &keys, version, &current).await;
    let mut last_playing = None;
    let mut resumes = Resumes::default();
    for run in 0..50u64 {
        if run % 4 == 0 {
            // A new version: a new file, and the oldest one dropped.
            let fresh = items(
                &server,
                &[(20_000 + run, 300_000 + (run as usize % 5) * 150_000)],
            );
            all.extend(fresh.clone());
            current.extend(fresh);
            if current.len() > 3 {
                current.remove(0);
            }
            version += 1;
            publish(&mut hub, &keys, version, &current).await;
        }
        let agent = Agent::start_with(data.path(), &[SLOW]);
        let pause = support::random_bytes(run + 7, 2);
        let pause = 100 + (u64::from(pause[0]) << 2 | u64::from(pause[1]) & 3) % 1_100;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        agent.kill();
        resumes.after_kill(data.path(), &server);
        let known: Vec<Sha256> = all.iter().map(|i| i.sha256).collect();
        let playing = check_state(data.path(), &known);
        if let (Some(before), Some(now)) = (last_playing, playing) {
            assert!(
                now >= before,
                "the playing version went back from {before} to {now}"
            );
        }
        last_playing = playing.or(last_playing);
    }
    if last_playing != Some(version) {
        let agent = Agent::start_with(data.path(), &[SLOW]);
        agent
            .wait_log(&format!(
                "now playing manifest version {version} of group {GROUP}"
            ))
            .await;
        agent.kill();
    }
    let known: Vec<Sha256> = all.iter().map(|i| i.sha256).collect();
    assert_eq!(check_state(data.path(), &known), Some(version));
    resumes.check(&server);
    assert!(resumes.checked > 0, "some kill interrupted a download");
    eprintln!(
        "50 random kills: {} interrupted downloads resumed, newest version {version} plays",
        resumes.checked
    );
}
