//! What a schedule plays at an instant, and until when that answer holds.
//!
//! Owns: entry activity in the device's time zone, priority and layer
//! resolution, merging of equal winners, clock-derived loop positions and the
//! next instant at which the answer may change. Must not: keep state between
//! calls, read the clock, or judge playability itself (the caller's
//! `playable` does that, D4). The semantics are documented on [`super`].

use std::cmp::Reverse;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::local::{
    earliest_instant_of, instants_of, local_of, nanos_between, offset_changes, shifted,
};
use super::model::{DateRange, Daypart, Layer, MergeMode, PlaylistItem, Schedule, ScheduleEntry};
use crate::ids::{EntryId, ItemId};

/// How far ahead `next_change` looks for a boundary; with none nearer, it is `at` plus this many days.
pub const NEXT_CHANGE_HORIZON_DAYS: u64 = 8;

/// How far back the start of an entry's active interval is sought before the loop is anchored at the Unix epoch instead.
pub const ANCHOR_LOOKBACK_DAYS: u64 = 400;

/// Local days one step of the look-back walk moves the cursor back by, at least.
const WALK_STEP_DAYS: u64 = 5;

/// One thing on screen: an item, where it came from, and its place in the loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// The item to show.
    pub item: ItemId,
    /// The entry whose playlist holds it; `None` for the schedule's default item.
    pub entry: Option<EntryId>,
    /// When this pass of the item began, by the loop clock.
    pub started_at: DateTime<Utc>,
    /// When this pass of the item naturally ends; the entry's window may close earlier (see `next_change`).
    pub ends_at: DateTime<Utc>,
}

/// The answer of [`evaluate`]: what plays now and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// The main layer: an interrupt, else the highest-priority main entries, else the default item, else nothing.
    pub main: Option<Slot>,
    /// One slot per active overlay entry with a playable item, highest priority first (ties in schedule order).
    pub overlays: Vec<Slot>,
    /// Strictly after `at`: the earliest instant at which this answer may differ, or `at` plus the horizon.
    pub next_change: DateTime<Utc>,
}

/// Decides what `schedule` plays at `at` on a device in time zone `tz`.
///
/// `playable` says whether an item may play now (approved, licensed, cached:
/// D4); items it refuses are skipped as if absent. Deterministic: every device
/// with the same inputs gets the same answer. Never panics, on any schedule,
/// validated or not.
#[must_use]
pub fn evaluate(
    schedule: &Schedule,
    tz: Tz,
    at: DateTime<Utc>,
    playable: &dyn Fn(&ItemId) -> bool,
) -> Evaluation {
    let contenders: Vec<Contender<'_>> = schedule
        .entries
        .iter()
        .filter_map(|entry| Contender::of(entry, playable))
        .collect();
    let active: Vec<&Contender<'_>> = contenders
        .iter()
        .filter(|c| c.calendar.is_active(tz, at))
        .collect();

    let main = main_slot(&active, schedule.merge, tz, at)
        .or_else(|| default_slot(schedule.default_item.as_ref(), at, playable));
    let overlays = overlay_slots(&active, tz, at);

    let horizon_end = at
        .checked_add_days(Days::new(NEXT_CHANGE_HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let item_end = main
        .iter()
        .chain(&overlays)
        .map(|slot| slot.ends_at)
        .filter(|&end| end > at)
        .fold(horizon_end, DateTime::min);
    let next_change = next_activity_change(&contenders, tz, at, item_end);

    Evaluation {
        main,
        overlays,
        next_change,
    }
}

impl ScheduleEntry {
    /// Whether the entry's dates, weekdays and dayparts select `at` in time zone `tz` (ignores playability).
    #[must_use]
    pub fn is_active(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        Calendar::of(self).is_active(tz, at)
    }
}

/// An entry that has something to play: its playable, non-zero-length items.
struct Contender<'a> {
    /// The entry itself.
    entry: &'a ScheduleEntry,
    /// When the entry is active.
    calendar: Calendar<'a>,
    /// The items that may play, in playlist order; never empty.
    playlist: Vec<&'a PlaylistItem>,
}

impl<'a> Contender<'a> {
    /// The entry as a contender, or `None` if nothing in it can play.
    fn of(entry: &'a ScheduleEntry, playable: &dyn Fn(&ItemId) -> bool) -> Option<Self> {
        let playlist: Vec<&PlaylistItem> = entry
            .items
            .iter()
            .filter(|p| p.duration_ms > 0 && playable(&p.item))
            .collect();
        (!playlist.is_empty()).then(|| Contender {
            entry,
            calendar: Calendar::of(entry),
            playlist,
        })
    }
}

/// An entry's timing rules, with its weekdays folded into a bitset.
struct Calendar<'a> {
    /// The local windows; empty means all day.
    dayparts: &'a [Daypart],
    /// Bit `n` set: windows open on the weekday `n` days from Monday.
    weekdays: u8,
    /// The local dates on which windows open, if limited.
    dates: Option<DateRange>,
}

