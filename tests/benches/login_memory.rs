//! Issue 15 acceptance figure (S12): the real `signet-hub serve` process's
//! resident memory after 4,000 failed logins sent 50 at a time, and how
//! fast `/healthz` answers meanwhile. A measurement, not a test: it prints
//! the figures (acceptance: RSS ≤ 256 MB). Run with
//! `cargo build -p signet-hub --bins && cargo bench --profile dev -p
//! signet-tests --bench login_memory` (the hub binary of the bench's own
//! profile is the one started; argon2 is optimized in dev builds too), or
//! `cargo build --release -p signet-hub --bins && cargo bench -p
//! signet-tests --bench login_memory`.
//!
//! Every login names an unknown user (the hub verifies a decoy hash, the
//! same work as for a known one), from 50 loopback sources (127.0.0.10–59)
//! and with the per-source rate limit raised out of the way, so every
//! attempt reaches the password hash: the worst case for memory.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed measurement

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use signet_tests::Hub;

const LOGINS: usize = 4_000;
const CONCURRENT: usize = 50;

/// A field of `/proc/PID/status` in MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(
        dir.path(),
        &[
            ("SIGNET_HUB_RATE_LIMIT_PER_MINUTE", "100000"),
            ("SIGNET_HUB_RATE_LIMIT_BURST", "100000"),
        ],
    )
    .await;
    let pid = hub.process.pid();
    let before = status_mb(pid, "VmRSS:");
    let url = format!("{}/api/v1/session", hub.base);
    let health_url = format!("{}/healthz", hub.base);

    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let done = done.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut peak: f64 = 0.0;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client.get(&health_url).send().await.unwrap();
                assert!(response.status().is_success());
                latencies.push(started.elapsed());
                peak = peak.max(status_mb(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (latencies, peak)
        })
    };

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENT)
        .map(|w| {
            let (url, next) = (url.clone(), next.clone());
            tokio::spawn(async move {
                let source = IpAddr::from([127, 0, 0, 10 + u8::try_from(w).unwrap()]);
                let client = reqwest::Client::builder()
                    .local_address(source)
                    .build()
                    .unwrap();
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= LOGINS {
                        return statuses;
                    }
                    let response = client
                        .post(&url)
                        .json(&serde_json::json!({"name": format!("nobody-{i}"), "password": "not the password"}))
                        .send()
                        .await
                        .unwrap();
                    *statuses.entry(response.status().as_u16()).or_default() += 1;
                }
            })
        })
        .collect();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for worker in workers {
        for (status, n) in worker.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (mut latencies, peak) = probe.await.unwrap();
    latencies.sort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = status_mb(pid, "VmRSS:");
    let high_water = status_mb(pid, "VmHWM:");

    println!("login_memory: {LOGINS} failed logins, {CONCURRENT} concurrent, in {elapsed:.1?}");
    println!("  answers by status: {statuses:?}");
    println!(
        "  hub RSS before: {before:.1} MB, peak sampled: {peak:.1} MB, high-water (VmHWM): {high_water:.1} MB, after: {after:.1} MB"
    );
    println!(
        "  /healthz during the run ({} probes): p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "  acceptance (RSS ≤ 256 MB after): {}",
        if after <= 256.0 && high_water <= 256.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
