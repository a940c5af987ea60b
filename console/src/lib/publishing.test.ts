// Publication progress per device (C8, U4).
import { describe, expect, it } from 'vitest';
import { progressOf, type Run } from './publishing';
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
