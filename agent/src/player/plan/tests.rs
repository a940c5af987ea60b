//! The plan without a player, a cache or a clock: outlooks in, plans out.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use signet_common::ids::{EntryId, ItemId};
use signet_common::play::{Permit, SkipReason};
use signet_common::schedule::Slot;
use signet_common::sync::Outcome;

use super::{Look, MainChange, Screen};
use crate::decide::Outlook;
use crate::player::PlaybackError;
use crate::state::Documents;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn slot(item: &str, entry: Option<&str>, start: i64, end: i64) -> Slot {
    Slot {
        item: ItemId::from(item),
        entry: entry.map(EntryId::from),
        started_at: at(start),
        ends_at: at(end),
    }
}

fn permit(until: Option<i64>) -> Permit {
    Permit {
        group: "node-1".to_owned(),
        access_group: None,
        license_version: None,
        until: until.map(at),
    }
}

/// An outlook with `main` on the main layer, changing at `next`.
fn outlook(main: Option<(Slot, Permit)>, next: i64) -> Outlook {
    Outlook {
        main,
        overlays: Vec::new(),
        skipped: Vec::new(),
        next_change: at(next),
        upcoming: None,
    }
}

fn look(documents: &Documents, now: i64, outlook: Option<Outlook>) -> Look<'_> {
    Look {
        documents,
        now: at(now),
        errors: Vec::new(),
        outlook,
        awaiting: BTreeSet::new(),
    }
}

fn screen() -> Screen {
    Screen::new("dev-1".to_owned(), "linux".to_owned())
}

/// D4, D1: an item that may play is shown, and what plays is published;
/// looking again at the same slot changes nothing on screen.
#[test]
fn d4_an_allowed_slot_is_shown_once_and_published() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 60);
    let plan = screen.step(look(
        &documents,
        1,
        Some(outlook(Some((a.clone(), permit(None))), 60)),
    ));
    assert_eq!(plan.main, Some(MainChange::Show(a.clone())));
    assert!(plan.events.is_empty());
    assert_eq!(
        plan.now_playing.as_ref().map(|n| n.item.as_str()),
        Some("a")
    );
    assert_eq!(plan.wake, at(60));

    let again = screen.step(look(
        &documents,
        2,
        Some(outlook(Some((a, permit(None))), 60)),
    ));
    assert_eq!(again.main, None, "the same slot is not shown again");
    assert!(again.events.is_empty());
    assert_eq!(screen.now_showing().map(|(_, since)| since), Some(at(1)));
}

/// U1: when the slot changes, the play that ended is recorded with its
/// real duration, and the next one is shown.
#[test]
fn u1_the_ended_play_is_recorded_with_its_real_duration() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 10);
    let b = slot("b", None, 10, 20);
    screen.step(look(
        &documents,
        0,
        Some(outlook(Some((a, permit(None))), 10)),
    ));
    let plan = screen.step(look(
        &documents,
        10,
        Some(outlook(Some((b.clone(), permit(None))), 20)),
    ));
    assert_eq!(plan.main, Some(MainChange::Show(b)));
    assert_eq!(plan.events.len(), 1);
    let played = &plan.events[0];
    assert_eq!(played.item.as_str(), "a");
    assert_eq!(played.outcome, Outcome::Played);
    assert_eq!(played.duration_ms, 10_000);
    assert_eq!(played.start, at(0));
    assert_eq!(played.device_id.as_str(), "dev-1");
    assert_eq!(played.os, "linux");
}

/// D4: nothing may play any more: the screen is cleared and nothing is
/// published as playing.
#[test]
fn d4_nothing_allowed_clears_the_screen() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 10);
    screen.step(look(
        &documents,
        0,
        Some(outlook(Some((a, permit(None))), 10)),
    ));
    let plan = screen.step(look(&documents, 5, Some(outlook(None, 100))));
    assert_eq!(plan.main, Some(MainChange::Clear));
    assert_eq!(plan.events.len(), 1, "the play so far is recorded");
    assert_eq!(plan.now_playing, None);
}

/// D4: without an assignment nothing may play: what showed ends and the
/// loop looks again within seconds.
#[test]
fn d4_without_an_assignment_nothing_plays() {
    let documents = Documents::default();
    let mut screen = screen();
    let empty = screen.step(look(&documents, 0, None));
    assert_eq!(empty.main, None, "a blank screen is not cleared again");
    assert_eq!(empty.wake, at(5));

    let a = slot("a", None, 0, 60);
    screen.step(look(
        &documents,
        0,
        Some(outlook(Some((a, permit(None))), 60)),
    ));
    let plan = screen.step(look(&documents, 3, None));
    assert_eq!(plan.main, Some(MainChange::Clear));
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.now_playing, None);
}

/// D4, U1: a due slot that may not play is reported as skipped with its
/// reason, once per slot however often the loop looks.
#[test]
fn d4_a_skipped_slot_is_reported_once_with_its_reason() {
    let documents = Documents::default();
    let mut screen = screen();
    let due = slot("late", None, 0, 30);
    let mut skipping = outlook(None, 30);
    skipping.skipped = vec![(due, SkipReason::NotCached)];
    let first = screen.step(look(&documents, 2, Some(skipping.clone())));
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].outcome, Outcome::Skipped);
    assert_eq!(first.events[0].start, at(0), "a skip starts at its slot");
    assert_eq!(
        first.events[0].skip_reason.as_deref(),
        Some(SkipReason::NotCached.to_string().as_str())
    );
    let second = screen.step(look(&documents, 3, Some(skipping)));
    assert!(second.events.is_empty(), "reported once per slot");
}

