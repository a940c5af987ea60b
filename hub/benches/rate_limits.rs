//! The cost of per-source rate limits shared by replicas (S12, X5; issue
//! 21): `RateLimits::check` on a real PostgreSQL started here (one upsert
//! on table `rate_limits` per request) against, in the same run, one read
//! of a record on that PostgreSQL (a request's cheapest round trip: the
//! baseline) and the in-memory limiter sled keeps (governor). Sources are
//! spread so no check is refused. Prints each per-check time and its
//! ratio to the baseline. `cargo bench -p signet-hub --bench rate_limits`.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signet_hub::app::rate_limits::{RateLimits, RouteClass};
use signet_hub::config::Config;
use signet_hub::store::{PgStorage, SledStorage, Storage as _, Store, WriteBatch};

const CHECKS: u32 = 2_000;

fn source(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + n))
}

fn per_check(mut check: impl FnMut(u32)) -> Duration {
    let started = Instant::now();
    for n in 0..CHECKS {
        check(n);
    }
    started.elapsed() / CHECKS
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server = postgres::PgServer::start();
    let engine = Arc::new(PgStorage::connect(&server.database()).unwrap());
    let mut batch = WriteBatch::new();
    batch.put("bench", "record", &1_u32).unwrap();
    engine.apply(&batch).unwrap();
    let pg = Store::new(engine);
    let sled = Store::new(Arc::new(SledStorage::open(dir.path()).unwrap()));
    let config = Config::default();
    let shared = RateLimits::new(&config, &pg);
    let local = RateLimits::new(&config, &sled);
    let mut rows = Vec::new();
    for round in 0..3 {
        let base = per_check(|_| {
            pg.get::<u32>("bench", "record").unwrap().unwrap();
        });
        let offset = round * CHECKS;
        let on_pg = per_check(|n| shared.check(RouteClass::Open, source(offset + n)).unwrap());
        let in_memory = per_check(|n| local.check(RouteClass::Open, source(offset + n)).unwrap());
        rows.push((base, on_pg, in_memory));
    }
    println!("rate limit check, {CHECKS} sources per round");
    println!(
        "  {:>5} {:>16} {:>16} {:>9} {:>16} {:>9}",
        "round", "pg get (base)", "shared (pg)", "/base", "in memory", "/base"
    );
    for (round, (base, on_pg, in_memory)) in rows.iter().enumerate() {
        println!(
            "  {round:>5} {:>16.2?} {:>16.2?} {:>8.2}x {:>16.2?} {:>8.3}x",
            base,
            on_pg,
            on_pg.as_secs_f64() / base.as_secs_f64(),
            in_memory,
            in_memory.as_secs_f64() / base.as_secs_f64()
        );
    }
}
