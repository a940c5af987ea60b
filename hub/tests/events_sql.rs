//! Proof of play in SQL (U3, L8, X4; issue 21): on PostgreSQL the events
//! live in the day-partitioned `play_events` table and the reports run as
//! SQL; on sled the service scans its trees. The same events and the same
//! reports on both engines answer the same, byte for byte (ids that each
//! hub makes up are named alike before comparing); retention drops whole
//! days' partitions on PostgreSQL and deletes the same events on sled.
//!
//! Each test starts its own hubs on the engine it names, whatever
//! `SIGNET_TEST_STORE` says; PostgreSQL is a real server the test starts
//! (hub/tests/support/postgres.rs).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use signet_common::ids::{AccessGroupId, DeviceId, UserId};
use signet_common::sync::{EventBatch, PlayEvent};
use signet_hub::access_groups::{MEMBERS, Member, MemberRef, member_key};
use signet_hub::app::Clock as _;
use signet_hub::fleet::{self, events};
use signet_hub::store::WriteBatch;
use support::TestHub;

/// The ids one hub made up for the scenario, by the name both use.
struct Named {
    /// (name, id), e.g. ("north", "n-…").
    ids: Vec<(&'static str, String)>,
}

impl Named {
    /// `text` with every id replaced by its name.
    fn normalize(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (name, id) in &self.ids {
            text = text.replace(id.as_str(), &format!("<{name}>"));
        }
        text
    }
}

async fn access_group(hub: &TestHub, node: &str, name: &str) -> String {
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            serde_json::json!({"node": node, "name": name,
                "license": {"allow_offline": true, "offline_grace_secs": 3600, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The start of the scenario's events: two days before the hub's now, on
/// the hour (so some fall before the leader's day partitions, in the
/// default one, and some in them).
fn t0(hub: &TestHub) -> DateTime<Utc> {
    let at = hub.clock.now() - TimeDelta::days(2);
    at.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// The scenario's events: 240 plays and skips over three days, of four
/// items on three attached screens and one unattached, under two access
/// groups or none; ids fixed, so both engines store the same events.
fn scenario_events(t0: DateTime<Utc>, g: &str, h: &str) -> Vec<(String, Vec<PlayEvent>)> {
    let devices = ["d-n1", "d-n2", "d-s", "d-x"];
    let mut out: Vec<(String, Vec<PlayEvent>)> =
        devices.iter().map(|d| ((*d).to_owned(), vec![])).collect();
    for n in 0..240_u64 {
        let device = devices[usize::try_from(n % 4).unwrap()];
        let item = format!("c-{}", n % 7 % 4 + 1);
        let group = match n % 3 {
            0 => Some((g, 3)),
            1 => Some((h, 1)),
            _ => None,
        };
        let start = t0 + TimeDelta::minutes(i64::try_from(n * 17).unwrap());
        let mut event = support::events::played(n + 1, device, &item, group, start);
        event.duration_ms = 1_000 + n * 37;
        if n % 5 == 0 {
            event = support::events::skipped(event, "outside its window");
        }
        out[usize::try_from(n % 4).unwrap()].1.push(event);
    }
    out
}

/// Builds the scenario on a hub on `postgres` or sled: the tree, two
/// access groups, screens, a licensee and a North-only viewer, the events,
/// and two browser playbacks of two users (M6).
async fn scenario(postgres: bool) -> (TestHub, Named, String) {
    let hub = TestHub::start_on(Some(postgres), |c| c.token_ttl_secs = 30 * 86_400).await;
    // The leader's retention pass makes the day partitions (PostgreSQL).
    events::prune(&hub.state, hub.clock.now(), TimeDelta::days(730))
        .await
        .unwrap();
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let north = hub.node(&hub.admin, &tenant, "North").await;
    let south = hub.node(&hub.admin, &tenant, "South").await;
    let g = access_group(&hub, &tenant, "G").await;
    let h = access_group(&hub, &tenant, "H").await;
    let (licensee, _) = hub.user("licensee", "viewer", &[&tenant]).await;
    let (other, _) = hub.user("other", "viewer", &[&tenant]).await;
    let (_, north_viewer) = hub.user("northviewer", "viewer", &[&north]).await;
    let mut batch = WriteBatch::new();
    support::paired_in(&mut batch, &north, "d-n1", "s");
    support::paired_in(&mut batch, &north, "d-n2", "s");
    support::paired_in(&mut batch, &south, "d-s", "s");
    support::put_member(
        &mut batch,
        &hub,
        &g,
        MemberRef::user(&UserId::from(licensee.as_str())),
        TimeDelta::days(30),
    );
    support::put_member(
        &mut batch,
        &hub,
        &h,
        MemberRef::user(&UserId::from(other.as_str())),
        TimeDelta::days(30),
    );
    hub.state.store.apply(batch).await.unwrap();

    let t0 = t0(&hub);
    for (device, events) in scenario_events(t0, &g, &h) {
        let stored = fleet::ingest_events(
            &hub.state,
            &DeviceId::from(device.as_str()),
            EventBatch { events },
        )
        .await
        .unwrap();
        assert_eq!(stored.stored, 60);
    }
    // Browser playbacks carry their user (M6): the user filter keeps the
    // licensee's and drops the other user's.
    for (n, user) in [(1001_u64, &licensee), (1002, &other)] {
        let stored = events::StoredEvent {
            event: support::events::played(
                n,
                "b-1",
                "c-2",
                Some((&g, 3)),
                t0 + TimeDelta::hours(5),
            ),
            node: Some(signet_common::ids::NodeId::from(north.as_str())),
            received_at: t0,
            user: Some(UserId::from(user.as_str())),
        };
        let inserted = hub
            .state
            .store
            .transact(|tx| events::insert_in(tx, &stored))
            .await
            .unwrap();
        assert!(inserted);
    }
    let named = Named {
        ids: vec![
            ("tenant", tenant),
            ("north", north),
            ("south", south),
            ("g", g),
            ("h", h),
            ("licensee", licensee),
            ("other", other),
        ],
    };
    (hub, named, north_viewer)
}

/// Every report the comparison runs, as (caller, path) with the names of
/// [`Named`] in braces; all over an explicit range.
fn reports(range: &str) -> Vec<(&'static str, String)> {
    let usage = |q: &str| format!("/api/v1/reports/usage?{range}{q}");
    vec![
        ("admin", usage("")),
        ("admin", usage("&device=d-n1")),
        ("admin", usage("&device=d-x")),
        ("admin", usage("&node={north}")),
        ("admin", usage("&node={tenant}")),
        ("admin", usage("&item=c-2")),
        ("admin", usage("&access_group={g}")),
        ("admin", usage("&user={licensee}")),
        ("admin", usage("&user={licensee}&item=c-2&device=b-1")),
        ("admin", usage("&user={other}&access_group={g}")),
        ("admin", usage("&format=csv")),
        ("admin", usage("&format=csv&node={south}&item=c-3")),
        (
            "admin",
            "/api/v1/reports/usage?from={t1}&to={t2}&device=d-s".to_owned(),
        ),
        (
            "admin",
            format!("/api/v1/reports/usage/access-groups/{{g}}?{range}"),
        ),
        (
            "admin",
            format!("/api/v1/reports/usage/access-groups/{{h}}?{range}"),
        ),
        ("viewer", usage("")),
        ("viewer", usage("&device=d-s")),
        ("viewer", usage("&format=csv")),
        (
            "viewer",
            format!("/api/v1/reports/usage/access-groups/{{g}}?{range}"),
        ),
    ]
}

/// Answers `path` (its `{name}`s filled in) for `caller`: the status and
/// the body as text with this hub's ids named; a JSON page is followed
/// page by page (`limit=7`), every page's body joined.
async fn answer(
    hub: &TestHub,
    named: &Named,
    token: &str,
    path: &str,
    t0: DateTime<Utc>,
) -> String {
    let mut path = path.to_owned();
    for (name, id) in &named.ids {
        path = path.replace(&format!("{{{name}}}"), id);
    }
    let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    path = path
        .replace("{t1}", &secs(t0 + TimeDelta::hours(7)))
        .replace("{t2}", &secs(t0 + TimeDelta::hours(40)));
    let paged = path.starts_with("/api/v1/reports/usage?") && !path.contains("format=csv");
    let mut out = String::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}{path}", hub.base);
        if paged {
            url.push_str("&limit=7");
        }
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let response = hub
            .client
            .request(Method::GET, &url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        out.push_str(&format!("{status} {text}\n"));
        if !paged || status != StatusCode::OK {
            break;
        }
        let page: Value = serde_json::from_str(&text).unwrap();
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    named.normalize(&out)
}

/// U3, L8, X4 (issue 21): the same events answer the same usage reports —
/// every filter, paging, CSV, a scoped viewer, the per-item group summary —
/// on PostgreSQL (SQL over the partitioned table) as on sled (the scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn u3_l8_x4_reports_on_postgres_answer_as_on_sled() {
    let (sled, sled_names, sled_viewer) = scenario(false).await;
    let (pg, pg_names, pg_viewer) = scenario(true).await;
    let t0 = t0(&sled);
    assert_eq!(t0, self::t0(&pg), "both hubs started on the same day");
    let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let range = format!(
        "from={}&to={}",
        secs(t0 - TimeDelta::hours(1)),
        secs(t0 + TimeDelta::days(4))
    );

    // On PostgreSQL the events are rows of the table, some in the leader's
    // day partitions and some (before them) in the default one.
    let in_table = pg.pg_sql("SELECT count(*) FROM play_events");
    assert_eq!(in_table, "242");
    let in_days = pg.pg_sql(
        "SELECT count(*) FROM play_events WHERE tableoid <> 'play_events_default'::regclass",
    );
    assert!(in_days.parse::<u32>().unwrap() > 0, "{in_days}");
    assert_eq!(
        pg.pg_sql("SELECT count(*) FROM store_records WHERE tree = 'play_events'"),
        "0"
    );

    let mut compared = 0;
    for (caller, path) in reports(&range) {
        let (sled_token, pg_token) = match caller {
            "admin" => (&sled.admin, &pg.admin),
            _ => (&sled_viewer, &pg_viewer),
        };
        let on_sled = answer(&sled, &sled_names, sled_token, &path, t0).await;
        let on_pg = answer(&pg, &pg_names, pg_token, &path, t0).await;
        assert_eq!(on_pg, on_sled, "{caller} {path}");
        compared += on_sled.lines().count();
    }
    // The answers hold what the scenario stored (not two empty lists).
    let all = answer(&pg, &pg_names, &pg.admin, &reports(&range)[0].1, t0).await;
    assert_eq!(all.matches("\"id\":").count(), 242);
    let summary = answer(&pg, &pg_names, &pg.admin, &reports(&range)[13].1, t0).await;
    assert!(summary.contains("\"played\":"), "{summary}");
    let group: Value = serde_json::from_str(summary.trim_start_matches("200 OK ").trim()).unwrap();
    // Group G: every third event (80) plus the licensee's browser playback
    // and the other user's, less the skips among the 80 (n % 15 == 0: 16).
    assert_eq!(
        group["played"].as_u64().unwrap() + group["skipped"].as_u64().unwrap(),
        82
    );
    assert_eq!(group["skipped"], 16);
    let viewer_all = answer(&pg, &pg_names, &pg_viewer, &reports(&range)[15].1, t0).await;
    // The North viewer sees d-n1, d-n2 (120) and the browser playbacks (2).
    assert_eq!(viewer_all.matches("\"id\":").count(), 122);
    assert!(compared > 40, "{compared} pages compared");

    // And the answers on PostgreSQL come from SQL over the table, not the
    // scan: without the hour index the scan would read no hour at all.
    pg.pg_sql("DELETE FROM store_records WHERE tree = 'play_event_hours'");
    let again = answer(&pg, &pg_names, &pg.admin, &reports(&range)[0].1, t0).await;
    assert_eq!(again, all);
}

/// U3, X4 (issue 21): retention on both engines removes exactly the events
/// that started before the hour of `now - usage retention`, with their id
/// and hour entries; on PostgreSQL whole days' partitions are dropped, the
/// rest deleted, and a partition made later takes the events the default
/// partition held for its day.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn u3_x4_retention_drops_old_days_on_postgres_and_deletes_on_sled() {
    for postgres in [false, true] {
        let hub = TestHub::start_on(Some(postgres), |_| {}).await;
        let site = hub.node(&hub.admin, &hub.root, "Site").await;
        let mut batch = WriteBatch::new();
        support::paired_in(&mut batch, &site, "d-1", "s");
        hub.state.store.apply(batch).await.unwrap();
        let now = hub.clock.now();
        events::prune(&hub.state, now, TimeDelta::days(730))
            .await
            .unwrap();
        let day = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        let at = |hours: i64| day + TimeDelta::hours(hours);
        let starts = [
            ("ancient", day - TimeDelta::days(800)),
            ("yesterday", at(-14)),
            ("early", at(2)),
            ("later", at(5)),
            ("tomorrow", at(27)),
            ("beyond", at(24 * 8 + 1)),
        ];
        let events: Vec<PlayEvent> = starts
            .iter()
            .enumerate()
            .map(|(n, (_, start))| {
                support::events::played(u64::try_from(n).unwrap() + 1, "d-1", "c-1", None, *start)
            })
            .collect();
        let ingested = fleet::ingest_events(
            &hub.state,
            &DeviceId::from("d-1"),
            EventBatch {
                events: events.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(ingested.stored, 6);
        if postgres {
            let beyond = format!("play_events_p{}", at(24 * 8).format("%Y%m%d"));
            assert_eq!(
                hub.pg_sql(&format!("SELECT to_regclass('{beyond}') IS NULL")),
                "t"
            );
            assert_eq!(hub.pg_sql("SELECT count(*) FROM play_events_default"), "2");
        }

        // A day and a half later, with a retention of one day: the cut-off
        // is the hour at(4).
        let later = at(28) + TimeDelta::minutes(30);
        let removed = events::prune(&hub.state, later, TimeDelta::days(1))
            .await
            .unwrap();
        assert_eq!(removed, 3, "postgres: {postgres}");
        for (n, (name, start)) in starts.iter().enumerate() {
            let id = &events[n].id;
            let index: Option<String> = hub.state.store.get(events::PLAY_EVENT_IDS, id).unwrap();
            let hour: Option<u64> = hub
                .state
                .store
                .get(events::PLAY_EVENT_HOURS, &events::hour_of(*start))
                .unwrap();
            let kept = *start >= at(4);
            assert_eq!(index.is_some(), kept, "{name} id, postgres: {postgres}");
            assert_eq!(hour.is_some(), kept, "{name} hour, postgres: {postgres}");
        }
        let left = usage_ids(
            &hub,
            day - TimeDelta::days(300),
            day + TimeDelta::days(20),
            "",
        )
        .await;
        assert_eq!(
            left,
            [&events[3].id, &events[4].id, &events[5].id].map(String::clone)
        );

        if postgres {
            let partition = |hours: i64| format!("play_events_p{}", at(hours).format("%Y%m%d"));
            let exists =
                |name: String| hub.pg_sql(&format!("SELECT to_regclass('{name}') IS NOT NULL"));
            // Yesterday's partition is dropped; today's stays (its later
            // event is kept); the pass made the eighth day ahead, which took
            // its event out of the default partition.
            assert_eq!(exists(partition(-14)), "f");
            assert_eq!(exists(partition(5)), "t");
            assert_eq!(
                hub.pg_sql(&format!("SELECT count(*) FROM {}", partition(24 * 8))),
                "1"
            );
            assert_eq!(hub.pg_sql("SELECT count(*) FROM play_events_default"), "0");
            // The ids before the cut-off are found by an index (V3).
            assert_eq!(
                hub.pg_sql(
                    "SELECT count(*) FROM pg_indexes \
                     WHERE indexname = 'store_records_event_ids_by_value'"
                ),
                "1"
            );
        }
    }
}

/// U2, L2, X4, S9 (issue 21: ingest reads its look-ups in one query per
/// tree): reports arriving together — two devices' batches each holding
/// an event twice, a second copy of one batch (an agent's retry before its
/// acknowledgement) and a batch overlapping another — land in the same
/// ingest commits, then the first batch is sent again after it was
/// acknowledged. Every event is stored once, on PostgreSQL and on sled:
/// the counts the callers hear, the events table, the id index and the
/// hour counts agree with the distinct ids; the device's first use of its
/// group is recorded once, at its earliest played event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn u2_l2_x4_a_batch_with_duplicates_and_retries_is_stored_once() {
    for postgres in [false, true] {
        let hub = TestHub::start_on(Some(postgres), |_| {}).await;
        events::prune(&hub.state, hub.clock.now(), TimeDelta::days(730))
            .await
            .unwrap();
        let site = hub.node(&hub.admin, &hub.root, "Site").await;
        let group = access_group(&hub, &site, "G").await;
        let mut batch = WriteBatch::new();
        support::paired_in(&mut batch, &site, "d-1", "s");
        support::paired_in(&mut batch, &site, "d-2", "s");
        let device = MemberRef::Device {
            device_id: DeviceId::from("d-1"),
        };
        support::put_member(
            &mut batch,
            &hub,
            &group,
            device.clone(),
            TimeDelta::days(30),
        );
        hub.state.store.apply(batch).await.unwrap();

        let t0 = t0(&hub);
        let event = |n: u64, device: &str| {
            let start = t0 + TimeDelta::minutes(i64::try_from(n * 7).unwrap());
            support::events::played(n, device, "c-1", Some((&group, 1)), start)
        };
        // d-1: events 1–40 with 7 twice; d-2: events 101–130 with 101
        // twice; then 121–150 of d-2 (overlapping 121–130).
        let mut first: Vec<PlayEvent> = (1..=40).map(|n| event(n, "d-1")).collect();
        first.push(event(7, "d-1"));
        let mut second: Vec<PlayEvent> = (101..=130).map(|n| event(n, "d-2")).collect();
        second.insert(3, event(101, "d-2"));
        let overlap: Vec<PlayEvent> = (121..=150).map(|n| event(n, "d-2")).collect();
        let sends = [
            ("d-1", first.clone()),
            ("d-2", second),
            ("d-1", first.clone()),
            ("d-2", overlap),
        ];
        let mut tasks = Vec::new();
        for (device, events) in sends {
            let state = hub.state.clone();
            tasks.push(tokio::spawn(async move {
                fleet::ingest_events(&state, &DeviceId::from(device), EventBatch { events })
                    .await
                    .unwrap()
            }));
        }
        let mut stored = 0;
        let mut duplicates = 0;
        for task in tasks {
            let ingested = task.await.unwrap();
            assert_eq!(ingested.refused, 0, "postgres: {postgres}");
            stored += ingested.stored;
            duplicates += ingested.duplicates;
        }
        let retry = fleet::ingest_events(
            &hub.state,
            &DeviceId::from("d-1"),
            EventBatch {
                events: first.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!((retry.stored, retry.duplicates), (0, 41), "retry");
        // 40 + 30 + 20 distinct; sent 41 + 31 + 41 + 30 = 143.
        assert_eq!(stored, 90, "postgres: {postgres}");
        assert_eq!(duplicates, 143 - 90, "postgres: {postgres}");

        let hours: u64 = hub
            .state
            .store
            .scan::<u64>(events::PLAY_EVENT_HOURS, "")
            .unwrap()
            .into_iter()
            .sum();
        assert_eq!(hours, 90, "hour counts, postgres: {postgres}");
        assert_eq!(
            hub.state
                .store
                .scan_keys(events::PLAY_EVENT_IDS, "")
                .unwrap()
                .len(),
            90
        );
        let mut ids = usage_ids(
            &hub,
            t0 - TimeDelta::days(1),
            t0 + TimeDelta::days(3),
            "&limit=1000",
        )
        .await;
        assert_eq!(ids.len(), 90, "postgres: {postgres}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 90, "postgres: {postgres}");
        if postgres {
            assert_eq!(
                hub.pg_sql("SELECT count(*), count(DISTINCT id) FROM play_events"),
                "90|90"
            );
        }
        let member: Member = hub
            .state
            .store
            .get(
                MEMBERS,
                &member_key(&AccessGroupId::from(group.as_str()), &device),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            member.membership.first_used_at,
            Some(t0 + TimeDelta::minutes(7)),
            "postgres: {postgres}"
        );
    }
}

/// Every (day, node, item, group, user) total of `table`, as text: the
/// rollup itself, or the same totals computed from the events.
fn daily_totals(hub: &TestHub, from_events: bool) -> String {
    let source = if from_events {
        "SELECT (start AT TIME ZONE 'UTC')::date AS day, node, item, access_group, user_id, \
           count(*) FILTER (WHERE played) AS played, count(*) FILTER (WHERE NOT played) AS skipped, \
           COALESCE(sum(duration_ms) FILTER (WHERE played), 0) AS played_ms \
         FROM play_events GROUP BY 1, 2, 3, 4, 5"
    } else {
        "SELECT day, node, item, access_group, user_id, played, skipped, played_ms FROM play_daily"
    };
    hub.pg_sql(&format!(
        "SELECT count(*) || ':' || COALESCE(string_agg(concat_ws('/', day, node, item, \
           access_group, user_id, played, skipped, played_ms), ',' \
           ORDER BY day, node, item, access_group, user_id), '') FROM ({source}) t"
    ))
}

/// The per-item tally of every event in `from..to` computed from the events
/// by SQL, as `item|played|skipped|ms` lines.
fn scanned_tally(hub: &TestHub, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    hub.pg_sql(&format!(
        "SELECT item, count(*) FILTER (WHERE played), count(*) FILTER (WHERE NOT played), \
           COALESCE(sum(duration_ms) FILTER (WHERE played), 0) FROM play_events \
         WHERE start >= '{}' AND start < '{}' GROUP BY item ORDER BY item",
        from.to_rfc3339(),
        to.to_rfc3339()
    ))
}

/// U3, L8, X4 (issue 21): the per-day rollup the triggers keep equals the
/// events after ingest, a browser playback's duration update and a
/// retention pass cutting a day in two; and a summary over whole days plus
/// partial ones (answered from the rollup and the edge hours) equals the
/// same summary scanned from the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn u3_l8_x4_the_daily_rollup_answers_as_the_event_scan() {
    let hub = TestHub::start_on(Some(true), |_| {}).await;
    let now = hub.clock.now();
    events::prune(&hub.state, now, TimeDelta::days(730))
        .await
        .unwrap();
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let group = access_group(&hub, &site, "G").await;
    let mut batch = WriteBatch::new();
    support::paired_in(&mut batch, &site, "d-1", "s");
    support::paired_in(&mut batch, &site, "d-2", "s");
    hub.state.store.apply(batch).await.unwrap();
    // Four days and a bit, from 05:00 three days ago, on two attached
    // screens and one unattached.
    let t0 = now.date_naive().and_hms_opt(5, 0, 0).unwrap().and_utc() - TimeDelta::days(3);
    let devices = ["d-1", "d-2", "d-x"];
    for (d, device) in devices.iter().enumerate() {
        let events: Vec<PlayEvent> = (0..120_u64)
            .map(|n| {
                let start = t0 + TimeDelta::minutes(i64::try_from(n * 47 + 3 * d as u64).unwrap());
                let in_group = (n % 3 == 0).then_some((group.as_str(), 1));
                let mut event = support::events::played(
                    1 + n + 1000 * d as u64,
                    device,
                    &format!("c-{}", n % 5),
                    in_group,
                    start,
                );
                event.duration_ms = 500 + n * 11;
                if n % 4 == 0 {
                    event = support::events::skipped(event, "outside its window");
                }
                event
            })
            .collect();
        let stored =
            fleet::ingest_events(&hub.state, &DeviceId::from(*device), EventBatch { events })
                .await
                .unwrap();
        assert_eq!(stored.stored, 120);
    }
    assert_eq!(daily_totals(&hub, false), daily_totals(&hub, true));
    assert!(daily_totals(&hub, false).len() > 100);

    // A browser playback (M6, with its user) and its duration update.
    let stored = events::StoredEvent {
        event: support::events::played(9001, "b-1", "c-2", None, t0 + TimeDelta::hours(30)),
        node: Some(signet_common::ids::NodeId::from(site.as_str())),
        received_at: now,
        user: Some(UserId::from("u-1")),
    };
    hub.state
        .store
        .transact(|tx| events::insert_in(tx, &stored))
        .await
        .unwrap();
    let id = stored.event.id.clone();
    assert!(
        hub.state
            .store
            .transact(|tx| events::set_duration_in(tx, &id, 4_321))
            .await
            .unwrap()
    );
    assert_eq!(daily_totals(&hub, false), daily_totals(&hub, true));

    // Summaries over whole days and their edges equal the event scan.
    let every = |from: DateTime<Utc>, to: DateTime<Utc>| signet_hub::store::EventQuery {
        from,
        to,
        nodes: vec![site.clone()],
        unattached: true,
        device: None,
        item: None,
        groups: None,
        hidden_items: Vec::new(),
        user: None,
    };
    let ranges = [
        (t0 - TimeDelta::days(1), t0 + TimeDelta::days(5)),
        (
            t0 + TimeDelta::minutes(7),
            t0 + TimeDelta::hours(70) + TimeDelta::minutes(13),
        ),
        (t0 + TimeDelta::hours(19), t0 + TimeDelta::hours(43)),
    ];
    for (from, to) in ranges {
        let tally = hub
            .state
            .store
            .event_tally(&every(from, to))
            .unwrap()
            .unwrap();
        let lines: Vec<String> = tally
            .iter()
            .map(|t| format!("{}|{}|{}|{}", t.item, t.played, t.skipped, t.played_ms))
            .collect();
        assert_eq!(
            lines.join("\n"),
            scanned_tally(&hub, from, to),
            "{from}..{to}"
        );
        assert!(!lines.is_empty());
    }

    // Retention cutting a day in two: dropped days leave the rollup, the
    // cut day keeps what is after the cut.
    let removed = events::prune(&hub.state, t0 + TimeDelta::hours(50), TimeDelta::days(1))
        .await
        .unwrap();
    assert!(removed > 0);
    assert_eq!(daily_totals(&hub, false), daily_totals(&hub, true));
}

/// The ids of the events the admin's usage report lists from `from` to
/// `to` (`extra` appended to the query), in the report's order.
async fn usage_ids(
    hub: &TestHub,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    extra: &str,
) -> Vec<String> {
    let (status, page) = hub
        .get(
            &hub.admin,
            &format!(
                "/api/v1/reports/usage?from={}&to={}{extra}",
                from.to_rfc3339_opts(SecondsFormat::Secs, true),
                to.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    support::events::ids(&page)
}
