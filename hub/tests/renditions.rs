//! Process media (M3, P5, D2): a real hub over HTTP makes, with real
//! GStreamer, an H.264 rendition of at most 1920×1080 at 30 fps in a
//! background job with progress, lists it in the group manifest beside the
//! original, fails a job on an undecodable file with the reason, redoes a
//! job a stopped hub left running, and refuses callers without the
//! permission (403) or without sight of the item (404).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::ids::{AccessGroupId, ItemId, UserId};
use signet_hub::content::renditions::{JobState, PI, RenditionJob, repo};
use signet_hub::groups::GroupRef;
use support::{TestHub, assert_error, gst_file};
use tokio_util::sync::CancellationToken;

/// A 1440p VP8 video at 25 fps (taller and wider than 1080p).
fn big_video(dir: &std::path::Path) -> Vec<u8> {
    gst_file(
        dir,
        "big.webm",
        "videotestsrc num-buffers=30 pattern=smpte ! video/x-raw,width=2560,height=1440,framerate=25/1 \
         ! vp8enc deadline=1 ! webmmux",
    )
}

/// A small VP8 video.
fn small_video(dir: &std::path::Path, name: &str) -> Vec<u8> {
    gst_file(
        dir,
        name,
        "videotestsrc num-buffers=20 ! video/x-raw,width=320,height=240,framerate=20/1 \
         ! vp8enc deadline=1 ! webmmux",
    )
}

/// Uploads a small clip named "Clip" from `file` at the root, as the
/// admin: its id and the item.
async fn upload_clip(hub: &TestHub, dir: &std::path::Path, file: &str) -> (String, Value) {
    let (status, item) = hub
        .upload(&hub.admin, &hub.root, "Clip", small_video(dir, file))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    (id, item)
}