/// All seven weekday bits.
const EVERY_DAY: u8 = 0x7f;

impl<'a> Calendar<'a> {
    /// The timing rules of `entry`.
    fn of(entry: &'a ScheduleEntry) -> Self {
        let weekdays = entry
            .weekdays
            .iter()
            .fold(0u8, |bits, day| bits | 1 << day.num_days_from_monday());
        Calendar {
            dayparts: &entry.dayparts,
            weekdays: if weekdays == 0 { EVERY_DAY } else { weekdays },
            dates: entry.dates,
        }
    }

    /// Whether windows open on local date `day`.
    fn opens_on(&self, day: NaiveDate) -> bool {
        self.weekdays & (1 << day.weekday().num_days_from_monday()) != 0
            && self
                .dates
                .is_none_or(|range| range.first <= day && day <= range.last)
    }

    /// The local windows `[open, close)` that open on `day`.
    fn windows_opening_on(
        &self,
        day: NaiveDate,
    ) -> impl Iterator<Item = (NaiveDateTime, NaiveDateTime)> + '_ {
        let parts: &[Daypart] = if !self.opens_on(day) {
            &[]
        } else if self.dayparts.is_empty() {
            std::slice::from_ref(&Daypart::WHOLE_DAY)
        } else {
            self.dayparts
        };
        parts.iter().filter_map(move |part| {
            let close_day = if part.end > part.start {
                day
            } else {
                day.succ_opt()?
            };
            Some((day.and_time(part.start), close_day.and_time(part.end)))
        })
    }

    /// Whether some window holds the local wall-clock time `local`.
    fn is_active_local(&self, local: NaiveDateTime) -> bool {
        let day = local.date();
        // A window lasts at most 24 hours, so only windows opening today or yesterday can hold `local`.
        [day.pred_opt(), Some(day)]
            .into_iter()
            .flatten()
            .flat_map(|d| self.windows_opening_on(d))
            .any(|(open, close)| open <= local && local < close)
    }

    /// Whether the entry is active at instant `at` in time zone `tz`.
    fn is_active(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        local_of(tz, at).is_some_and(|local| self.is_active_local(local))
    }

    /// Whether activity differs just before `at` and at `at`.
    fn changes_at(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        at.checked_sub_signed(TimeDelta::nanoseconds(1))
            .is_some_and(|before| self.is_active(tz, before) != self.is_active(tz, at))
    }

    /// Every instant at which a window opening on a day in `first..=last` opens or closes.
    ///
    /// Together with the zone's offset changes these are the only instants at
    /// which activity can change: between them the local clock runs
    /// continuously and crosses no window edge.
    fn edges(&self, tz: Tz, first: NaiveDate, last: NaiveDate) -> Vec<DateTime<Utc>> {
        let span = usize::try_from(last.signed_duration_since(first).num_days().max(0))
            .unwrap_or(0)
            .saturating_add(1);
        let mut locals: Vec<NaiveDateTime> = first
            .iter_days()
            .take(span)
            .flat_map(|day| self.windows_opening_on(day))
            .flat_map(|(open, close)| [open, close])
            .collect();
        locals.sort_unstable();
        locals.dedup();
        locals
            .into_iter()
            .flat_map(|local| instants_of(tz, local))
            .flatten()
            .collect()
    }

    /// The local time at which a 24-hour window opens every day, if one does.
    ///
    /// Such an entry is active without a break from its first date on.
    fn continuous_from(&self) -> Option<NaiveTime> {
        if self.weekdays != EVERY_DAY {
            return None;
        }
        if self.dayparts.is_empty() {
            return Some(NaiveTime::MIN);
        }
        self.dayparts
            .iter()
            .find(|part| part.start == part.end)
            .map(|part| part.start)
    }

    /// The start of the contiguous active interval that holds `at` (which must be active).
    ///
    /// Walks back over window edges and offset changes, a few days at a time,
    /// for at most [`ANCHOR_LOOKBACK_DAYS`]; an interval reaching further back
    /// (or forever, when the entry has no dates) is anchored at the Unix epoch.
    fn interval_start(&self, tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
        let mut cursor = at;
        if let Some(open) = self.continuous_from() {
            let Some(range) = self.dates else {
                return DateTime::UNIX_EPOCH;
            };
            // Active without a break from the first window on: skip straight there.
            if let Some(first_open) = earliest_instant_of(tz, range.first.and_time(open))
                && first_open < cursor
            {
                cursor = first_open;
            }
        }
        for _ in 0..ANCHOR_LOOKBACK_DAYS / WALK_STEP_DAYS {
            let Some(day) = local_of(tz, cursor).map(|local| local.date()) else {
                return cursor;
            };
            let (Some(first), Some(last), Some(floor_day)) = (
                day.checked_sub_days(Days::new(7)),
                day.checked_add_days(Days::new(1)),
                day.checked_sub_days(Days::new(WALK_STEP_DAYS)),
            ) else {
                return cursor;
            };
            // Edges at or after `floor` are all among those of windows opening
            // in `first..=last`: older windows close a day before it.
            let Some(floor) = earliest_instant_of(tz, floor_day.and_time(NaiveTime::MIN)) else {
                return cursor;
            };
            let mut edges = self.edges(tz, first, last);
            let before_floor = floor
                .checked_sub_signed(TimeDelta::nanoseconds(1))
                .unwrap_or(floor);
            edges.extend(offset_changes(tz, before_floor, cursor));
            edges.retain(|&edge| floor <= edge && edge <= cursor);
            edges.sort_unstable_by(|a, b| b.cmp(a));
            edges.dedup();
            if let Some(start) = edges
                .into_iter()
                .find(|&edge| !self.was_active_before(tz, edge))
            {
                return start;
            }
            if floor >= cursor {
                return cursor;
            }
            cursor = floor;
        }
        DateTime::UNIX_EPOCH
    }

    /// Whether the entry was active just before `at`.
    fn was_active_before(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        at.checked_sub_signed(TimeDelta::nanoseconds(1))
            .is_some_and(|before| self.is_active(tz, before))
    }
}

