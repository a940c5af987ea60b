//! When a publication runs (U5): now, once at a time, or daily at a local
//! time in an IANA zone.
//!
//! Owns: [`When`] as the API takes it, [`JobSchedule`] as a job stores it,
//! and the pure arithmetic of the next run ([`next_daily`]). Must not: touch
//! the store.

use chrono::{DateTime, Days, NaiveTime, TimeDelta, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// When to publish, as a request states it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "WhenWire"
)]
pub enum When {
    /// Build, sign, store and publish now.
    #[default]
    Immediate,
    /// Once, at this instant (RFC 3339, in the future).
    At {
        /// When to run.
        at: DateTime<Utc>,
    },
    /// Every day at a local wall-clock time.
    Daily {
        /// Local time `HH:MM` (24-hour).
        time: String,
        /// The IANA zone the time is read in, e.g. `Europe/Berlin`.
        time_zone: String,
    },
}

/// [`When`] as read: serde ignores `deny_unknown_fields` on a unit variant
/// of an internally tagged enum, so `{"type": "immediate", "at": …}` was
/// taken as "now"; an empty struct variant refuses every other field.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum WhenWire {
    Immediate {},
    At { at: DateTime<Utc> },
    Daily { time: String, time_zone: String },
}

impl From<WhenWire> for When {
    fn from(wire: WhenWire) -> Self {
        match wire {
            WhenWire::Immediate {} => Self::Immediate,
            WhenWire::At { at } => Self::At { at },
            WhenWire::Daily { time, time_zone } => Self::Daily { time, time_zone },
        }
    }
}

/// Why a [`When`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// `at` is not after now.
    #[error("'at' must be in the future (now is {now})")]
    InThePast {
        /// The hub's time.
        now: DateTime<Utc>,
    },
    /// `time` is not `HH:MM`.
    #[error("'time' must be HH:MM (00:00 to 23:59), not {0:?}")]
    BadTime(String),
    /// `time_zone` is not an IANA name.
    #[error("{0:?} is not an IANA time zone name (e.g. Europe/Berlin)")]
    BadTimeZone(String),
}

/// A stored job's timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobSchedule {
    /// Runs once at `at`.
    At {
        /// When.
        at: DateTime<Utc>,
    },
    /// Runs every day at `time` local time in `time_zone`.
    Daily {
        /// Local wall-clock time.
        #[schema(value_type = String)]
        time: NaiveTime,
        /// The IANA zone.
        #[schema(value_type = String)]
        time_zone: Tz,
    },
}

impl JobSchedule {
    /// The first run after `now`: `at` itself, or the next daily time.
    #[must_use]
    pub fn first_run(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::At { at } => Some(*at),
            Self::Daily { time, time_zone } => next_daily(*time, *time_zone, now),
        }
    }

    /// The run after one that was due at or before `now`: none for `At`;
    /// the next daily time strictly after `now` (missed days are not
    /// caught up: a daily push runs at most once per run of the loop).
    #[must_use]
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::At { .. } => None,
            Self::Daily { time, time_zone } => next_daily(*time, *time_zone, now),
        }
    }
}

/// Checks a requested [`When`] against `now`; `Ok(None)` for immediate.
///
/// # Errors
/// [`WhenError`] naming the bad field.
pub fn schedule_of(when: &When, now: DateTime<Utc>) -> Result<Option<JobSchedule>, WhenError> {
    match when {
        When::Immediate => Ok(None),
        When::At { at } => {
            if *at <= now {
                return Err(WhenError::InThePast { now });
            }
            Ok(Some(JobSchedule::At { at: *at }))
        }
        When::Daily { time, time_zone } => {
            let parsed = parse_hh_mm(time).ok_or_else(|| WhenError::BadTime(time.clone()))?;
            let zone = time_zone
                .parse::<Tz>()
                .map_err(|_| WhenError::BadTimeZone(time_zone.clone()))?;
            Ok(Some(JobSchedule::Daily {
                time: parsed,
                time_zone: zone,
            }))
        }
    }
}

/// `HH:MM` with two digits each, 00:00 to 23:59.
fn parse_hh_mm(text: &str) -> Option<NaiveTime> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// The first instant strictly after `now` at which the clock in `zone`
/// reads `time`. A time skipped by a forward DST jump runs at the first
/// instant after the jump; a time read twice (clocks set back) runs at the
/// first reading. `None` only beyond chrono's calendar.
#[must_use]
pub fn next_daily(time: NaiveTime, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = now.with_timezone(&zone).date_naive();
    // Yesterday covers zones where "today" in UTC is already tomorrow
    // locally; three days cover any DST gap.
    let mut date = today.checked_sub_days(Days::new(1))?;
    for _ in 0..4 {
        let local = date.and_time(time);
        let instant = match zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                Some(t.to_utc())
            }
            // In a forward gap: the first whole minute after it.
            chrono::LocalResult::None => (1..=180).find_map(|minutes| {
                zone.from_local_datetime(&(local + TimeDelta::minutes(minutes)))
                    .earliest()
                    .map(|t| t.to_utc())
            }),
        };
        if let Some(instant) = instant
            && instant > now
        {
            return Some(instant);
        }
        date = date.checked_add_days(Days::new(1))?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn u5_daily_runs_at_the_next_local_time() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        // Winter: UTC+1.
        assert_eq!(
            next_daily(six, berlin, utc("2025-01-10T04:00:00Z")),
            Some(utc("2025-01-10T05:00:00Z"))
        );
        assert_eq!(
            next_daily(six, berlin, utc("2025-01-10T05:00:00Z")),
            Some(utc("2025-01-11T05:00:00Z"))
        );
        // A time skipped by the spring jump (02:30 on 2025-03-30) runs right after it.
        let half_two = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            next_daily(half_two, berlin, utc("2025-03-29T12:00:00Z")),
            Some(utc("2025-03-30T01:00:00Z"))
        );
        // Far east: local date ahead of UTC.
        let auckland: Tz = "Pacific/Auckland".parse().unwrap();
        let one = NaiveTime::from_hms_opt(1, 0, 0).unwrap();
        let next = next_daily(one, auckland, utc("2025-01-10T11:00:00Z")).unwrap();
        assert!(next > utc("2025-01-10T11:00:00Z"));
        assert!(next - utc("2025-01-10T11:00:00Z") <= TimeDelta::days(1));
    }

    #[test]
    fn u5_bad_when_is_refused() {
        let now = utc("2025-01-10T04:00:00Z");
        assert!(matches!(
            schedule_of(&When::At { at: now }, now),
            Err(WhenError::InThePast { .. })
        ));
        for bad in [
            "6:00", "24:00", "06:60", "06-00", "0600", "06:00:00", "ab:cd",
        ] {
            let when = When::Daily {
                time: bad.into(),
                time_zone: "UTC".into(),
            };
            assert_eq!(
                schedule_of(&when, now),
                Err(WhenError::BadTime(bad.into())),
                "{bad}"
            );
        }
        let when = When::Daily {
            time: "06:00".into(),
            time_zone: "Mars/Olympus".into(),
        };
        assert!(matches!(
            schedule_of(&when, now),
            Err(WhenError::BadTimeZone(_))
        ));
        assert_eq!(schedule_of(&When::Immediate, now), Ok(None));
    }
}
