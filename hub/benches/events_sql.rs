//! Proof of play in SQL (U3, X4, issue 21), two measurements on a real
//! PostgreSQL started here (fsync and synchronous_commit on). Not part of
//! `make test`: `cargo bench -p signet-hub --bench events_sql`.
//!
//! 1. The usage report over 30 days of 10,000 screens, with the events
//!    generated in PostgreSQL itself (`generate_series`) into the day
//!    partitions the leader makes. A play every 5 minutes per screen would
//!    be 86 M rows (about 40 GB with the record and six indexes) — beyond
//!    this 2-core machine's time and disk budget — so the bench loads
//!    `SIGNET_BENCH_PLAYS` plays per screen per day (default 4, then 12:
//!    1.2 M and 3.6 M rows) and prints how each report's time grows from
//!    the first size to the second. Reports: the per-item summary of one
//!    access group (L8) and of every event a root user sees (a full
//!    GROUP BY over the range), and the first JSON page of one device's
//!    usage (U3), each the best of three runs.
//! 2. API write and fleet-ingest throughput on PostgreSQL against sled in
//!    the same run (the ratio PostgreSQL / sled): hubs opened as
//!    `signet-hub serve` opens them, nodes created over HTTP by 8 clients at
//!    once, and proof-of-play batches (50 events) ingested by 32 devices at
//!    once through the fleet ingest queue.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_precision_loss
)]

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::{EventBatch, Outcome, PlayEvent};
use signet_hub::app::{Hub, SystemClock};
use signet_hub::config::Config;
use signet_hub::store::{EventQuery, PgStorage, Storage};

const SCREENS: u32 = 10_000;
const DAYS: u32 = 30;
const NODES: u32 = 1_000;

/// Loads plays `first..last` of each screen's day into `db`.
fn generate(server: &postgres::PgServer, db: &str, start: DateTime<Utc>, plays: (u32, u32)) {
    let (first, last) = plays;
    let step = 86_400 / last.max(1);
    let sql = format!(
        "INSERT INTO play_events (start, key, id, device, node, item, access_group, user_id, \
           played, duration_ms, value) \
         SELECT g.start, convert_to(to_char(g.start AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z/\"') || g.id, 'UTF8'), \
           g.id, g.device, g.node, g.item, g.grp, NULL, g.played, 10000, \
           convert_to(json_build_object('event', json_build_object('id', g.id, \
             'device_id', g.device, 'item', g.item, 'access_group', g.grp, \
             'license_version', 1, 'start', to_char(g.start AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'duration_ms', 10000, \
             'outcome', CASE WHEN g.played THEN 'played' ELSE 'skipped' END, \
             'os', 'Debian 12', 'agent_version', '0.1.0'), \
             'node', g.node, 'received_at', '2026-01-01T00:00:00Z')::text, 'UTF8') \
         FROM (SELECT '{start}'::timestamptz + make_interval(days => d, secs => k * {step} + s % 3600) \
                 AS start, \
               lpad(to_hex(s), 8, '0') || lpad(to_hex(d * 64 + k), 8, '0') AS id, \
               'd-' || s AS device, 'n-' || (s % {NODES}) AS node, \
               'c-' || ((s * 7 + k) % 200) AS item, 'g-' || (s % 100) AS grp, \
               (s + k) % 10 <> 0 AS played \
             FROM generate_series(0, {screens}) s, generate_series(0, {days}) d, \
               generate_series({first}, {last_k}) k) g",
        start = start.to_rfc3339(),
        screens = SCREENS - 1,
        days = DAYS - 1,
        last_k = last - 1,
    );
    server.sql(db, &sql);
    server.sql(db, "ANALYZE play_events");
}

/// The best of three runs of `f`, and its answer's size.
fn best_of_three(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..3 {
        let started = Instant::now();
        size = f();
        best = best.min(started.elapsed());
    }
    (best, size)
}

/// The three reports' times at the current volume.
fn reports(storage: &PgStorage, start: DateTime<Utc>) -> [(Duration, usize); 3] {
    let all = EventQuery {
        from: start,
        to: start + TimeDelta::days(i64::from(DAYS)),
        nodes: (0..NODES).map(|n| format!("n-{n}")).collect(),
        unattached: true,
        device: None,
        item: None,
        groups: None,
        hidden_items: Vec::new(),
        user: None,
    };
    let group = EventQuery {
        groups: Some(vec!["g-42".into()]),
        ..all.clone()
    };
    let device = EventQuery {
        device: Some("d-4242".into()),
        ..all.clone()
    };
    [
        best_of_three(|| storage.event_tally(&group).unwrap().unwrap().len()),
        best_of_three(|| storage.event_tally(&all).unwrap().unwrap().len()),
        best_of_three(|| {
            storage
                .event_page(&device, None, 1000)
                .unwrap()
                .unwrap()
                .len()
        }),
    ]
}

