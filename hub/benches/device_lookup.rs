//! Where a device is attached, looked up per request (issue 20, X3, L4,
//! S7): on a hub of N devices with a record plus N attached without one
//! (`node_devices` entries only, as tests and fixtures write them), in the
//! same run, each case for devices without a record — the scan of every
//! attachment, what every device cost before — against devices with one —
//! their record and one keyed read:
//! - content-fetch checks (`access_groups::device_may_fetch`, what each
//!   content download asks), `CHECKS` per round;
//! - single device-member adds (`access_groups::service::add_member`, the
//!   service a POST of one member calls; no publication), `ADDS` per round,
//!   each round into a fresh group.
//!
//! In-process hub (sled, or PostgreSQL with `SIGNET_TEST_STORE=postgres`);
//! medians per operation over `ROUNDS` interleaved rounds, and the ratio
//! scan ÷ keyed. `cargo bench --profile dev -p signet-hub --bench
//! device_lookup` (`SIGNET_BENCH_DEVICES`, a comma list, default
//! `1000,10000`).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use signet_common::digest::Sha256;
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::permissions::Role;
use signet_hub::access_groups::MemberRef;
use signet_hub::access_groups::types::AddMember;
use signet_hub::access_groups::{device_may_fetch, service};
use signet_hub::devices::{DEVICES, Device, node_device_key};
use signet_hub::identity::{Actor, USERS, User};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::TestHub;

const ROUNDS: usize = 5;
const CHECKS: usize = 200;
const ADDS: usize = 20;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// A device record at `node`, as pairing writes it.
fn record(id: &str, node: &str) -> Device {
    Device {
        id: DeviceId::from(id),
        name: format!("screen {id}"),
        node: NodeId::from(node),
        public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        os: "bench os".into(),
        agent_version: "0.1.0".into(),
        paired_at: Utc::now(),
        paired_by: UserId::from("bench"),
        secret_hash: String::new(),
        last_command_version: 0,
        variables: std::collections::BTreeMap::new(),
    }
}

/// Per-operation medians, devices without a record then with one:
/// (fetch check, fetch check, member add, member add).
async fn measure(n: usize) -> [Duration; 4] {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let mut batch = WriteBatch::new();
    for i in 0..n {
        let device = record(&format!("d-rec-{i:06}"), &site);
        batch.put(DEVICES, device.id.as_str(), &device).unwrap();
        let key = node_device_key(&device.node, &device.id);
        batch
            .put(NODE_DEVICES, &key, &json!({"device": device.id}))
            .unwrap();
        let bare = format!("{site}/d-bare-{i:06}");
        batch.put(NODE_DEVICES, &bare, &json!({})).unwrap();
    }
    hub.state.store.apply(batch).await.unwrap();
    let (_, item) = hub
        .upload(&hub.admin, &site, "Poster", support::png(2_000, 9))
        .await;
    let sha: Sha256 = item["sha256"].as_str().unwrap().parse().unwrap();
    let admin = (hub.state.store.scan::<User>(USERS, "").unwrap().into_iter())
        .find(|u| u.role == Role::Admin)
        .unwrap();
    let actor = Actor {
        user: admin,
        from: "bench".into(),
    };
    let now = hub.state.clock.now();
    let store = &hub.state.store;
    let pick =
        |kind: &str, i: usize| DeviceId::from(format!("d-{kind}-{:06}", (i * 7919) % n).as_str());
    let (mut fetch, mut adds) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..ROUNDS {
        for (arm, kind) in ["bare", "rec"].into_iter().enumerate() {
            let started = Instant::now();
            for i in 0..CHECKS {
                assert!(device_may_fetch(store, &pick(kind, i), &sha, now).unwrap());
            }
            fetch[arm].push(started.elapsed() / CHECKS as u32);
            let group = hub.news_group(&site, &format!("{kind} {round}")).await;
            let started = Instant::now();
            for i in 0..ADDS {
                let request = AddMember {
                    member: MemberRef::Device {
                        device_id: pick(kind, round * ADDS + i),
                    },
                    joined_at: None,
                    end_date: None,
                    display_name: None,
                };
                service::add_member(&hub.state, &actor, &group, request)
                    .await
                    .unwrap();
            }
            adds[arm].push(started.elapsed() / ADDS as u32);
        }
    }
    let [fetch_bare, fetch_rec] = fetch.map(median);
    let [add_bare, add_rec] = adds.map(median);
    [fetch_bare, fetch_rec, add_bare, add_rec]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIGNET_BENCH_DEVICES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| devices (with a record + without) | fetch check scan / keyed (µs) | scan ÷ keyed | member add scan / keyed (ms) | scan ÷ keyed |"
    );
    println!("|---|---|---|---|---|");
    for n in sizes {
        let [fetch_bare, fetch_rec, add_bare, add_rec] = runtime.block_on(measure(n));
        println!(
            "| {n} + {n} | {:.0} / {:.0} | {:.1} | {:.2} / {:.2} | {:.1} |",
            fetch_bare.as_secs_f64() * 1e6,
            fetch_rec.as_secs_f64() * 1e6,
            fetch_bare.as_secs_f64() / fetch_rec.as_secs_f64(),
            add_bare.as_secs_f64() * 1e3,
            add_rec.as_secs_f64() * 1e3,
            add_bare.as_secs_f64() / add_rec.as_secs_f64(),
        );
    }
}
