//! Screenshots over real HTTP (D8, S7, S9, T4): a paired device uploads
//! PNGs with its credentials, operators who see it fetch the latest one;
//! bad or oversized bodies, missing credentials and other tenants are
//! refused and store nothing; the file is on disk with the right bytes
//! when the hub answers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::PathBuf;

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::Value;
use signet_common::digest::Sha256;
use signet_common::ids::DeviceId;
use signet_hub::app::Clock as _;
use signet_hub::screenshots::{MAX_SCREENSHOT_BYTES, SCREENSHOTS, Screenshot};
use support::{TestHub, assert_error};

/// A real 1×1 RGB PNG (red): signature, IHDR, IDAT, IEND.
const RED_1X1: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A real 2×1 RGB PNG (blue).
const BLUE_2X1: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x7b, 0x40, 0xe8,
    0xdd, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x60, 0xf8, 0x0f,
    0x44, 0x00, 0x05, 0x02, 0x01, 0xff, 0xc1, 0x2b, 0x96, 0x9f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A device's credentials.
struct Device {
    /// Its id.
    id: String,
    /// Its secret.
    secret: String,
}

/// Pairs a device into `node` as the admin through the real flow.
async fn pair(hub: &TestHub, node: &str, seed: u8) -> Device {
    let (id, secret) = hub.pair_device(node, seed).await;
    Device { id, secret }
}

