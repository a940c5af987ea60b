//! Windowed failure counts on PostgreSQL (S12, X5; issue 21): the table
//! `login_failures` (migration V4) that every replica's login throttle
//! counts in, so N replicas refuse at the same count as one.
//!
//! Owns: its SQL — one upsert per failure that restarts a key's window when
//! it has passed (atomic under concurrent replicas: the row lock orders
//! them), one read, one delete — and keeping it bounded: every
//! [`PRUNE_EVERY`]th count of a process (its first included) deletes the
//! rows whose window has passed and the oldest beyond the cap it is given,
//! so the table holds at most the cap plus [`PRUNE_EVERY`] rows per
//! replica. Must not: decide what a count means (the throttle does).

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::GenericClient;

use super::WindowCount;

/// A process prunes the table at every this many counts.
pub const PRUNE_EVERY: u32 = 64;

/// One more failure per key; a window that passed starts again at `now`.
const ADD: &str = "INSERT INTO login_failures (key, count, since_us) \
     SELECT k, 1, $2 FROM unnest($1::text[]) AS k \
     ON CONFLICT (key) DO UPDATE SET \
       count = CASE WHEN login_failures.since_us + $3 <= $2 THEN 1 \
                    ELSE LEAST(login_failures.count, 2147483646) + 1 END, \
       since_us = CASE WHEN login_failures.since_us + $3 <= $2 THEN $2 \
                       ELSE login_failures.since_us END";
const CURRENT: &str = "SELECT c.i, f.count, f.since_us \
     FROM unnest($1::text[]) WITH ORDINALITY AS c(key, i) \
     JOIN login_failures f ON f.key = c.key WHERE f.since_us + $3 > $2";
const FORGET: &str = "DELETE FROM login_failures WHERE key = ANY($1::text[])";
const EXPIRED: &str = "DELETE FROM login_failures WHERE since_us <= $1";
const OLDEST: &str = "DELETE FROM login_failures WHERE key IN \
     (SELECT key FROM login_failures ORDER BY since_us DESC, key OFFSET $1)";

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn window_micros(window: TimeDelta) -> i64 {
    window.num_microseconds().unwrap_or(i64::MAX / 4)
}

/// Counts one failure for each of `keys` at `now` (sorted, so concurrent
/// counts lock rows in one order), then prunes to `cap` when `prune`.
pub async fn add(
    client: &impl GenericClient,
    keys: &[String],
    now: DateTime<Utc>,
    window: TimeDelta,
    (cap, prune_now): (usize, bool),
) -> Result<(), tokio_postgres::Error> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    let add = client.prepare_cached(ADD).await?;
    client
        .execute(&add, &[&keys, &micros(now), &window_micros(window)])
        .await?;
    if prune_now {
        prune(client, now, window, cap).await?;
    }
    Ok(())
}

/// Deletes the rows whose window has passed at `now`, then the oldest
/// beyond `cap`.
pub async fn prune(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    window: TimeDelta,
    cap: usize,
) -> Result<(), tokio_postgres::Error> {
    let expired = client.prepare_cached(EXPIRED).await?;
    client
        .execute(
            &expired,
            &[&micros(now).saturating_sub(window_micros(window))],
        )
        .await?;
    let oldest = client.prepare_cached(OLDEST).await?;
    client
        .execute(&oldest, &[&i64::try_from(cap).unwrap_or(i64::MAX)])
        .await?;
    Ok(())
}

/// The counts of `keys` whose window is open at `now`, in their order.
pub async fn current(
    client: &impl GenericClient,
    keys: &[String],
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Result<Vec<Option<WindowCount>>, tokio_postgres::Error> {
    let current = client.prepare_cached(CURRENT).await?;
    let mut out = vec![None; keys.len()];
    for row in client
        .query(&current, &[&keys, &micros(now), &window_micros(window)])
        .await?
    {
        let i: i64 = row.try_get(0)?;
        let count: i32 = row.try_get(1)?;
        let since: i64 = row.try_get(2)?;
        if let (Some(slot), Some(since)) = (
            usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)),
            DateTime::from_timestamp_micros(since),
        ) {
            *slot = Some(WindowCount {
                count: u32::try_from(count).unwrap_or(0),
                since,
            });
        }
    }
    Ok(out)
}

/// Forgets `keys`.
pub async fn forget(
    client: &impl GenericClient,
    keys: &[String],
) -> Result<(), tokio_postgres::Error> {
    let forget = client.prepare_cached(FORGET).await?;
    client.execute(&forget, &[&keys]).await?;
    Ok(())
}
