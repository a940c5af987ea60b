//! Conversions between UTC instants and a device's local wall-clock time.
//!
//! Owns: reading the local clock at an instant, finding every instant at which
//! the local clock reads (or jumps over) a given wall-clock time, and finding
//! the instants at which a zone's UTC offset changes. Must not: know about
//! schedules. Every search here is a bounded loop; nothing panics, however far
//! an instant lies from today (out-of-range results come back as `None`).

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// Wider than any UTC offset in the tz database (which stays within ±15 h), in seconds.
const OFFSET_BOUND_SECS: i64 = 30 * 3600;

/// How often [`offset_changes`] samples the offset: closer than any two real transitions.
const SAMPLE_STEP_SECS: i64 = 3 * 3600;

/// The most samples one call to [`offset_changes`] takes (covers 16 days).
const MAX_SAMPLES: usize = 128;

/// The local wall-clock time at `at`, or `None` beyond the calendar's range.
pub(super) fn local_of(tz: Tz, at: DateTime<Utc>) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&at.naive_utc()).fix();
    at.naive_utc().checked_add_offset(offset)
}

/// The UTC offset in force at `at`, in seconds east of UTC.
fn offset_secs(tz: Tz, at: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Every instant at which the local clock reads `local`, earliest first.
///
/// Usually one instant; two when the clock is set back and `local` is read
/// twice; for a time skipped by a forward jump, the first instant after the
/// jump (the moment the clock passes over `local`).
pub(super) fn instants_of(tz: Tz, local: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => [Some(t.to_utc()), None],
        chrono::LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.to_utc(), b.to_utc());
            [Some(a.min(b)), Some(a.max(b))]
        }
        chrono::LocalResult::None => [gap_end(tz, local), None],
    }
}

/// The earliest instant at which the local clock reads `local` or has just passed over it.
pub(super) fn earliest_instant_of(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    instants_of(tz, local)[0]
}

/// The first instant after the forward jump that skips `local`.
///
/// Binary search over whole seconds (the tz database changes offsets on
/// whole seconds) for the first instant whose local reading exceeds `local`.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let guess = local.and_utc().timestamp();
    let mut before = guess.checked_sub(OFFSET_BOUND_SECS)?;
    let mut after = guess.checked_add(OFFSET_BOUND_SECS)?;
    // Invariant: the clock reads less than `local` at `before`, more at `after`.
    for _ in 0..64 {
        if after - before <= 1 {
            break;
        }
        let mid = before + (after - before) / 2;
        let reading = local_of(tz, DateTime::from_timestamp(mid, 0)?)?;
        if reading < local {
            before = mid;
        } else {
            after = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
}

/// The instants in `(from, to]` at which the zone's UTC offset changes.
///
/// Samples every three hours and bisects to the second where the offset
/// differs; covers at most 16 days after `from`.
pub(super) fn offset_changes(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut changes = Vec::new();
    let mut prev = from.timestamp();
    let end = to.timestamp();
    let mut prev_offset = offset_secs(tz, from);
    for _ in 0..MAX_SAMPLES {
        if prev >= end {
            break;
        }
        let next = prev.saturating_add(SAMPLE_STEP_SECS).min(end);
        let Some(next_at) = DateTime::from_timestamp(next, 0) else {
            break;
        };
        let next_offset = offset_secs(tz, next_at);
        if next_offset != prev_offset
            && let Some(change) = first_with_other_offset(tz, prev, next, prev_offset)
            && change > from
            && change <= to
        {
            changes.push(change);
        }
        prev = next;
        prev_offset = next_offset;
    }
    changes
}

/// The first whole second in `(before, after]` whose offset is not `offset`, given that `after`'s is not.
fn first_with_other_offset(
    tz: Tz,
    mut before: i64,
    mut after: i64,
    offset: i32,
) -> Option<DateTime<Utc>> {
    for _ in 0..64 {
        if after - before <= 1 {
            break;
        }
        let mid = before + (after - before) / 2;
        if offset_secs(tz, DateTime::from_timestamp(mid, 0)?) == offset {
            before = mid;
        } else {
            after = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
}

/// `at` moved by `nanos`, saturating at the ends of the representable range.
pub(super) fn shifted(at: DateTime<Utc>, nanos: i128) -> DateTime<Utc> {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    let delta = i64::try_from(secs)
        .ok()
        .zip(u32::try_from(sub).ok())
        .and_then(|(secs, sub)| TimeDelta::new(secs, sub));
    match delta.and_then(|delta| at.checked_add_signed(delta)) {
        Some(moved) => moved,
        None if nanos < 0 => DateTime::<Utc>::MIN_UTC,
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// Nanoseconds from `from` to `to` (negative if `to` is earlier); exact over the whole range.
pub(super) fn nanos_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i128 {
    let of = |t: DateTime<Utc>| {
        i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
    };
    of(to) - of(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_skipped_time_maps_to_the_end_of_the_gap() {
        let tz = chrono_tz::Europe::Berlin;
        assert_eq!(
            instants_of(tz, local(2026, 3, 29, 2, 30)),
            [Some(utc("2026-03-29T01:00:00Z")), None]
        );
    }

    #[test]
    fn a_repeated_time_maps_to_both_instants() {
        let tz = chrono_tz::Europe::Berlin;
        assert_eq!(
            instants_of(tz, local(2026, 10, 25, 2, 30)),
            [
                Some(utc("2026-10-25T00:30:00Z")),
                Some(utc("2026-10-25T01:30:00Z"))
            ]
        );
    }

    #[test]
    fn offset_changes_are_found_to_the_second() {
        let tz = chrono_tz::America::New_York;
        let found = offset_changes(tz, utc("2026-03-01T00:00:00Z"), utc("2026-03-12T00:00:00Z"));
        assert_eq!(found, vec![utc("2026-03-08T07:00:00Z")]);
        assert!(
            offset_changes(
                chrono_tz::UTC,
                utc("2026-03-01T00:00:00Z"),
                utc("2026-03-12T00:00:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn extremes_do_not_panic() {
        for tz in [chrono_tz::Pacific::Kiritimati, chrono_tz::Etc::GMTPlus12] {
            let _ = local_of(tz, DateTime::<Utc>::MAX_UTC);
            let _ = local_of(tz, DateTime::<Utc>::MIN_UTC);
            let _ = instants_of(tz, NaiveDateTime::MAX);
            let _ = instants_of(tz, NaiveDateTime::MIN);
            let _ = offset_changes(tz, DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC);
        }
        assert_eq!(
            shifted(DateTime::<Utc>::MAX_UTC, 1),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            shifted(DateTime::<Utc>::MIN_UTC, -1),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
