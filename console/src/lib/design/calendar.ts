// The week calendar of a schedule (issue 16 Deliver 6, D5): which entry's
// windows fall on which day of a chosen week, laid out in lanes, and the
// edits made by dragging (moving and stretching a daypart, shifting
// weekdays). Same semantics as signet-common's `schedule` module: a window
// `[start, end)` with `end <= start` closes on the next day and belongs to
// the day it opened on; `start == end` is 24 hours; no dayparts is the
// whole day; no weekdays is every day; dates bound the day a window opens.
//
// Owns: the arithmetic. Must not: evaluate priorities (the hub's preview
// does that) or call the API.

/** Weekday names as the hub writes them, Monday first. */
export const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;
/** A weekday name. */
export type Weekday = (typeof WEEKDAYS)[number];

/** Minutes in a day. */
export const DAY = 24 * 60;

/** A local time window `{start, end}` as `HH:MM[:SS]`. */
export interface Daypart {
  /** Opens (inclusive). */
  start: string;
  /** Closes (exclusive); at or before `start` means the next day. */
  end: string;
}

/** One schedule entry as the calendar needs it. */
export interface Entry {
  /** Unique within the schedule. */
  id: string;
  /** The playlist it plays. */
  playlist: string;
  /** Higher wins within a layer. */
  priority: number;
  /** `main`, `interrupt` or `overlay`. */
  layer: string;
  /** Local weekdays; empty means every day. */
  weekdays: string[];
  /** Windows; empty means the whole day. */
  dayparts: Daypart[];
  /** Inclusive local dates, or null for no limit. */
  dates: { first: string; last: string } | null;
}

/** A block drawn on the calendar: part of one window on one day column. */
export interface Block {
  /** Index of the entry in the schedule. */
  entry: number;
  /** Index of the daypart (-1 for an entry without dayparts, the whole day). */
  daypart: number;
  /** Day column 0 (Monday) to 6 (Sunday). */
  day: number;
  /** Start within the day, minutes. */
  from: number;
  /** End within the day, minutes (up to 1440). */
  to: number;
  /** Whether this is the part after midnight of a window opened the day before. */
  carried: boolean;
  /** Lane within the day (overlapping blocks side by side). */
  lane: number;
  /** How many lanes the overlapping group of this block uses. */
  lanes: number;
}

/** `HH:MM[:SS]` as minutes after midnight (seconds dropped); NaN when malformed. */
export function minutes(time: string): number {
  const m = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(time);
  if (!m) return NaN;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 23 || min > 59) return NaN;
  return h * 60 + min;
}

/** Minutes after midnight (wrapped into a day) as `HH:MM:00`. */
export function clock(total: number): string {
  const t = ((Math.round(total) % DAY) + DAY) % DAY;
  return `${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}:00`;
}

/** `HH:MM` for display. */
export function short(time: string): string {
  return time.slice(0, 5);
}

