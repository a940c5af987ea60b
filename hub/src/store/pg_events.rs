//! The events tree on PostgreSQL (U3, X4, issue 21): [`EVENTS_TREE`] is
//! the range-partitioned table `play_events` (migration V2), not rows of
//! `store_records`, so reports run as SQL over indexed columns and
//! retention drops whole days.
//!
//! Owns: the SQL of that table — the get, scan, check, upsert and delete
//! [`super::PgStorage`] routes here for the events tree (inside the same
//! transaction and under the same tree lock as every other write of a
//! commit, so an ingest batch is durable with its events before it is
//! acknowledged, S9), the report queries ([`page`], [`tally`], which reads
//! whole days from the per-day rollup the table's triggers keep), the daily
//! partitions the leader makes ahead ([`prepare`]) and retention
//! ([`prune`]). The record (`fleet::events::StoredEvent` as JSON) is kept
//! byte for byte in `value`; the columns are read from it when written.
//! Must not: decide visibility (the [`EventQuery`] carries it resolved).

use chrono::{DateTime, Datelike as _, NaiveDate, TimeDelta, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::events::{EVENTS_TREE, EventPrune, EventQuery, ItemTally, key_time};
use super::{Entry, successor};

/// The default partition: events outside every day's partition.
const DEFAULT_PARTITION: &str = "play_events_default";
/// Day partitions are named this, then `YYYYMMDD`.
const PARTITION_PREFIX: &str = "play_events_p";

const GET: &str = "SELECT value FROM play_events WHERE key = $1";
const SCAN_RANGE: &str =
    "SELECT key, value FROM play_events WHERE key >= $1 AND key < $2 ORDER BY key";
const SCAN_FROM: &str = "SELECT key, value FROM play_events WHERE key >= $1 ORDER BY key";
const CHECK: &str = "SELECT c.i, e.value \
     FROM unnest($1::bytea[]) WITH ORDINALITY AS c(key, i) \
     LEFT JOIN play_events e ON e.key = c.key";
/// Writes records, their columns read from the JSON record.
const UPSERT: &str = "INSERT INTO play_events (start, key, id, device, node, item, access_group, \
     user_id, played, duration_ms, value) \
     SELECT (j #>> '{event,start}')::timestamptz, u.k, j #>> '{event,id}', \
       j #>> '{event,device_id}', j ->> 'node', j #>> '{event,item}', \
       j #>> '{event,access_group}', j ->> 'user', (j #>> '{event,outcome}') = 'played', \
       (j #>> '{event,duration_ms}')::bigint, u.v \
     FROM unnest($1::bytea[], $2::bytea[]) AS u(k, v), \
       LATERAL (SELECT convert_from(u.v, 'UTF8')::jsonb AS j) AS p \
     ON CONFLICT (key, start) DO UPDATE SET id = EXCLUDED.id, device = EXCLUDED.device, \
       node = EXCLUDED.node, item = EXCLUDED.item, access_group = EXCLUDED.access_group, \
       user_id = EXCLUDED.user_id, played = EXCLUDED.played, \
       duration_ms = EXCLUDED.duration_ms, value = EXCLUDED.value";
const DELETE: &str = "DELETE FROM play_events WHERE key = ANY($1::bytea[])";
const COUNT: &str = "SELECT count(*) FROM play_events";
const EXISTS: &str = "SELECT to_regclass($1::text) IS NOT NULL";
const PARTITIONS: &str = "SELECT c.relname::text FROM pg_inherits i \
     JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'play_events'::regclass ORDER BY 1";
const LOCK_TREE: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

/// The record under `key`.
pub async fn get(
    client: &impl GenericClient,
    key: &[u8],
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let get = client.prepare_cached(GET).await?;
    client
        .query_opt(&get, &[&key])
        .await?
        .map(|row| row.try_get(0))
        .transpose()
}

/// Every (key, value) whose key starts with `prefix`, in key order.
pub async fn scan(
    client: &impl GenericClient,
    prefix: &[u8],
) -> Result<Vec<Entry>, tokio_postgres::Error> {
    let rows = match successor(prefix) {
        Some(end) => {
            let range = client.prepare_cached(SCAN_RANGE).await?;
            client.query(&range, &[&prefix, &end]).await?
        }
        None => {
            let from = client.prepare_cached(SCAN_FROM).await?;
            client.query(&from, &[&prefix]).await?
        }
    };
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The values under `keys` (`None`: absent), in the order of `keys`.
pub async fn values(
    client: &impl GenericClient,
    keys: &[&[u8]],
) -> Result<Vec<Option<Vec<u8>>>, tokio_postgres::Error> {
    let check = client.prepare_cached(CHECK).await?;
    let mut out = vec![None; keys.len()];
    for row in client.query(&check, &[&keys]).await? {
        let i: i64 = row.try_get(0)?;
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) {
            *slot = row.try_get(1)?;
        }
    }
    Ok(out)
}

/// Stores each (key, value), replacing what a key held.
pub async fn upsert(
    client: &impl GenericClient,
    keys: &[&[u8]],
    values: &[&[u8]],
) -> Result<(), tokio_postgres::Error> {
    let upsert = client.prepare_cached(UPSERT).await?;
    client.execute(&upsert, &[&keys, &values]).await?;
    Ok(())
}

/// Removes `keys`.
pub async fn delete(
    client: &impl GenericClient,
    keys: &[&[u8]],
) -> Result<(), tokio_postgres::Error> {
    let delete = client.prepare_cached(DELETE).await?;
    client.execute(&delete, &[&keys]).await?;
    Ok(())
}

/// How many events are stored.
pub async fn count(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let count = client.prepare_cached(COUNT).await?;
    client.query_one(&count, &[]).await?.try_get(0)
}

/// The `WHERE` clause of `query` and its parameters, numbered from
/// `$1`: only the filters it sets, so the planner sees which index fits.
struct Filter {
    /// The clause, without `WHERE`.
    sql: String,
    /// Its parameters, in order.
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    fn of(query: &EventQuery) -> Self {
        let mut filter = Self {
            sql: String::new(),
            params: Vec::new(),
        };
        filter.add("start >= $::text::timestamptz", key_time(query.from));
        filter.add("start < $::text::timestamptz", key_time(query.to));
        filter.dimensions(query);
        if let Some(device) = &query.device {
            filter.add("device = $", device.clone());
        }
        filter
    }

    /// The filters of `query` but its range and device: what the per-day
    /// rollup is kept by too.
    fn dimensions(&mut self, query: &EventQuery) {
        let filter = self;
        let n = filter.bind(query.nodes.clone());
        filter.and(&if query.unattached {
            format!("(node = ANY(${n}::text[]) OR node IS NULL)")
        } else {
            format!("node = ANY(${n}::text[])")
        });
        if let Some(item) = &query.item {
            filter.add("item = $", item.clone());
        }
        if let Some(groups) = &query.groups {
            filter.add("access_group = ANY($::text[])", groups.clone());
        }
        if !query.hidden_items.is_empty() {
            filter.add("NOT (item = ANY($::text[]))", query.hidden_items.clone());
        }
        if let Some(user) = &query.user {
            filter.add("(user_id IS NULL OR user_id = $)", user.clone());
        }
    }

    /// Adds a parameter; its number.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> usize {
        self.params.push(Box::new(value));
        self.params.len()
    }

    /// Adds `clause` with `AND`.
    fn and(&mut self, clause: &str) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.sql.push_str(clause);
    }

    /// Adds `clause`, its one `$` numbered as `value`.
    fn add(&mut self, clause: &str, value: impl ToSql + Sync + Send + 'static) {
        let n = self.bind(value);
        self.and(&clause.replacen('$', &format!("${n}"), 1));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The events matching `query` after the key `after`, at most `limit`, in
/// key order.
pub async fn page(
    client: &impl GenericClient,
    query: &EventQuery,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Entry>, tokio_postgres::Error> {
    let mut filter = Filter::of(query);
    if let Some(after) = after {
        filter.add("key > $", after.to_vec());
    }
    let n = filter.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT key, value FROM play_events WHERE {} ORDER BY key LIMIT ${n}",
        filter.sql
    );
    let rows = client.query(&sql, &filter.params()).await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The first and the end (exclusive) of the whole UTC days within
/// `from..to`, when there is at least one (events start in 2000–9999).
fn whole_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<(NaiveDate, NaiveDate)> {
    let earliest = NaiveDate::from_ymd_opt(2000, 1, 1)?;
    let latest = NaiveDate::from_ymd_opt(9999, 12, 31)?;
    let midnight = from.date_naive().and_hms_opt(0, 0, 0)?.and_utc();
    let first = if from == midnight {
        from.date_naive()
    } else {
        from.date_naive().succ_opt()?
    };
    let (first, end) = (first.max(earliest), to.date_naive().min(latest));
    (first < end).then_some((first, end))
}

/// The start of `day` as a key-time text.
fn day_start(day: NaiveDate) -> String {
    day.and_hms_opt(0, 0, 0)
        .map(|t| key_time(t.and_utc()))
        .unwrap_or_default()
}

/// Plays, skips and time played per item of the events matching `query`,
/// by item id (byte order, as the service's tally). Whole days come from
/// the per-day rollup (`play_daily`, migration V5) unless the query names
/// a device; the hours before the first and after the last whole day from
/// the events.
pub async fn tally(
    client: &impl GenericClient,
    query: &EventQuery,
) -> Result<Vec<ItemTally>, tokio_postgres::Error> {
    let days = whole_days(query.from, query.to).filter(|_| query.device.is_none());
    let (sql, filter) = match days {
        None => {
            let filter = Filter::of(query);
            let sql = format!(
                "SELECT item, count(*) FILTER (WHERE played), \
                   count(*) FILTER (WHERE NOT played), \
                   LEAST(COALESCE(sum(duration_ms) FILTER (WHERE played), 0), \
                         9223372036854775807)::bigint \
                 FROM play_events WHERE {} GROUP BY item ORDER BY item",
                filter.sql
            );
            (sql, filter)
        }
        Some((first, end)) => {
            let mut filter = Filter {
                sql: String::new(),
                params: Vec::new(),
            };
            filter.dimensions(query);
            let from = filter.bind(key_time(query.from));
            let first_at = filter.bind(day_start(first));
            let end_at = filter.bind(day_start(end));
            let to = filter.bind(key_time(query.to));
            let first_day = filter.bind(first.format("%Y-%m-%d").to_string());
            let end_day = filter.bind(end.format("%Y-%m-%d").to_string());
            let sql = format!(
                "SELECT item, sum(p)::bigint, sum(s)::bigint, \
                   LEAST(sum(ms), 9223372036854775807)::bigint FROM ( \
                   SELECT item, played AS p, skipped AS s, played_ms AS ms FROM play_daily \
                   WHERE day >= ${first_day}::text::date AND day < ${end_day}::text::date \
                     AND {dims} \
                   UNION ALL \
                   SELECT item, count(*) FILTER (WHERE played), \
                     count(*) FILTER (WHERE NOT played), \
                     COALESCE(sum(duration_ms) FILTER (WHERE played), 0) \
                   FROM play_events \
                   WHERE ((start >= ${from}::text::timestamptz \
                           AND start < ${first_at}::text::timestamptz) \
                       OR (start >= ${end_at}::text::timestamptz \
                           AND start < ${to}::text::timestamptz)) \
                     AND {dims} GROUP BY item) u \
                 GROUP BY item ORDER BY item",
                dims = filter.sql
            );
            (sql, filter)
        }
    };
    let rows = client.query(&sql, &filter.params()).await?;
    rows.into_iter()
        .map(|row| {
            let count = |i| -> Result<u64, tokio_postgres::Error> {
                Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
            };
            Ok(ItemTally {
                item: row.try_get(0)?,
                played: count(1)?,
                skipped: count(2)?,
                played_ms: count(3)?,
            })
        })
        .collect()
}

/// The partition of `day`: its name and bounds.
fn partition(day: NaiveDate) -> (String, String, String) {
    let next = day + TimeDelta::days(1);
    (
        format!(
            "{PARTITION_PREFIX}{:04}{:02}{:02}",
            day.year(),
            day.month(),
            day.day()
        ),
        format!("{day} 00:00:00+00"),
        format!("{next} 00:00:00+00"),
    )
}

/// The day of a partition named by [`partition`].
fn day_of(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix(PARTITION_PREFIX)?, "%Y%m%d").ok()
}

/// Makes the partitions of the day before `now` to `days_ahead` days after
/// it that do not exist yet, each in its own transaction under the events
/// tree's lock (so no commit stores an event meanwhile): the day's events
/// the default partition holds move into it, then it is attached.
pub async fn prepare(
    client: &mut deadpool_postgres::Client,
    now: DateTime<Utc>,
    days_ahead: u32,
) -> Result<u32, tokio_postgres::Error> {
    let today = now.date_naive();
    let mut made = 0;
    for offset in -1..=i64::from(days_ahead) {
        let (name, from, to) = partition(today + TimeDelta::days(offset));
        let exists = client.prepare_cached(EXISTS).await?;
        if client.query_one(&exists, &[&name]).await?.try_get(0)? {
            continue;
        }
        let tx = client.transaction().await?;
        tx.execute(LOCK_TREE, &[&EVENTS_TREE]).await?;
        if tx.query_one(EXISTS, &[&name]).await?.try_get(0)? {
            tx.rollback().await?;
            continue;
        }
        tx.batch_execute(&format!(
            "CREATE TABLE {name} (LIKE play_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             WITH moved AS (DELETE FROM {DEFAULT_PARTITION} \
                 WHERE start >= '{from}' AND start < '{to}' RETURNING *) \
               INSERT INTO {name} SELECT * FROM moved; \
             ALTER TABLE play_events ATTACH PARTITION {name} \
               FOR VALUES FROM ('{from}') TO ('{to}');"
        ))
        .await?;
        tx.commit().await?;
        made += 1;
    }
    Ok(made)
}

/// Removes every event starting before `prune.before` — dropping each day
/// partition wholly before it, deleting the rest — with their entries in
/// the id and hour trees, in one transaction under the three trees' locks
/// (in name order, as every commit takes them); how many events.
pub async fn prune(
    client: &mut deadpool_postgres::Client,
    prune: &EventPrune,
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut trees = [EVENTS_TREE, prune.ids_tree, prune.hours_tree];
    trees.sort_unstable();
    for tree in trees {
        tx.execute(LOCK_TREE, &[&tree]).await?;
    }
    let mut removed: u64 = 0;
    let cutoff = prune.before;
    for row in tx.query(PARTITIONS, &[]).await? {
        let name: String = row.try_get(0)?;
        let Some(day) = day_of(&name) else { continue };
        let ends = day
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        if ends.is_none_or(|ends| ends > cutoff) {
            continue;
        }
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await?
            .try_get(0)?;
        tx.batch_execute(&format!("DROP TABLE {name}")).await?;
        removed += u64::try_from(n).unwrap_or(0);
    }
    let rest = tx
        .execute(
            "DELETE FROM play_events WHERE start < $1::text::timestamptz",
            &[&key_time(cutoff)],
        )
        .await?;
    removed += rest;
    // The deletes above took their events out of the per-day rollup; the
    // dropped partitions' days go whole.
    tx.execute(
        "DELETE FROM play_daily WHERE day < $1::text::date",
        &[&cutoff.date_naive().format("%Y-%m-%d").to_string()],
    )
    .await?;
    // An id's value is its event's key as a JSON string: `"` then the
    // start, so it sorts below this bound exactly when the event started
    // before the cut-off.
    let below = format!("\"{}", key_time(cutoff)).into_bytes();
    tx.execute(
        "DELETE FROM store_records WHERE tree = $1 AND value < $2",
        &[&prune.ids_tree, &below],
    )
    .await?;
    let hour = cutoff.format("%Y-%m-%dT%H").to_string().into_bytes();
    tx.execute(
        "DELETE FROM store_records WHERE tree = $1 AND key < $2",
        &[&prune.hours_tree, &hour],
    )
    .await?;
    tx.commit().await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x4_a_day_partition_is_named_and_bounded_by_its_day() {
        let day = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap_or_default();
        let (name, from, to) = partition(day);
        assert_eq!(name, "play_events_p20260228");
        assert_eq!(from, "2026-02-28 00:00:00+00");
        assert_eq!(to, "2026-03-01 00:00:00+00");
        assert_eq!(day_of(&name), Some(day));
        assert_eq!(day_of(DEFAULT_PARTITION), None);
    }

    #[test]
    fn u3_a_filter_binds_only_what_the_query_sets() {
        let query = EventQuery {
            from: DateTime::<Utc>::MIN_UTC,
            to: DateTime::<Utc>::MAX_UTC,
            nodes: vec!["n-1".into()],
            unattached: true,
            device: Some("d-1".into()),
            item: None,
            groups: Some(vec!["g-1".into()]),
            hidden_items: Vec::new(),
            user: None,
        };
        let filter = Filter::of(&query);
        assert_eq!(
            filter.sql,
            "start >= $1::text::timestamptz AND start < $2::text::timestamptz \
             AND (node = ANY($3::text[]) OR node IS NULL) \
             AND access_group = ANY($4::text[]) AND device = $5"
        );
        assert_eq!(filter.params.len(), 5);
    }

    #[test]
    fn u3_the_whole_days_of_a_range_are_those_it_covers_from_midnight_to_midnight() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        assert_eq!(
            whole_days(at("2026-03-01T00:00:00Z"), at("2026-03-03T00:00:00Z")),
            Some((day(2026, 3, 1), day(2026, 3, 3)))
        );
        assert_eq!(
            whole_days(at("2026-03-01T00:00:01Z"), at("2026-03-03T23:59:59Z")),
            Some((day(2026, 3, 2), day(2026, 3, 3)))
        );
        assert_eq!(
            whole_days(at("2026-03-01T06:00:00Z"), at("2026-03-02T06:00:00Z")),
            None
        );
        assert_eq!(
            whole_days(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
            Some((day(2000, 1, 1), day(9999, 12, 31)))
        );
    }
}
