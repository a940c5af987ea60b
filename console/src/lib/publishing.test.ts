// Publication progress per device (C8, U4).
import { describe, expect, it } from 'vitest';
import { progressOf, zonedToUtc, utcToZoned, type Run } from './publishing';
import { zoneOf } from './design/common';
import type { Node } from './nodes.svelte';
import type { FleetDevice } from './fleet';

const run = {
  id: 'r-1',
  scope_node: 'n-1',
  documents: [
    { kind: 'group_manifest', subject: 'g-1', version: 5, sha256: 'x', signed: true },
    { kind: 'device_assignment', subject: 'd-1', version: 2, sha256: 'y', signed: false },
  ],
} as unknown as Run;

function dev(docs: Partial<FleetDevice['documents'][number]>[]): FleetDevice {
  return { device_id: 'd-1', node: 'n-1', online: true, documents: docs } as unknown as FleetDevice;
}

describe('progressOf', () => {
  it('is activated when every document of the run is activated at its version or later', () => {
    const d = dev([
      { kind: 'group_manifest', subject: 'g-1', activated_version: 6, status: 'in_sync' },
      { kind: 'device_assignment', subject: 'd-1', activated_version: 2, status: 'in_sync' },
    ]);
    expect(progressOf(run, d).state).toBe('activated');
  });
  it('shows download progress of an accepted manifest', () => {
    const d = dev([
      {
        kind: 'group_manifest',
        subject: 'g-1',
        accepted_version: 5,
        activated_version: 4,
        status: 'downloading',
        progress: { bytes_cached: 10, bytes_needed: 40, items_cached: 1, items_needed: 2 },
      },
      { kind: 'device_assignment', subject: 'd-1', activated_version: 2, status: 'in_sync' },
    ]);
    expect(progressOf(run, d)).toMatchObject({ state: 'downloading', progress: { cached: 10, needed: 40 } });
  });
  it('a refusal wins, with its reason', () => {
    const d = dev([
      { kind: 'group_manifest', subject: 'g-1', activated_version: 4, status: 'refused', reason: 'bad signature' },
      { kind: 'device_assignment', subject: 'd-1', activated_version: 1, accepted_version: 1, status: 'not_received' },
    ]);
    expect(progressOf(run, d)).toMatchObject({ state: 'refused', reason: 'bad signature' });
  });
});

describe('zonedToUtc, utcToZoned and zoneOf (U5: a deferred publish at the screens’ wall-clock time)', () => {
  it('reads a datetime-local value in the node’s zone, summer and winter', () => {
    expect(zonedToUtc('2027-07-01T08:30', 'Europe/Berlin')).toBe('2027-07-01T06:30:00.000Z');
    expect(zonedToUtc('2027-01-15T08:30', 'Europe/Berlin')).toBe('2027-01-15T07:30:00.000Z');
    expect(zonedToUtc('2027-01-15T08:30', 'America/New_York')).toBe('2027-01-15T13:30:00.000Z');
    expect(zonedToUtc('2027-01-15T23:45', 'Asia/Kolkata')).toBe('2027-01-15T18:15:00.000Z');
    expect(zonedToUtc('2027-01-15T08:30', 'UTC')).toBe('2027-01-15T08:30:00.000Z');
  });

  it('takes the later side of a spring-forward gap, and refuses nonsense', () => {
    // 02:30 does not exist in Berlin on 2027-03-28; 03:30 CEST is 01:30 UTC.
    expect(zonedToUtc('2027-03-28T02:30', 'Europe/Berlin')).toBe('2027-03-28T01:30:00.000Z');
    expect(zonedToUtc('2027-01-15 08:30', 'UTC')).toBeNull();
    expect(zonedToUtc('2027-01-15T08:30', 'Mars/Olympus')).toBeNull();
  });

  it('shows a stored instant at the node’s wall-clock time, the inverse of the form', () => {
    expect(utcToZoned('2030-07-01T06:30:00Z', 'Europe/Berlin')).toBe('2030-07-01 08:30');
    expect(utcToZoned('2027-01-15T13:30:00.000Z', 'America/New_York')).toBe('2027-01-15 08:30');
    expect(utcToZoned('2027-01-15T18:15:00Z', 'Asia/Kolkata')).toBe('2027-01-15 23:45');
    // Across midnight: 23:30 UTC is the next day in Tokyo.
    expect(utcToZoned('2027-01-15T23:30:00Z', 'Asia/Tokyo')).toBe('2027-01-16 08:30');
    for (const [local, zone] of [['2027-07-01T08:30', 'Europe/Berlin'], ['2027-11-07T01:15', 'America/New_York']] as const) {
      expect(utcToZoned(zonedToUtc(local, zone) ?? '', zone)).toBe(local.replace('T', ' '));
    }
    expect(utcToZoned('not a time', 'UTC')).toBeNull();
    expect(utcToZoned('2027-01-15T08:30:00Z', 'Mars/Olympus')).toBeNull();
  });

  it('finds the nearest zone up the tree, UTC when none is set', () => {
    const nodes = new Map<string, Node>([
      ['root', { id: 'root', parent: null, name: 'Root', leaf: false } as Node],
      ['acme', { id: 'acme', parent: 'root', name: 'Acme', leaf: false, time_zone: 'Europe/Berlin' } as Node],
      ['lobby', { id: 'lobby', parent: 'acme', name: 'Lobby', leaf: true } as Node],
    ]);
    expect(zoneOf(nodes, 'lobby')).toBe('Europe/Berlin');
    expect(zoneOf(nodes, 'root')).toBe('UTC');
  });
});
