//! The schedule as it travels in a signed manifest, and its validation.
//!
//! Owns: the serialisable shape of a schedule (entries, dayparts, weekdays,
//! date ranges, priorities, layers, merge mode, default item) and the checks
//! that refuse a malformed one. Must not: decide what plays (that is
//! [`super::evaluate`]), look at item approval, licenses or the cache.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use crate::ids::{EntryId, ItemId};

/// The most entries one schedule may hold. Evaluation cost grows with entries
/// × dayparts; at 10 000 × 48 one evaluation took 0.5 s on an x86 core, so the
/// bound keeps a Pi well under a frame budget for any valid schedule.
pub const MAX_ENTRIES: usize = 1_000;
/// The most playlist items one entry may hold.
pub const MAX_ITEMS_PER_ENTRY: usize = 10_000;
/// The most dayparts one entry may hold.
pub const MAX_DAYPARTS_PER_ENTRY: usize = 48;

/// One item of a playlist and how long it stays on screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaylistItem {
    /// The content item to show.
    pub item: ItemId,
    /// How long the item shows per pass through the loop, in milliseconds; zero makes it unplayable.
    pub duration_ms: u64,
}

/// A local wall-clock window `[start, end)` that opens on every selected day.
///
/// `end <= start` wraps past midnight: the part after midnight belongs to the
/// day the window opened on. `start == end` is a full 24 hours from `start`
/// (so `00:00`–`00:00` is the whole calendar day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daypart {
    /// Local wall-clock time at which the window opens (inclusive).
    pub start: NaiveTime,
    /// Local wall-clock time at which the window closes (exclusive); at or before `start` means the next day.
    pub end: NaiveTime,
}

impl Daypart {
    /// The whole calendar day, `00:00`–`00:00`.
    pub const WHOLE_DAY: Daypart = Daypart {
        start: NaiveTime::MIN,
        end: NaiveTime::MIN,
    };
}

/// An inclusive range of local calendar dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    /// The first local date on which the entry may open (inclusive).
    pub first: NaiveDate,
    /// The last local date on which the entry may open (inclusive).
    pub last: NaiveDate,
}

/// Where an entry plays and how it competes with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The main layer: the highest priority active entries play, equal ones merge.
    #[default]
    Main,
    /// Preempts every main entry while active and playable; among interrupts the highest priority wins, equal ones merge.
    Interrupt,
    /// Plays on a layer above the main content; every active overlay entry gets its own slot.
    Overlay,
}

/// How equal-priority winners of one layer share the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(
    tag = "mode",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "MergeModeWire"
)]
pub enum MergeMode {
    /// One playlist after another, in schedule order.
    #[default]
    Sequence,
    /// Round-robin: `n` items from each playlist in turn; an exhausted playlist drops out.
    Interleave {
        /// How many items each playlist contributes per turn (validation refuses 0; evaluation treats it as 1).
        n: u32,
    },
}

/// [`MergeMode`] as read: serde ignores `deny_unknown_fields` on a unit
/// variant of an internally tagged enum, so `{"mode": "sequence", "x": 1}`
/// was taken; an empty struct variant refuses every other field (S1: a
/// document refuses what it does not know).
#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
enum MergeModeWire {
    Sequence {},
    Interleave { n: u32 },
}

impl From<MergeModeWire> for MergeMode {
    fn from(wire: MergeModeWire) -> Self {
        match wire {
            MergeModeWire::Sequence {} => Self::Sequence,
            MergeModeWire::Interleave { n } => Self::Interleave { n },
        }
    }
}

/// One scheduled playlist and when it may play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// Names the entry, unique within its schedule; slots and proofs of play refer to it.
    pub id: EntryId,
    /// The playlist, played in order and looped.
    pub items: Vec<PlaylistItem>,
    /// Local time windows in which the entry is active; empty means all day.
    #[serde(default)]
    pub dayparts: Vec<Daypart>,
    /// Local weekdays on which a daypart may open; empty means every day.
    #[serde(default)]
    pub weekdays: Vec<Weekday>,
    /// Local dates on which a daypart may open; `None` means no date limit.
    #[serde(default)]
    pub dates: Option<DateRange>,
    /// Higher wins within a layer.
    pub priority: i32,
    /// The layer the entry plays on.
    #[serde(default)]
    pub layer: Layer,
}