/// The item's jobs, polled until none is queued or running (at most
/// about two minutes: a bound, not a timing assertion).
async fn settled(hub: &TestHub, token: &str, item: &str) -> Vec<Value> {
    let path = format!("/api/v1/content/{item}/renditions");
    let mut percents = Vec::new();
    for _ in 0..1200 {
        let (status, jobs) = hub.get(token, &path).await;
        assert_eq!(status, StatusCode::OK, "{jobs}");
        let jobs = jobs.as_array().unwrap().clone();
        if jobs
            .iter()
            .all(|j| j["state"] == "done" || j["state"] == "failed")
        {
            return jobs;
        }
        percents.extend(jobs.iter().filter_map(|j| j["percent"].as_u64()));
        assert!(percents.iter().all(|p| *p <= 100), "{percents:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rendition job did not finish");
}

/// What GStreamer's discoverer reads from `path`: the caps of its video
/// stream, its width, height and frame rate, and how many audio streams.
fn discover(path: &std::path::Path) -> (String, u32, u32, gst::Fraction, usize) {
    gst::init().unwrap();
    let uri = gst::glib::filename_to_uri(path, None).unwrap();
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
    let info = discoverer.discover_uri(&uri).unwrap();
    let video = info.video_streams().into_iter().next().unwrap();
    let caps = video
        .caps()
        .unwrap()
        .structure(0)
        .unwrap()
        .name()
        .to_string();
    (
        caps,
        video.width(),
        video.height(),
        video.framerate(),
        info.audio_streams().len(),
    )
}

/// M3: a Moderator (who holds process_media by role, P2) asks for the
/// rendition of a 2560×1440 25 fps video: the job is queued (202), runs
/// with a percent, and ends done; the rendition is a content blob of the
/// stated hash and size that GStreamer reads as H.264, 1920×1080, 30 fps,
/// silent. Asking again answers the same job (200). The access group's
/// manifest lists it beside the original with its URL.
#[tokio::test]
async fn m3_process_media_makes_an_h264_1080p30_rendition() {
    let hub = TestHub::start().await;
    let _worker =
        signet_hub::content::renditions::worker::spawn(hub.state.clone(), CancellationToken::new());
    let dir = tempfile::tempdir().unwrap();
    let (_, moderator) = hub.user("mona", "moderator", &[&hub.root]).await;
    let (status, item) = hub
        .upload(&moderator, &hub.root, "Big", big_video(dir.path()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();

    let process = format!("/api/v1/content/{id}/process");
    let (status, job) = hub.post(&moderator, &process, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["profile"], "1080p30-h264");
    assert_eq!(job["source"], item["sha256"]);
    assert!(
        job["state"] == "queued" || job["state"] == "running",
        "{job}"
    );

    let jobs = settled(&hub, &moderator, &id).await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["percent"], 100);
    assert_eq!(job["current"], true);
    let rendition = &job["rendition"];
    assert_eq!(
        (
            &rendition["codec"],
            &rendition["width"],
            &rendition["height"],
            &rendition["fps"]
        ),
        (&json!("h264"), &json!(1920), &json!(1080), &json!(30)),
        "{rendition}"
    );
    let sha256 = rendition["sha256"].as_str().unwrap();
    let path = hub.data.join("content").join(sha256);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, rendition["size"].as_u64().unwrap());
    assert_eq!(
        signet_common::digest::Sha256::of(&bytes).to_string(),
        sha256
    );
    let (caps, width, height, framerate, audio) = discover(&path);
    assert_eq!(caps, "video/x-h264");
    assert_eq!((width, height), (1920, 1080));
    assert_eq!(framerate, gst::Fraction::new(30, 1));
    assert_eq!(audio, 0);

    // Again: the same job, not a new one.
    let (status, again) = hub.post(&moderator, &process, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["rendition"]["sha256"], sha256);

    // The manifest of an access group holding the item lists it (D2).
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": hub.root, "name": "g", "license":
                {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let items = format!("/api/v1/access-groups/{group}/items");
    let (status, body) = hub
        .call(
            reqwest::Method::PUT,
            &items,
            Some(&hub.admin),
            Some(json!({"items": [{"id": id}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let built = signet_hub::publish::build::manifest(
        &hub.state.store,
        "http://hub",
        &GroupRef::AccessGroup(AccessGroupId::from(group.as_str())),
    )
    .unwrap();
    let listed = built.document.item(&ItemId::from(id.as_str())).unwrap();
    assert_eq!(listed.sha256.to_string(), item["sha256"].as_str().unwrap());
    assert_eq!(listed.renditions.len(), 1);
    let entry = &listed.renditions[0];
    assert_eq!(entry.sha256.to_string(), sha256);
    assert_eq!(
        entry.url,
        format!("http://hub/api/v1/device/content/{sha256}")
    );
    assert_eq!((entry.width, entry.height, entry.fps), (1920, 1080, 30));

    // Deleting the item takes its rendition's blob with it.
    let (status, body) = hub
        .call(
            reqwest::Method::PUT,
            &items,
            Some(&hub.admin),
            Some(json!({"items": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = hub
        .delete(&hub.admin, &format!("/api/v1/content/{id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!path.exists(), "the rendition's blob went with the item");
}

/// M3: a job on bytes GStreamer cannot decode fails with the reason; the
/// item and its original are unchanged.
#[tokio::test]
async fn m3_a_job_on_a_corrupt_file_fails_with_a_reason() {
    let hub = TestHub::start().await;
    let _worker =
        signet_hub::content::renditions::worker::spawn(hub.state.clone(), CancellationToken::new());
    let dir = tempfile::tempdir().unwrap();
    let (id, item) = upload_clip(&hub, dir.path(), "c.webm").await;
    // The blob rots on the hub's disk after the upload was checked.
    let blob = hub
        .data
        .join("content")
        .join(item["sha256"].as_str().unwrap());
    let len = std::fs::metadata(&blob).unwrap().len() as usize;
    std::fs::write(&blob, vec![0x5a_u8; len]).unwrap();

    let (status, job) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/content/{id}/process"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let jobs = settled(&hub, &hub.admin, &id).await;
    assert_eq!(jobs[0]["state"], "failed", "{}", jobs[0]);
    assert!(
        jobs[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        jobs[0]
    );
    assert!(jobs[0]["rendition"].is_null());
    let (status, _) = hub.get(&hub.admin, &format!("/api/v1/content/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}

/// M3, S9: a job the hub left running when it stopped is queued again
/// when the worker starts, and finishes.
#[tokio::test]
async fn m3_a_job_left_running_by_a_stopped_hub_is_redone() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, item) = upload_clip(&hub, dir.path(), "r.webm").await;
    let now = hub.state.now();
    let job = RenditionJob {
        item: ItemId::from(id.as_str()),
        profile: PI.name.to_owned(),
        source: item["sha256"].as_str().unwrap().parse().unwrap(),
        state: JobState::Queued,
        percent: 0,
        reason: None,
        rendition: None,
        requested_by: UserId::from("u-someone"),
        requested_at: now,
        started_at: None,
        finished_at: None,
        queue_key: None,
    };
    let key = signet_hub::content::renditions::job_key(&job.item, PI.name);
    hub.state
        .store
        .transact(|tx| {
            repo::enqueue_in(tx, job.clone(), now)?.unwrap();
            repo::start_in(tx, &key, now)
        })
        .await
        .unwrap()
        .unwrap();
    let (_, jobs) = hub
        .get(&hub.admin, &format!("/api/v1/content/{id}/renditions"))
        .await;
    assert_eq!(jobs[0]["state"], "running", "{jobs}");

    let _worker =
        signet_hub::content::renditions::worker::spawn(hub.state.clone(), CancellationToken::new());
    let jobs = settled(&hub, &hub.admin, &id).await;
    assert_eq!(jobs[0]["state"], "done", "{}", jobs[0]);
    assert_eq!(jobs[0]["rendition"]["width"], 320, "{}", jobs[0]);
}

/// M3, P5, M1, T4: process_media is refused to a Viewer who views the item
/// but does not hold it (403), and to callers who cannot view it — another
/// tenant, for both routes (404); only video has renditions (400).
#[tokio::test]
async fn m3_process_is_refused_without_the_permission_or_sight_of_the_item() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (_, viewer) = hub.user("vera", "viewer", &[&a]).await;
    let (_, other) = hub.user("otto", "moderator", &[&b]).await;
    let (status, item) = hub
        .upload(&hub.admin, &a, "Clip", small_video(dir.path(), "p.webm"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    let process = format!("/api/v1/content/{id}/process");
    let renditions = format!("/api/v1/content/{id}/renditions");

    assert_error(
        &hub.post(&viewer, &process, json!({})).await,
        StatusCode::FORBIDDEN,
        "permission_not_held",
    );
    let (status, jobs) = hub.get(&viewer, &renditions).await;
    assert_eq!((status, jobs), (StatusCode::OK, json!([])));
    assert_error(
        &hub.post(&other, &process, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.get(&other, &renditions).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.post(&hub.admin, "/api/v1/content/c-missing/process", json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let (status, image) = hub
        .upload(&hub.admin, &a, "Still", support::png(4096, 3))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    let image = image["id"].as_str().unwrap();
    assert_error(
        &hub.post(
            &hub.admin,
            &format!("/api/v1/content/{image}/process"),
            json!({}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "not_video",
    );
    // Nothing was queued by the refusals.
    let queued: Vec<String> = hub
        .state
        .store
        .scan_keys(signet_hub::content::renditions::RENDITION_QUEUE, "")
        .unwrap();
    assert!(queued.is_empty(), "{queued:?}");
}

/// A manifest item exactly as agents built before renditions parse it:
/// the strict shape of that time (every field, unknown ones refused).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OldItem {
    id: String,
    kind: String,
    sha256: String,
    size: u64,
    url: String,
    approval: String,
    #[serde(default)]
    approved_hash: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
}

/// A group manifest as agents built before renditions parse it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OldManifest {
    version: u64,
    issued_at: String,
    expires_at: String,
    group_id: String,
    group_kind: String,
    items: Vec<OldItem>,
    schedule: Value,
    #[serde(default)]
    license: Option<Value>,
}

/// A state report of `device` as an agent sends it: without
/// `document_features` (as every agent built before it), or declaring
/// `features`.
async fn report_state(hub: &TestHub, device: &str, features: Option<&[&str]>) {
    use signet_hub::app::Clock as _;
    let mut state = json!({"device_id": device, "online": true,
        "at": hub.clock.now(), "agent_version": "0.1.0", "os": "Raspberry Pi OS"});
    if let Some(features) = features {
        state["document_features"] = json!(features);
    }
    let state: signet_common::sync::DeviceState = serde_json::from_value(state).unwrap();
    signet_hub::fleet::record_state(
        &hub.state,
        &signet_common::ids::DeviceId::from(device),
        state,
    )
    .await
    .unwrap();
}

/// The manifests `device` fetches over `GET /api/v1/device/documents`,
/// each signature-checked, as raw payload bytes by group.
async fn fetched_manifests(
    hub: &TestHub,
    device: &str,
    secret: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    use signet_hub::app::Clock as _;
    let response = hub
        .client
        .get(format!("{}/api/v1/device/documents", hub.base))
        .basic_auth(device, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let trust = support::signed::device_trust(&hub.data);
    answer["manifests"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(group, envelope)| {
            let bytes = envelope.as_str().unwrap().as_bytes();
            trust
                .verify::<signet_common::documents::GroupManifest>(bytes, hub.clock.now())
                .unwrap();
            let opened = signet_common::envelope::open(bytes).unwrap();
            (group.clone(), opened.payload().to_vec())
        })
        .collect()
}

/// Schedules `item` all day at `node` (a one-item playlist).
async fn schedule_at(hub: &TestHub, node: &str, item: &str) {
    let (status, playlist) = hub
        .post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": node, "name": "Loop", "items": [{"item": item, "duration_ms": 1_000}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{playlist}");
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": node},
                "entries": [{"id": "all-day", "playlist": playlist["id"], "priority": 0}]}),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

/// Publishes `node`'s subtree now.
async fn publish_node(hub: &TestHub, node: &str) {
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": node}}),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

/// M3, S3, O1 (a fleet upgraded screen by screen): documents refuse
/// unknown fields, so an agent built before renditions refuses a manifest
/// that lists one. Each agent declares in its state the optional fields it
/// reads; the hub lists a rendition only in manifests whose every receiving
/// device declared it. A screen whose state has no `document_features` (an
/// old agent) gets manifests that the old strict item shape parses, with
/// the original; a screen that declared it gets the rendition in its own
/// node's manifest, which the old shape refuses (the blackout this
/// prevents); once the old screen reports as upgraded, its node's next
/// publication lists the rendition too.
#[tokio::test]
async fn m3_an_agent_built_before_renditions_never_gets_a_manifest_it_refuses() {
    let hub = TestHub::start().await;
    let _worker =
        signet_hub::content::renditions::worker::spawn(hub.state.clone(), CancellationToken::new());
    let dir = tempfile::tempdir().unwrap();
    let old_shop = hub.node(&hub.admin, &hub.root, "Old shop").await;
    let new_shop = hub.node(&hub.admin, &hub.root, "New shop").await;
    let (old, old_secret) = hub.pair_device(&old_shop, 31).await;
    let (new, new_secret) = hub.pair_device(&new_shop, 32).await;
    report_state(&hub, &old, None).await;
    report_state(&hub, &new, Some(&["renditions"])).await;

    let (status, item) = hub
        .upload(
            &hub.admin,
            &hub.root,
            "Clip",
            small_video(dir.path(), "u.webm"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    let (status, job) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/content/{id}/process"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let jobs = settled(&hub, &hub.admin, &id).await;
    assert_eq!(jobs[0]["state"], "done", "{}", jobs[0]);
    let rendition = jobs[0]["rendition"]["sha256"].as_str().unwrap().to_owned();
    schedule_at(&hub, &old_shop, &id).await;
    schedule_at(&hub, &new_shop, &id).await;
    publish_node(&hub, &hub.root).await;

    // The old screen: every manifest it receives parses as it did before
    // renditions, and names the original.
    let received = fetched_manifests(&hub, &old, &old_secret).await;
    assert!(received.contains_key(&old_shop), "{:?}", received.keys());
    for (group, payload) in &received {
        let manifest: OldManifest = serde_json::from_slice(payload)
            .unwrap_or_else(|e| panic!("the old agent refuses {group}: {e}"));
        for listed in manifest.items.iter().filter(|i| i.id == id) {
            assert_eq!(listed.sha256, item["sha256"].as_str().unwrap());
        }
    }
    let old_view: OldManifest = serde_json::from_slice(&received[&old_shop]).unwrap();
    assert_eq!(old_view.items.len(), 1);

    // The upgraded screen: its node's manifest lists the rendition, which
    // the old shape would refuse.
    let received = fetched_manifests(&hub, &new, &new_secret).await;
    let payload = &received[&new_shop];
    let manifest: signet_common::documents::GroupManifest =
        serde_json::from_slice(payload).unwrap();
    let listed = manifest.item(&ItemId::from(id.as_str())).unwrap();
    assert_eq!(listed.renditions.len(), 1);
    assert_eq!(listed.renditions[0].sha256.to_string(), rendition);
    let refused = serde_json::from_slice::<OldManifest>(payload).unwrap_err();
    assert!(refused.to_string().contains("renditions"), "{refused}");

    // The old screen is upgraded: its next state declares the field, and
    // its node's next publication lists the rendition for it too.
    report_state(&hub, &old, Some(&["renditions"])).await;
    publish_node(&hub, &old_shop).await;
    let received = fetched_manifests(&hub, &old, &old_secret).await;
    let manifest: signet_common::documents::GroupManifest =
        serde_json::from_slice(&received[&old_shop]).unwrap();
    let listed = manifest.item(&ItemId::from(id.as_str())).unwrap();
    assert_eq!(listed.renditions.len(), 1);
}
