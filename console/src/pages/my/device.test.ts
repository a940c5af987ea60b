import { describe, expect, it } from 'vitest';
import { byCategory, forgetBrowser, storeBrowser, storedBrowser } from './device';

describe('the stored browser (M6)', () => {
  it('is kept per user and forgotten on request', () => {
    const storage = window.localStorage;
    storeBrowser('u-1', { id: 'web-1', name: 'Laptop', token: 't' }, storage);
    expect(storedBrowser('u-1', storage)).toEqual({ id: 'web-1', name: 'Laptop', token: 't' });
    expect(storedBrowser('u-2', storage)).toBeNull();
    forgetBrowser('u-1', storage);
    expect(storedBrowser('u-1', storage)).toBeNull();
    storage.setItem('signet.player.browser.u-3', '{not json');
    expect(storedBrowser('u-3', storage)).toBeNull();
  });
});

describe('byCategory', () => {
  it('follows the group order and puts the rest last', () => {
    const items = [
      { id: 'a', categories: ['News'] },
      { id: 'b', categories: [] },
      { id: 'c', categories: ['Films', 'News'] },
    ];
    const sections = byCategory(['Films', 'News', 'Empty'], items);
    expect(sections.map((s) => [s.name, s.items.map((i) => i.id)])).toEqual([
      ['Films', ['c']],
      ['News', ['a', 'c']],
      ['Other', ['b']],
    ]);
    expect(byCategory([], items)[0]?.name).toBe('All items');
  });
});
