// Zone geometry of the template designer: snapping, move, resize, nudge (issue 16 Deliver 4, D6).
import { describe, expect, it } from 'vitest';
import { fit, guides, move, nudge, placeNew, resize, scaleToFit, snapEdge, toGrid, type Snap } from './geometry';

const canvas = { width: 1920, height: 1080 };
const other = { x: 960, y: 540, width: 400, height: 200 };
const snap = (grid = 10, threshold = 12): Snap => ({ grid, threshold, ...guides(canvas, [other]) });

describe('snapping', () => {
  it('snaps to the grid when no guide is near', () => {
    expect(toGrid(123, 10)).toBe(120);
    expect(toGrid(127, 10)).toBe(130);
    expect(toGrid(127.4, 0)).toBe(127);
    expect(snapEdge(333, [0, 1920], { grid: 20, threshold: 8, xs: [], ys: [] })).toEqual({ value: 340, guide: null });
  });

  it('prefers a guide within the threshold: canvas edges, centre, other zones', () => {
    const s = snap();
    expect(s.xs).toContain(960);
    expect(s.xs).toContain(1360);
    expect(snapEdge(1355, s.xs, s)).toEqual({ value: 1360, guide: 1360 });
    expect(snapEdge(5, s.xs, s)).toEqual({ value: 0, guide: 0 });
  });

  it('a moved zone snaps its right edge to another zone and reports the guide', () => {
    const start = { x: 100, y: 100, width: 300, height: 200 };
    // Right edge lands at 957 → snaps to the other zone's left edge 960.
    const m = move(start, 557, 0, canvas, snap());
    expect(m.rect).toEqual({ x: 660, y: 100, width: 300, height: 200 });
    expect(m.gx).toBe(960);
  });

  it('a moved zone snaps its left edge to a guide, else to the grid', () => {
    const start = { x: 100, y: 100, width: 300, height: 200 };
    const m = move(start, 855, 3, canvas, snap());
    expect(m.rect.x).toBe(960);
    expect(m.gx).toBe(960);
    expect(m.rect.y).toBe(100);
    expect(m.gy).toBeNull();
  });

  it('a moved zone never leaves the canvas', () => {
    const m = move({ x: 100, y: 100, width: 300, height: 200 }, 5000, -5000, canvas, snap());
    expect(m.rect).toEqual({ x: 1620, y: 0, width: 300, height: 200 });
  });
});

describe('resize', () => {
  it('moves only the dragged edges, snapped, the opposite edges stay', () => {
    const start = { x: 100, y: 100, width: 300, height: 200 };
    const r = resize(start, 'se', 553, 243, canvas, snap());
    expect(r.rect).toEqual({ x: 100, y: 100, width: 860, height: 440 }); // right → 960 (guide), bottom → 540 (guide)
    expect(r.gx).toBe(960);
    expect(r.gy).toBe(540);
    const w = resize(start, 'w', 47, 0, canvas, snap());
    expect(w.rect.x + w.rect.width).toBe(400);
    expect(w.rect.x).toBe(150);
  });

  it('keeps a minimum size and stays inside the canvas', () => {
    const start = { x: 100, y: 100, width: 300, height: 200 };
    expect(resize(start, 'e', -1000, 0, canvas, snap(1, 0)).rect.width).toBe(8);
    expect(resize(start, 'nw', -1000, -1000, canvas, snap(1, 0)).rect).toEqual({ x: 0, y: 0, width: 400, height: 300 });
    expect(resize(start, 'se', 9000, 9000, canvas, snap(1, 0)).rect).toEqual({ x: 100, y: 100, width: 1820, height: 980 });
  });
});

describe('keyboard and placement', () => {
  it('arrows move, with grow they resize, inside the canvas', () => {
    const r = { x: 0, y: 0, width: 100, height: 100 };
    expect(nudge(r, 'ArrowRight', 10, false, canvas)).toEqual({ x: 10, y: 0, width: 100, height: 100 });
    expect(nudge(r, 'ArrowLeft', 10, false, canvas)).toEqual(r);
    expect(nudge(r, 'ArrowDown', 1, true, canvas)).toEqual({ x: 0, y: 0, width: 100, height: 101 });
    expect(nudge(r, 'ArrowUp', 200, true, canvas)).toEqual({ x: 0, y: 0, width: 100, height: 8 });
    expect(nudge(r, 'Enter', 1, false, canvas)).toBeNull();
  });

  it('fits any rectangle on the canvas and scales the canvas into a box', () => {
    expect(fit({ x: -5, y: 2000, width: 5000, height: 0 }, canvas)).toEqual({ x: 0, y: 1072, width: 1920, height: 8 });
    expect(scaleToFit(canvas, { width: 960, height: 1080 })).toBe(0.5);
    expect(scaleToFit({ width: 100, height: 100 }, { width: 960, height: 1080 })).toBe(1);
    const p = placeNew(canvas, 1, 10);
    expect(p.width).toBe(480);
    expect(p.x).toBeGreaterThan(0);
  });
});
