// Reordering of lists (playlists, template zone stacking): by drag and drop
// and by keyboard. Pure functions over arrays; nothing is changed in place.

/** `list` with the element at `from` moved to index `to` (clamped). */
export function moveItem<T>(list: readonly T[], from: number, to: number): T[] {
  const out = list.slice();
  if (from < 0 || from >= out.length) return out;
  const [item] = out.splice(from, 1);
  const at = Math.max(0, Math.min(out.length, to));
  out.splice(at, 0, item as T);
  return out;
}

/**
 * Where a dragged row lands: the index among `rows` (their top and height,
 * in pointer coordinates, in list order) whose midpoint the pointer's `y`
 * has passed, counted as if the dragged row `from` were removed.
 */
export function dropIndex(rows: readonly { top: number; height: number }[], y: number, from: number): number {
  let index = 0;
  rows.forEach((r, i) => {
    if (i !== from && y > r.top + r.height / 2) index += 1;
  });
  return index;
}

/**
 * The keyboard's reorder: Alt+ArrowUp/ArrowDown move one place,
 * Alt+Home/End to the ends. Returns the new index, or null when the key
 * does not reorder.
 */
export function keyTarget(key: string, alt: boolean, index: number, length: number): number | null {
  if (!alt) return null;
  const to =
    key === 'ArrowUp' ? index - 1 : key === 'ArrowDown' ? index + 1 : key === 'Home' ? 0 : key === 'End' ? length - 1 : null;
  if (to === null || to < 0 || to >= length || to === index) return null;
  return to;
}