/** The local date `YYYY-MM-DD` of `d` (its own fields). */
export function isoDate(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** The Monday on or before `date` (`YYYY-MM-DD`), computed in UTC arithmetic. */
export function mondayOf(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  const back = (d.getUTCDay() + 6) % 7;
  d.setUTCDate(d.getUTCDate() - back);
  return d.toISOString().slice(0, 10);
}

/** The seven dates of the week starting `monday`. */
export function weekDates(monday: string): string[] {
  const d = new Date(`${monday}T00:00:00Z`);
  return Array.from({ length: 7 }, (_, i) => {
    const x = new Date(d);
    x.setUTCDate(d.getUTCDate() + i);
    return x.toISOString().slice(0, 10);
  });
}

/** Whether `entry` may open a window on `date` (weekday `day`, 0 = Monday). */
export function opensOn(entry: Entry, day: number, date: string): boolean {
  const name = WEEKDAYS[day] as string;
  if (entry.weekdays.length && !entry.weekdays.includes(name)) return false;
  if (entry.dates && (date < entry.dates.first || date > entry.dates.last)) return false;
  return true;
}

/** A window's span in minutes from the start of the day it opens: [from, to) with to up to 2880. */
export function span(dp: Daypart | null): { from: number; to: number } {
  if (!dp) return { from: 0, to: DAY };
  const from = minutes(dp.start);
  let to = minutes(dp.end);
  if (to <= from) to += DAY;
  return { from, to };
}

/**
 * The blocks of the week starting `monday`: each window on each day it
 * opens, the part past midnight drawn on the next day (Sunday's spills
 * into nothing shown), laid out in lanes per day.
 */
export function layout(entries: readonly Entry[], monday: string): Block[] {
  const dates = weekDates(monday);
  const blocks: Omit<Block, 'lane' | 'lanes'>[] = [];
  // The day before Monday may carry a window into Monday morning.
  const before = new Date(`${monday}T00:00:00Z`);
  before.setUTCDate(before.getUTCDate() - 1);
  const days: { day: number; date: string }[] = [{ day: -1, date: before.toISOString().slice(0, 10) }, ...dates.map((date, day) => ({ day, date }))];
  entries.forEach((entry, e) => {
    const parts: (Daypart | null)[] = entry.dayparts.length ? entry.dayparts : [null];
    parts.forEach((dp, p) => {
      const { from, to } = span(dp);
      if (Number.isNaN(from) || Number.isNaN(to)) return;
      for (const { day, date } of days) {
        const weekday = (day + 7) % 7;
        if (!opensOn(entry, weekday, date)) continue;
        const daypart = dp ? p : -1;
        if (day >= 0) blocks.push({ entry: e, daypart, day, from, to: Math.min(to, DAY), carried: false });
        if (to > DAY && day + 1 <= 6) blocks.push({ entry: e, daypart, day: day + 1, from: 0, to: to - DAY, carried: true });
      }
    });
  });
  return lanes(blocks);
}

/** Assigns lanes per day: overlapping blocks side by side, in entry order. */
export function lanes(blocks: Omit<Block, 'lane' | 'lanes'>[]): Block[] {
  const out: Block[] = [];
  for (let day = 0; day < 7; day++) {
    const list = blocks.filter((b) => b.day === day).sort((a, b) => a.from - b.from || a.entry - b.entry || a.daypart - b.daypart);
    let group: Block[] = [];
    let groupEnd = -1;
    const close = () => {
      const n = Math.max(1, ...group.map((b) => b.lane + 1));
      for (const b of group) b.lanes = n;
      out.push(...group);
      group = [];
    };
    for (const b of list) {
      if (group.length && b.from >= groupEnd) close();
      const used = new Set(group.filter((g) => g.to > b.from).map((g) => g.lane));
      let lane = 0;
      while (used.has(lane)) lane++;
      group.push({ ...b, lane, lanes: 1 });
      groupEnd = Math.max(groupEnd, b.to);
    }
    close();
  }
  return out;
}

/** `value` rounded to a multiple of `step` minutes. */
export function snapMinutes(value: number, step: number): number {
  return step > 1 ? Math.round(value / step) * step : Math.round(value);
}

/**
 * A daypart moved by `delta` minutes (snapped to `step`), keeping its
 * length; a window may cross midnight, and its opening time stays within
 * the day. An entry without dayparts (the whole day) is first made an
 * explicit 00:00–00:00 window.
 */
export function moveDaypart(dp: Daypart | null, delta: number, step: number): Daypart {
  const { from, to } = span(dp);
  const length = to - from;
  const start = ((snapMinutes(from + delta, step) % DAY) + DAY) % DAY;
  return { start: clock(start), end: clock(start + (length >= DAY ? 0 : length)) };
}

/**
 * A daypart whose end is dragged by `delta` minutes (snapped to `step`):
 * at least `step` long, at most 24 hours (then `end == start`).
 */
export function stretchDaypart(dp: Daypart | null, delta: number, step: number): Daypart {
  const { from, to } = span(dp);
  const length = Math.max(step, Math.min(DAY, snapMinutes(to + delta, step) - from));
  return { start: clock(from), end: clock(from + (length >= DAY ? 0 : length)) };
}

/** Weekdays shifted by `delta` days (Mon + 1 = Tue, Sun + 1 = Mon), kept in week order; empty (every day) stays empty. */
export function shiftWeekdays(weekdays: readonly string[], delta: number): string[] {
  if (!weekdays.length) return [];
  const idx = weekdays.map((w) => WEEKDAYS.indexOf(w as Weekday)).filter((i) => i >= 0);
  const moved = new Set(idx.map((i) => (((i + delta) % 7) + 7) % 7));
  return WEEKDAYS.filter((_, i) => moved.has(i));
}

/** A short description of when an entry opens: weekdays, windows and dates. */
export function describe(entry: Entry): string {
  const days = entry.weekdays.length ? entry.weekdays.join(', ') : 'every day';
  const windows = entry.dayparts.length ? entry.dayparts.map((d) => `${short(d.start)}–${short(d.end)}`).join(', ') : 'all day';
  const dates = entry.dates ? `, ${entry.dates.first} to ${entry.dates.last}` : '';
  return `${days}, ${windows}${dates}`;
}

/** A `datetime-local` value (`YYYY-MM-DDTHH:MM`) as an instant, reading it in the IANA zone `tz`. */
export function zonedInstant(local: string, tz: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local);
  if (!m) return new Date(NaN);
  const [y, mo, d, h, mi] = m.slice(1).map(Number) as [number, number, number, number, number];
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  // Two rounds of "what does the zone say at this guess" settle the offset
  // (also across a change).
  let guess = wall;
  for (let i = 0; i < 2; i++) guess = wall - offsetAt(guess, tz);
  return new Date(guess);
}

/** The offset of `tz` from UTC at `instant`, in milliseconds. */
export function offsetAt(instant: number, tz: string): number {
  const f = new Intl.DateTimeFormat('en-GB', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const parts = Object.fromEntries(f.formatToParts(new Date(instant)).map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return asUtc - Math.floor(instant / 1000) * 1000;
}

/** An instant shown as local wall-clock time in `tz` (`YYYY-MM-DD HH:MM:SS`). */
export function wallClock(instant: string | Date, tz: string): string {
  const t = typeof instant === 'string' ? new Date(instant) : instant;
  if (Number.isNaN(t.getTime())) return '—';
  try {
    return new Intl.DateTimeFormat('sv-SE', {
      timeZone: tz,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    }).format(t);
  } catch {
    return t.toISOString();
  }
}
