// Playlist arithmetic for the editor and its preview (issue 16 Deliver 5, D5).
import { describe, expect, it } from 'vitest';
import { parseSeconds, playingAt, timeline } from './playlist';

const media: Record<string, number | null> = { v: 12_000, i: null };
const m = (id: string) => media[id];

describe('timeline', () => {
  it('uses own durations, else the media duration; an image without one does not play', () => {
    const items = [
      { item: 'i', duration_ms: 5000 },
      { item: 'v', duration_ms: null },
      { item: 'i', duration_ms: null },
    ];
    expect(timeline(items, m)).toEqual({ starts: [0, 5000, 17_000], total: 17_000 });
    expect(playingAt(items, m, 0)).toBe(0);
    expect(playingAt(items, m, 4999)).toBe(0);
    expect(playingAt(items, m, 5000)).toBe(1);
    expect(playingAt(items, m, 17_000 + 6000)).toBe(1); // loops
    expect(playingAt([{ item: 'i', duration_ms: null }], m, 10)).toBe(-1);
  });

  it('parses seconds: empty means the media duration', () => {
    expect(parseSeconds('')).toBeNull();
    expect(parseSeconds('7.5')).toBe(7500);
    expect(parseSeconds('0')).toBeNaN();
    expect(parseSeconds('abc')).toBeNaN();
    expect(parseSeconds('90000')).toBeNaN();
  });
});
