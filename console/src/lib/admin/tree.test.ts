// Tenancy tree operations (T1–T4).
import { describe, expect, it } from 'vitest';
import { childrenOf, deleteBlockers, deviceCounts, inherited, mayAddChild } from './tree';
import type { Node } from '../nodes.svelte';

const nodes = new Map<string, Node>(
  [
    { id: 'root', parent: null, name: 'Root', time_zone: 'UTC', leaf: false },
    { id: 'acme', parent: 'root', name: 'Acme', time_zone: 'Europe/Berlin', country: 'DE', leaf: false },
    { id: 'lobby', parent: 'acme', name: 'Lobby', region: 'Bavaria', leaf: true },
    { id: 'annex', parent: 'acme', name: 'Annex', leaf: true },
  ].map((n) => [n.id, n as Node]),
);

describe('tree', () => {
  it('lists children by name', () => {
    expect(childrenOf(nodes, 'acme').map((n) => n.id)).toEqual(['annex', 'lobby']);
    expect(childrenOf(nodes, 'lobby')).toEqual([]);
  });

  it('finds inherited locale values and where they come from', () => {
    expect(inherited(nodes, 'lobby', 'time_zone')).toEqual({ value: 'Europe/Berlin', from: 'acme' });
    expect(inherited(nodes, 'lobby', 'region')).toEqual({ value: 'Bavaria', from: 'lobby' });
    expect(inherited(nodes, 'lobby', 'country')).toEqual({ value: 'DE', from: 'acme' });
    expect(inherited(nodes, 'root', 'country')).toEqual({ value: null, from: null });
  });

  it('explains why a node cannot be deleted', () => {
    expect(deleteBlockers(nodes, 'root', 0, ['root'])).toEqual(['It is the root.', 'It has 1 child node.']);
    expect(deleteBlockers(nodes, 'acme', 0, ['acme'])).toEqual(['It is where your own domain starts; only a user above it may delete it.', 'It has 2 child nodes.']);
    expect(deleteBlockers(nodes, 'lobby', 2, ['acme'])).toEqual(['2 devices are attached to it.']);
    expect(deleteBlockers(nodes, 'annex', 0, ['acme'])).toEqual([]);
  });

  it('counts devices per node; a node with devices takes no child (T1)', () => {
    const counts = deviceCounts([{ node: 'lobby' }, { node: 'lobby' }, { node: 'annex' }]);
    expect(counts.get('lobby')).toBe(2);
    expect(mayAddChild(counts.get('lobby') ?? 0)).toBe(false);
    expect(mayAddChild(counts.get('acme') ?? 0)).toBe(true);
  });
});
