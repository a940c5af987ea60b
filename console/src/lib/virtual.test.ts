// The virtualized list renders only what is in view (C3).
import { describe, expect, it } from 'vitest';
import { visibleWindow } from './virtual';

describe('visibleWindow', () => {
  it('renders a few dozen of 10,000 rows wherever it is scrolled', () => {
    for (const top of [0, 1234, 52 * 5000, 52 * 10000]) {
      const w = visibleWindow(10000, 52, top, 600);
      expect(w.end - w.start).toBeLessThanOrEqual(30);
      expect(w.before + (w.end - w.start) * 52 + w.after).toBe(10000 * 52);
    }
  });
  it('keeps the row at the top in the window', () => {
    const w = visibleWindow(10000, 52, 52 * 400 + 10, 600);
    expect(w.start).toBeLessThanOrEqual(400);
    expect(w.end).toBeGreaterThan(400 + 600 / 52);
  });
  it('handles an empty list and a list shorter than the view', () => {
    expect(visibleWindow(0, 52, 0, 600)).toEqual({ start: 0, end: 0, before: 0, after: 0 });
    expect(visibleWindow(3, 52, 0, 600)).toEqual({ start: 0, end: 3, before: 0, after: 0 });
  });
});
