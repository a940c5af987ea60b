// Playlist arithmetic (issue 16 Deliver 5, D5): durations, the loop's
// timeline and which item plays at a moment of the preview.
//
// Owns: the arithmetic only. Must not: call the API.

/** An item as a playlist holds it. */
export interface PlannedItem {
  /** The content item. */
  item: string;
  /** How long it shows per pass; null means the media's own duration. */
  duration_ms: number | null;
}

/** The time an entry shows: its own duration, else the media's, else 0 (unplayable). */
export function effective(p: PlannedItem, mediaMs: number | null | undefined): number {
  return p.duration_ms ?? mediaMs ?? 0;
}

/** The loop: each item's start and end in milliseconds from the loop's start, and the loop's length. */
export function timeline(items: readonly PlannedItem[], media: (id: string) => number | null | undefined): { starts: number[]; total: number } {
  const starts: number[] = [];
  let total = 0;
  for (const p of items) {
    starts.push(total);
    total += effective(p, media(p.item));
  }
  return { starts, total };
}

/** The index of the item on screen `elapsed` ms after the loop began (looping), or -1 when nothing plays. */
export function playingAt(items: readonly PlannedItem[], media: (id: string) => number | null | undefined, elapsed: number): number {
  const { starts, total } = timeline(items, media);
  if (total <= 0) return -1;
  const t = ((elapsed % total) + total) % total;
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i] as PlannedItem;
    if ((starts[i] as number) <= t && effective(item, media(item.item)) > 0) return i;
  }
  return -1;
}

/** Seconds as typed in a field → milliseconds (null for empty: the media's duration); NaN when invalid. */
export function parseSeconds(text: string): number | null {
  const t = text.trim();
  if (t === '') return null;
  const v = Number(t);
  if (!Number.isFinite(v) || v <= 0 || v > 86_400) return NaN;
  return Math.round(v * 1000);
}
