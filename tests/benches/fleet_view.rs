//! Issue 20 acceptance figure: the operator API's fleet list and summary
//! with 10,000 devices (p99 ≤ 200 ms), the fleet view kept in memory
//! (`signet_hub::fleet::index`). A measurement, not a test: it prints the
//! figures, and fails only when an answer is wrong.
//!
//! A real hub (`signet_hub::serve`, in this process, over HTTP on a
//! loopback port) serves a data directory `init` made and the hub's fleet
//! fixture seeded with 10,000 devices at 100 sites (every kind of state the
//! view shows; no pairing, see `signet_hub::fleet::fixture`). After one
//! warm-up read (the index is built from the store on the first read after
//! start: its time is printed apart), rounds of: the baseline
//! (`GET /api/v1/session`, an authenticated read of one record), the
//! summary, one page of 1,000 devices (the console's page, the pages taken
//! in turn with `after`) and one of 100, with a device state reported
//! through the hub's ingest queue between rounds so every read has changes
//! to take in. Prints p50/p99/max of each and its ratio to the baseline's,
//! measured in the same run.
//!
//! `cargo bench -p signet-tests --bench fleet_view` (release), or with
//! `--profile dev`; `SIGNET_BENCH_DEVICES` and `SIGNET_BENCH_ROUNDS` change
//! the size. `SIGNET_BENCH_POSTGRES=1` runs the hub on a PostgreSQL the
//! bench starts (X4, X5: the index fed by the store's change feed there,
//! issue 21), the data directory migrated into it as an operator does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

#[path = "../../hub/tests/support/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::ids::DeviceId;
use signet_common::sync::DeviceState;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Small counts: the float round trip is exact enough for an index.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

struct Series {
    name: &'static str,
    times: Vec<Duration>,
}

impl Series {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            times: Vec::new(),
        }
    }

    fn stats(&self) -> (Duration, Duration, Duration) {
        let mut sorted = self.times.clone();
        sorted.sort();
        (
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            *sorted.last().unwrap(),
        )
    }
}

fn report(device: &DeviceId, at: chrono::DateTime<chrono::Utc>) -> DeviceState {
    DeviceState {
        cache_bytes: 1,
        ..DeviceState::new(device.clone(), at, "0.1.0", "Debian 12")
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devices = env_usize("SIGNET_BENCH_DEVICES", 10_000);
    let rounds = env_usize("SIGNET_BENCH_ROUNDS", 200);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = signet_hub::init::init(&data, chrono::Utc::now())
        .await
        .unwrap();
    let pg = std::env::var_os("SIGNET_BENCH_POSTGRES").map(|_| postgres::PgServer::start());
    let store = match &pg {
        Some(pg) => {
            let url = pg.database();
            signet_hub::store::migrate::sled_to_postgres(&data, &url).unwrap();
            url
        }
        None => signet_hub::config::Config::default().store,
    };
    let config = signet_hub::config::Config {
        data: data.clone(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        store,
        ..signet_hub::config::Config::default()
    };
    let hub = signet_hub::serve::open(config, Arc::new(signet_hub::app::SystemClock)).unwrap();
    let started = Instant::now();
    let seeded = signet_hub::fleet::fixture::seed(&hub.store, devices, chrono::Utc::now())
        .await
        .unwrap();
    let seeding = started.elapsed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(signet_hub::serve::run(listener, hub.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"name": "admin", "password": made.admin_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let body = response.bytes().await.unwrap();
            (started.elapsed(), body)
        }
    };

    let (first, body) = get("/api/v1/fleet/summary".into()).await;
    let counts: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(counts["attached"], devices, "{counts}");

    let ids: Vec<DeviceId> = (0..devices)
        .map(|i| DeviceId::from(format!("d-fixture-{i:06}").as_str()))
        .collect();
    let pages = devices.div_ceil(1000);
    let mut series = [
        Series::new("GET /api/v1/session (baseline)"),
        Series::new("GET /api/v1/fleet/summary"),
        Series::new("GET /api/v1/fleet?limit=1000"),
        Series::new("GET /api/v1/fleet?limit=100"),
    ];
    for round in 0..rounds {
        let device = &ids[(round * 7919) % ids.len()];
        signet_hub::fleet::record_state(&hub, device, report(device, hub.now()))
            .await
            .unwrap();
        let (took, _) = get("/api/v1/session".into()).await;
        series[0].times.push(took);
        let (took, body) = get("/api/v1/fleet/summary".into()).await;
        series[1].times.push(took);
        let counts: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(counts["attached"], devices, "{counts}");
        let page = round % pages;
        let path = if page == 0 {
            "/api/v1/fleet?limit=1000".to_owned()
        } else {
            format!("/api/v1/fleet?limit=1000&after={}", ids[page * 1000 - 1])
        };
        let (took, body) = get(path).await;
        series[2].times.push(took);
        let listed: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!(listed.len(), 1000.min(devices - page * 1000));
        let (took, body) = get(format!("/api/v1/fleet?limit=100&after={device}")).await;
        series[3].times.push(took);
        let listed: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert!(!listed.is_empty() || device == ids.last().unwrap());
    }

    println!(
        "fleet view on {}, {devices} devices ({} sites), {rounds} rounds; seeding {seeding:.2?}; \
         first read after start (builds the index) {first:.2?}",
        if pg.is_some() { "PostgreSQL" } else { "sled" },
        seeded.sites
    );
    let (baseline, _, _) = series[0].stats();
    println!(
        "  {:<34} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "request", "p50", "p99", "max", "p50/base", "p99/base"
    );
    let (_, base99, _) = series[0].stats();
    for s in &series {
        let (p50, p99, max) = s.stats();
        println!(
            "  {:<34} {:>10.2?} {:>10.2?} {:>10.2?} {:>8.1}x {:>8.1}x",
            s.name,
            p50,
            p99,
            max,
            p50.as_secs_f64() / baseline.as_secs_f64(),
            p99.as_secs_f64() / base99.as_secs_f64()
        );
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