/// D9, A8: a slot whose file waits to be hashed is not reported as
/// skipped: the hash decides first.
#[test]
fn d9_a_file_awaiting_its_hash_is_not_a_skip_yet() {
    let documents = Documents::default();
    let mut screen = screen();
    let mut waiting = outlook(None, 30);
    waiting.skipped = vec![(slot("fresh", None, 0, 30), SkipReason::NotCached)];
    let mut look = look(&documents, 1, Some(waiting));
    look.awaiting.insert(ItemId::from("fresh"));
    assert!(screen.step(look).events.is_empty());
}

/// D7: the upcoming slot is prepared once, before it is due.
#[test]
fn d7_the_upcoming_slot_is_prerolled_once() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 10);
    let mut ahead = outlook(Some((a, permit(None))), 10);
    ahead.upcoming = Some(slot("b", None, 10, 20));
    let first = screen.step(look(&documents, 0, Some(ahead.clone())));
    assert_eq!(first.preroll, Some(ItemId::from("b")));
    let second = screen.step(look(&documents, 1, Some(ahead)));
    assert_eq!(second.preroll, None);
}

/// D4, S6: the loop wakes when a permit on screen ends (a license or
/// the offline grace), even before the schedule changes.
#[test]
fn d4_the_loop_wakes_when_a_permit_ends() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 600);
    let plan = screen.step(look(
        &documents,
        0,
        Some(outlook(Some((a, permit(Some(120)))), 600)),
    ));
    assert_eq!(plan.wake, at(120));
}

/// D7, U1: an item the player cannot decode is skipped with the player's
/// message and taken off the main layer, so the next step shows again.
#[test]
fn d7_a_player_failure_is_a_skip_and_frees_the_main_layer() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 60);
    screen.step(look(
        &documents,
        0,
        Some(outlook(Some((a.clone(), permit(None))), 60)),
    ));
    let mut failing = look(
        &documents,
        1,
        Some(outlook(Some((a.clone(), permit(None))), 60)),
    );
    failing.errors = vec![PlaybackError {
        item: ItemId::from("a"),
        message: "no decoder".to_owned(),
    }];
    let plan = screen.step(failing);
    assert_eq!(plan.events[0].outcome, Outcome::Skipped);
    assert_eq!(
        plan.events[0].skip_reason.as_deref(),
        Some("player: no decoder")
    );
    assert_eq!(plan.main, Some(MainChange::Show(a)), "shown afresh");
}

/// D1, U1: a show the player refuses is one skip (once per slot), the
/// main layer stays empty, nothing is published as playing, and the plan
/// keeps the skip before the overlays' events.
#[test]
fn d1_a_refused_show_is_one_skip_and_an_empty_main_layer() {
    let documents = Documents::default();
    let mut screen = screen();
    let overlay = slot("logo", Some("e-1"), 0, 5);
    let mut first = outlook(None, 5);
    first.overlays = vec![(overlay, permit(None))];
    screen.step(look(&documents, 0, Some(first)));

    let a = slot("a", None, 5, 60);
    let refused = outlook(Some((a.clone(), permit(Some(30)))), 60);
    let mut plan = screen.step(look(&documents, 5, Some(refused.clone())));
    assert_eq!(plan.main, Some(MainChange::Show(a.clone())));
    assert_eq!(plan.wake, at(30));
    assert_eq!(plan.events.len(), 1, "the overlay's play ended");
    screen.show_failed(&mut plan, &documents, &a, "unavailable", at(5));
    assert_eq!(plan.events.len(), 2);
    assert_eq!(
        plan.events[0].skip_reason.as_deref(),
        Some("player: unavailable")
    );
    assert_eq!(plan.events[1].item.as_str(), "logo");
    assert_eq!(plan.now_playing, None);
    assert_eq!(plan.wake, at(60), "no permit on screen any more");
    assert_eq!(screen.now_showing(), None);

    let mut again = screen.step(look(&documents, 6, Some(refused)));
    assert_eq!(again.main, Some(MainChange::Show(a.clone())), "tried again");
    screen.show_failed(&mut again, &documents, &a, "unavailable", at(6));
    assert!(again.events.is_empty(), "reported once per slot");
}

/// U1: shutting down records every play on screen up to now.
#[test]
fn u1_finishing_records_the_plays_on_screen() {
    let documents = Documents::default();
    let mut screen = screen();
    let mut both = outlook(Some((slot("a", None, 0, 60), permit(None))), 60);
    both.overlays = vec![(slot("logo", Some("e-1"), 0, 60), permit(None))];
    screen.step(look(&documents, 0, Some(both)));
    let events = screen.finish(&documents, at(0) + TimeDelta::seconds(7));
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.duration_ms == 7_000));
    assert_eq!(screen.now_showing(), None);
}

/// D8 (restart_player): a restart forgets the main layer, so the next step
/// shows it again without recording a play for the cut.
#[test]
fn d8_a_restarted_player_is_shown_the_slot_again() {
    let documents = Documents::default();
    let mut screen = screen();
    let a = slot("a", None, 0, 60);
    screen.step(look(
        &documents,
        0,
        Some(outlook(Some((a.clone(), permit(None))), 60)),
    ));
    screen.forget_main();
    let plan = screen.step(look(
        &documents,
        9,
        Some(outlook(Some((a.clone(), permit(None))), 60)),
    ));
    assert_eq!(plan.main, Some(MainChange::Show(a)));
    assert!(plan.events.is_empty());
}
