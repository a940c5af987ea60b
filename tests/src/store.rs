//! Which store the harness's hubs run on (X4): sled in their data dir (the
//! default), or, with `SIGNET_TEST_STORE=postgres`, a fresh database per
//! hub on a real PostgreSQL this test process starts (`make e2e-postgres`).
//!
//! Owns: the PostgreSQL server of this test process (the hub crate's test
//! support, `hub/tests/support/postgres.rs`, included by path: `initdb` on a
//! free loopback port, as an unprivileged user under root, and a guard that
//! stops it when this process ends however it ends), one database per data
//! directory `signet-hub init` made, moved there with `signet-hub migrate`,
//! and the URL a `serve` of that directory is given (`SIGNET_HUB_STORE`).
//! Content blobs, keys and the agents' data stay in the directories.
//! Must not: decide what a suite checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

#[path = "../../hub/tests/support/postgres.rs"]
mod postgres;

pub use postgres::PgServer;

/// The server every hub of this test process uses: started with the first
/// hub on PostgreSQL and kept until the process ends (its guard stops it
/// then), so a suite may stop a hub and serve its data directory again.
static SERVER: OnceLock<PgServer> = OnceLock::new();

/// The store URL of each data directory moved to PostgreSQL.
static STORES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// Whether this run's hubs are on PostgreSQL (`SIGNET_TEST_STORE=postgres`).
#[must_use]
pub fn on_postgres() -> bool {
    std::env::var("SIGNET_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// The PostgreSQL server of this test process, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(PgServer::start)
}

/// After `signet-hub init` made `data`: on PostgreSQL, copies its store into
/// a new database with `signet-hub migrate` and remembers the URL for
/// [`store_of`]; nothing on sled.
///
/// # Panics
/// When the database cannot be made or the migration fails.
pub fn adopt(hub: &Path, data: &Path) {
    if !on_postgres() {
        return;
    }
    let url = server().database();
    let out = Command::new(hub)
        .args(["migrate", "--from"])
        .arg(data)
        .args(["--to", &url])
        .output()
        .expect("run signet-hub migrate");
    assert!(
        out.status.success(),
        "migrate {} to PostgreSQL failed: {}{}",
        data.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    STORES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(data.to_path_buf(), url);
}

/// The PostgreSQL URL the store of `data` lives at ([`adopt`]); `None` on
/// sled.
#[must_use]
pub fn store_of(data: &Path) -> Option<String> {
    STORES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()?
        .get(data)
        .cloned()
}

/// How many records tree `tree` holds in the database at `url`.
///
/// # Panics
/// When the query fails.
#[must_use]
pub fn records(url: &str, tree: &str) -> u64 {
    let db = url.rsplit('/').next().expect("a database in the URL");
    let count = server().sql(
        db,
        &format!("SELECT count(*) FROM store_records WHERE tree = '{tree}'"),
    );
    count.parse().expect("a count")
}
