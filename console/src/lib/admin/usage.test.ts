// Report charts (U3, L8): binning per day, top items, skips by reason.
import { describe, expect, it } from 'vitest';
import { axisTop, daysBetween, perDay, skipsByReason, topItems, totals, usageQuery, utcDay, type UsageRow } from './usage';

function row(start: string, item: string, outcome = 'played', duration_ms = 60_000, skip_reason: string | null = null): UsageRow {
  return { id: `${start}-${item}`, start, item, outcome, duration_ms, skip_reason, device: 'd-1', os: 'linux', agent_version: '1' } as UsageRow;
}

describe('usage', () => {
  it('leaves empty filters out of the query', () => {
    expect(usageQuery({ access_group: 'g-1', user: '', device: '', node: 'n-1', item: '', from: '2027-01-01T00:00:00Z', to: '' })).toEqual({
      access_group: 'g-1',
      node: 'n-1',
      from: '2027-01-01T00:00:00Z',
    });
  });

  it('lists every day of a range, and only the last ones when long', () => {
    expect(daysBetween(new Date('2027-01-30T22:00:00Z'), new Date('2027-02-02T01:00:00Z'), utcDay)).toEqual(['2027-01-30', '2027-01-31', '2027-02-01', '2027-02-02']);
    expect(daysBetween(new Date('2027-01-01T00:00:00Z'), new Date('2027-01-10T00:00:00Z'), utcDay, 3)).toEqual(['2027-01-08', '2027-01-09', '2027-01-10']);
  });

  it('bins plays and minutes per day; skips and rows outside the range count nowhere', () => {
    const rows = [
      row('2027-01-01T08:00:00Z', 'a'),
      row('2027-01-01T23:59:59Z', 'b', 'played', 30_000),
      row('2027-01-02T00:00:00Z', 'a'),
      row('2027-01-02T10:00:00Z', 'a', 'skipped', 0, 'not_approved'),
      row('2026-12-31T10:00:00Z', 'a'),
    ];
    const { plays, minutes } = perDay(rows, ['2027-01-01', '2027-01-02', '2027-01-03'], utcDay);
    expect(plays.map((b) => b.value)).toEqual([2, 1, 0]);
    expect(minutes.map((b) => b.value)).toEqual([1.5, 1, 0]);
    expect(plays[0]?.label).toBe('01-01');
    expect(totals(rows)).toEqual({ played: 4, skipped: 1, ms: 210_000 });
  });

  it('ranks items by plays and skips by reason', () => {
    const rows = [row('2027-01-01T00:00:00Z', 'b'), row('2027-01-01T00:01:00Z', 'a'), row('2027-01-01T00:02:00Z', 'b'), row('2027-01-01T00:03:00Z', 'c', 'skipped', 0, 'no_license')];
    expect(topItems(rows, (id) => id.toUpperCase())).toEqual([
      { key: 'b', label: 'B', value: 2 },
      { key: 'a', label: 'A', value: 1 },
    ]);
    expect(topItems(rows, (id) => id, 1).map((b) => b.key)).toEqual(['b']);
    expect(skipsByReason(rows)).toEqual([{ key: 'no_license', label: 'no_license', value: 1 }]);
  });

  it('rounds the axis up to 1, 2 or 5 times a power of ten', () => {
    expect(axisTop([])).toBe(1);
    expect(axisTop([{ key: 'a', label: 'a', value: 7 }])).toBe(10);
    expect(axisTop([{ key: 'a', label: 'a', value: 13 }])).toBe(20);
    expect(axisTop([{ key: 'a', label: 'a', value: 0.4 }])).toBe(0.5);
    expect(axisTop([{ key: 'a', label: 'a', value: 50 }])).toBe(50);
  });
});