fn usage_report(server: &postgres::PgServer) {
    let url = server.database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let storage = PgStorage::connect(&url).unwrap();
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    storage.prepare_events(start, DAYS + 1).unwrap();
    let sizes: Vec<u32> = std::env::var("SIGNET_BENCH_PLAYS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![4, 12]);
    let mut loaded = 0;
    let mut first: Option<(u64, [(Duration, usize); 3])> = None;
    for plays in sizes {
        let started = Instant::now();
        // The denser day keeps the first size's plays: regenerate all.
        server.sql(&db, "TRUNCATE play_events, play_daily");
        generate(server, &db, start, (0, plays));
        loaded = plays;
        let rows: u64 = server
            .sql(&db, "SELECT count(*) FROM play_events")
            .parse()
            .unwrap();
        let bytes = server.sql(&db, "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'play_events'::regclass");
        let load = started.elapsed();
        let times = reports(&storage, start);
        println!(
            "usage report, 30 days x {SCREENS} screens x {plays} plays/day = {rows} rows ({bytes}, \
             loaded in {:.0} s): group summary {:.3} s ({} items), all events by item {:.3} s \
             ({} items), one device's first page {:.3} s ({} rows)",
            load.as_secs_f64(),
            times[0].0.as_secs_f64(),
            times[0].1,
            times[1].0.as_secs_f64(),
            times[1].1,
            times[2].0.as_secs_f64(),
            times[2].1,
        );
        match &first {
            None => first = Some((rows, times)),
            Some((first_rows, first_times)) => println!(
                "growth {first_rows} -> {rows} rows (x{:.1}): group summary x{:.2}, all events \
                 x{:.2}, one device's page x{:.2}",
                rows as f64 / *first_rows as f64,
                times[0].0.as_secs_f64() / first_times[0].0.as_secs_f64(),
                times[1].0.as_secs_f64() / first_times[1].0.as_secs_f64(),
                times[2].0.as_secs_f64() / first_times[2].0.as_secs_f64(),
            ),
        }
    }
    let _ = loaded;
}

/// A hub on a fresh data directory, on PostgreSQL at `url` or sled.
async fn hub(url: Option<&str>) -> (Hub, String, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = signet_hub::init::init(&data, Utc::now()).await.unwrap();
    let mut config = Config {
        data: data.clone(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        rate_limit_per_minute: 1_000_000,
        rate_limit_burst: 1_000_000,
        ..Config::default()
    };
    if let Some(url) = url {
        let (from, to) = (data.clone(), url.to_owned());
        tokio::task::spawn_blocking(move || {
            signet_hub::store::migrate::sled_to_postgres(&from, &to)
        })
        .await
        .unwrap()
        .unwrap();
        config.store = url.to_owned();
    }
    let state = signet_hub::serve::open(config, Arc::new(SystemClock)).unwrap();
    (state, made.admin_password, dir, made.root_node.to_string())
}

/// Nodes created per second over HTTP by 8 clients at once (100 each).
async fn api_writes(state: &Hub, password: &str, root: &str) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(signet_hub::serve::run(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"name": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (client, base, token, root) =
            (client.clone(), base.clone(), token.clone(), root.to_owned());
        tasks.push(tokio::spawn(async move {
            for n in 0..100 {
                let answer = client
                    .post(format!("{base}/api/v1/nodes"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"parent": root, "name": format!("site {task}-{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = 800.0 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    rate
}

/// Events stored per second: 32 devices at once, 20 batches of 50 each.
async fn fleet_ingest(state: &Hub) -> f64 {
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    state.store.prepare_events(start, 3).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for device in 0..32_u32 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let id = DeviceId::from(format!("d-{device}").as_str());
            for batch in 0..20_u32 {
                let events = (0..50_u32)
                    .map(|n| PlayEvent {
                        id: format!("{device:08x}{batch:08x}{n:016x}"),
                        device_id: id.clone(),
                        item: ItemId::from(format!("c-{}", n % 20).as_str()),
                        access_group: None,
                        license_version: None,
                        start: start + TimeDelta::seconds(i64::from(batch * 50 + n) * 60),
                        duration_ms: 10_000,
                        outcome: Outcome::Played,
                        skip_reason: None,
                        country: None,
                        region: None,
                        os: "Debian 12".into(),
                        agent_version: "0.1.0".into(),
                    })
                    .collect();
                let stored = signet_hub::fleet::ingest_events(&state, &id, EventBatch { events })
                    .await
                    .unwrap();
                assert_eq!(stored.stored, 50);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    f64::from(32 * 20 * 50) / started.elapsed().as_secs_f64()
}

fn main() {
    let server = postgres::PgServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = server.database();
        let (sled_hub, sled_password, _sled_dir, sled_root) = hub(None).await;
        let (pg_hub, pg_password, _pg_dir, pg_root) = hub(Some(&url)).await;
        let sled_api = api_writes(&sled_hub, &sled_password, &sled_root).await;
        let pg_api = api_writes(&pg_hub, &pg_password, &pg_root).await;
        let sled_ingest = fleet_ingest(&sled_hub).await;
        let pg_ingest = fleet_ingest(&pg_hub).await;
        println!(
            "API writes (POST /api/v1/nodes, 8 clients x 100): sled {sled_api:.0}/s, postgres \
             {pg_api:.0}/s, ratio postgres/sled {:.2}",
            pg_api / sled_api
        );
        println!(
            "fleet ingest (32 devices x 20 batches x 50 events): sled {sled_ingest:.0} events/s, \
             postgres {pg_ingest:.0} events/s, ratio postgres/sled {:.2}",
            pg_ingest / sled_ingest
        );
    });
    drop(runtime);
    usage_report(&server);
}
