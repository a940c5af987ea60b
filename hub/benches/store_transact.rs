//! Transaction throughput of the store's engines (X4): the same workload
//! on sled and on a real PostgreSQL started here (fsync and
//! synchronous_commit on), printed with the ratio PostgreSQL / sled.
//!
//! Workload: `TASKS` tasks at once, each running `ROUNDS` transactions that
//! read a record of their own and a shared prefix, then write the record
//! and an index entry (the shape of most service writes), with no
//! conflicts between tasks. `cargo bench -p signet-hub --bench store_transact`.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::time::Instant;

use signet_hub::store::{PgStorage, SledStorage, Storage, Store, StoreError};

const TASKS: u32 = 8;
const ROUNDS: u32 = 100;

async fn transacts_per_second(storage: Arc<dyn Storage>) -> f64 {
    let store = Store::new(storage);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                store
                    .transact(|tx| {
                        let key = format!("t{task}");
                        let n: u32 = tx.get("counters", &key)?.unwrap_or(0);
                        let _seen = tx.scan_keys("index", &format!("{key}/"))?.len();
                        tx.put("counters", &key, &(n + 1))?;
                        tx.put("index", &format!("{key}/{round:05}"), &round)?;
                        Ok::<_, StoreError>(())
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    f64::from(TASKS * ROUNDS) / started.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = postgres::PgServer::start();
    let url = server.database();
    runtime.block_on(async {
        let sled = transacts_per_second(Arc::new(SledStorage::open(dir.path()).unwrap())).await;
        let pg = transacts_per_second(Arc::new(PgStorage::connect(&url).unwrap())).await;
        let db = url.rsplit('/').next().unwrap();
        let rolled_back = server.sql(
            db,
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        );
        println!(
            "store transact ({TASKS} tasks x {ROUNDS}): sled {sled:.0}/s, postgres {pg:.0}/s, \
             ratio postgres/sled {:.2} (postgres rolled back {rolled_back} commit attempts)",
            pg / sled
        );
    });
}
