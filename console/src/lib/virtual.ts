// Which rows of a fixed-row-height list are in view: the pure arithmetic of
// the virtualized fleet list (C3: 10,000 devices render as a few dozen rows).

/** The slice of rows to render and the space above and below it. */
export interface Window {
  /** First row index to render. */
  start: number;
  /** One past the last row index to render. */
  end: number;
  /** Pixels above the first rendered row. */
  before: number;
  /** Pixels below the last rendered row. */
  after: number;
}

/**
 * The rows visible in a viewport of `height` px scrolled to `scrollTop`,
 * plus `overscan` rows either side, of `count` rows of `rowHeight` px.
 */
export function visibleWindow(
  count: number,
  rowHeight: number,
  scrollTop: number,
  height: number,
  overscan = 6,
): Window {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0, before: 0, after: 0 };
  const top = Math.max(0, Math.min(scrollTop, count * rowHeight));
  const first = Math.floor(top / rowHeight);
  const shown = Math.ceil(Math.max(height, 0) / rowHeight) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, first + shown + overscan);
  return { start, end, before: start * rowHeight, after: (count - end) * rowHeight };
}
