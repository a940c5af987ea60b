//! Request rate limits on PostgreSQL (S12, X5; issue 21): the table
//! `rate_limits` (migration V7) every replica's per-source limits count
//! in, so N replicas allow a source the limit of one.
//!
//! Owns: its SQL — one statement per request that takes a cell from a
//! key's GCRA bucket if it has one (atomic under concurrent replicas: the
//! row lock orders them; times by the server's clock, so replicas' clocks
//! need not agree), one read of the wait when it has none — and keeping
//! the table bounded: every [`PRUNE_EVERY`]th request of a process deletes
//! the rows whose time has passed. Must not: decide which requests are
//! limited (`app::rate_limits` does).

use chrono::TimeDelta;
use deadpool_postgres::GenericClient;

/// A process prunes the table at every this many requests.
pub const PRUNE_EVERY: u32 = 256;

/// The server's now, in Unix microseconds.
const NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// Takes a cell: `$1` key, `$2` the interval, `$3` the burst times the
/// interval (µs). A row comes back when the cell was taken.
fn take() -> String {
    format!(
        "INSERT INTO rate_limits AS r (key, tat_us) SELECT $1, {NOW} + $2 \
         ON CONFLICT (key) DO UPDATE SET tat_us = GREATEST(r.tat_us, EXCLUDED.tat_us - $2) + $2 \
         WHERE GREATEST(r.tat_us, EXCLUDED.tat_us - $2) + $2 - $3 <= EXCLUDED.tat_us - $2 \
         RETURNING 1"
    )
}

/// The wait until `$1` has a cell again.
fn wait() -> String {
    format!("SELECT tat_us + $2 - $3 - {NOW} FROM rate_limits WHERE key = $1")
}

fn prune() -> String {
    format!("DELETE FROM rate_limits WHERE tat_us < {NOW}")
}

/// Takes a cell of `key`'s bucket (a cell every `interval`, at most
/// `burst` at once): `None` when taken, else the wait until there is one.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn take_rate(
    client: &impl GenericClient,
    key: &str,
    interval: TimeDelta,
    burst: u32,
    prune_now: bool,
) -> Result<Option<TimeDelta>, tokio_postgres::Error> {
    if prune_now {
        let prune = client.prepare_cached(&prune()).await?;
        client.execute(&prune, &[]).await?;
    }
    let interval = interval.num_microseconds().unwrap_or(i64::MAX / 4).max(1);
    let tolerance = interval.saturating_mul(i64::from(burst));
    let take = client.prepare_cached(&take()).await?;
    if client
        .query_opt(&take, &[&key, &interval, &tolerance])
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let wait = client.prepare_cached(&wait()).await?;
    let waited: i64 = match client
        .query_opt(&wait, &[&key, &interval, &tolerance])
        .await?
    {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    Ok(Some(TimeDelta::microseconds(waited.max(0))))
}
