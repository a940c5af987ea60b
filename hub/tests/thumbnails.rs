//! Thumbnails made at upload (C5) by a real hub with real GStreamer: a
//! small video and a PNG get a thumbnail at most 320 pixels wide, audio
//! and undecodable pictures get none without failing the upload, the
//! route answers only callers who see the item (T4), and the thumbnail
//! goes with the last item using its bytes.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use support::{TestHub, gst_file};

/// GET the thumbnail of `item` with `token`: status, content type, bytes.
async fn thumbnail(hub: &TestHub, token: &str, item: &str) -> (StatusCode, String, Vec<u8>) {
    let response = hub
        .client
        .get(format!("{}/api/v1/content/{item}/thumbnail", hub.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn thumbnail_files(hub: &TestHub) -> usize {
    std::fs::read_dir(hub.data.join("thumbnails")).map_or(0, |d| {
        d.filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
    })
}

/// C5: a 640×480 VP8 video gets a JPEG thumbnail of 320×240 and a 800×600
/// PNG a PNG of 320×240; the item views say so, with duration and size.
#[tokio::test]
async fn c5_video_and_image_get_thumbnails_at_most_320_wide() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let video = gst_file(
        dir.path(),
        "v.webm",
        "videotestsrc num-buffers=40 pattern=smpte ! video/x-raw,width=640,height=480,framerate=20/1 \
         ! vp8enc deadline=1 ! webmmux",
    );
    let image = gst_file(
        dir.path(),
        "i.png",
        "videotestsrc num-buffers=1 pattern=ball ! video/x-raw,width=800,height=600 ! pngenc",
    );

    let (status, item) = hub.upload(&hub.admin, &hub.root, "Clip", video).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["thumbnail"], true, "{item}");
    assert_eq!(
        (&item["width"], &item["height"]),
        (&640.into(), &480.into())
    );
    assert!(
        item["duration_ms"].as_u64().is_some_and(|ms| ms > 1500),
        "{item}"
    );
    let (status, content_type, bytes) =
        thumbnail(&hub, &hub.admin, item["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "image/jpeg");
    let size = imagesize::blob_size(&bytes).unwrap();
    assert!(size.width <= 320, "{size:?}");
    assert_eq!((size.width, size.height), (320, 240));

    let (status, item) = hub.upload(&hub.admin, &hub.root, "Poster", image).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["thumbnail"], true, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    let (status, content_type, bytes) = thumbnail(&hub, &hub.admin, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "image/png");
    let size = imagesize::blob_size(&bytes).unwrap();
    assert_eq!((size.width, size.height), (320, 240));

    // The item and list views carry the flag.
    let (_, got) = hub.get(&hub.admin, &format!("/api/v1/content/{id}")).await;
    assert_eq!(got["thumbnail"], true);
    let (_, list) = hub.get(&hub.admin, "/api/v1/content").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|i| i["thumbnail"] == true)
    );
    assert_eq!(thumbnail_files(&hub), 2);
}

/// C5: audio has no thumbnail, and a picture GStreamer cannot decode (a
/// structurally whole PNG with garbage pixels) is stored without one: the
/// upload does not fail; the route answers a JSON 404.
#[tokio::test]
async fn c5_no_thumbnail_never_fails_the_upload() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audio = gst_file(
        dir.path(),
        "a.wav",
        "audiotestsrc samplesperbuffer=4410 num-buffers=10 ! audio/x-raw,rate=44100 ! wavenc",
    );
    for (name, bytes) in [("Jingle", audio), ("Broken", support::png(4096, 7))] {
        let (status, item) = hub.upload(&hub.admin, &hub.root, name, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {item}");
        assert_eq!(item["thumbnail"], false, "{name}: {item}");
        let (status, _, body) = thumbnail(&hub, &hub.admin, item["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "not_found");
    }
    assert_eq!(thumbnail_files(&hub), 0);
}

/// C5, T4: only callers who see the item get its thumbnail (another
/// tenant: 404, as for the item); identical bytes share one thumbnail,
/// which goes when the last item using them is deleted.
#[tokio::test]
async fn c5_t4_thumbnails_follow_the_item() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (_, anna) = hub.user("anna", "contributor", &[&a]).await;
    let (_, bert) = hub.user("bert", "contributor", &[&b]).await;
    let dir = tempfile::tempdir().unwrap();
    let image = gst_file(
        dir.path(),
        "i.png",
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! pngenc",
    );
    let (status, item) = hub.upload(&anna, &a, "Logo", image.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    let (status, _, bytes) = thumbnail(&hub, &anna, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        imagesize::blob_size(&bytes)
            .map(|s| (s.width, s.height))
            .unwrap(),
        (64, 48),
        "never enlarged"
    );
    let (status, _, _) = thumbnail(&hub, &bert, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's item");
    let (status, _, _) = thumbnail(&hub, &bert, "c-nonexistent").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = hub
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/content/{id}/thumbnail"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Same bytes in tenant B: its own item, the same thumbnail file.
    let (status, other) = hub.upload(&bert, &b, "Logo too", image).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(other["thumbnail"], true);
    assert_eq!(thumbnail_files(&hub), 1);
    let (status, _) = hub.delete(&anna, &format!("/api/v1/content/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(thumbnail_files(&hub), 1, "still used by tenant B's item");
    let other = other["id"].as_str().unwrap();
    let (status, _) = hub.delete(&bert, &format!("/api/v1/content/{other}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(thumbnail_files(&hub), 0, "gone with the blob");
}

/// C5: a GIF (decoded by gdkpixbuf, which GStreamer does not pick by
/// itself) gets a PNG thumbnail.
#[tokio::test]
async fn c5_gif_gets_a_thumbnail() {
    let hub = TestHub::start().await;
    let (status, item) = hub
        .upload(&hub.admin, &hub.root, "Spinner", support::gif("spinner"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["thumbnail"], true, "{item}");
    let (status, content_type, bytes) =
        thumbnail(&hub, &hub.admin, item["id"].as_str().unwrap()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "image/png")
    );
    let size = imagesize::blob_size(&bytes).unwrap();
    assert_eq!((size.width, size.height), (1, 1));
}
