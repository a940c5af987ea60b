//! A 200 MB upload holds memory flat (DESIGN §7, D2): the body streams to
//! disk and is never held whole. Its own test binary, so no other test's
//! allocations move this process's peak RSS.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use axum::body::Bytes;
use reqwest::StatusCode;
use signet_common::digest::Sha256;
use support::TestHub;

const SIZE: usize = 200 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_200_mb_holds_memory_flat() {
    let hub = TestHub::start().await;
    // One chunk shared by every piece of the body: the body itself costs
    // no memory on the sending side.
    // A whole PNG (S13: uploads are checked): signature, a 1×1 IHDR, one
    // IDAT chunk of the pattern, and IEND at the very end.
    let mut first =
        b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\0\0\0\0".to_vec();
    first.extend(u32::try_from(SIZE - 57).unwrap().to_be_bytes());
    first.extend(b"IDAT");
    first.resize(CHUNK, 0x5a);
    let first = Bytes::from(first);
    let rest = Bytes::from(vec![0x5au8; CHUNK]);
    let mut last = vec![0x5au8; CHUNK - 12];
    last.extend(b"\0\0\0\0IEND\xae\x42\x60\x82");
    let last = Bytes::from(last);
    let pieces = SIZE / CHUNK;
    let piece = move |i: usize| match i {
        0 => first.clone(),
        i if i == pieces - 1 => last.clone(),
        _ => rest.clone(),
    };
    let mut hasher = Sha256::hasher();
    for i in 0..pieces {
        hasher.update(&piece(i));
    }
    let expected = hasher.finish();

    // Reset the peak (VmHWM) where the kernel allows it; otherwise measure
    // against the peak so far, which only makes the check stricter.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmHWM:");
    let body =
        futures_util::stream::iter((0..pieces).map(move |i| Ok::<_, std::io::Error>(piece(i))));
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", hub.root.as_str()), ("name", "Large")])
        .bearer_auth(&hub.admin)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let item: serde_json::Value = response.json().await.unwrap();
    let after = status_kib("VmHWM:");
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["size"], SIZE);
    assert_eq!(item["sha256"], expected.to_string());
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "peak RSS growth for a 200 MiB upload: {growth_mib} MiB ({before} kB -> {after} kB, peak reset: {reset})"
    );
    assert!(growth_mib < 50, "peak RSS grew by {growth_mib} MiB");
}
