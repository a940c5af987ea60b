// Proof-of-play reports (U1–U3, L8): the filter as a query, and the rows
// binned for charts — plays and play time per day, top items, skips by
// reason.
//
// Owns: turning usage rows into chart series. Must not: fetch (the page
// pages through `/api/v1/reports/usage`) or decide which rows a user may
// see (the hub answers only visible ones).
import type { Schemas } from '../api/client';

/** One usage row. */
export type UsageRow = Schemas['UsageRow'];

/** The report's filters (U3); empty strings mean "any". */
export interface UsageFilter {
  access_group: string;
  user: string;
  device: string;
  node: string;
  item: string;
  from: string;
  to: string;
}

/** A filter as query parameters, leaving out the empty ones. */
export function usageQuery(f: UsageFilter): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(f)) if (v) out[k] = v;
  return out;
}

/** One bar: a label and a value. */
export interface Bar {
  key: string;
  label: string;
  value: number;
}

/** The day an instant falls on, as `YYYY-MM-DD` in the browser's zone. */
export function localDay(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** The day of an instant in UTC (for tests and UTC reports). */
export function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** Every day from the day of `from` to the day of `to`, at most `max` (the last ones). */
export function daysBetween(from: Date, to: Date, dayOf: (d: Date) => string = localDay, max = 93): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  // Step by 6 hours so a daylight-saving change never skips a day.
  for (let t = from.getTime(); t <= to.getTime(); t += 6 * 3600_000) {
    const k = dayOf(new Date(t));
    if (!seen.has(k)) {
      seen.add(k);
      out.push(k);
    }
  }
  const last = dayOf(to);
  if (!seen.has(last)) out.push(last);
  return out.slice(-max);
}

/**
 * Plays and play time (minutes) per day over `days` (skips count as
 * neither). Rows outside the days are left out.
 */
export function perDay(rows: readonly UsageRow[], days: readonly string[], dayOf: (d: Date) => string = localDay): { plays: Bar[]; minutes: Bar[] } {
  const plays = new Map(days.map((d) => [d, 0]));
  const ms = new Map(days.map((d) => [d, 0]));
  for (const r of rows) {
    if (r.outcome !== 'played') continue;
    const k = dayOf(new Date(r.start));
    if (!plays.has(k)) continue;
    plays.set(k, (plays.get(k) ?? 0) + 1);
    ms.set(k, (ms.get(k) ?? 0) + r.duration_ms);
  }
  const label = (d: string) => d.slice(5);
  return {
    plays: days.map((d) => ({ key: d, label: label(d), value: plays.get(d) ?? 0 })),
    minutes: days.map((d) => ({ key: d, label: label(d), value: Math.round(((ms.get(d) ?? 0) / 60000) * 10) / 10 })),
  };
}

/** Counts by a key of the row, most first, at most `n` (ties by name). */
export function topBy(rows: readonly UsageRow[], key: (r: UsageRow) => string | null, name: (k: string) => string, n = 10): Bar[] {
  const counts = new Map<string, number>();
  for (const r of rows) {
    const k = key(r);
    if (k !== null) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts.entries()]
    .map(([k, v]) => ({ key: k, label: name(k), value: v }))
    .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label))
    .slice(0, n);
}

/** Plays per item, most first. */
export function topItems(rows: readonly UsageRow[], name: (id: string) => string, n = 10): Bar[] {
  return topBy(rows, (r) => (r.outcome === 'played' ? r.item : null), name, n);
}

/** Skips per reason, most first (A7). */
export function skipsByReason(rows: readonly UsageRow[], n = 10): Bar[] {
  return topBy(rows, (r) => (r.outcome === 'skipped' ? (r.skip_reason ?? 'no reason given') : null), (k) => k, n);
}

/** The total of played rows and their play time in milliseconds. */
export function totals(rows: readonly UsageRow[]): { played: number; skipped: number; ms: number } {
  let played = 0;
  let skipped = 0;
  let ms = 0;
  for (const r of rows) {
    if (r.outcome === 'played') {
      played++;
      ms += r.duration_ms;
    } else skipped++;
  }
  return { played, skipped, ms };
}

/** The largest value of a series and a round axis top above it (1, 2, 5 × 10^n). */
export function axisTop(bars: readonly Bar[]): number {
  const max = Math.max(0, ...bars.map((b) => b.value));
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}
