//! A change of every device's assignment (issue 20, X2, U5, DESIGN §4): a
//! node's time zone changes and the node is published, so each of its N
//! attached devices gets a new assignment — built, signed, stored with the
//! run's two progress records per device in one transaction, then handed
//! to the publisher. Timed against the same publish when nothing changed
//! (every assignment built and compared, none signed), in the same run, over
//! HTTP on an in-process hub (sled); printed as medians of the wall time
//! and of the processor time the process used meanwhile, and the ratio.
//! `cargo bench --profile dev -p signet-hub --bench publish_node`
//! (`SIGNET_BENCH_DEVICES`, a comma list, default `100,1000`;
//! `SIGNET_BENCH_ROUNDS`, default 5).
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

/// The processor time this process has used (user + system, from
/// `/proc/self/stat`, in clock ticks of 10 ms): the hub is in process, so
/// the time one publish adds is what it cost, whatever else the machine
/// runs meanwhile.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5); the name ends field 2.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// One kind of publish: wall times and processor times.
struct Timed {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Timed {
    fn new() -> Self {
        Self {
            wall: Vec::new(),
            cpu: Vec::new(),
        }
    }

    fn push(&mut self, started: Instant, cpu: Duration) {
        self.wall.push(started.elapsed());
        self.cpu.push(cpu_time().saturating_sub(cpu));
    }

    fn medians(self) -> (Duration, Duration) {
        (median(self.wall), median(self.cpu))
    }
}

/// The medians (wall, processor) of a publish of a node of `n` devices
/// after its time zone changed (every assignment re-signed) and of the
/// same publish with no change, interleaved over `rounds`.
async fn measure(n: usize, rounds: usize) -> ((Duration, Duration), (Duration, Duration)) {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (_, body) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Lobby", "categories": ["news"],
                "license": {"allow_offline": true, "offline_grace_secs": 3600, "allow_export": false}}),
        )
        .await;
    let group = body["id"].as_str().unwrap().to_owned();
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
    let scope = json!({"scope": {"kind": "node", "id": tenant}});
    let (status, answer) = hub.post(&hub.admin, "/api/v1/publish", scope.clone()).await;
    assert!(status.is_success(), "{answer}");
    let zones = ["Europe/Berlin", "America/Chicago"];
    let (mut changed, mut unchanged) = (Timed::new(), Timed::new());
    for round in 0..rounds {
        let path = format!("/api/v1/nodes/{tenant}");
        let zone = zones[round % zones.len()];
        let (status, answer) = hub
            .patch(&hub.admin, &path, json!({"time_zone": zone}))
            .await;
        assert!(status.is_success(), "{answer}");
        let (started, cpu) = (Instant::now(), cpu_time());
        let (status, answer) = hub.post(&hub.admin, "/api/v1/publish", scope.clone()).await;
        changed.push(started, cpu);
        assert!(status.is_success(), "round {round}: {answer}");
        let signed = answer["run"]["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "device_assignment" && d["signed"] == true)
            .count();
        assert_eq!(signed, n, "every assignment is re-signed");
        let (started, cpu) = (Instant::now(), cpu_time());
        let (status, answer) = hub.post(&hub.admin, "/api/v1/publish", scope.clone()).await;
        unchanged.push(started, cpu);
        assert!(status.is_success(), "round {round}: {answer}");
    }
    (changed.medians(), unchanged.medians())
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIGNET_BENCH_DEVICES")
        .unwrap_or_else(|_| "100,1000".to_owned())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let rounds: usize = std::env::var("SIGNET_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| devices | every assignment re-signed p50 (ms) | its processor time p50 (ms) | nothing changed p50 (ms) | its processor time p50 (ms) | re-signed ÷ unchanged |"
    );
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let ((changed, changed_cpu), (unchanged, unchanged_cpu)) =
            runtime.block_on(measure(n, rounds));
        println!(
            "| {n} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2} |",
            changed.as_secs_f64() * 1e3,
            changed_cpu.as_secs_f64() * 1e3,
            unchanged.as_secs_f64() * 1e3,
            unchanged_cpu.as_secs_f64() * 1e3,
            changed.as_secs_f64() / unchanged.as_secs_f64()
        );
    }
}
