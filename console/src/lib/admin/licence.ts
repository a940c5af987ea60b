// Licence terms of an access group (L1, L2, L5) as the console edits and
// explains them: durations in words and units, the plain-language summary
// ("each member may play until …"), and a member's state from the window
// the hub computed.
//
// Owns: turning durations into seconds and back, the summary text, member state
// labels. Must not: compute access windows (the hub does, `MemberView.window`)
// or decide what is valid beyond helping the form (the hub refuses bad terms).

import type { Schemas } from '../api/client';

/** The terms of a licence, as the hub's OpenAPI document types them (common::license::LicenseTerms). */
export type LicenceTerms = Schemas['LicenseTerms'];

/** The shortest offline grace the hub signs: three hub_time intervals (S6). */
export const MIN_OFFLINE_GRACE_SECS = 180;

/** Terms with no limit at all, offline play for a week. */
export function defaultTerms(): LicenceTerms {
  return {
    duration_from_join_secs: null,
    duration_from_first_use_secs: null,
    fixed_start: null,
    fixed_end: null,
    max_active_devices: null,
    allow_offline: true,
    offline_grace_secs: 7 * DAY,
    allow_export: false,
    allowed_countries: null,
  };
}

/** The terms of a group's `license`, with defaults for what is missing. */
export function termsOf(raw: Partial<LicenceTerms> | null | undefined): LicenceTerms {
  return { ...defaultTerms(), ...(raw ?? {}) };
}

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/** Units a duration is entered in, largest first. */
export const UNITS = [
  { key: 'weeks', label: 'weeks', secs: WEEK },
  { key: 'days', label: 'days', secs: DAY },
  { key: 'hours', label: 'hours', secs: HOUR },
  { key: 'minutes', label: 'minutes', secs: MINUTE },
] as const;

/** A unit's key. */
export type Unit = (typeof UNITS)[number]['key'];

/** A duration as an amount of the largest unit that divides it exactly. */
export function splitDuration(secs: number): { amount: number; unit: Unit } {
  for (const u of UNITS) if (secs > 0 && secs % u.secs === 0) return { amount: secs / u.secs, unit: u.key };
  return { amount: Math.max(1, Math.round(secs / MINUTE)), unit: 'minutes' };
}

/** An amount of a unit in seconds. */
export function toSeconds(amount: number, unit: Unit): number {
  const u = UNITS.find((x) => x.key === unit) ?? UNITS[1];
  return Math.round(amount * u.secs);
}

/** A duration in words: `30 days`, `1 week`, `2 days 3 hours`. */
export function durationWords(secs: number): string {
  if (secs <= 0) return 'no time';
  const parts: string[] = [];
  let rest = secs;
  for (const u of [UNITS[1], UNITS[2], UNITS[3]]) {
    const n = Math.floor(rest / u.secs);
    if (n) parts.push(`${n} ${n === 1 ? u.label.slice(0, -1) : u.label}`);
    rest -= n * u.secs;
  }
  if (!parts.length) return `${secs} seconds`;
  // Whole weeks read better as weeks.
  if (secs % WEEK === 0) {
    const w = secs / WEEK;
    return `${w} ${w === 1 ? 'week' : 'weeks'}`;
  }
  return parts.slice(0, 2).join(' ');
}

/** How the summary writes an instant (injected so tests need no time zone). */
export type DateWords = (iso: string) => string;

const localWords: DateWords = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Country codes from what the user typed (`de, AT fr`), upper-cased, unique. */
export function parseCountries(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((c) => c.trim().toUpperCase()).filter(Boolean))];
}

/** The codes that are not two letters. */
export function badCountries(codes: readonly string[]): string[] {
  return codes.filter((c) => !/^[A-Z]{2}$/.test(c));
}

/**
 * The licence in plain language, one sentence per term (L2): when a member's
 * access starts and what ends it (the earliest limit wins), devices,
 * offline play, export and countries.
 */
