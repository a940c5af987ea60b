//! Behaviour of schedules (D5, with A7 fall-through and D4 activity): priorities,
//! merging, layers, calendars, the default item, `next_change`, daylight-saving
//! changes, validation, and robustness on arbitrary input.

// Tests may unwrap (clippy.toml allows it in `#[test]` functions; this covers
// the helpers and proptest strategies too).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use chrono_tz::{America::New_York, Europe::Berlin, UTC};
use proptest::prelude::*;
use signet_common::ids::{EntryId, ItemId};
use signet_common::schedule::{
    DateRange, Daypart, Evaluation, Layer, MAX_DAYPARTS_PER_ENTRY, MAX_ENTRIES,
    MAX_ITEMS_PER_ENTRY, MergeMode, NEXT_CHANGE_HORIZON_DAYS, PlaylistItem, Schedule,
    ScheduleEntry, ScheduleError, Slot, evaluate,
};

// ---------------------------------------------------------------- helpers

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn time(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn part(start: (u32, u32), end: (u32, u32)) -> Daypart {
    Daypart {
        start: time(start.0, start.1),
        end: time(end.0, end.1),
    }
}

fn item(id: &str, minutes: u64) -> PlaylistItem {
    PlaylistItem {
        item: ItemId::new(id),
        duration_ms: minutes * 60_000,
    }
}

/// An all-day, every-day main entry of priority 0.
fn entry(id: &str, items: Vec<PlaylistItem>) -> ScheduleEntry {
    ScheduleEntry {
        id: EntryId::new(id),
        items,
        dayparts: vec![],
        weekdays: vec![],
        dates: None,
        priority: 0,
        layer: Layer::Main,
    }
}

fn schedule(entries: Vec<ScheduleEntry>) -> Schedule {
    Schedule {
        entries,
        merge: MergeMode::Sequence,
        default_item: None,
    }
}

fn everything(_: &ItemId) -> bool {
    true
}

fn eval(s: &Schedule, tz: Tz, at: DateTime<Utc>) -> Evaluation {
    evaluate(s, tz, at, &everything)
}

fn main_item(e: &Evaluation) -> Option<&str> {
    e.main.as_ref().map(|slot| slot.item.as_str())
}

/// The main slots from `from` to `to`, stepping through `next_change`.
fn main_slots(s: &Schedule, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Option<Slot>> {
    let mut at = from;
    let mut slots: Vec<Option<Slot>> = Vec::new();
    for _ in 0..10_000 {
        if at >= to {
            break;
        }
        let e = eval(s, tz, at);
        assert!(e.next_change > at, "next_change must be after {at}");
        if slots.last() != Some(&e.main) {
            slots.push(e.main);
        }
        at = e.next_change;
    }
    slots
}

fn items_of(slots: &[Option<Slot>]) -> Vec<String> {
    slots
        .iter()
        .map(|s| s.as_ref().map_or("-".to_owned(), |s| s.item.to_string()))
        .collect()
}

// ---------------------------------------------------------------- priority and merging

#[test]
fn d5_higher_priority_wins() {
    let mut low = entry("low", vec![item("a", 5)]);
    low.priority = 1;
    let mut high = entry("high", vec![item("b", 5)]);
    high.priority = 7;
    let s = schedule(vec![low, high]);
    let e = eval(&s, UTC, utc("2026-06-01T12:00:00Z"));
    assert_eq!(main_item(&e), Some("b"));
    assert_eq!(e.main.unwrap().entry, Some(EntryId::new("high")));
}

fn merge_fixture(merge: MergeMode, playlists: &[(&str, &[&str])]) -> Schedule {
    let first = date(2026, 6, 1);
    let entries = playlists
        .iter()
        .map(|(id, items)| {
            let mut e = entry(id, items.iter().map(|i| item(i, 1)).collect());
            e.dates = Some(DateRange {
                first,
                last: date(2026, 6, 30),
            });
            e
        })
        .collect();
    Schedule {
        merge,
        ..schedule(entries)
    }
}

/// D5, S1: a merge mode is read as written and refuses a field it does
/// not know, for either mode (serde's derive let a unit variant of an
/// internally tagged enum take any other field).
#[test]
fn d5_s1_merge_mode_refuses_unknown_fields() {
    let read = |text: &str| serde_json::from_str::<MergeMode>(text);
    assert_eq!(read(r#"{"mode":"sequence"}"#).unwrap(), MergeMode::Sequence);
    assert_eq!(
        read(r#"{"n":3,"mode":"interleave"}"#).unwrap(),
        MergeMode::Interleave { n: 3 }
    );
    for bad in [
        r#"{"mode":"sequence","x":1}"#,
        r#"{"mode":"sequence","n":2}"#,
        r#"{"mode":"interleave","n":2,"x":1}"#,
        r#"{"mode":"interleave"}"#,
        r#"{"mode":"shuffle"}"#,
        r#"{}"#,
    ] {
        assert!(read(bad).is_err(), "{bad} was taken");
    }
    for mode in [MergeMode::Sequence, MergeMode::Interleave { n: 2 }] {
        let text = serde_json::to_string(&mode).unwrap();
        assert_eq!(read(&text).unwrap(), mode, "{text}");
    }
    assert_eq!(
        serde_json::to_string(&MergeMode::Sequence).unwrap(),
        r#"{"mode":"sequence"}"#
    );
}

#[test]
fn d5_equal_priority_merges_in_sequence_in_schedule_order() {
    let s = merge_fixture(
        MergeMode::Sequence,
        &[("A", &["a1", "a2"]), ("B", &["b1"]), ("C", &["c1", "c2"])],
    );
    // Anchored at the start of the date range: 2026-06-01 00:00 UTC.
    let start = utc("2026-06-01T00:00:00Z");
    let slots = main_slots(&s, UTC, start, start + Duration::minutes(10));
    assert_eq!(
        items_of(&slots),
        ["a1", "a2", "b1", "c1", "c2", "a1", "a2", "b1", "c1", "c2"]
    );
    let first = slots[0].as_ref().unwrap();
    assert_eq!(first.started_at, start);
    assert_eq!(first.ends_at, start + Duration::minutes(1));
    assert_eq!(
        slots[2].as_ref().unwrap().entry,
        Some(EntryId::new("B")),
        "each slot names the entry its item came from"
    );
}

#[test]
fn d5_equal_priority_interleaves_n_items_each_and_exhausted_playlists_drop_out() {
    let s = merge_fixture(
        MergeMode::Interleave { n: 2 },
        &[
            ("A", &["a1", "a2", "a3", "a4", "a5"]),
            ("B", &["b1", "b2"]),
            ("C", &["c1"]),
        ],
    );
    let start = utc("2026-06-01T00:00:00Z");
    let slots = main_slots(&s, UTC, start, start + Duration::minutes(16));
    assert_eq!(
        items_of(&slots),
        [
            "a1", "a2", "b1", "b2", "c1", "a3", "a4", "a5", // one whole loop
            "a1", "a2", "b1", "b2", "c1", "a3", "a4", "a5", // and again
        ]
    );
}

#[test]
fn d5_interleave_of_zero_plays_as_one_and_is_refused_by_validation() {
    let s = merge_fixture(
        MergeMode::Interleave { n: 0 },
        &[("A", &["a1", "a2"]), ("B", &["b1", "b2"])],
    );
    assert_eq!(s.validate(), Err(ScheduleError::ZeroInterleave));
    let start = utc("2026-06-01T00:00:00Z");
    let slots = main_slots(&s, UTC, start, start + Duration::minutes(4));
    assert_eq!(items_of(&slots), ["a1", "b1", "a2", "b2"]);
}

#[test]
fn d5_merged_loop_is_anchored_at_the_latest_winner_start() {
    let mut early = entry("early", vec![item("a", 1)]);
    early.dayparts = vec![part((8, 0), (18, 0))];
    let mut late = entry("late", vec![item("b", 1)]);
    late.dayparts = vec![part((9, 30), (18, 0))];
    let s = schedule(vec![early, late]);
    // 09:30 is when the merged set formed: the loop restarts there.
    let e = eval(&s, UTC, utc("2026-06-01T09:30:30Z"));
    assert_eq!(main_item(&e), Some("a"));
    assert_eq!(e.main.unwrap().started_at, utc("2026-06-01T09:30:00Z"));
    let e = eval(&s, UTC, utc("2026-06-01T09:31:30Z"));
    assert_eq!(main_item(&e), Some("b"));
}

// ---------------------------------------------------------------- layers

#[test]
fn d5_interrupt_preempts_a_higher_priority_main_and_main_resumes_on_its_clock() {
    let mut main = entry("main", vec![item("m1", 10), item("m2", 10)]);
    main.priority = 100;
    main.dayparts = vec![part((8, 0), (18, 0))];
    let mut alert = entry("alert", vec![item("alert", 5)]);
    alert.layer = Layer::Interrupt;
    alert.priority = -5;
    alert.dayparts = vec![part((8, 5), (8, 25))];
    let s = schedule(vec![main, alert]);

    let e = eval(&s, UTC, utc("2026-06-01T08:02:00Z"));
    assert_eq!(main_item(&e), Some("m1"));
    assert_eq!(e.next_change, utc("2026-06-01T08:05:00Z"));

    let e = eval(&s, UTC, utc("2026-06-01T08:06:00Z"));
    assert_eq!(main_item(&e), Some("alert"));
    assert_eq!(e.main.unwrap().started_at, utc("2026-06-01T08:05:00Z"));

    // After the interrupt, the main loop is where its clock (anchored 08:00) says.
    let e = eval(&s, UTC, utc("2026-06-01T08:26:00Z"));
    assert_eq!(main_item(&e), Some("m1"));
    assert_eq!(e.main.unwrap().started_at, utc("2026-06-01T08:20:00Z"));
}

#[test]
fn d5_equal_interrupts_merge_and_the_highest_interrupt_wins() {
    let mut a = entry("a", vec![item("ia", 1)]);
    a.layer = Layer::Interrupt;
    let mut b = entry("b", vec![item("ib", 1)]);
    b.layer = Layer::Interrupt;
    let mut low = entry("low", vec![item("il", 1)]);
    low.layer = Layer::Interrupt;
    low.priority = -1;
    let s = schedule(vec![a, low, b]);
    let start = utc("2026-06-01T00:00:00Z");
    let slots = main_slots(&s, UTC, start, start + Duration::minutes(4));
    assert_eq!(items_of(&slots), ["ia", "ib", "ia", "ib"]);
}

#[test]
fn d5_overlays_play_alongside_main_each_in_its_own_slot_highest_first() {
    let main = entry("main", vec![item("m", 10)]);
    let mut ticker = entry("ticker", vec![item("t1", 1), item("t2", 1)]);
    ticker.layer = Layer::Overlay;
    ticker.priority = 1;
    let mut logo = entry("logo", vec![item("logo", 60)]);
    logo.layer = Layer::Overlay;
    logo.priority = 9;
    let mut hidden = entry("hidden", vec![item("h", 1)]);
    hidden.layer = Layer::Overlay;
    hidden.weekdays = vec![Weekday::Sun];
    let s = schedule(vec![main, ticker, logo, hidden]);

    // 2026-06-01 is a Monday.
    let e = eval(&s, UTC, utc("2026-06-01T12:01:30Z"));
    assert_eq!(main_item(&e), Some("m"));
    let overlays: Vec<&str> = e.overlays.iter().map(|o| o.item.as_str()).collect();
    assert_eq!(overlays, ["logo", "t2"]);
    assert_eq!(
        e.next_change,
        utc("2026-06-01T12:02:00Z"),
        "the ticker item ends"
    );
}

#[test]
fn d5_an_overlay_alone_leaves_the_main_layer_to_the_default() {
    let mut ticker = entry("ticker", vec![item("t", 1)]);
    ticker.layer = Layer::Overlay;
    let s = Schedule {
        default_item: Some(item("idle", 1)),
        ..schedule(vec![ticker])
    };
    let e = eval(&s, UTC, utc("2026-06-01T12:00:00Z"));
    assert_eq!(main_item(&e), Some("idle"));
    assert_eq!(e.overlays.len(), 1);
}

// ---------------------------------------------------------------- calendars

#[test]
fn d5_weekdays_select_local_days() {
    let mut mondays = entry("mon", vec![item("a", 60)]);
    mondays.weekdays = vec![Weekday::Mon];
    let s = schedule(vec![mondays]);
    // Berlin, summer: local Monday is 2026-05-31T22:00Z .. 2026-06-01T22:00Z.
    assert_eq!(
        main_item(&eval(&s, Berlin, utc("2026-05-31T21:59:59Z"))),
        None
    );
    let e = eval(&s, Berlin, utc("2026-05-31T22:00:00Z"));
    assert_eq!(main_item(&e), Some("a"));
    assert_eq!(
        main_item(&eval(&s, Berlin, utc("2026-06-01T21:59:59Z"))),
        Some("a")
    );
    let e = eval(&s, Berlin, utc("2026-06-01T22:00:00Z"));
    assert_eq!(main_item(&e), None);
    assert_eq!(e.next_change, utc("2026-06-07T22:00:00Z"), "next Monday");
}

#[test]
fn d5_date_ranges_include_both_ends() {
    let mut e = entry("range", vec![item("a", 60)]);
    e.dates = Some(DateRange {
        first: date(2026, 6, 2),
        last: date(2026, 6, 4),
    });
    let s = schedule(vec![e]);
    assert_eq!(main_item(&eval(&s, UTC, utc("2026-06-01T23:59:59Z"))), None);
    assert_eq!(
        main_item(&eval(&s, UTC, utc("2026-06-02T00:00:00Z"))),
        Some("a")
    );
    assert_eq!(
        main_item(&eval(&s, UTC, utc("2026-06-04T23:59:59Z"))),
        Some("a")
    );
    assert_eq!(main_item(&eval(&s, UTC, utc("2026-06-05T00:00:00Z"))), None);
    assert_eq!(
        eval(&s, UTC, utc("2026-06-01T12:00:00Z")).next_change,
        utc("2026-06-02T00:00:00Z")
    );
    // The loop restarts at the range's start, not at each midnight.
    let at = utc("2026-06-03T00:30:00Z");
    assert_eq!(
        eval(&s, UTC, at).main.unwrap().started_at,
        at - Duration::minutes(30)
    );
}

#[test]
fn d5_daypart_wrapping_past_midnight_belongs_to_the_day_it_started() {
    let mut night = entry("night", vec![item("n", 45)]);
    night.dayparts = vec![part((22, 0), (6, 0))];
    night.weekdays = vec![Weekday::Fri];
    // 2026-06-05 is a Friday; the range ends that Friday.
    night.dates = Some(DateRange {
        first: date(2026, 6, 1),
        last: date(2026, 6, 5),
    });
    let s = schedule(vec![night.clone()]);
    assert!(
        !night.is_active(UTC, utc("2026-06-05T03:00:00Z")),
        "Friday morning"
    );
    assert!(!night.is_active(UTC, utc("2026-06-05T21:59:59Z")));
    assert!(night.is_active(UTC, utc("2026-06-05T22:00:00Z")));
    assert!(
        night.is_active(UTC, utc("2026-06-06T03:00:00Z")),
        "Saturday morning, past the range"
    );
    assert!(!night.is_active(UTC, utc("2026-06-06T06:00:00Z")));
    let e = eval(&s, UTC, utc("2026-06-06T05:50:00Z"));
    assert_eq!(main_item(&e), Some("n"));
    assert_eq!(
        e.next_change,
        utc("2026-06-06T06:00:00Z"),
        "the window closes mid-item"
    );
    // 470 minutes since 22:00: 470 mod 45 = 20 into the item.
    let slot = e.main.unwrap();
    assert_eq!(slot.started_at, utc("2026-06-06T05:30:00Z"));
    assert_eq!(
        slot.ends_at,
        utc("2026-06-06T06:15:00Z"),
        "ends_at is not clipped"
    );
}

#[test]
fn d5_equal_start_and_end_is_a_whole_day_and_touching_windows_form_one_interval() {
    let mut e = entry("day", vec![item("a", 7)]);
    e.dayparts = vec![Daypart::WHOLE_DAY];
    e.weekdays = vec![Weekday::Mon, Weekday::Tue];
    let s = schedule(vec![e]);
    // Monday 2026-06-01 and Tuesday are one interval, anchored Monday 00:00.
    let at = utc("2026-06-02T10:00:00Z");
    let started = eval(&s, UTC, at).main.unwrap().started_at;
    let since_monday = (at - utc("2026-06-01T00:00:00Z")).num_minutes();
    assert_eq!((at - started).num_minutes(), since_monday % 7);
    // The Monday/Tuesday midnight is not a change (1439 mod 7 = 4: the item
    // started 23:55 plays on to 00:02); the Tuesday/Wednesday one is.
    let e = eval(&s, UTC, utc("2026-06-01T23:59:00Z"));
    assert_eq!(e.next_change, utc("2026-06-02T00:02:00Z"));
    let slots = main_slots(
        &s,
        UTC,
        utc("2026-06-02T23:50:00Z"),
        utc("2026-06-03T00:10:00Z"),
    );
    assert_eq!(slots.last(), Some(&None));
}

// ---------------------------------------------------------------- default item and playability (A7)

#[test]
fn d5_default_item_plays_when_nothing_is_active() {
    let mut e = entry("e", vec![item("a", 1)]);
    e.dayparts = vec![part((8, 0), (9, 0))];
    let s = Schedule {
        default_item: Some(item("idle", 2)),
        ..schedule(vec![e])
    };
    let ev = eval(&s, UTC, utc("2026-06-01T12:01:00Z"));
    let slot = ev.main.unwrap();
    assert_eq!(slot.item.as_str(), "idle");
    assert_eq!(slot.entry, None);
    // On a grid of its duration from the Unix epoch.
    assert_eq!(slot.started_at, utc("2026-06-01T12:00:00Z"));
    assert_eq!(ev.next_change, utc("2026-06-01T12:02:00Z"));
}

#[test]
fn d5_a7_entries_with_only_unplayable_items_fall_through() {
    let mut pending = entry("pending", vec![item("p", 1), item("zero", 0)]);
    pending.priority = 10;
    let lower = entry("lower", vec![item("l", 1)]);
    let s = Schedule {
        default_item: Some(item("idle", 1)),
        ..schedule(vec![pending, lower])
    };
    let not_p = |i: &ItemId| i.as_str() != "p";
    let at = utc("2026-06-01T12:00:00Z");
    assert_eq!(main_item(&evaluate(&s, UTC, at, &not_p)), Some("l"));
    let only_idle = |i: &ItemId| i.as_str() == "idle";
    assert_eq!(main_item(&evaluate(&s, UTC, at, &only_idle)), Some("idle"));
    let nothing = |_: &ItemId| false;
    let e = evaluate(&s, UTC, at, &nothing);
    assert_eq!(e.main, None);
    assert!(e.overlays.is_empty());
    assert_eq!(e.next_change, at + Duration::days(8));
}

#[test]
fn d5_unplayable_items_are_skipped_inside_a_playlist() {
    let s = schedule(vec![entry(
        "e",
        vec![
            item("a", 1),
            item("pending", 1),
            item("zero", 0),
            item("b", 1),
        ],
    )]);
    let playable = |i: &ItemId| i.as_str() != "pending";
    let mut seen = Vec::new();
    let mut at = utc("2026-06-01T00:00:00Z");
    for _ in 0..4 {
        let e = evaluate(&s, UTC, at, &playable);
        seen.push(main_item(&e).unwrap().to_owned());
        at = e.next_change;
    }
    assert_eq!(seen, ["a", "b", "a", "b"]);
}

#[test]
fn d5_zero_duration_or_unplayable_default_gives_no_main() {
    for default in [item("idle", 0), item("blocked", 1)] {
        let s = Schedule {
            default_item: Some(default),
            ..schedule(vec![])
        };
        let playable = |i: &ItemId| i.as_str() != "blocked";
        let e = evaluate(&s, UTC, utc("2026-06-01T00:00:00Z"), &playable);
        assert_eq!(e.main, None);
    }
}

// ---------------------------------------------------------------- next_change

#[test]
fn d5_next_change_without_boundaries_is_the_horizon() {
    let mut later = entry("later", vec![item("a", 1)]);
    later.dates = Some(DateRange {
        first: date(2027, 1, 1),
        last: date(2027, 1, 2),
    });
    let s = schedule(vec![later]);
    let at = utc("2026-06-01T12:00:00Z");
    let e = eval(&s, UTC, at);
    let horizon = i64::try_from(NEXT_CHANGE_HORIZON_DAYS).unwrap();
    assert_eq!(e.next_change, at + Duration::days(horizon));
    // A long item (on the epoch grid it ends in 2027): the horizon comes first.
    let s = schedule(vec![entry("long", vec![item("a", 60 * 24 * 1000)])]);
    assert_eq!(eval(&s, UTC, at).next_change, at + Duration::days(horizon));
}

#[test]
fn d5_stepping_through_next_change_matches_minute_by_minute_evaluation() {
    let mut office = entry("office", vec![item("o1", 7), item("o2", 11)]);
    office.dayparts = vec![part((8, 0), (12, 30)), part((13, 15), (18, 0))];
    office.weekdays = vec![Weekday::Mon, Weekday::Tue, Weekday::Sat, Weekday::Sun];
    office.priority = 2;
    let mut promo = entry("promo", vec![item("p1", 5)]);
    promo.dayparts = vec![part((11, 0), (14, 0))];
    promo.priority = 2;
    let mut night = entry("night", vec![item("n1", 13), item("n2", 2)]);
    night.dayparts = vec![part((23, 0), (1, 30))];
    night.layer = Layer::Interrupt;
    let mut ticker = entry("ticker", vec![item("t1", 3)]);
    ticker.layer = Layer::Overlay;
    ticker.dayparts = vec![part((2, 15), (2, 45))];
    let s = Schedule {
        merge: MergeMode::Interleave { n: 1 },
        default_item: Some(item("idle", 17)),
        ..schedule(vec![office, promo, night, ticker])
    };
    // Across the Berlin spring-forward weekend.
    assert_consistent(&s, Berlin, utc("2026-03-27T00:00:00Z"), 4 * 24 * 60);
}

/// For every minute from `from`, the answer equals the one at the last step.
fn assert_consistent(s: &Schedule, tz: Tz, from: DateTime<Utc>, minutes: i64) {
    let to = from + Duration::minutes(minutes);
    let mut step = eval(s, tz, from);
    let mut step_at = from;
    let mut at = from;
    while at < to {
        if at >= step.next_change {
            step_at = step.next_change;
            step = eval(s, tz, step_at);
            assert!(step.next_change > step_at);
            continue;
        }
        let now = eval(s, tz, at);
        assert_eq!(
            (&now.main, &now.overlays),
            (&step.main, &step.overlays),
            "answer changed at {at}, after the step at {step_at} promised {}",
            step.next_change
        );
        at += Duration::minutes(1);
    }
}

// ---------------------------------------------------------------- daylight saving

fn office_hours() -> Schedule {
    let mut office = entry("office", vec![item("a", 24 * 60)]);
    office.dayparts = vec![part((8, 0), (18, 0))];
    schedule(vec![office])
}

#[test]
fn d5_dst_office_hours_start_at_the_right_utc_instant() {
    let s = office_hours();
    let cases = [
        // (tz, evening before, expected start of the window)
        (Berlin, "2026-03-27T20:00:00Z", "2026-03-28T07:00:00Z"),
        (Berlin, "2026-03-28T20:00:00Z", "2026-03-29T06:00:00Z"),
        (Berlin, "2026-10-23T20:00:00Z", "2026-10-24T06:00:00Z"),
        (Berlin, "2026-10-24T20:00:00Z", "2026-10-25T07:00:00Z"),
        (New_York, "2026-03-07T02:00:00Z", "2026-03-07T13:00:00Z"),
        (New_York, "2026-03-08T02:00:00Z", "2026-03-08T12:00:00Z"),
        (New_York, "2026-10-31T02:00:00Z", "2026-10-31T12:00:00Z"),
        (New_York, "2026-11-01T02:00:00Z", "2026-11-01T13:00:00Z"),
    ];
    for (tz, before, start) in cases {
        let e = eval(&s, tz, utc(before));
        assert_eq!(e.main, None, "{tz} {before}");
        assert_eq!(e.next_change, utc(start), "{tz} {before}");
        let e = eval(&s, tz, utc(start));
        let slot = e.main.unwrap();
        assert_eq!(
            slot.started_at,
            utc(start),
            "{tz}: the loop starts with the window"
        );
        // The window closes ten local hours later, which is ten real hours on these days.
        assert_eq!(
            e.next_change,
            utc(start) + Duration::hours(10),
            "{tz} {start}"
        );
    }
}

fn two_to_three(dates: Option<DateRange>) -> ScheduleEntry {
    let mut e = entry("night", vec![item("a", 60), item("b", 60)]);
    e.dayparts = vec![part((2, 0), (3, 0))];
    e.dates = dates;
    e
}

#[test]
fn d5_dst_a_daypart_inside_the_spring_gap_never_plays() {
    let day = date(2026, 3, 29);
    let only_that_day = two_to_three(Some(DateRange {
        first: day,
        last: day,
    }));
    let mut at = utc("2026-03-28T22:00:00Z");
    while at < utc("2026-03-29T23:00:00Z") {
        assert!(!only_that_day.is_active(Berlin, at), "{at}");
        at += Duration::minutes(1);
    }
    let s = schedule(vec![only_that_day]);
    let from = utc("2026-03-28T12:00:00Z");
    assert_eq!(eval(&s, Berlin, from).next_change, from + Duration::days(8));
    // Daily: the next window after the gap is Monday 02:00 CEST.
    let s = schedule(vec![two_to_three(None)]);
    assert_eq!(
        eval(&s, Berlin, from).next_change,
        utc("2026-03-30T00:00:00Z")
    );
}

#[test]
fn d5_dst_a_daypart_over_the_repeated_hour_plays_two_real_hours() {
    let s = schedule(vec![two_to_three(None)]);
    let slots = main_slots(
        &s,
        Berlin,
        utc("2026-10-24T12:00:00Z"),
        utc("2026-10-25T12:00:00Z"),
    );
    let items: Vec<_> = slots
        .iter()
        .map(|s| {
            s.as_ref()
                .map(|s| (s.item.to_string(), s.started_at, s.ends_at))
        })
        .collect();
    assert_eq!(
        items,
        [
            None,
            Some((
                "a".into(),
                utc("2026-10-25T00:00:00Z"),
                utc("2026-10-25T01:00:00Z")
            )),
            Some((
                "b".into(),
                utc("2026-10-25T01:00:00Z"),
                utc("2026-10-25T02:00:00Z")
            )),
            None,
        ]
    );
}

#[test]
fn d5_dst_window_edges_in_the_gap_and_the_repeated_hour_land_on_real_instants() {
    // Spring: a 02:30 opening happens when the clock jumps to 03:00 CEST.
    let mut e = entry("e", vec![item("a", 600)]);
    e.dayparts = vec![part((2, 30), (5, 0))];
    let s = schedule(vec![e.clone()]);
    let ev = eval(&s, Berlin, utc("2026-03-28T23:00:00Z"));
    assert_eq!(ev.next_change, utc("2026-03-29T01:00:00Z"));
    assert_eq!(
        eval(&s, Berlin, ev.next_change).main.unwrap().started_at,
        ev.next_change
    );
    // Autumn: 02:30–04:00 local is read as 02:30–03:00 CEST and 02:30 CET–04:00 CET.
    e.dayparts = vec![part((2, 30), (4, 0))];
    let s = schedule(vec![e]);
    let changes: Vec<DateTime<Utc>> = {
        let mut at = utc("2026-10-24T23:00:00Z");
        let mut out = Vec::new();
        while at < utc("2026-10-25T04:00:00Z") {
            at = eval(&s, Berlin, at).next_change;
            out.push(at);
        }
        out
    };
    assert_eq!(
        changes,
        [
            utc("2026-10-25T00:30:00Z"),
            utc("2026-10-25T01:00:00Z"),
            utc("2026-10-25T01:30:00Z"),
            utc("2026-10-25T03:00:00Z"),
            utc("2026-10-26T01:30:00Z"),
        ]
    );
    // New York's repeated 01:00–02:00 plays two real hours too.
    let mut ny = entry("ny", vec![item("a", 600)]);
    ny.dayparts = vec![part((1, 0), (2, 0))];
    assert!(!ny.is_active(New_York, utc("2026-11-01T04:59:59Z")));
    assert!(ny.is_active(New_York, utc("2026-11-01T05:00:00Z")));
    assert!(ny.is_active(New_York, utc("2026-11-01T06:59:59Z")));
    assert!(!ny.is_active(New_York, utc("2026-11-01T07:00:00Z")));
}

#[test]
fn d5_dst_a_loop_anchored_at_local_midnight_counts_real_time() {
    let mut sundays = entry("sun", vec![item("a", 45), item("b", 45)]);
    sundays.weekdays = vec![Weekday::Sun];
    let s = schedule(vec![sundays]);
    // Spring: local midnight is 2026-03-28T23:00Z; 01:10Z is 130 real minutes later
    // (190 by the wall clock): 130 mod 90 = 40 minutes into "a".
    let slot = eval(&s, Berlin, utc("2026-03-29T01:10:00Z")).main.unwrap();
    assert_eq!(slot.item.as_str(), "a");
    assert_eq!(slot.started_at, utc("2026-03-29T00:30:00Z"));
    assert_eq!(slot.ends_at, utc("2026-03-29T01:15:00Z"));
    // Autumn: local midnight is 2026-10-24T22:00Z; 03:10Z is 310 real minutes later
    // (250 by the wall clock): 310 mod 90 = 40 minutes into "a".
    let slot = eval(&s, Berlin, utc("2026-10-25T03:10:00Z")).main.unwrap();
    assert_eq!(slot.item.as_str(), "a");
    assert_eq!(slot.started_at, utc("2026-10-25T02:30:00Z"));
    // And the day ends at the next local midnight, 25 real hours after it began.
    let e = eval(&s, Berlin, utc("2026-10-25T22:50:00Z"));
    assert_eq!(e.next_change, utc("2026-10-25T23:00:00Z"));
}

// ---------------------------------------------------------------- validation

#[test]
fn d5_validate_accepts_a_sound_schedule() {
    let mut e = entry("e", vec![item("a", 1)]);
    e.weekdays = vec![Weekday::Mon, Weekday::Sun];
    e.dates = Some(DateRange {
        first: date(2026, 1, 1),
        last: date(2026, 1, 1),
    });
    let s = Schedule {
        merge: MergeMode::Interleave { n: 3 },
        ..schedule(vec![e, entry("f", vec![])])
    };
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn d5_validate_refuses_each_bad_input_with_its_own_error() {
    let dup = schedule(vec![
        entry("x", vec![]),
        entry("y", vec![]),
        entry("x", vec![]),
    ]);
    assert_eq!(
        dup.validate(),
        Err(ScheduleError::DuplicateEntryId {
            entry: EntryId::new("x")
        })
    );

    let mut backwards = entry("b", vec![]);
    backwards.dates = Some(DateRange {
        first: date(2026, 2, 2),
        last: date(2026, 2, 1),
    });
    assert_eq!(
        schedule(vec![backwards]).validate(),
        Err(ScheduleError::EmptyDateRange {
            entry: EntryId::new("b"),
            first: date(2026, 2, 2),
            last: date(2026, 2, 1),
        })
    );

    let mut twice = entry("w", vec![]);
    twice.weekdays = vec![Weekday::Tue, Weekday::Wed, Weekday::Tue];
    assert_eq!(
        schedule(vec![twice]).validate(),
        Err(ScheduleError::DuplicateWeekday {
            entry: EntryId::new("w"),
            weekday: Weekday::Tue
        })
    );

    let many_items = entry("i", vec![item("a", 1); MAX_ITEMS_PER_ENTRY + 1]);
    assert_eq!(
        schedule(vec![many_items]).validate(),
        Err(ScheduleError::TooManyItems {
            entry: EntryId::new("i"),
            count: MAX_ITEMS_PER_ENTRY + 1,
            max: MAX_ITEMS_PER_ENTRY
        })
    );
    assert_eq!(
        schedule(vec![entry("i", vec![item("a", 1); MAX_ITEMS_PER_ENTRY])]).validate(),
        Ok(())
    );

    let mut many_parts = entry("d", vec![]);
    many_parts.dayparts = vec![Daypart::WHOLE_DAY; MAX_DAYPARTS_PER_ENTRY + 1];
    assert_eq!(
        schedule(vec![many_parts]).validate(),
        Err(ScheduleError::TooManyDayparts {
            entry: EntryId::new("d"),
            count: MAX_DAYPARTS_PER_ENTRY + 1,
            max: MAX_DAYPARTS_PER_ENTRY
        })
    );

    let entries = (0..=MAX_ENTRIES)
        .map(|i| entry(&i.to_string(), vec![]))
        .collect();
    assert_eq!(
        schedule(entries).validate(),
        Err(ScheduleError::TooManyEntries {
            count: MAX_ENTRIES + 1,
            max: MAX_ENTRIES
        })
    );

    let zero = Schedule {
        merge: MergeMode::Interleave { n: 0 },
        ..schedule(vec![])
    };
    assert_eq!(zero.validate(), Err(ScheduleError::ZeroInterleave));
    assert!(
        ScheduleError::ZeroInterleave
            .to_string()
            .contains("interleave"),
        "errors read as sentences"
    );
}

// ---------------------------------------------------------------- serialisation

#[test]
fn d5_schedule_json_round_trips_and_refuses_unknown_fields() {
    let json = r#"{
        "entries": [{
            "id": "e1",
            "items": [{"item": "a", "duration_ms": 10000}],
            "dayparts": [{"start": "08:00:00", "end": "18:00:00"}],
            "weekdays": ["Mon", "Fri"],
            "dates": {"first": "2026-01-01", "last": "2026-12-31"},
            "priority": 5,
            "layer": "interrupt"
        }, {
            "id": "e2",
            "items": [],
            "priority": 0
        }],
        "merge": {"mode": "interleave", "n": 2},
        "default_item": {"item": "idle", "duration_ms": 5000}
    }"#;
    let s: Schedule = serde_json::from_str(json).unwrap();
    assert_eq!(s.entries[0].layer, Layer::Interrupt);
    assert_eq!(s.entries[0].weekdays, [Weekday::Mon, Weekday::Fri]);
    assert_eq!(s.entries[1].layer, Layer::Main);
    assert_eq!(s.merge, MergeMode::Interleave { n: 2 });
    let again: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(again, s);

    let typo = json.replace("\"priority\": 5", "\"priorty\": 5, \"priority\": 5");
    assert!(serde_json::from_str::<Schedule>(&typo).is_err());
    let typo = json.replace("\"n\": 2", "\"n\": 2, \"m\": 1");
    assert!(serde_json::from_str::<Schedule>(&typo).is_err());
}

// ---------------------------------------------------------------- properties

const ZONES: [Tz; 5] = [
    Berlin,
    New_York,
    UTC,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
];

/// Starts near daylight-saving changes of the zones above.
const STARTS: [&str; 6] = [
    "2026-03-27T00:00:00Z",
    "2026-03-06T00:00:00Z",
    "2026-10-23T00:00:00Z",
    "2026-10-30T00:00:00Z",
    "2026-04-03T00:00:00Z",
    "2026-10-02T00:00:00Z",
];

fn small_time() -> impl Strategy<Value = NaiveTime> {
    (
        0u32..24,
        prop_oneof![Just(0u32), Just(30), 0u32..60],
        prop_oneof![Just(0u32), 0u32..60],
    )
        .prop_map(|(h, m, s)| NaiveTime::from_hms_opt(h, m, s).unwrap())
}

fn small_entry(index: usize) -> impl Strategy<Value = ScheduleEntry> {
    (
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", "x"]),
                prop_oneof![Just(0u64), 1u64..90 * 60_000],
            ),
            0..4,
        ),
        prop::collection::vec((small_time(), small_time()), 0..3),
        0u8..128,
        prop::option::of((-3i64..6, 0i64..4)),
        0i32..3,
        prop::sample::select(vec![
            Layer::Main,
            Layer::Main,
            Layer::Interrupt,
            Layer::Overlay,
        ]),
    )
        .prop_map(move |(items, dayparts, days, dates, priority, layer)| {
            let base = date(2026, 3, 28);
            ScheduleEntry {
                id: EntryId::new(format!("e{index}")),
                items: items
                    .into_iter()
                    .map(|(id, duration_ms)| PlaylistItem {
                        item: ItemId::new(id),
                        duration_ms,
                    })
                    .collect(),
                dayparts: dayparts
                    .into_iter()
                    .map(|(start, end)| Daypart { start, end })
                    .collect(),
                weekdays: (0..7u8)
                    .filter(|b| days & (1 << b) != 0)
                    .map(|b| Weekday::try_from(b).unwrap())
                    .collect(),
                dates: dates.map(|(from, len)| DateRange {
                    first: base + Duration::days(from),
                    last: base + Duration::days(from + len),
                }),
                priority,
                layer,
            }
        })
}

fn small_schedule() -> impl Strategy<Value = Schedule> {
    (
        (0usize..4).prop_flat_map(|n| (0..n).map(small_entry).collect::<Vec<_>>()),
        prop_oneof![
            Just(MergeMode::Sequence),
            (0u32..3).prop_map(|n| MergeMode::Interleave { n })
        ],
        prop::option::of(
            prop_oneof![Just(0u64), 1u64..40 * 60_000].prop_map(|d| PlaylistItem {
                item: ItemId::new("idle"),
                duration_ms: d,
            }),
        ),
    )
        .prop_map(|(entries, merge, default_item)| Schedule {
            entries,
            merge,
            default_item,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// D5: between consecutive `next_change` values the answer never changes,
    /// checked minute by minute over two and a half days around DST changes.
    #[test]
    fn d5_next_change_never_skips_a_change(
        s in small_schedule(),
        zone in 0usize..ZONES.len(),
        start in 0usize..STARTS.len(),
        offset_s in 0i64..86_400,
    ) {
        let from = utc(STARTS[start]) + Duration::seconds(offset_s);
        let tz = ZONES[zone];
        let playable = |i: &ItemId| i.as_str() != "x";
        let to = from + Duration::minutes(60 * 60);
        let mut step_at = from;
        let mut step = evaluate(&s, tz, step_at, &playable);
        let mut at = from;
        while at < to {
            prop_assert!(step.next_change > step_at);
            if at >= step.next_change {
                // Also check the last nanosecond before the change.
                let just_before = step.next_change - Duration::nanoseconds(1);
                let then = evaluate(&s, tz, just_before, &playable);
                prop_assert_eq!((&then.main, &then.overlays), (&step.main, &step.overlays));
                step_at = step.next_change;
                step = evaluate(&s, tz, step_at, &playable);
                continue;
            }
            let now = evaluate(&s, tz, at, &playable);
            prop_assert_eq!(
                (&now.main, &now.overlays),
                (&step.main, &step.overlays),
                "changed at {} after step at {}", at, step_at
            );
            at += Duration::minutes(1);
        }
    }

    /// D5: evaluation and validation never panic, whatever the schedule, zone or instant.
    #[test]
    fn d5_evaluate_never_panics(
        entries in prop::collection::vec(
            (
                prop::collection::vec((any::<u8>(), any::<u64>()), 0..4),
                prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..4),
                prop::collection::vec(0u8..7, 0..9),
                prop::option::of((any::<i32>(), any::<i32>())),
                any::<i32>(),
                0u8..3,
            ),
            0..5,
        ),
        n in any::<u32>(),
        default in prop::option::of((any::<u8>(), any::<u64>())),
        zone in 0usize..chrono_tz::TZ_VARIANTS.len(),
        at_s in prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            any::<i64>(),
            -5_000_000_000i64..10_000_000_000,
        ],
        at_ns in 0u32..1_000_000_000,
    ) {
        let to_time = |secs: u32, nanos: u32| {
            NaiveTime::from_num_seconds_from_midnight_opt(secs % 86_400, nanos % 2_000_000_000)
                .unwrap_or(NaiveTime::MIN)
        };
        let to_date = |days: i32| {
            NaiveDate::from_num_days_from_ce_opt(days % 95_000_000).unwrap_or(NaiveDate::MIN)
        };
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, (items, parts, days, dates, priority, layer))| ScheduleEntry {
                id: EntryId::new(format!("e{}", i % 3)),
                items: items
                    .into_iter()
                    .map(|(id, duration_ms)| PlaylistItem { item: ItemId::new(format!("i{}", id % 4)), duration_ms })
                    .collect(),
                dayparts: parts
                    .into_iter()
                    .map(|(a, an, b, bn)| Daypart { start: to_time(a, an), end: to_time(b, bn) })
                    .collect(),
                weekdays: days.into_iter().map(|d| Weekday::try_from(d).unwrap()).collect(),
                dates: dates.map(|(f, l)| DateRange { first: to_date(f), last: to_date(l) }),
                priority,
                layer: [Layer::Main, Layer::Interrupt, Layer::Overlay][usize::from(layer)],
            })
            .collect();
        let s = Schedule {
            entries,
            merge: if n % 2 == 0 { MergeMode::Sequence } else { MergeMode::Interleave { n: n / 2 } },
            default_item: default.map(|(id, duration_ms)| PlaylistItem { item: ItemId::new(format!("i{}", id % 4)), duration_ms }),
        };
        let _ = s.validate();
        let at = DateTime::from_timestamp(at_s, at_ns).unwrap_or(if at_s < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        });
        let tz = chrono_tz::TZ_VARIANTS[zone];
        let playable = |i: &ItemId| i.as_str() != "i3";
        let e = evaluate(&s, tz, at, &playable);
        if at < DateTime::<Utc>::MAX_UTC - Duration::days(9) {
            prop_assert!(e.next_change > at);
        }
        for slot in e.main.iter().chain(&e.overlays) {
            prop_assert!(slot.started_at <= at);
        }
    }
}
