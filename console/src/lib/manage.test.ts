// Management actions (issue 19 Acceptance): a refused delete in words, the
// nodes a master may be copied to (A2), and a device's variables (D6).
import { describe, expect, it } from 'vitest';
import { ApiFailure } from './api/client';
import { copyTargets, deleteRefusal, thumbnailUrl, withNames, variableProblem, variableRows, variablesBody, variablesChanged } from './manage';
import type { Node } from './nodes.svelte';

const nodes = new Map<string, Node>(
  [
    { id: 'root', parent: null, name: 'Root', restricted: false, leaf: false },
    { id: 'master', parent: 'root', name: 'Masters', restricted: true, leaf: false },
    { id: 'shop', parent: 'master', name: 'Shop', restricted: false, leaf: false },
    { id: 'locked', parent: 'master', name: 'Locked', restricted: true, leaf: false },
    { id: 'till', parent: 'shop', name: 'Till', restricted: false, leaf: true },
    { id: 'other', parent: 'root', name: 'Other', restricted: false, leaf: true },
  ].map((n) => [n.id, n as Node]),
);

describe('deleteRefusal', () => {
  it('says plainly that an item still in use must be removed there first, with the hub’s detail', () => {
    const e = new ApiFailure(409, 'item_in_use', 'c-1 is still used by p-7: remove it there first');
    const text = deleteRefusal('Menu', e);
    expect(text).toContain('“Menu” is in use');
    expect(text).toContain('template, playlist or access group');
    expect(text).toContain('(c-1 is still used by p-7: remove it there first)');
  });

  it('puts names in place of the ids the hub’s detail gives, where they are known', () => {
    const e = new ApiFailure(409, 'item_in_use', 'c-1 is still used by playlist pl-12, template c-10: remove it there first');
    const names = new Map([['c-1', 'Menu'], ['c-10', 'Lobby layout'], ['pl-12', 'Morning loop']]);
    expect(deleteRefusal('Menu', e, names)).toContain('(“Menu” is still used by playlist “Morning loop”, template “Lobby layout”: remove it there first)');
    expect(withNames('pl-1 and pl-12', new Map([['pl-1', 'A'], ['pl-12', 'B']]))).toBe('“A” and “B”');
    expect(withNames('ag-9 unknown', new Map())).toBe('ag-9 unknown');
  });

  it('names the schedule case of a playlist', () => {
    expect(deleteRefusal('Morning', new ApiFailure(409, 'playlist_in_use', 'playlist p-1 is used by schedule s-1'))).toContain('a schedule still plays it');
  });

  it('passes any other refusal on as the hub said it', () => {
    expect(deleteRefusal('X', new ApiFailure(403, 'forbidden', 'below Contributor'))).toBe('Not deleted: below Contributor');
    expect(deleteRefusal('X', new Error('offline'))).toBe('Not deleted: offline');
  });
});

describe('copyTargets (A2)', () => {
  it('offers the non-restricted nodes strictly below a restricted source, in tree order', () => {
    expect(copyTargets(nodes, 'master').map((n) => n.id)).toEqual(['shop', 'till']);
  });

  it('offers nothing for an item of a node that is not restricted', () => {
    expect(copyTargets(nodes, 'shop')).toEqual([]);
    expect(copyTargets(nodes, 'absent')).toEqual([]);
  });
});

describe('device variables (D6)', () => {
  it('shows 25 rows, the stored values in place', () => {
    const rows = variableRows({ '1': 'store-12', '25': 'z' });
    expect(rows).toHaveLength(25);
    expect(rows[0]).toEqual({ number: 1, value: 'store-12' });
    expect(rows[1]).toEqual({ number: 2, value: '' });
    expect(rows[24]).toEqual({ number: 25, value: 'z' });
    expect(variableRows(undefined).every((r) => r.value === '')).toBe(true);
  });

  it('sends the filled rows and leaves blank ones out (cleared)', () => {
    const rows = variableRows({ '3': 'old' });
    rows[0]!.value = 'berlin';
    rows[2]!.value = '';
    rows[24]!.value = 'x'.repeat(256);
    expect(variablesBody(rows)).toEqual({ variables: { '1': 'berlin', '25': 'x'.repeat(256) } });
    expect(variablesBody(variableRows({}))).toEqual({ variables: {} });
  });

  it('refuses, by number, what the hub would refuse: over 256 bytes or a control character', () => {
    expect(variableProblem('x'.repeat(256))).toBeNull();
    expect(variableProblem('ü'.repeat(129))).toContain('256 bytes'); // 258 bytes in UTF-8
    expect(variableProblem('a\nb')).toContain('control character');
    expect(variableProblem('a\u0085b')).toContain('control character');
    const rows = variableRows({});
    rows[1]!.value = 'tab\there';
    rows[3]!.value = 'fine';
    expect(variablesBody(rows)).toEqual({ problems: { 2: expect.stringContaining('control character') } });
  });

  it('tells whether the form differs from what is stored', () => {
    const rows = variableRows({ '1': 'a' });
    expect(variablesChanged(rows, { '1': 'a' })).toBe(false);
    rows[0]!.value = '';
    expect(variablesChanged(rows, { '1': 'a' })).toBe(true);
  });
});

describe('thumbnailUrl (A3)', () => {
  it('names the bytes, so a replaced file gets a new address', () => {
    const before = thumbnailUrl({ id: 'c/1', sha256: 'aa'.repeat(32) });
    expect(before).toBe(`/api/v1/content/c%2F1/thumbnail?v=${'a'.repeat(16)}`);
    expect(thumbnailUrl({ id: 'c/1', sha256: 'bb'.repeat(32) })).not.toBe(before);
  });
});
