// Zone geometry of the template designer (issue 16 Deliver 4, D6): moving,
// resizing, snapping and keyboard nudging of rectangles on a canvas, in
// canvas pixels.
//
// Owns: the arithmetic only. Must not: know about zones' content, the DOM
// or the API; the hub validates the template again on save.

/** A rectangle on the canvas, in pixels from the top-left corner. */
export interface Rect {
  /** Left edge. */
  x: number;
  /** Top edge. */
  y: number;
  /** Width; at least 1. */
  width: number;
  /** Height; at least 1. */
  height: number;
}

/** A canvas (the template's resolution). */
export interface Size {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** Which edges a resize handle moves: n, s, e, w and the corners. */
export type Handle = 'n' | 's' | 'e' | 'w' | 'ne' | 'nw' | 'se' | 'sw';

/** Every resize handle. */
export const HANDLES: readonly Handle[] = ['nw', 'n', 'ne', 'e', 'se', 's', 'sw', 'w'];

/** How snapping works for one drag. */
export interface Snap {
  /** Grid step in canvas pixels; 0 or 1 turns the grid off. */
  grid: number;
  /** Distance in canvas pixels within which an edge snaps to a guide. */
  threshold: number;
  /** Vertical guide lines (x positions): canvas edges, centre, other zones' edges. */
  xs: number[];
  /** Horizontal guide lines (y positions). */
  ys: number[];
}

/** The smallest zone side the designer makes, in canvas pixels. */
export const MIN_SIDE = 8;

/** The guides for a zone being dragged: the canvas's edges and centre and every other zone's edges and centre. */
export function guides(canvas: Size, others: Rect[]): { xs: number[]; ys: number[] } {
  const xs = [0, canvas.width, Math.round(canvas.width / 2)];
  const ys = [0, canvas.height, Math.round(canvas.height / 2)];
  for (const r of others) {
    xs.push(r.x, r.x + r.width, Math.round(r.x + r.width / 2));
    ys.push(r.y, r.y + r.height, Math.round(r.y + r.height / 2));
  }
  return { xs: [...new Set(xs)].sort((a, b) => a - b), ys: [...new Set(ys)].sort((a, b) => a - b) };
}

/** The guide nearest `value` within `threshold`, or null. */
export function nearestGuide(value: number, lines: number[], threshold: number): number | null {
  let best: number | null = null;
  for (const line of lines) {
    const d = Math.abs(line - value);
    if (d <= threshold && (best === null || d < Math.abs(best - value))) best = line;
  }
  return best;
}

/** `value` rounded to the grid (unchanged when the grid is off). */
export function toGrid(value: number, grid: number): number {
  return grid > 1 ? Math.round(value / grid) * grid : Math.round(value);
}

/** One edge snapped: to a guide within the threshold, else to the grid. */
export function snapEdge(value: number, lines: number[], snap: Snap): { value: number; guide: number | null } {
  const guide = nearestGuide(value, lines, snap.threshold);
  return guide !== null ? { value: guide, guide } : { value: toGrid(value, snap.grid), guide: null };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

/** `r` made whole, at least [`MIN_SIDE`] (or the canvas) on a side and inside the canvas. */
export function fit(r: Rect, canvas: Size): Rect {
  const width = clamp(Math.round(r.width), Math.min(MIN_SIDE, canvas.width), canvas.width);
  const height = clamp(Math.round(r.height), Math.min(MIN_SIDE, canvas.height), canvas.height);
  return {
    x: clamp(Math.round(r.x), 0, canvas.width - width),
    y: clamp(Math.round(r.y), 0, canvas.height - height),
    width,
    height,
  };
}

/** The result of a drag step: the new rectangle and the guides it snapped to (to draw them). */
export interface Moved {
  /** The rectangle. */
  rect: Rect;
  /** The vertical guide used, if any. */
  gx: number | null;
  /** The horizontal guide used, if any. */
  gy: number | null;
}

/**
 * `start` moved by (dx, dy): its left or right edge (and top or bottom)
 * snaps to the nearest guide, else its left/top edge to the grid; the
 * result stays inside the canvas.
 */
export function move(start: Rect, dx: number, dy: number, canvas: Size, snap: Snap): Moved {
  const axis = (pos: number, size: number, lines: number[]) => {
    const lead = nearestGuide(pos, lines, snap.threshold);
    const trail = nearestGuide(pos + size, lines, snap.threshold);
    const mid = nearestGuide(pos + size / 2, lines, snap.threshold);
    const options: { at: number; guide: number; d: number }[] = [];
    if (lead !== null) options.push({ at: lead, guide: lead, d: Math.abs(lead - pos) });
    if (trail !== null) options.push({ at: trail - size, guide: trail, d: Math.abs(trail - pos - size) });
    if (mid !== null) options.push({ at: mid - size / 2, guide: mid, d: Math.abs(mid - pos - size / 2) });
    options.sort((a, b) => a.d - b.d);
    const best = options[0];
    return best ? { at: best.at, guide: best.guide as number | null } : { at: toGrid(pos, snap.grid), guide: null };
  };
  const x = axis(start.x + dx, start.width, snap.xs);
  const y = axis(start.y + dy, start.height, snap.ys);
  const rect = fit({ ...start, x: x.at, y: y.at }, canvas);
  return { rect, gx: rect.x === x.at ? x.guide : null, gy: rect.y === y.at ? y.guide : null };
}

/**
 * `start` resized by dragging `handle` by (dx, dy): each moved edge snaps
 * to a guide or the grid; the opposite edges stay put; sides stay at least
 * [`MIN_SIDE`] and the rectangle inside the canvas.
 */
export function resize(start: Rect, handle: Handle, dx: number, dy: number, canvas: Size, snap: Snap): Moved {
  let left = start.x;
  let top = start.y;
  let right = start.x + start.width;
  let bottom = start.y + start.height;
  let gx: number | null = null;
  let gy: number | null = null;
  const min = MIN_SIDE;
  if (handle.includes('w')) {
    const s = snapEdge(left + dx, snap.xs, snap);
    left = clamp(s.value, 0, right - min);
    gx = left === s.value ? s.guide : null;
  }
  if (handle.includes('e')) {
    const s = snapEdge(right + dx, snap.xs, snap);
    right = clamp(s.value, left + min, canvas.width);
    gx = right === s.value ? s.guide : null;
  }
  if (handle.includes('n')) {
    const s = snapEdge(top + dy, snap.ys, snap);
    top = clamp(s.value, 0, bottom - min);
    gy = top === s.value ? s.guide : null;
  }
  if (handle.includes('s')) {
    const s = snapEdge(bottom + dy, snap.ys, snap);
    bottom = clamp(s.value, top + min, canvas.height);
    gy = bottom === s.value ? s.guide : null;
  }
  return { rect: fit({ x: left, y: top, width: right - left, height: bottom - top }, canvas), gx, gy };
}

/**
 * The keyboard's edit of a rectangle: arrows move it by `step` pixels;
 * with `grow` they move its right/bottom edge instead (resize).
 * Returns null for keys that are not arrows.
 */
export function nudge(r: Rect, key: string, step: number, grow: boolean, canvas: Size): Rect | null {
  const d: Record<string, [number, number]> = {
    ArrowLeft: [-step, 0],
    ArrowRight: [step, 0],
    ArrowUp: [0, -step],
    ArrowDown: [0, step],
  };
  const delta = d[key];
  if (!delta) return null;
  const [dx, dy] = delta;
  if (grow) {
    const width = clamp(r.width + dx, MIN_SIDE, canvas.width - r.x);
    const height = clamp(r.height + dy, MIN_SIDE, canvas.height - r.y);
    return { ...r, width, height };
  }
  return fit({ ...r, x: r.x + dx, y: r.y + dy }, canvas);
}

/** The scale that shows `canvas` inside `box` (never above 1). */
export function scaleToFit(canvas: Size, box: Size): number {
  if (canvas.width <= 0 || canvas.height <= 0 || box.width <= 0 || box.height <= 0) return 1;
  return Math.min(1, box.width / canvas.width, box.height / canvas.height);
}

/** A free spot for a new zone: a quarter of the canvas, offset by how many zones exist, on the grid. */
export function placeNew(canvas: Size, count: number, grid: number): Rect {
  const width = toGrid(Math.max(MIN_SIDE, canvas.width / 4), grid) || MIN_SIDE;
  const height = toGrid(Math.max(MIN_SIDE, canvas.height / 4), grid) || MIN_SIDE;
  const step = toGrid(Math.max(grid, canvas.width / 32), grid);
  const offset = (count % 8) * step;
  return fit({ x: offset, y: offset, width, height }, canvas);
}

/** Whether two rectangles overlap (share some area). */
export function overlaps(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}
