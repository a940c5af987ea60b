//! Schedules (D5): what a screen plays at an instant, decided from the clock alone.
//!
//! Owns: the schedule carried in a signed manifest ([`Schedule`] and its
//! parts), its validation ([`Schedule::validate`]) and its evaluation
//! ([`evaluate`]). Must not: do I/O, read the system clock, keep state between
//! evaluations, or decide on its own whether an item may play (approval,
//! license and cache state arrive as the caller's `playable`, D4/A7).
//!
//! # Semantics
//!
//! **Activity.** An entry is active at an instant if, on the device's local
//! wall clock (IANA zone `tz`), some daypart window holds the local time and
//! that window opened on a local date that is inside `dates` (inclusive) and
//! on one of `weekdays`. No dayparts means one window `00:00`–`00:00`; no
//! weekdays means every day. A window `[start, end)` with `end <= start`
//! closes on the next day, and still belongs to the day it opened on (a
//! Friday 22:00–06:00 window plays into Saturday morning, but not into
//! Friday morning). `start == end` is 24 hours from `start`.
//!
//! Comparisons are in local wall-clock time, so across daylight-saving changes:
//! when the clock falls back, a window over the repeated hour is active during
//! both of its occurrences (a 02:00–03:00 window in Berlin on 2026-10-25 plays
//! two real hours); when it springs forward, a window lying wholly inside the
//! skipped hour never plays, and a window edge inside the gap takes effect at
//! the first instant after the gap. A whole day is 23 or 25 real hours then.
//!
//! **Playability.** Only items with `duration_ms > 0` for which `playable`
//! answers true take part. An entry with none of them behaves as inactive, so
//! lower priorities or the default item take over; this is how pending or
//! inactive items (A7) never play.
//!
//! **Layers and priority.** If any interrupt entry is active and playable, the
//! interrupts with the highest priority among them play on the main layer,
//! whatever the priority of main entries. Otherwise the active, playable main
//! entries with the highest priority play. Several equal winners merge per
//! [`MergeMode`]: one playlist after another in schedule order, or `n` items
//! from each in turn, an exhausted playlist dropping out. With no winner, the
//! default item plays if it is playable; otherwise the main layer is empty.
//! Every active, playable overlay entry plays its own playlist in its own
//! [`Slot`] of [`Evaluation::overlays`], highest priority first, ties in
//! schedule order; overlays never merge and never displace the main layer.
//!
//! **Loop position.** Nothing is remembered between evaluations, so every
//! screen with the same schedule shows the same item at the same instant. A
//! playlist loops from an *anchor*: the start of the uninterrupted interval in
//! which its entry has been active (for merged winners, the latest of their
//! starts; windows that touch, such as all-day windows on consecutive days,
//! form one interval). The item at `at` is found at `(at - anchor) mod
//! loop length` in real elapsed time, so a loop anchored at local midnight
//! keeps real-time arithmetic across a daylight-saving change. When a
//! preempting entry ends, the preempted loop resumes where its clock says,
//! not where it stopped. The interval start is sought at most
//! [`ANCHOR_LOOKBACK_DAYS`] back; a longer interval, or one with no start (an
//! always-active entry with no dates), is anchored at the Unix epoch. An entry
//! that opens a 24-hour window every day is recognised as continuous from its
//! first date, however long ago. The default item loops on a grid from the
//! Unix epoch.
//!
//! **Next change.** [`Evaluation::next_change`] is the earliest instant
//! strictly after `at` at which the answer may differ: the natural end of the
//! current main or overlay item, or an instant at which a playable entry
//! becomes active or inactive (window edges, which cover midnights where
//! weekdays or dates matter; and the instants at which the zone's offset
//! changes, if they change some entry's activity). A window edge read twice
//! because the clock fell back yields both instants. If no such instant lies
//! within [`NEXT_CHANGE_HORIZON_DAYS`] days, `next_change` is `at` plus that
//! horizon: a time to evaluate again, not a promise of change. (Only at the
//! very end of the representable time range does it saturate at `at`.)

mod evaluate;
mod local;
mod model;

pub use evaluate::{ANCHOR_LOOKBACK_DAYS, Evaluation, NEXT_CHANGE_HORIZON_DAYS, Slot, evaluate};
pub use model::{
    DateRange, Daypart, Layer, MAX_DAYPARTS_PER_ENTRY, MAX_ENTRIES, MAX_ITEMS_PER_ENTRY, MergeMode,
    PlaylistItem, Schedule, ScheduleEntry, ScheduleError,
};
