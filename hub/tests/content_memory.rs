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
    let mut first = b"\x89PNG\r\n\x1a\n".to_vec();
    first.resize(CHUNK, 0x5a);
    let first = Bytes::from(first);
    let rest = Bytes::from(vec![0x5au8; CHUNK]);
    let mut hasher = Sha256::hasher();
    hasher.update(&first);
    for _ in 1..SIZE / CHUNK {
        hasher.update(&rest);
    }
    let expected = hasher.finish();

    // Reset the peak (VmHWM) where the kernel allows it; otherwise measure
    // against the peak so far, which only makes the check stricter.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmHWM:");
    let body =
        futures_util::stream::iter((0..SIZE / CHUNK).map(move |i| {
            Ok::<_, std::io::Error>(if i == 0 { first.clone() } else { rest.clone() })
        }));
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
