// Reordering by drag and drop and by keyboard (issue 16 Deliver 5; zone stacking in Deliver 4).
import { describe, expect, it } from 'vitest';
import { dropIndex, keyTarget, moveItem } from './reorder';

describe('moveItem', () => {
  it('moves one element and leaves the input alone', () => {
    const list = ['a', 'b', 'c', 'd'];
    expect(moveItem(list, 0, 2)).toEqual(['b', 'c', 'a', 'd']);
    expect(moveItem(list, 3, 0)).toEqual(['d', 'a', 'b', 'c']);
    expect(moveItem(list, 1, 99)).toEqual(['a', 'c', 'd', 'b']);
    expect(moveItem(list, 7, 0)).toEqual(list);
    expect(list).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('dropIndex', () => {
  const rows = [0, 40, 80, 120].map((top) => ({ top, height: 40 }));
  it('lands after every other row whose midpoint the pointer passed', () => {
    expect(dropIndex(rows, 5, 3)).toBe(0);
    expect(dropIndex(rows, 70, 0)).toBe(1); // past b's midpoint (60), not c's (100)
    expect(dropIndex(rows, 150, 0)).toBe(3);
    expect(dropIndex(rows, 150, 3)).toBe(3);
    expect(moveItem(['a', 'b', 'c', 'd'], 0, dropIndex(rows, 110, 0))).toEqual(['b', 'c', 'a', 'd']);
  });
});

describe('keyTarget', () => {
  it('Alt+arrows move one place, Alt+Home/End to the ends; nothing at the edges', () => {
    expect(keyTarget('ArrowUp', true, 2, 4)).toBe(1);
    expect(keyTarget('ArrowDown', true, 2, 4)).toBe(3);
    expect(keyTarget('ArrowDown', true, 3, 4)).toBeNull();
    expect(keyTarget('Home', true, 2, 4)).toBe(0);
    expect(keyTarget('End', true, 2, 4)).toBe(3);
    expect(keyTarget('ArrowUp', false, 2, 4)).toBeNull();
  });
});