export function summary(t: LicenceTerms, words: DateWords = localWords): string[] {
  const start = t.fixed_start ? `from when they join, but not before ${words(t.fixed_start)},` : 'from when they join';
  const limits: string[] = [];
  if (t.duration_from_join_secs) limits.push(`${durationWords(t.duration_from_join_secs)} after joining`);
  if (t.duration_from_first_use_secs) limits.push(`${durationWords(t.duration_from_first_use_secs)} after first playing`);
  if (t.fixed_end) limits.push(words(t.fixed_end));
  const out: string[] = [];
  if (limits.length === 0) {
    out.push(`Each member may play ${start} with no end date, unless they are given their own end date or removed from the group.`);
  } else if (limits.length === 1) {
    out.push(`Each member may play ${start} until ${limits[0]}, or earlier if their own end date comes first or they are removed from the group.`);
  } else {
    out.push(`Each member may play ${start} until the earliest of: ${limits.join('; ')} — or earlier if their own end date comes first or they are removed from the group.`);
  }
  const max = t.max_active_devices;
  out.push(max ? `At most ${max} ${max === 1 ? 'device' : 'devices'} may hold the licence at once; another must be deactivated first.` : 'Any number of devices may hold the licence.');
  out.push(
    t.allow_offline && t.offline_grace_secs > 0
      ? `A device that cannot reach the hub keeps playing for ${durationWords(t.offline_grace_secs)} after its last contact.`
      : 'A device plays only while it stays in contact with the hub.',
  );
  out.push(t.allow_export ? 'Content may be exported from devices.' : 'Content may not be exported from devices.');
  const countries = t.allowed_countries ?? [];
  out.push(countries.length ? `It plays only on devices in ${countries.join(', ')}.` : 'It plays in every country.');
  return out;
}

/** Problems the form can see before sending (the hub checks again). */
export function problems(t: LicenceTerms): string[] {
  const out: string[] = [];
  if (t.fixed_start && t.fixed_end && new Date(t.fixed_end) <= new Date(t.fixed_start)) out.push('The fixed end must be after the fixed start.');
  if (t.duration_from_join_secs !== null && t.duration_from_join_secs !== undefined && t.duration_from_join_secs <= 0) out.push('The duration from joining must be more than zero.');
  if (t.duration_from_first_use_secs !== null && t.duration_from_first_use_secs !== undefined && t.duration_from_first_use_secs <= 0) out.push('The duration from first use must be more than zero.');
  if (t.max_active_devices !== null && t.max_active_devices !== undefined && t.max_active_devices < 1) out.push('Max active devices must be at least 1 (leave it empty for no limit).');
  if (t.allow_offline && t.offline_grace_secs < MIN_OFFLINE_GRACE_SECS) out.push('The offline grace must be at least 3 minutes.');
  const bad = badCountries(t.allowed_countries ?? []);
  if (bad.length) out.push(`Not two-letter country codes: ${bad.join(', ')}.`);
  return out;
}

/** Why a window ends, in words (common::license::Limit). */
export const ENDED_BY: Record<string, string> = {
  removed: 'removal from the group',
  member_end_date: 'the member’s end date',
  fixed_end: 'the licence’s fixed end',
  duration_from_join: 'the duration from joining',
  duration_from_first_use: 'the duration from first use',
};

/** A member's access window as the hub computed it (common::license::AccessWindow). */
export type AccessWindow = Schemas['AccessWindow'];

/** What a member's state is, for a badge. */
export interface MemberState {
  label: string;
  tone: 'ok' | 'warn' | 'bad' | 'idle';
}

/** A member's state from what the hub says about it (L2, L4, L5). */
export function memberState(
  m: { removed_at?: string | null; in_window_now: boolean; active: boolean; member: Schemas['MemberRef']; window: AccessWindow },
  now: Date,
): MemberState {
  if (m.removed_at) return { label: 'Removed', tone: 'idle' };
  const isDevice = m.member.type === 'device';
  if (m.in_window_now) {
    if (isDevice && !m.active) return { label: 'Inactive device', tone: 'warn' };
    return { label: 'Has access', tone: 'ok' };
  }
  const w = m.window;
  if (w.starts_at && new Date(w.starts_at) > now) return { label: 'Not started', tone: 'warn' };
  return { label: 'Ended', tone: 'bad' };
}

/** A window in words: `from … until … (the member’s end date)`. */
export function windowWords(w: AccessWindow, words: DateWords = localWords): string {
  if (!w?.starts_at) return '—';
  const until = w.ends_at ? `until ${words(w.ends_at)}${w.ended_by ? ` (${ENDED_BY[w.ended_by] ?? w.ended_by})` : ''}` : 'with no end yet';
  return `from ${words(w.starts_at)} ${until}`;
}
