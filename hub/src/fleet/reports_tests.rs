//! The report rules (U1, U3, L8, T4) over a real store: ranges, bounded
//! filters, who sees which event, paging, per-group tallies and the CSV.

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId};
use signet_common::permissions::Role;
use signet_common::sync::{Outcome, PlayEvent};

use super::*;
use crate::fleet::events::{PLAY_EVENT_HOURS, PLAY_EVENTS, StoredEvent, event_key, hour_of};
use crate::identity::Actor;
use crate::identity::testing::{Fixture, fixture};
use crate::tenancy::load_tree;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// An event `n` of `device` showing `item` at `start`, played for 10 s.
pub(crate) fn event(
    n: u8,
    device: &str,
    item: &str,
    start: DateTime<Utc>,
    group: Option<&str>,
) -> PlayEvent {
    PlayEvent {
        id: format!("{n:032x}"),
        device_id: DeviceId::from(device),
        item: ItemId::from(item),
        access_group: group.map(AccessGroupId::from),
        license_version: group.map(|_| 1),
        start,
        duration_ms: 10_000,
        outcome: Outcome::Played,
        skip_reason: None,
        country: None,
        region: None,
        os: "Debian 12".into(),
        agent_version: "0.1.0".into(),
    }
}

/// Stores `events` as ingest does, each with the node its device was at.
async fn store_events(f: &Fixture, events: &[(PlayEvent, Option<&NodeId>)]) {
    let stored: Vec<StoredEvent> = events
        .iter()
        .map(|(event, node)| StoredEvent {
            event: event.clone(),
            node: node.cloned(),
            received_at: event.start,
            user: None,
        })
        .collect();
    f.hub
        .store
        .transact(|tx| {
            for s in &stored {
                let hour = hour_of(s.event.start);
                let count = tx.get::<u64>(PLAY_EVENT_HOURS, &hour)?.unwrap_or(0);
                tx.put(PLAY_EVENT_HOURS, &hour, &(count + 1))?;
                tx.put(PLAY_EVENTS, &event_key(&s.event), s)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await
        .unwrap();
}

fn viewer(f: &Fixture, actor: &Actor) -> Viewer {
    let (tree, _) = load_tree(&f.hub.store).unwrap();
    Viewer::new(actor.clone(), tree)
}

fn query(range: TimeRange) -> UsageQuery {
    UsageQuery {
        range,
        access_group: None,
        user: None,
        device: None,
        node: None,
        item: None,
        output: UsageOutput::Page {
            after: None,
            limit: MAX_JSON_PAGE,
        },
    }
}

fn ids(report: UsageReport) -> Vec<String> {
    match report {
        UsageReport::Page(page) => page.events.into_iter().map(|r| r.id).collect(),
        UsageReport::Csv { .. } => panic!("expected a page"),
    }
}

fn id(n: u8) -> String {
    format!("{n:032x}")
}

/// U3: the range defaults to the 7 days before now, ends before `to`,
/// and is refused when empty, reversed or over 366 days.
#[test]
fn u3_report_range_defaults_and_bounds() {
    let now = t("2026-03-10T12:00:00Z");
    let range = TimeRange::parse(None, None, now).unwrap();
    assert_eq!((range.from, range.to), (now - TimeDelta::days(7), now));
    assert!(range.holds(range.from));
    assert!(!range.holds(range.to), "the end is exclusive");
    let to = t("2026-03-01T00:00:00Z");
    let from_default = TimeRange::parse(None, Some(to), now).unwrap();
    assert_eq!(from_default.from, to - TimeDelta::days(7));
    assert!(matches!(
        TimeRange::parse(Some(to), Some(to), now),
        Err(FleetError::InvalidRange)
    ));
    assert!(matches!(
        TimeRange::parse(Some(now), Some(to), now),
        Err(FleetError::InvalidRange)
    ));
    let longest = to - TimeDelta::days(MAX_RANGE_DAYS);
    assert!(TimeRange::parse(Some(longest), Some(to), now).is_ok());
    assert!(matches!(
        TimeRange::parse(Some(longest - TimeDelta::seconds(1)), Some(to), now),
        Err(FleetError::RangeTooLong)
    ));
}

/// U3: a query is parsed once: ids of 1 to 128 bytes, pages of 1 to 1000
/// rows, and a CSV download is never paged.
#[test]
fn u3_report_query_values_are_bounded_and_csv_is_not_paged() {
    let now = t("2026-03-10T12:00:00Z");
    let parse = |filter: UsageFilter| UsageQuery::parse(filter, now);
    let query = parse(UsageFilter {
        device: Some("d-1".into()),
        node: Some("n-1".into()),
        limit: Some(0),
        ..UsageFilter::default()
    })
    .unwrap();
    assert_eq!(query.device, Some(DeviceId::from("d-1")));
    assert_eq!(query.node, Some(NodeId::from("n-1")));
    assert_eq!(
        query.output,
        UsageOutput::Page {
            after: None,
            limit: 1
        }
    );
    let big = parse(UsageFilter {
        limit: Some(1_000_000),
        ..UsageFilter::default()
    })
    .unwrap();
    assert_eq!(
        big.output,
        UsageOutput::Page {
            after: None,
            limit: MAX_JSON_PAGE
        }
    );
    for bad in [String::new(), "x".repeat(MAX_FILTER_LEN + 1)] {
        for filter in [
            UsageFilter {
                item: Some(bad.clone()),
                ..UsageFilter::default()
            },
            UsageFilter {
                user: Some(bad.clone()),
                ..UsageFilter::default()
            },
            UsageFilter {
                access_group: Some(bad.clone()),
                ..UsageFilter::default()
            },
        ] {
            assert!(matches!(parse(filter), Err(FleetError::InvalidQuery(_))));
        }
    }
    let csv = |limit, after| UsageFilter {
        format: Some(ReportFormat::Csv),
        limit,
        after,
        ..UsageFilter::default()
    };
    assert_eq!(parse(csv(None, None)).unwrap().output, UsageOutput::Csv);
    assert!(matches!(
        parse(csv(Some(10), None)),
        Err(FleetError::InvalidQuery(_))
    ));
    assert!(matches!(
        parse(csv(None, Some("k".into()))),
        Err(FleetError::InvalidQuery(_))
    ));
}

/// U1, U3, T4: a report holds the events the viewer sees — those whose
/// device was attached inside its domain; unattached devices' events for
/// root-level viewers only — filtered by node, device, item, group and
/// time, in time order.
#[tokio::test]
async fn u3_t4_report_filters_by_domain_node_device_item_group_and_time() {
    let f = fixture().await;
    let north = f.node("n-north", &f.root).await;
    let south = f.node("n-south", &f.root).await;
    let site = f.node("n-site", &north).await;
    let t0 = t("2026-03-02T08:00:00Z");
    let at = |minutes| t0 + TimeDelta::minutes(minutes);
    store_events(
        &f,
        &[
            (event(1, "d-a", "i-1", at(0), Some("g-1")), Some(&site)),
            (event(2, "d-a", "i-2", at(90), None), Some(&site)),
            (event(3, "d-b", "i-1", at(30), Some("g-2")), Some(&south)),
            (event(4, "d-c", "i-1", at(45), None), None),
            (
                event(5, "d-a", "i-1", at(24 * 60), Some("g-1")),
                Some(&site),
            ),
        ],
    )
    .await;
    let range = TimeRange::parse(Some(t0), Some(at(24 * 60)), t0).unwrap();
    let admin = viewer(&f, &f.admin);
    let report = |viewer: &Viewer, q: UsageQuery| {
        ids(usage_report(&f.hub, (viewer, &ItemSight::all()), &q).unwrap())
    };

    assert_eq!(report(&admin, query(range)), [id(1), id(3), id(4), id(2)]);
    let northerner = f.user("north", Role::Viewer, &[&north]).await;
    let northern = viewer(&f, &northerner);
    assert_eq!(report(&northern, query(range)), [id(1), id(2)]);
    let node = |n: &NodeId| UsageQuery {
        node: Some(n.clone()),
        ..query(range)
    };
    assert_eq!(
        report(&admin, node(&south)),
        [id(3)],
        "no unattached events"
    );
    assert!(matches!(
        usage_report(&f.hub, (&northern, &ItemSight::all()), &node(&south)),
        Err(FleetError::NotFound("node"))
    ));
    let device = UsageQuery {
        device: Some(DeviceId::from("d-a")),
        ..query(range)
    };
    assert_eq!(report(&admin, device), [id(1), id(2)]);
    let item = UsageQuery {
        item: Some(ItemId::from("i-1")),
        ..query(range)
    };
    assert_eq!(report(&admin, item), [id(1), id(3), id(4)]);
    let narrow = TimeRange::parse(Some(at(30)), Some(at(90)), t0).unwrap();
    assert_eq!(report(&admin, query(narrow)), [id(3), id(4)], "[from, to)");
    let selection = Selection {
        groups: Some([AccessGroupId::from("g-1")].into()),
        ..Selection::of(range)
    };
    let mut seen = Vec::new();
    selection
        .visit(&f.hub.store, &admin, None, usize::MAX, |_, s| {
            seen.push(s.event.id.clone());
            true
        })
        .unwrap();
    assert_eq!(seen, [id(1)], "licensed through the group only");
    let missing = UsageQuery {
        access_group: Some("g-none".into()),
        ..query(range)
    };
    assert!(matches!(
        usage_report(&f.hub, (&admin, &ItemSight::all()), &missing),
        Err(FleetError::NotFound("access group"))
    ));
}

/// U3: JSON pages follow the `next` cursor without gaps or repeats.
#[tokio::test]
async fn u3_json_pages_follow_the_cursor() {
    let f = fixture().await;
    let t0 = t("2026-03-02T08:00:00Z");
    let events: Vec<(PlayEvent, Option<&NodeId>)> = (1..=5)
        .map(|n| {
            (
                event(
                    n,
                    "d-a",
                    "i-1",
                    t0 + TimeDelta::minutes(i64::from(n) * 40),
                    None,
                ),
                Some(&f.root),
            )
        })
        .collect();
    store_events(&f, &events).await;
    let admin = viewer(&f, &f.admin);
    let range = TimeRange::parse(Some(t0), Some(t0 + TimeDelta::days(1)), t0).unwrap();
    let mut after = None;
    let mut all = Vec::new();
    loop {
        let q = UsageQuery {
            output: UsageOutput::Page { after, limit: 2 },
            ..query(range)
        };
        let UsageReport::Page(page) =
            usage_report(&f.hub, (&admin, &ItemSight::all()), &q).unwrap()
        else {
            panic!("expected a page");
        };
        assert!(page.events.len() <= 2);
        all.extend(page.events.into_iter().map(|r| r.id));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(all, (1..=5).map(id).collect::<Vec<_>>());
}

/// L8: a group's usage counts plays with their time and skips per item,
/// with totals over all items.
#[test]
fn l8_group_usage_tallies_plays_skips_and_time_per_item() {
    let t0 = t("2026-03-02T08:00:00Z");
    let mut tally = Tally::default();
    tally.add(&event(1, "d-a", "i-2", t0, Some("g-1")));
    tally.add(&event(2, "d-a", "i-1", t0, Some("g-1")));
    tally.add(&PlayEvent {
        outcome: Outcome::Skipped,
        duration_ms: 0,
        skip_reason: Some("pending approval".into()),
        ..event(3, "d-b", "i-1", t0, Some("g-1"))
    });
    tally.add(&PlayEvent {
        duration_ms: u64::MAX,
        ..event(4, "d-b", "i-2", t0, Some("g-1"))
    });
    let range = TimeRange::parse(Some(t0), Some(t0 + TimeDelta::hours(1)), t0).unwrap();
    let usage = tally.summary((&AccessGroupId::from("g-1"), "Gym".into()), range, false);
    assert_eq!((usage.played, usage.skipped), (3, 1));
    assert_eq!(usage.played_ms, u64::MAX, "saturates");
    let items: Vec<_> = usage
        .items
        .iter()
        .map(|i| (i.item.as_str(), i.played, i.skipped, i.played_ms))
        .collect();
    assert_eq!(items, [("i-1", 1, 1, 10_000), ("i-2", 2, 0, u64::MAX)]);
    assert_eq!(
        (usage.access_group.as_str(), usage.name.as_str()),
        ("g-1", "Gym")
    );
    assert_eq!(
        (usage.from, usage.to, usage.truncated),
        (t0, range.to, false)
    );
}

/// L8, T4: the usage of a group the viewer cannot see (or that does not
/// exist) is 404 before the range is even checked.
#[tokio::test]
async fn l8_group_usage_of_an_unseen_group_is_not_found() {
    let f = fixture().await;
    let admin = viewer(&f, &f.admin);
    let reversed = SummaryRange {
        from: Some(t("2026-03-05T00:00:00Z")),
        to: Some(t("2026-03-01T00:00:00Z")),
    };
    for id in ["g-none", ""] {
        assert!(matches!(
            group_usage(&f.hub, (&admin, &ItemSight::all()), id, &reversed),
            Err(FleetError::NotFound("access group"))
        ));
    }
}

/// U3: CSV fields holding commas, quotes or line breaks are quoted, so a
/// spreadsheet reads back exactly what was stored; the header comes first.
#[test]
fn u3_csv_export_escapes_commas_quotes_and_line_breaks() {
    let t0 = t("2026-03-02T08:00:00Z");
    let tricky = "said \"no\", then\nleft";
    let stored = StoredEvent {
        event: PlayEvent {
            outcome: Outcome::Skipped,
            duration_ms: 0,
            skip_reason: Some(tricky.into()),
            region: Some("Île-de-France, Paris".into()),
            ..event(1, "d-a", "i-1", t0, None)
        },
        node: None,
        received_at: t0,
        user: None,
    };
    let bytes = csv_bytes(&[UsageRow::from(&stored)]).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(&CSV_HEADER.join(",")), "{text}");
    assert!(text.contains("\"said \"\"no\"\", then\nleft\""), "{text}");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    let column = |name| CSV_HEADER.iter().position(|h| *h == name).unwrap();
    assert_eq!(&rows[0][column("skip_reason")], tricky);
    assert_eq!(&rows[0][column("region")], "Île-de-France, Paris");
    assert_eq!(&rows[0][column("node")], "");
    assert_eq!(&rows[0][column("outcome")], "skipped");
    let empty = String::from_utf8(csv_bytes(&[]).unwrap()).unwrap();
    assert_eq!(
        empty.lines().count(),
        1,
        "an empty CSV still has its header"
    );
    let range = TimeRange::parse(Some(t0), Some(t0 + TimeDelta::days(1)), t0).unwrap();
    assert_eq!(
        csv_filename(range),
        "signet-usage-20260302T080000Z-20260303T080000Z.csv"
    );
}