/// A device's schedule: entries, how equal winners merge, and a fallback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The entries, in schedule order (which orders merged playlists).
    pub entries: Vec<ScheduleEntry>,
    /// How equal-priority winners of a layer merge.
    #[serde(default)]
    pub merge: MergeMode,
    /// Shown on the main layer when no entry has anything playable.
    #[serde(default)]
    pub default_item: Option<PlaylistItem>,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule holds more than [`MAX_ENTRIES`] entries.
    #[error("schedule has {count} entries, at most {max} are allowed")]
    TooManyEntries {
        /// How many entries the schedule holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two entries share an id.
    #[error("entry id {entry} is used more than once")]
    DuplicateEntryId {
        /// The repeated id.
        entry: EntryId,
    },
    /// An entry holds more than [`MAX_ITEMS_PER_ENTRY`] items.
    #[error("entry {entry} has {count} items, at most {max} are allowed")]
    TooManyItems {
        /// The offending entry.
        entry: EntryId,
        /// How many items it holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An entry holds more than [`MAX_DAYPARTS_PER_ENTRY`] dayparts.
    #[error("entry {entry} has {count} dayparts, at most {max} are allowed")]
    TooManyDayparts {
        /// The offending entry.
        entry: EntryId,
        /// How many dayparts it holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An entry names the same weekday twice.
    #[error("entry {entry} names {weekday} more than once")]
    DuplicateWeekday {
        /// The offending entry.
        entry: EntryId,
        /// The repeated weekday.
        weekday: Weekday,
    },
    /// An entry's date range ends before it starts.
    #[error("entry {entry} has an empty date range: {first} is after {last}")]
    EmptyDateRange {
        /// The offending entry.
        entry: EntryId,
        /// The range's first date.
        first: NaiveDate,
        /// The range's last date, earlier than `first`.
        last: NaiveDate,
    },
    /// The merge mode interleaves zero items per turn.
    #[error("interleave must take at least one item per playlist per turn")]
    ZeroInterleave,
}

impl Schedule {
    /// Checks the schedule's invariants; the first violation found is returned.
    ///
    /// Zero-duration items and entries without items are allowed: evaluation
    /// skips them, as it skips unplayable items.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] naming the first offending entry.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(ScheduleError::TooManyEntries {
                count: self.entries.len(),
                max: MAX_ENTRIES,
            });
        }
        if self.merge == (MergeMode::Interleave { n: 0 }) {
            return Err(ScheduleError::ZeroInterleave);
        }
        let mut seen = BTreeSet::new();
        for entry in &self.entries {
            if !seen.insert(&entry.id) {
                return Err(ScheduleError::DuplicateEntryId {
                    entry: entry.id.clone(),
                });
            }
            entry.validate()?;
        }
        Ok(())
    }
}

impl ScheduleEntry {
    /// Checks this entry's own invariants (everything but id uniqueness).
    fn validate(&self) -> Result<(), ScheduleError> {
        if self.items.len() > MAX_ITEMS_PER_ENTRY {
            return Err(ScheduleError::TooManyItems {
                entry: self.id.clone(),
                count: self.items.len(),
                max: MAX_ITEMS_PER_ENTRY,
            });
        }
        if self.dayparts.len() > MAX_DAYPARTS_PER_ENTRY {
            return Err(ScheduleError::TooManyDayparts {
                entry: self.id.clone(),
                count: self.dayparts.len(),
                max: MAX_DAYPARTS_PER_ENTRY,
            });
        }
        let mut days = 0u8;
        for &weekday in &self.weekdays {
            let bit = 1u8 << weekday.num_days_from_monday();
            if days & bit != 0 {
                return Err(ScheduleError::DuplicateWeekday {
                    entry: self.id.clone(),
                    weekday,
                });
            }
            days |= bit;
        }
        if let Some(range) = self.dates
            && range.first > range.last
        {
            return Err(ScheduleError::EmptyDateRange {
                entry: self.id.clone(),
                first: range.first,
                last: range.last,
            });
        }
        Ok(())
    }
}
