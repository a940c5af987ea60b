// The week calendar of a schedule: layout, lanes and drag edits (issue 16 Deliver 6, D5).
import { describe, expect, it } from 'vitest';
import { describe as say, layout, mondayOf, moveDaypart, shiftWeekdays, stretchDaypart, wallClock, weekDates, zonedInstant, type Entry } from './calendar';

const entry = (over: Partial<Entry>): Entry => ({ id: 'e', playlist: 'p', priority: 0, layer: 'main', weekdays: [], dayparts: [], dates: null, ...over });
const MONDAY = '2026-11-30';

describe('week', () => {
  it('finds the Monday of a week and its dates', () => {
    expect(mondayOf('2026-12-03')).toBe(MONDAY);
    expect(mondayOf(MONDAY)).toBe(MONDAY);
    expect(mondayOf('2026-12-06')).toBe(MONDAY);
    expect(weekDates(MONDAY)).toEqual(['2026-11-30', '2026-12-01', '2026-12-02', '2026-12-03', '2026-12-04', '2026-12-05', '2026-12-06']);
  });
});

describe('layout', () => {
  it('an entry without weekdays or dayparts fills every day', () => {
    const blocks = layout([entry({})], MONDAY);
    expect(blocks).toHaveLength(7);
    expect(blocks.every((b) => b.from === 0 && b.to === 1440 && b.daypart === -1)).toBe(true);
  });

  it('weekdays and dayparts pick days and hours; date ranges bound the opening day', () => {
    const e = entry({ weekdays: ['Mon', 'Wed', 'Fri'], dayparts: [{ start: '08:00:00', end: '12:30:00' }], dates: { first: '2026-12-01', last: '2026-12-31' } });
    const blocks = layout([e], MONDAY);
    expect(blocks.map((b) => [b.day, b.from, b.to])).toEqual([
      [2, 480, 750],
      [4, 480, 750],
    ]);
  });

  it('a window past midnight belongs to its opening day and continues on the next', () => {
    const e = entry({ weekdays: ['Fri', 'Sun'], dayparts: [{ start: '22:00:00', end: '06:00:00' }] });
    const blocks = layout([e], MONDAY);
    expect(blocks.map((b) => [b.day, b.from, b.to, b.carried])).toEqual([
      [0, 0, 360, true], // from the Sunday before
      [4, 1320, 1440, false],
      [5, 0, 360, true],
      [6, 1320, 1440, false],
    ]);
  });

  it('a window with start == end lasts 24 hours, into the next day', () => {
    const e = entry({ weekdays: ['Mon'], dayparts: [{ start: '06:00:00', end: '06:00:00' }] });
    expect(layout([e], MONDAY).map((b) => [b.day, b.from, b.to, b.carried])).toEqual([
      [0, 360, 1440, false],
      [1, 0, 360, true],
    ]);
  });

  it('overlapping blocks get lanes; separate ones share lane 0', () => {
    const a = entry({ id: 'a', dayparts: [{ start: '08:00', end: '12:00' }], weekdays: ['Mon'] });
    const b = entry({ id: 'b', dayparts: [{ start: '10:00', end: '14:00' }], weekdays: ['Mon'], layer: 'interrupt', priority: 5 });
    const c = entry({ id: 'c', dayparts: [{ start: '15:00', end: '16:00' }], weekdays: ['Mon'] });
    const blocks = layout([a, b, c], MONDAY);
    expect(blocks.map((x) => [x.entry, x.lane, x.lanes])).toEqual([
      [0, 0, 2],
      [1, 1, 2],
      [2, 0, 1],
    ]);
  });
});

describe('drag edits', () => {
  it('moving keeps the length, snaps, and may cross midnight', () => {
    expect(moveDaypart({ start: '08:00:00', end: '12:00:00' }, 67, 15)).toEqual({ start: '09:00:00', end: '13:00:00' });
    expect(moveDaypart({ start: '22:00:00', end: '23:30:00' }, 60, 15)).toEqual({ start: '23:00:00', end: '00:30:00' });
    expect(moveDaypart(null, 120, 15)).toEqual({ start: '02:00:00', end: '02:00:00' });
  });

  it('stretching moves the end, at least one step, at most a day', () => {
    expect(stretchDaypart({ start: '08:00:00', end: '12:00:00' }, 38, 15)).toEqual({ start: '08:00:00', end: '12:45:00' });
    expect(stretchDaypart({ start: '08:00:00', end: '12:00:00' }, -600, 15)).toEqual({ start: '08:00:00', end: '08:15:00' });
    expect(stretchDaypart({ start: '08:00:00', end: '12:00:00' }, 3000, 15)).toEqual({ start: '08:00:00', end: '08:00:00' });
  });

  it('shifting weekdays wraps around the week', () => {
    expect(shiftWeekdays(['Mon', 'Sun'], 1)).toEqual(['Mon', 'Tue']);
    expect(shiftWeekdays(['Mon'], -1)).toEqual(['Sun']);
    expect(shiftWeekdays([], 3)).toEqual([]);
  });

  it('describes an entry in words', () => {
    expect(say(entry({ weekdays: ['Mon'], dayparts: [{ start: '08:00:00', end: '12:00:00' }] }))).toBe('Mon, 08:00–12:00');
  });
});

describe('time zones', () => {
  it('reads a chosen local time in the device zone', () => {
    expect(zonedInstant('2026-12-03T09:30', 'Europe/Berlin').toISOString()).toBe('2026-12-03T08:30:00.000Z');
    expect(zonedInstant('2026-07-03T09:30', 'Europe/Berlin').toISOString()).toBe('2026-07-03T07:30:00.000Z');
    expect(zonedInstant('2026-12-03T09:30', 'UTC').toISOString()).toBe('2026-12-03T09:30:00.000Z');
    expect(wallClock('2026-12-03T08:30:00Z', 'Europe/Berlin')).toBe('2026-12-03 09:30:00');
  });
});