/// POSTs `body` to the screenshot route with optional credentials.
async fn upload(
    hub: &TestHub,
    credentials: Option<(&str, &str)>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = hub
        .client
        .post(format!("{}/api/v1/device/screenshot", hub.base))
        .header("content-type", content_type)
        .body(body);
    if let Some((user, secret)) = credentials {
        request = request.basic_auth(user, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Uploads `png` as `device`.
async fn upload_as(hub: &TestHub, device: &Device, png: &[u8]) -> (StatusCode, Value) {
    upload(
        hub,
        Some((&device.id, &device.secret)),
        "image/png",
        png.to_vec(),
    )
    .await
}

/// GETs a device's screenshot as `token`: status, headers, bytes.
async fn fetch(
    hub: &TestHub,
    token: &str,
    device: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = hub
        .client
        .get(format!("{}/api/v1/devices/{device}/screenshot", hub.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn screenshot_dir(hub: &TestHub) -> PathBuf {
    hub.data.join("screenshots")
}

/// The files in the screenshot directory, by name.
fn files(hub: &TestHub) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(screenshot_dir(hub)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn record(hub: &TestHub, device: &str) -> Option<Screenshot> {
    hub.state.store.get(SCREENSHOTS, device).unwrap()
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

/// D8, S9: the device's upload is on disk and in the store when the hub
/// answers; operators who see the device (any role) get the same bytes with
/// when it arrived and its hash; a second upload replaces the first.
#[tokio::test]
async fn d8_upload_then_fetch_and_a_second_upload_replaces_the_first() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let device = pair(&hub, &site, 1).await;
    let (_, viewer) = hub.user("viewer", "viewer", &[&tenant]).await;

    // None yet: 404.
    assert_eq!(
        fetch(&hub, &hub.admin, &device.id).await.0,
        StatusCode::NOT_FOUND
    );

    let first_at = hub.clock.now();
    let (status, body) = upload_as(&hub, &device, &RED_1X1).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let red_sha = Sha256::of(&RED_1X1).to_string();
    assert_eq!(body["sha256"], red_sha.as_str());
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["bytes"], RED_1X1.len());
    // Durable before the answer: the file and the record are there now.
    let file = screenshot_dir(&hub).join(format!("{}.png", device.id));
    assert_eq!(std::fs::read(&file).unwrap(), RED_1X1);
    assert_eq!(files(&hub), vec![format!("{}.png", device.id)]);
    let stored = record(&hub, &device.id).unwrap();
    assert_eq!(stored.taken_at, first_at);
    assert_eq!(stored.sha256.to_string(), red_sha);

    for token in [&hub.admin, &viewer] {
        let (status, headers, bytes) = fetch(&hub, token, &device.id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(bytes, RED_1X1);
        assert_eq!(header(&headers, "content-type"), "image/png");
        assert_eq!(header(&headers, "etag"), format!("\"{red_sha}\""));
        let taken_at =
            chrono::DateTime::parse_from_rfc3339(header(&headers, "x-signet-taken-at")).unwrap();
        assert_eq!(
            taken_at.timestamp_millis(),
            first_at.timestamp_millis(),
            "X-Signet-Taken-At is the hub's clock at the upload"
        );
    }

    // A later upload replaces it: 200, one file, the new bytes everywhere.
    hub.clock.advance(TimeDelta::minutes(5));
    let (status, body) = upload_as(&hub, &device, &BLUE_2X1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["width"], 2);
    assert_eq!(std::fs::read(&file).unwrap(), BLUE_2X1);
    assert_eq!(files(&hub), vec![format!("{}.png", device.id)]);
    let (status, headers, bytes) = fetch(&hub, &viewer, &device.id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, BLUE_2X1);
    assert_eq!(
        header(&headers, "etag"),
        format!("\"{}\"", Sha256::of(&BLUE_2X1))
    );
    let taken_at =
        chrono::DateTime::parse_from_rfc3339(header(&headers, "x-signet-taken-at")).unwrap();
    assert_eq!(
        taken_at.timestamp_millis(),
        (first_at + TimeDelta::minutes(5)).timestamp_millis()
    );
    assert_eq!(record(&hub, &device.id).unwrap().width, 2);
}

/// D8, S7, §7: a body that is not a sane PNG, one over 8 MiB (declared or
/// streamed without a length), the wrong type, and missing or wrong
/// credentials are refused; nothing is stored and the device's last good
/// screenshot stays as it was.
#[tokio::test]
async fn d8_bad_uploads_are_refused_and_store_nothing() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let device = pair(&hub, &site, 2).await;
    let creds = Some((device.id.as_str(), device.secret.as_str()));

    let mut bad_crc = RED_1X1;
    bad_crc[30] ^= 0xff;
    let mut too_wide = RED_1X1.to_vec();
    too_wide[16..20].copy_from_slice(&8193_u32.to_be_bytes());
    for bad in [
        b"GIF89a not a png".to_vec(),
        Vec::new(),
        RED_1X1[..20].to_vec(),
        bad_crc.to_vec(),
        too_wide,
    ] {
        assert_error(
            &upload(&hub, creds, "image/png", bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_png",
        );
    }
    // Over the limit with a Content-Length: refused before it is read.
    let mut oversized = RED_1X1.to_vec();
    oversized.resize(MAX_SCREENSHOT_BYTES + 1, 0);
    assert_error(
        &upload(&hub, creds, "image/png", oversized.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
    );
    // Over the limit streamed without a length: cut off as it arrives.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = oversized
        .chunks(1024 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    assert_error(
        &upload(&hub, creds, "image/png", stream).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
    );
    assert_error(
        &upload(&hub, creds, "image/jpeg", RED_1X1.to_vec()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    for wrong in [
        None,
        Some((device.id.as_str(), "not the secret")),
        Some(("d-unknown", device.secret.as_str())),
    ] {
        assert_error(
            &upload(&hub, wrong, "image/png", RED_1X1.to_vec()).await,
            StatusCode::UNAUTHORIZED,
            "device_credentials_required",
        );
    }
    assert!(files(&hub).is_empty(), "{:?}", files(&hub));
    assert!(record(&hub, &device.id).is_none());
    assert!(record(&hub, "d-unknown").is_none());

    // With a good one stored, a bad one changes nothing.
    let (status, _) = upload_as(&hub, &device, &RED_1X1).await;
    assert_eq!(status, StatusCode::CREATED);
    let good = record(&hub, &device.id).unwrap();
    hub.clock.advance(TimeDelta::minutes(1));
    assert_error(
        &upload(&hub, creds, "image/png", bad_crc.to_vec()).await,
        StatusCode::BAD_REQUEST,
        "invalid_png",
    );
    assert_eq!(record(&hub, &device.id).unwrap(), good);
    assert_eq!(files(&hub), vec![format!("{}.png", device.id)]);
    let (_, _, bytes) = fetch(&hub, &hub.admin, &device.id).await;
    assert_eq!(bytes, RED_1X1);
}

/// T4, S7: another tenant's operator gets 404 for the screenshot as for the
/// device; an unpaired device can no longer upload; a screenshot is only
/// ever stored under the uploading device's own id.
#[tokio::test]
async fn t4_d8_screenshots_are_tenant_scoped_and_device_bound() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let a_site = hub.node(&hub.admin, &a, "A site").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let b_site = hub.node(&hub.admin, &b, "B site").await;
    let a_device = pair(&hub, &a_site, 3).await;
    let b_device = pair(&hub, &b_site, 4).await;
    let (_, a_manager) = hub.user("a-manager", "manager", &[&a]).await;

    assert_eq!(
        upload_as(&hub, &a_device, &RED_1X1).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        upload_as(&hub, &b_device, &BLUE_2X1).await.0,
        StatusCode::CREATED
    );
    assert_eq!(record(&hub, &a_device.id).unwrap().width, 1);
    assert_eq!(record(&hub, &b_device.id).unwrap().width, 2);

    let (status, _, bytes) = fetch(&hub, &a_manager, &a_device.id).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, &RED_1X1[..]));
    let (status, _, bytes) = fetch(&hub, &a_manager, &b_device.id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!bytes.windows(4).any(|w| w == b"IHDR"), "no PNG leaks");
    assert_eq!(
        fetch(&hub, &a_manager, "d-absent").await.0,
        StatusCode::NOT_FOUND
    );
    let response = hub
        .client
        .get(format!(
            "{}/api/v1/devices/{}/screenshot",
            hub.base, a_device.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Unpaired: its credentials no longer upload.
    let (status, body) = hub
        .delete(&hub.admin, &format!("/api/v1/devices/{}", b_device.id))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &upload_as(&hub, &b_device, &RED_1X1).await,
        StatusCode::UNAUTHORIZED,
        "device_credentials_required",
    );
    assert!(
        record(&hub, &b_device.id).is_none(),
        "an unpaired device's screenshot goes with it"
    );
    assert!(record(&hub, DeviceId::from("d-unknown").as_str()).is_none());
}
