// Fleet dashboard rules (C3, U4): status, filters, counts.
import { describe, expect, it } from 'vitest';
import { fleetRows, statusOf, countsOf, ago, bytes, type FleetDevice } from './fleet';
import type { Node } from './nodes.svelte';

function device(id: string, node: string, over: Partial<FleetDevice> = {}): FleetDevice {
  return {
    device_id: id,
    node,
    connection: 'online',
    online: true,
    in_sync: true,
    documents: [],
    now_playing: { item: 'c-1', since: '2026-01-01T00:00:00Z' },
    ...over,
  } as FleetDevice;
}

function node(id: string, parent: string | null, name: string, leaf = false): Node {
  return { id, parent, name, leaf, restricted: false, strict_feeds: false } as Node;
}

const nodes = new Map<string, Node>([
  ['n-t', node('n-t', null, 'Tenant')],
  ['n-a', node('n-a', 'n-t', 'Site A', true)],
  ['n-b', node('n-b', 'n-t', 'Site B', true)],
]);

const devices = [
  device('d-1', 'n-a'),
  device('d-2', 'n-b', { online: false, connection: 'offline' }),
  device('d-3', 'n-b', { in_sync: false }),
  device('d-4', 'n-a', { last_error: 'refused: not approved' }),
];
const names = new Map([
  ['d-1', 'Lobby'],
  ['d-2', 'Bar'],
  ['d-3', 'Cafe'],
  ['d-4', 'Door'],
]);
const items = new Map([['c-1', 'Welcome video']]);

describe('statusOf', () => {
  it('shows the most urgent state first', () => {
    expect(statusOf(devices[0]!)).toBe('playing');
    expect(statusOf(devices[1]!)).toBe('offline');
    expect(statusOf(devices[2]!)).toBe('out_of_sync');
    expect(statusOf(devices[3]!)).toBe('error');
    expect(statusOf(device('d-5', 'n-a', { now_playing: null }))).toBe('online');
  });
});

describe('fleetRows', () => {
  const all = { node: null, status: 'all' as const, text: '' };
  it('names, node paths and what plays, sorted by name', () => {
    const rows = fleetRows(devices, names, items, nodes, all);
    expect(rows.map((r) => r.name)).toEqual(['Bar', 'Cafe', 'Door', 'Lobby']);
    expect(rows[3]!.path).toBe('Tenant / Site A');
    expect(rows[3]!.playing).toBe('Welcome video');
    expect(rows[0]!.playing).toBeNull(); // offline: nothing plays
  });
  it('filters by node, status and text', () => {
    expect(fleetRows(devices, names, items, nodes, { ...all, node: 'n-b' }).map((r) => r.id)).toEqual(['d-2', 'd-3']);
    expect(fleetRows(devices, names, items, nodes, { ...all, status: 'offline' }).map((r) => r.id)).toEqual(['d-2']);
    expect(fleetRows(devices, names, items, nodes, { ...all, status: 'errors' }).map((r) => r.id)).toEqual(['d-4']);
    expect(fleetRows(devices, names, items, nodes, { ...all, text: 'site a' }).map((r) => r.id)).toEqual(['d-4', 'd-1']);
    expect(fleetRows(devices, names, items, nodes, { ...all, text: 'WELCOME' }).length).toBe(3);
  });
  it('filters 10,000 devices', () => {
    const many = Array.from({ length: 10000 }, (_, i) => device(`d-${i}`, i % 2 ? 'n-a' : 'n-b'));
    expect(fleetRows(many, new Map(), items, nodes, { ...all, node: 'n-a' }).length).toBe(5000);
  });
});

describe('countsOf', () => {
  it('counts by the hub rules', () => {
    expect(countsOf(devices)).toEqual({
      attached: 4,
      online: 3,
      offline: 1,
      in_sync: 3,
      out_of_sync: 1,
      playing: 3,
      with_errors: 1,
    });
  });
});

describe('formatting', () => {
  it('says how long ago and how many bytes', () => {
    const now = Date.parse('2026-01-01T01:00:00Z');
    expect(ago('2026-01-01T00:59:50Z', now)).toBe('10 s ago');
    expect(ago('2026-01-01T00:00:00Z', now)).toBe('1 h ago');
    expect(ago(null, now)).toBe('never');
    expect(bytes(1_500_000_000)).toBe('1.5 GB');
    expect(bytes(undefined)).toBe('—');
  });
});
