// Bulk device membership (L4, L5): the filter and the change a selection sends.
import { describe, expect, it } from 'vitest';
import { filterDevices, deviceChange } from './bulk';
import type { Node } from '../nodes.svelte';

const nodes = new Map<string, Node>([
  ['root', { id: 'root', parent: null, name: 'Root', leaf: false } as Node],
  ['acme', { id: 'acme', parent: 'root', name: 'Acme', leaf: false } as Node],
  ['lobby', { id: 'lobby', parent: 'acme', name: 'Lobby', leaf: true } as Node],
  ['cafe', { id: 'cafe', parent: 'acme', name: 'Cafe', leaf: true } as Node],
  ['globex', { id: 'globex', parent: 'root', name: 'Globex', leaf: true } as Node],
]);
const devices = [
  { id: 'd-3', name: 'Lobby right', node: 'lobby' },
  { id: 'd-1', name: 'Lobby left', node: 'lobby' },
  { id: 'd-2', name: 'Menu board', node: 'cafe' },
  { id: 'd-9', name: 'Store window', node: 'globex' },
];

describe('filterDevices (L4, L5)', () => {
  it('offers only devices below the group’s node, by name', () => {
    expect(filterDevices(devices, nodes, 'acme', '', '').map((d) => d.id)).toEqual(['d-1', 'd-3', 'd-2']);
  });
  it('narrows by node subtree and by text in the name or node path', () => {
    expect(filterDevices(devices, nodes, 'acme', 'cafe', '').map((d) => d.id)).toEqual(['d-2']);
    expect(filterDevices(devices, nodes, 'acme', '', 'RIGHT').map((d) => d.id)).toEqual(['d-3']);
    expect(filterDevices(devices, nodes, 'acme', '', 'acme / cafe').map((d) => d.id)).toEqual(['d-2']);
    expect(filterDevices(devices, nodes, 'root', 'lobby', 'window')).toEqual([]);
  });
});

describe('deviceChange (L4, L5)', () => {
  const members = new Set(['d-1']);
  it('adds only the selected devices that are not members, once each', () => {
    expect(deviceChange('add', ['d-3', 'd-1', 'd-2', 'd-3'], members)).toEqual({ add: ['d-2', 'd-3'], remove: [] });
  });
  it('removes only the selected members', () => {
    expect(deviceChange('remove', ['d-1', 'd-2'], members)).toEqual({ add: [], remove: ['d-1'] });
  });
  it('sends nothing when nothing would change', () => {
    expect(deviceChange('add', ['d-1'], members)).toBeNull();
    expect(deviceChange('remove', [], members)).toBeNull();
  });
});
