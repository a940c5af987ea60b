//! An access group's items change against a full publish of the same group
//! (X1, X2, DESIGN §4), N device members, in the same run: the items change
//! signs the group's one manifest and reads no assignment; the full publish
//! (what an items change did before) builds and checks every member's
//! assignment. Both over HTTP on an in-process hub (sled), each answer timed
//! from request to answer; printed as medians and the ratio full / items.
//! `cargo bench --profile dev -p signet-hub --bench group_items`
//! (`SIGNET_BENCH_MEMBERS`, a comma list, default `100,500,1000`).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde_json::json;
use signet_common::ids::DeviceId;
use signet_hub::access_groups::MemberRef;
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::TestHub;

const ROUNDS: usize = 7;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The medians of an items change and of a full publish of a group of `n`
/// device members, interleaved.
async fn measure(n: usize) -> (Duration, Duration) {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let group = hub.news_group(&tenant, "Lobby").await;
    let mut batch = WriteBatch::new();
    for i in 0..n {
        let device = format!("d-{i}");
        batch
            .put(NODE_DEVICES, &format!("{tenant}/{device}"), &json!({}))
            .unwrap();
        let member = MemberRef::Device {
            device_id: DeviceId::from(device.as_str()),
        };
        support::put_member(&mut batch, &hub, &group, member, TimeDelta::hours(1));
    }
    hub.state.store.apply(batch).await.unwrap();
    let mut ids = Vec::new();
    for seed in 1..=2 {
        let (_, item) = hub
            .upload(&hub.admin, &tenant, "Poster", support::png(2_000, seed))
            .await;
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    let scope = json!({"scope": {"kind": "access_group", "id": group}});
    // Every member's assignment signed once, as pairing and joining do.
    let (status, answer) = hub.post(&hub.admin, "/api/v1/publish", scope.clone()).await;
    assert!(status.is_success(), "{answer}");
    let (mut items, mut full) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        ids.reverse();
        let list: Vec<&str> = ids.iter().map(String::as_str).collect();
        let started = Instant::now();
        hub.set_news_items(&group, &list).await;
        items.push(started.elapsed());
        let started = Instant::now();
        let (status, answer) = hub.post(&hub.admin, "/api/v1/publish", scope.clone()).await;
        full.push(started.elapsed());
        assert!(status.is_success(), "round {round}: {answer}");
    }
    (median(items), median(full))
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIGNET_BENCH_MEMBERS")
        .unwrap_or_else(|_| "100,500,1000".to_owned())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("| members | items change p50 (ms) | full publish p50 (ms) | full ÷ items |");
    println!("|---|---|---|---|");
    for n in sizes {
        let (items, full) = runtime.block_on(measure(n));
        println!(
            "| {n} | {:.1} | {:.1} | {:.2} |",
            items.as_secs_f64() * 1e3,
            full.as_secs_f64() * 1e3,
            full.as_secs_f64() / items.as_secs_f64()
        );
    }
}
