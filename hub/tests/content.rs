//! Content store and content routes (T2, D2, A8, S7, S9): streamed uploads
//! into a content-addressed blob store, type detection from the bytes,
//! nothing left behind by refused or broken uploads, Range serving and the
//! device entitlement check.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::digest::Sha256;
use signet_common::ids::{AccessGroupId, DeviceId};
use signet_common::license::Membership;
use signet_hub::access_groups::device_may_fetch;
use signet_hub::access_groups::{
    MEMBER_GROUPS, MEMBERS, Member, MemberRef, MemberSource, member_index_key, member_key,
};
use signet_hub::content::{BlobStore, CONTENT, ContentItem};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::{TestHub, assert_error, gst_file};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A structurally whole PNG of `len` bytes (S13: uploads are checked).
fn png(len: usize, seed: u8) -> Vec<u8> {
    support::png(len, seed)
}

async fn upload(
    hub: &TestHub,
    token: &str,
    node: &str,
    name: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    hub.upload(token, node, name, body).await
}

fn content_dir(hub: &TestHub) -> PathBuf {
    hub.state.config.data.join("content")
}

/// The blob files (not the temporary directory).
fn blobs(hub: &TestHub) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(content_dir(hub)) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn temp_files(hub: &TestHub) -> usize {
    std::fs::read_dir(content_dir(hub).join("tmp")).map_or(0, Iterator::count)
}

fn records(hub: &TestHub) -> Vec<ContentItem> {
    hub.state.store.scan(CONTENT, "").unwrap()
}