/// The main layer's slot from the active contenders, if any has something to play.
fn main_slot(
    active: &[&Contender<'_>],
    merge: MergeMode,
    tz: Tz,
    at: DateTime<Utc>,
) -> Option<Slot> {
    let layer = if active.iter().any(|c| c.entry.layer == Layer::Interrupt) {
        Layer::Interrupt
    } else {
        Layer::Main
    };
    let competing = active.iter().filter(|c| c.entry.layer == layer);
    let top = competing.clone().map(|c| c.entry.priority).max()?;
    let winners: Vec<&Contender<'_>> = competing
        .filter(|c| c.entry.priority == top)
        .copied()
        .collect();
    let anchor = winners
        .iter()
        .map(|w| w.calendar.interval_start(tz, at))
        .max()?;
    loop_slot(&merged(&winners, merge), anchor, at)
}

/// The winners' playlists merged into one loop, each item with its entry.
fn merged<'a>(
    winners: &[&Contender<'a>],
    merge: MergeMode,
) -> Vec<(&'a PlaylistItem, Option<&'a EntryId>)> {
    let n = match merge {
        MergeMode::Sequence => {
            return winners
                .iter()
                .flat_map(|&w| w.playlist.iter().map(|&item| (item, Some(&w.entry.id))))
                .collect();
        }
        MergeMode::Interleave { n } => usize::try_from(n.max(1)).unwrap_or(usize::MAX),
    };
    let total: usize = winners.iter().map(|w| w.playlist.len()).sum();
    let mut loop_items = Vec::with_capacity(total);
    let mut taken = vec![0usize; winners.len()];
    // Every round takes at least one item until all are taken.
    for _ in 0..total {
        if loop_items.len() >= total {
            break;
        }
        for (winner, taken) in winners.iter().zip(taken.iter_mut()) {
            let end = taken.saturating_add(n).min(winner.playlist.len());
            if let Some(turn) = winner.playlist.get(*taken..end) {
                loop_items.extend(turn.iter().map(|&item| (item, Some(&winner.entry.id))));
            }
            *taken = end;
        }
    }
    loop_items
}

/// One slot per active overlay contender, highest priority first.
fn overlay_slots(active: &[&Contender<'_>], tz: Tz, at: DateTime<Utc>) -> Vec<Slot> {
    let mut slots: Vec<(i32, Slot)> = active
        .iter()
        .filter(|c| c.entry.layer == Layer::Overlay)
        .filter_map(|c| {
            let playlist: Vec<_> = c
                .playlist
                .iter()
                .map(|&item| (item, Some(&c.entry.id)))
                .collect();
            let slot = loop_slot(&playlist, c.calendar.interval_start(tz, at), at)?;
            Some((c.entry.priority, slot))
        })
        .collect();
    slots.sort_by_key(|(priority, _)| Reverse(*priority));
    slots.into_iter().map(|(_, slot)| slot).collect()
}

/// The default item looped on a grid from the Unix epoch, if it can play.
fn default_slot(
    default_item: Option<&PlaylistItem>,
    at: DateTime<Utc>,
    playable: &dyn Fn(&ItemId) -> bool,
) -> Option<Slot> {
    let item = default_item.filter(|d| d.duration_ms > 0 && playable(&d.item))?;
    loop_slot(&[(item, None)], DateTime::UNIX_EPOCH, at)
}

/// The item of `playlist` that plays at `at` when the loop restarts every pass from `anchor`.
fn loop_slot(
    playlist: &[(&PlaylistItem, Option<&EntryId>)],
    anchor: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Option<Slot> {
    let nanos = |item: &PlaylistItem| i128::from(item.duration_ms) * 1_000_000;
    let total = playlist
        .iter()
        .fold(0i128, |sum, (item, _)| sum.saturating_add(nanos(item)));
    if total <= 0 {
        return None;
    }
    let mut into_item = nanos_between(anchor, at).rem_euclid(total);
    for (item, entry) in playlist {
        let length = nanos(item);
        if into_item < length {
            return Some(Slot {
                item: item.item.clone(),
                entry: entry.cloned(),
                started_at: shifted(at, -into_item),
                ends_at: shifted(at, length - into_item),
            });
        }
        into_item -= length;
    }
    None
}

/// The earliest instant in `(at, limit)` at which some contender's activity changes, else `limit`.
fn next_activity_change(
    contenders: &[Contender<'_>],
    tz: Tz,
    at: DateTime<Utc>,
    limit: DateTime<Utc>,
) -> DateTime<Utc> {
    let Some(today) = local_of(tz, at).map(|local| local.date()) else {
        return limit;
    };
    let first = today.pred_opt().unwrap_or(today);
    let last = today
        .checked_add_days(Days::new(NEXT_CHANGE_HORIZON_DAYS + 1))
        .unwrap_or(NaiveDate::MAX);
    let shifts = offset_changes(tz, at, limit);
    let mut best = limit;
    for contender in contenders {
        // Windows opening well after `best` cannot change anything before it.
        let until = local_of(tz, best)
            .and_then(|local| local.date().checked_add_days(Days::new(2)))
            .map_or(last, |day| day.min(last));
        let mut edges = contender.calendar.edges(tz, first, until);
        edges.extend(&shifts);
        edges.retain(|&edge| at < edge && edge < best);
        edges.sort_unstable();
        edges.dedup();
        if let Some(change) = edges
            .into_iter()
            .find(|&edge| contender.calendar.changes_at(tz, edge))
        {
            best = change;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use proptest::prelude::*;

    fn entry(dayparts: Vec<Daypart>, days: u8, dates: Option<(i64, i64)>) -> ScheduleEntry {
        let base = NaiveDate::from_ymd_opt(2026, 10, 20).unwrap();
        ScheduleEntry {
            id: EntryId::new("e"),
            items: vec![],
            dayparts,
            weekdays: (0..7u8)
                .filter(|b| days & (1 << b) != 0)
                .map(|b| Weekday::try_from(b).unwrap())
                .collect(),
            dates: dates.map(|(from, len)| DateRange {
                first: base + TimeDelta::days(from),
                last: base + TimeDelta::days(from + len),
            }),
            priority: 0,
            layer: Layer::Main,
        }
    }

    fn daypart() -> impl Strategy<Value = Daypart> {
        let time = (0u32..24, prop_oneof![Just(0u32), 0u32..60])
            .prop_map(|(h, m)| NaiveTime::from_hms_opt(h, m, 0).unwrap());
        (time.clone(), time).prop_map(|(start, end)| Daypart { start, end })
    }

    proptest! {
        /// D5: the anchor is the start of the uninterrupted active interval
        /// holding `at`: active from there to `at` (checked every minute), and
        /// inactive just before.
        #[test]
        fn d5_interval_start_is_where_activity_began(
            dayparts in prop::collection::vec(daypart(), 0..4),
            days in 0u8..128,
            dates in prop::option::of((-10i64..3, 0i64..12)),
            zone in prop::sample::select(vec![
                chrono_tz::Europe::Berlin,
                chrono_tz::America::New_York,
                chrono_tz::Australia::Lord_Howe,
            ]),
            offset_min in 0i64..(14 * 24 * 60),
        ) {
            let entry = entry(dayparts, days, dates);
            let calendar = Calendar::of(&entry);
            let from = "2026-10-18T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
                + TimeDelta::minutes(offset_min);
            // The first active instant on a 7-minute grid within two days, if any.
            let Some(at) = (0..(2 * 24 * 60 / 7))
                .map(|k| from + TimeDelta::minutes(7 * k))
                .find(|&t| calendar.is_active(zone, t))
            else {
                return Ok(());
            };
            let start = calendar.interval_start(zone, at);
            prop_assert!(start <= at);
            if start == DateTime::UNIX_EPOCH {
                prop_assert!(dates.is_none());
            } else {
                prop_assert!(!calendar.was_active_before(zone, start), "{start}");
                let mut probe = start;
                while probe <= at {
                    prop_assert!(calendar.is_active(zone, probe), "{probe}");
                    probe += TimeDelta::minutes(1);
                }
            }
        }
    }

    #[test]
    fn d5_every_day_windows_are_continuous_from_the_first_date_however_long_ago() {
        let mut e = entry(vec![Daypart::WHOLE_DAY], EVERY_DAY, None);
        e.dates = Some(DateRange {
            first: NaiveDate::from_ymd_opt(2001, 1, 1).unwrap(),
            last: NaiveDate::from_ymd_opt(2100, 1, 1).unwrap(),
        });
        let at = "2026-06-01T12:00:00Z".parse().unwrap();
        assert_eq!(
            Calendar::of(&e).interval_start(chrono_tz::Europe::Berlin, at),
            "2000-12-31T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        e.dates = None;
        assert_eq!(
            Calendar::of(&e).interval_start(chrono_tz::Europe::Berlin, at),
            DateTime::UNIX_EPOCH
        );
    }
}
