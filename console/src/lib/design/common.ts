// Shared bits of the design pages (templates, playlists, schedules):
// approval-state labels, nodes a user may create things at, and whether an
// item is usable at a node (T2: its node is that node or above it).
import type { Node } from '../nodes.svelte';
import { ordered, within } from '../nodes.svelte';

/** Approval states (A3) in words, with a badge tone. */
export const APPROVAL: Record<string, { label: string; tone: 'ok' | 'warn' | 'idle' }> = {
  active: { label: 'Approved', tone: 'ok' },
  pending: { label: 'Pending approval', tone: 'warn' },
  inactive: { label: 'Not approved', tone: 'idle' },
};

/** The nodes inside the user's domain (where they may create things), in tree order. */
export function writableNodes(nodes: Map<string, Node>, domain: readonly string[]): Node[] {
  return ordered(nodes)
    .map((o) => o.node)
    .filter((n) => domain.some((d) => within(nodes, n.id, d)));
}

/** Whether an item at `itemNode` may be used by something at `node` (T2). */
export function usableAt(nodes: Map<string, Node>, node: string, itemNode: string): boolean {
  return within(nodes, node, itemNode);
}

/** The time zone devices at `node` use: its own, else the nearest ancestor's, else UTC. */
export function zoneOf(nodes: Map<string, Node>, node: string): string {
  const seen = new Set<string>();
  let at: string | null | undefined = node;
  while (at && !seen.has(at)) {
    seen.add(at);
    const n = nodes.get(at);
    if (n?.time_zone) return n.time_zone;
    at = n?.parent;
  }
  return 'UTC';
}