/// Waits (bounded) until the hub has cleaned up after a broken upload.
async fn settled(hub: &TestHub) {
    for _ in 0..100 {
        if temp_files(hub) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_nothing_left(hub: &TestHub) {
    assert_eq!(temp_files(hub), 0, "temporary files left");
    assert!(blobs(hub).is_empty(), "blobs left: {:?}", blobs(hub));
    assert!(records(hub).is_empty(), "records left");
}

#[tokio::test]
async fn d2_a8_upload_is_hashed_typed_and_readable() {
    let hub = TestHub::start().await;
    let bytes = png(100_000, 1);
    let (status, item) = upload(&hub, &hub.admin, &hub.root, "Logo", bytes.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let sha = Sha256::of(&bytes).to_string();
    assert_eq!(item["sha256"], sha);
    assert_eq!(item["size"], 100_000);
    assert_eq!(item["kind"], "image");
    assert_eq!(item["media_type"], "image/png");
    assert_eq!(item["name"], "Logo");
    assert!(item["id"].as_str().unwrap().starts_with("c-"));
    assert_eq!(blobs(&hub), vec![sha.clone()]);
    assert_eq!(std::fs::read(content_dir(&hub).join(&sha)).unwrap(), bytes);
    assert_eq!(temp_files(&hub), 0);

    let id = item["id"].as_str().unwrap();
    let (status, got) = hub.get(&hub.admin, &format!("/api/v1/content/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, item);
    let (_, list) = hub.get(&hub.admin, "/api/v1/content").await;
    assert_eq!(list, json!([item]));

    // A template (a JSON object, whatever it is called) is refused here: it
    // is validated and versioned at /api/v1/templates (D6). Nothing is kept.
    let (status, refused) = upload(
        &hub,
        &hub.admin,
        &hub.root,
        "clip.mp4",
        br#"{"layout": "full"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/templates")
    );
    assert_eq!(blobs(&hub), vec![sha.clone()]);
    assert_eq!(temp_files(&hub), 0);
    assert_eq!(records(&hub).len(), 1);
}

#[tokio::test]
async fn d2_same_bytes_twice_are_stored_once_and_kept_while_used() {
    let hub = TestHub::start().await;
    let bytes = png(50_000, 2);
    let (s1, first) = upload(&hub, &hub.admin, &hub.root, "One", bytes.clone()).await;
    let (s2, second) = upload(&hub, &hub.admin, &hub.root, "Two", bytes.clone()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["sha256"], second["sha256"]);
    assert_eq!(blobs(&hub).len(), 1);
    assert_eq!(records(&hub).len(), 2);
    assert_eq!(temp_files(&hub), 0);

    let (status, _) = hub
        .delete(
            &hub.admin,
            &format!("/api/v1/content/{}", first["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(blobs(&hub).len(), 1, "still used by the second item");
    let (status, _) = hub
        .delete(
            &hub.admin,
            &format!("/api/v1/content/{}", second["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(blobs(&hub).is_empty(), "unused blob removed");
    assert!(records(&hub).is_empty());
}

#[tokio::test]
async fn over_limit_is_413_and_leaves_nothing() {
    let hub = TestHub::start_with(|c| c.max_upload_bytes = 10_000).await;
    // Declared too large: refused before reading.
    let r = upload(&hub, &hub.admin, &hub.root, "Big", png(10_001, 3)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large");
    assert_nothing_left(&hub);
    // Streamed without a length: cut off while streaming.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..4).map(|i| Ok(Bytes::from(png(4_000, i)))).collect();
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", hub.root.as_str()), ("name", "Big")])
        .bearer_auth(&hub.admin)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    settled(&hub).await;
    assert_nothing_left(&hub);
    // Exactly the limit is fine.
    let (status, _) = upload(&hub, &hub.admin, &hub.root, "Fits", png(10_000, 4)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_type_is_415_and_leaves_nothing() {
    let hub = TestHub::start().await;
    for body in [
        b"just some text, named like a video".repeat(100),
        b"short".to_vec(),
        br#"{"unterminated": "#.to_vec(),
        b"[1, 2, 3]".to_vec(),
        Vec::new(),
    ] {
        let r = upload(&hub, &hub.admin, &hub.root, "video.mp4", body).await;
        assert_error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
        );
    }
    assert_nothing_left(&hub);
}

#[tokio::test]
async fn s9_truncated_upload_leaves_nothing() {
    let hub = TestHub::start().await;
    // A client that promises more bytes than it sends, then closes.
    let address = hub.base.strip_prefix("http://").unwrap();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = png(20_000, 5);
    let head = format!(
        "POST /api/v1/content?node={}&name=Cut HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {}\r\nContent-Length: 1000000\r\n\r\n",
        hub.root, hub.admin
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    socket.flush().await.unwrap();
    // Wait until the hub has the bytes (its temporary file exists), then go.
    let mut started = false;
    for _ in 0..250 {
        started = temp_files(&hub) > 0;
        if started {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started, "the hub never started storing the upload");
    drop(socket);
    settled(&hub).await;
    assert_nothing_left(&hub);

    // A body stream that fails half-way.
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(png(8_000, 6))),
        Ok(Bytes::from(vec![7u8; 8_000])),
        Err(std::io::Error::other("client failed")),
    ];
    let sent = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", hub.root.as_str()), ("name", "Broken")])
        .bearer_auth(&hub.admin)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    assert!(sent.is_err() || !sent.unwrap().status().is_success());
    settled(&hub).await;
    assert_nothing_left(&hub);
}

#[tokio::test]
async fn t2_content_is_seen_in_the_domain_and_above_it_changed_only_inside() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let other = hub.node(&hub.admin, &hub.root, "Other").await;
    let (_, contributor) = hub.user("contrib", "contributor", &[&tenant]).await;
    let (_, viewer) = hub.user("viewer", "viewer", &[&tenant]).await;
    let (_, at_root) = upload(&hub, &hub.admin, &hub.root, "Root", png(1000, 8)).await;
    let (_, at_other) = upload(&hub, &hub.admin, &other, "Other", png(1000, 9)).await;
    let (status, own) = upload(&hub, &contributor, &tenant, "Own", png(1000, 10)).await;
    assert_eq!(status, StatusCode::CREATED);
    let r = upload(&hub, &viewer, &tenant, "Nope", png(1000, 11)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = upload(&hub, &contributor, &other, "Nope", png(1000, 11)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let (_, list) = hub.get(&viewer, "/api/v1/content").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"Root") && names.contains(&"Own"),
        "{names:?}"
    );
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let r = hub
        .get(&viewer, &format!("/api/v1/content/{}", id(&at_other)))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = hub
        .delete(&contributor, &format!("/api/v1/content/{}", id(&at_root)))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = hub
        .delete(&viewer, &format!("/api/v1/content/{}", id(&own)))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = hub
        .delete(&contributor, &format!("/api/v1/content/{}", id(&own)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Every upload and delete is audited.
    let (_, audit) = hub.get(&hub.admin, "/api/v1/audit").await;
    let text = audit.to_string();
    assert!(text.contains("content.upload") && text.contains("content.delete"));
}

async fn body_of(response: axum::response::Response) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn d2_range_requests_return_exactly_the_requested_bytes() {
    let hub = TestHub::start().await;
    let bytes = png(10_000, 12);
    let (_, item) = upload(&hub, &hub.admin, &hub.root, "Ranged", bytes.clone()).await;
    let sha: Sha256 = item["sha256"].as_str().unwrap().parse().unwrap();
    let store = BlobStore::new(&hub.state.config.data);
    let header = |r: &axum::response::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    let whole = signet_hub::api::blob_response(&store, &sha, None)
        .await
        .unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(header(&whole, "content-length").as_deref(), Some("10000"));
    assert_eq!(header(&whole, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(body_of(whole).await, bytes);

    for (range, start, end) in [
        ("bytes=100-199", 100, 199),
        ("bytes=0-0", 0, 0),
        ("bytes=9990-20000", 9990, 9999),
        ("bytes=4000-", 4000, 9999),
        ("bytes=-250", 9750, 9999),
    ] {
        let r = signet_hub::api::blob_response(&store, &sha, Some(range))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&r, "content-range").unwrap(),
            format!("bytes {start}-{end}/10000"),
            "{range}"
        );
        assert_eq!(
            header(&r, "content-length").unwrap(),
            (end - start + 1).to_string()
        );
        assert_eq!(body_of(r).await, &bytes[start..=end], "{range}");
    }

    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=-0"] {
        let r = signet_hub::api::blob_response(&store, &sha, Some(range))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            header(&r, "content-range").as_deref(),
            Some("bytes */10000")
        );
        let body: Value = serde_json::from_slice(&body_of(r).await).unwrap();
        assert_eq!(body["error"], "range_not_satisfiable");
    }

    let absent = Sha256::of(b"absent");
    let err = signet_hub::api::blob_response(&store, &absent, None)
        .await
        .unwrap_err();
    assert_eq!(err.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn s7_device_route_refuses_until_devices_have_credentials() {
    let hub = TestHub::start().await;
    let (_, item) = upload(&hub, &hub.admin, &hub.root, "Any", png(1000, 13)).await;
    let sha = item["sha256"].as_str().unwrap();
    let response = hub
        .client
        .get(format!("{}/api/v1/device/content/{sha}", hub.base))
        .header("range", "bytes=0-9")
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "device_credentials_required");
}

/// Makes `device` a current, active member of `group` (as pairing will).
async fn device_member(hub: &TestHub, group: &str, device: &DeviceId) {
    let group = AccessGroupId::from(group);
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let record = Member {
        group: group.clone(),
        member: member.clone(),
        membership: Membership::joined(hub.state.clock.now()),
        display_name: None,
        source: MemberSource::SelfSignup,
        active: true,
    };
    let mut batch = WriteBatch::new();
    batch
        .put(MEMBERS, &member_key(&group, &member), &record)
        .unwrap();
    batch
        .put(MEMBER_GROUPS, &member_index_key(&group, &member), &group)
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
}

#[tokio::test]
async fn s7_l4_device_may_fetch_only_what_it_is_entitled_to() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let other_site = hub.node(&hub.admin, &hub.root, "Elsewhere").await;
    let now = hub.state.clock.now();
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Licensed", "license": {
                "allow_offline": false, "offline_grace_secs": 0, "allow_export": false,
                "fixed_end": now + TimeDelta::days(1)}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let (_, licensed) = upload(&hub, &hub.admin, &tenant, "Licensed", png(2000, 14)).await;
    let (status, answer) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{group}/items"),
            Some(&hub.admin),
            Some(json!({"items": [{"id": licensed["id"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, open) = upload(&hub, &hub.admin, &tenant, "Open", png(2000, 15)).await;
    let licensed: Sha256 = licensed["sha256"].as_str().unwrap().parse().unwrap();
    let open: Sha256 = open["sha256"].as_str().unwrap().parse().unwrap();

    let member = DeviceId::from("d-member");
    let stranger = DeviceId::from("d-stranger");
    device_member(&hub, &group, &member).await;
    // Both devices are attached to nodes (pairing fills this tree).
    let mut batch = WriteBatch::new();
    batch
        .put(NODE_DEVICES, &format!("{site}/{member}"), &json!({}))
        .unwrap();
    batch
        .put(
            NODE_DEVICES,
            &format!("{other_site}/{stranger}"),
            &json!({}),
        )
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();

    let store = &hub.state.store;
    let may =
        |device: &DeviceId, sha: &Sha256, at| device_may_fetch(store, device, sha, at).unwrap();
    // Access-group half: the member within its window, nobody else.
    assert!(may(&member, &licensed, now));
    assert!(!may(&stranger, &licensed, now));
    assert!(
        !may(&member, &licensed, now + TimeDelta::days(2)),
        "window ended"
    );
    // Node half: content at the device's node chain, in no access group.
    assert!(may(&member, &open, now));
    assert!(
        !may(&stranger, &open, now),
        "not on the stranger's node chain"
    );
    assert!(!may(&member, &Sha256::of(b"unknown"), now));

    // Removal ends the entitlement.
    let key = member_key(
        &AccessGroupId::from(group.as_str()),
        &MemberRef::Device {
            device_id: member.clone(),
        },
    );
    let mut record: Member = store.get(MEMBERS, &key).unwrap().unwrap();
    record.membership.removed_at = Some(now);
    let mut batch = WriteBatch::new();
    batch.put(MEMBERS, &key, &record).unwrap();
    store.apply(batch).await.unwrap();
    assert!(!may(&member, &licensed, now + TimeDelta::seconds(1)));
    assert!(
        may(&member, &open, now),
        "the open item is still on its node chain"
    );
}

#[tokio::test]
async fn responses_stream_from_the_file() {
    // The whole-blob answer reads the file as it is sent: a blob larger than
    // any buffer still arrives intact.
    let hub = TestHub::start().await;
    let bytes = png(3_000_000, 16);
    let (_, item) = upload(&hub, &hub.admin, &hub.root, "Large", bytes.clone()).await;
    let sha: Sha256 = item["sha256"].as_str().unwrap().parse().unwrap();
    let store = BlobStore::new(&hub.state.config.data);
    let response = signet_hub::api::blob_response(&store, &sha, Some("bytes=1000000-"))
        .await
        .unwrap();
    let mut body = body_of(response).await;
    assert_eq!(body.len(), 2_000_000);
    assert_eq!(&body[..], &bytes[1_000_000..]);
    body.clear();
    let mut file = tokio::fs::File::open(store.path_of(&sha)).await.unwrap();
    file.read_to_end(&mut body).await.unwrap();
    assert_eq!(body, bytes);
}

#[tokio::test]
async fn media_metadata_comes_from_the_discoverer() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let video = gst_file(
        dir.path(),
        "v.webm",
        "videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc ! webmmux",
    );
    let image = gst_file(
        dir.path(),
        "i.png",
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! pngenc",
    );
    let audio = gst_file(
        dir.path(),
        "a.wav",
        "audiotestsrc samplesperbuffer=4410 num-buffers=10 ! audio/x-raw,rate=44100 ! wavenc",
    );

    let (status, item) = upload(&hub, &hub.admin, &hub.root, "Video", video).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(
        (&item["kind"], &item["media_type"]),
        (&json!("video"), &json!("video/webm"))
    );
    assert_eq!(
        (&item["width"], &item["height"]),
        (&json!(320), &json!(240))
    );
    let ms = item["duration_ms"].as_u64().unwrap();
    assert!((900..=1100).contains(&ms), "video duration {ms} ms");

    let (status, item) = upload(&hub, &hub.admin, &hub.root, "Image", image).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["media_type"], "image/png");
    assert_eq!((&item["width"], &item["height"]), (&json!(64), &json!(48)));

    let (status, item) = upload(&hub, &hub.admin, &hub.root, "Audio", audio).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(
        (&item["kind"], &item["media_type"]),
        (&json!("audio"), &json!("audio/wav"))
    );
    assert!(item["width"].is_null());
    let ms = item["duration_ms"].as_u64().unwrap();
    assert!((900..=1100).contains(&ms), "audio duration {ms} ms");

    // Bytes with a media magic number but no decodable media: stored,
    // without metadata.
    let (status, item) = upload(&hub, &hub.admin, &hub.root, "Odd", png(5000, 17)).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert!(item["duration_ms"].is_null() && item["width"].is_null());
}

/// S13: video and audio whose container structure passes the upload checks
/// but which GStreamer's discoverer cannot read (an Ogg page header or an ID3
/// tag followed by noise, an MP4 whose movie box holds noise) are refused
/// with `unreadable_media` and nothing is stored, also when they replace an
/// item's bytes; real video and audio of the same containers are accepted
/// with the duration and resolution the discoverer reads, and a codec the
/// hub has no plugin for is stored without metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_media_the_discoverer_cannot_read_is_refused_and_nothing_is_stored() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mp4 = gst_file(
        dir.path(),
        "v.mp4",
        "videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120,framerate=30/1 \
         ! jpegenc ! qtmux",
    );
    let ogg = gst_file(
        dir.path(),
        "a.ogg",
        "audiotestsrc num-buffers=20 ! audio/x-raw,rate=44100 ! vorbisenc ! oggmux",
    );
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut mp4_noise = mp4.clone();
    let moov = mp4_noise.windows(4).position(|w| w == b"moov").unwrap();
    let size = u32::from_be_bytes(mp4_noise[moov - 4..moov].try_into().unwrap()) as usize;
    for (i, byte) in mp4_noise[moov + 4..moov - 4 + size].iter_mut().enumerate() {
        *byte = noise[i % noise.len()];
    }
    let mut ogg_noise = ogg[..64].to_vec();
    ogg_noise.extend_from_slice(&noise);
    let mut mp3_noise = b"ID3\x04\0\0\0\0\0\0".to_vec();
    mp3_noise.extend_from_slice(&noise);

    for (name, bytes) in [
        ("MP4 with a noise movie box", mp4_noise.clone()),
        ("Ogg page then noise", ogg_noise),
        ("ID3 tag then noise", mp3_noise),
    ] {
        let (status, body) = upload(&hub, &hub.admin, &hub.root, name, bytes).await;
        assert_error(&(status, body), StatusCode::BAD_REQUEST, "unreadable_media");
    }
    settled(&hub).await;
    assert_nothing_left(&hub);

    let (status, video) = upload(&hub, &hub.admin, &hub.root, "Video", mp4).await;
    assert_eq!(status, StatusCode::CREATED, "{video}");
    assert_eq!(video["media_type"], "video/mp4");
    assert_eq!(
        (&video["width"], &video["height"]),
        (&json!(160), &json!(120))
    );
    let ms = video["duration_ms"].as_u64().unwrap();
    assert!((900..=1100).contains(&ms), "video duration {ms} ms");
    let (status, audio) = upload(&hub, &hub.admin, &hub.root, "Audio", ogg).await;
    assert_eq!(status, StatusCode::CREATED, "{audio}");
    assert_eq!(audio["media_type"], "audio/ogg");
    assert!(audio["duration_ms"].as_u64().unwrap() > 0, "{audio}");

    // A codec this hub has no plugin for (here a fourcc no plugin knows; in
    // practice H.264 on a hub without gstreamer1.0-libav) is not held
    // against the file: the screens decode it, not the hub. It is stored
    // without metadata.
    let mut unknown_codec = gst_file(
        dir.path(),
        "v.mkv",
        "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48 ! jpegenc ! matroskamux",
    );
    let fourcc = unknown_codec.windows(4).position(|w| w == b"MJPG").unwrap();
    unknown_codec[fourcc..fourcc + 4].copy_from_slice(b"QZQZ");
    let (status, item) = upload(&hub, &hub.admin, &hub.root, "Unknown codec", unknown_codec).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert!(
        item["duration_ms"].is_null() && item["width"].is_null(),
        "{item}"
    );

    // Replacing an item's bytes with unreadable media changes nothing.
    let id = video["id"].as_str().unwrap();
    let response = hub
        .client
        .put(format!("{}/api/v1/content/{id}", hub.base))
        .bearer_auth(&hub.admin)
        .body(mp4_noise)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_error(&(status, body), StatusCode::BAD_REQUEST, "unreadable_media");
    let (_, again) = hub.get(&hub.admin, &format!("/api/v1/content/{id}")).await;
    assert_eq!(again, video);
    assert_eq!(blobs(&hub).len(), 3);
    assert_eq!(temp_files(&hub), 0);
}

/// L3, T2: an item an access group holds is not deleted from under it
/// (409, nothing changes); once the group lets it go, it is.
#[tokio::test]
async fn l3_an_item_in_an_access_group_is_not_deleted() {
    let hub = TestHub::start().await;
    let (_, item) = upload(&hub, &hub.admin, &hub.root, "Licensed", png(5_000, 9)).await;
    let item_id = item["id"].as_str().unwrap();
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": hub.root, "name": "Members",
                "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let items = format!(
        "/api/v1/access-groups/{}/items",
        group["id"].as_str().unwrap()
    );
    let put = |body: Value| hub.call(Method::PUT, &items, Some(&hub.admin), Some(body));
    assert_eq!(
        put(json!({"items": [{"id": item_id}]})).await.0,
        StatusCode::OK
    );

    let path = format!("/api/v1/content/{item_id}");
    let refused = hub.delete(&hub.admin, &path).await;
    assert_error(&refused, StatusCode::CONFLICT, "item_in_use");
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap()
            .contains("access group")
    );
    assert_eq!(records(&hub).len(), 1);
    assert_eq!(blobs(&hub).len(), 1);

    assert_eq!(put(json!({"items": []})).await.0, StatusCode::OK);
    assert_eq!(
        hub.delete(&hub.admin, &path).await.0,
        StatusCode::NO_CONTENT
    );
    assert_nothing_left(&hub);
}
