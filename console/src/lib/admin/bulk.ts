// Device members of an access group in bulk (L4, L5): which devices a
// filter shows, and what one "add" or "remove" of a selection sends to
// `POST /api/v1/access-groups/{id}/members/devices`.
//
// Owns: the filter (node subtree and text in the name or node path) and
// the change built from a selection. Must not: decide who may join (the
// hub refuses the whole change when one device may not).
import { within, pathNames, type Node } from '../nodes.svelte';

/** A device as the bulk list needs it. */
export interface BulkDevice {
  id: string;
  name: string;
  node: string;
}

/**
 * The devices below `groupNode` that match: attached at or below `node`
 * (when given) and whose name or node path contains `text` (case-insensitive),
 * sorted by name.
 */
export function filterDevices<D extends BulkDevice>(devices: readonly D[], nodes: Map<string, Node>, groupNode: string, node: string, text: string): D[] {
  const needle = text.trim().toLowerCase();
  return devices
    .filter((d) => within(nodes, d.node, groupNode))
    .filter((d) => !node || within(nodes, d.node, node))
    .filter((d) => !needle || d.name.toLowerCase().includes(needle) || pathNames(nodes, d.node).join(' / ').toLowerCase().includes(needle))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The body of one bulk change: `add` sends the selected devices that are
 * not members yet, `remove` those that are; `null` when nothing would change.
 */
export function deviceChange(action: 'add' | 'remove', selected: Iterable<string>, members: ReadonlySet<string>): { add: string[]; remove: string[] } | null {
  const ids = [...new Set(selected)].filter((id) => (action === 'add' ? !members.has(id) : members.has(id))).sort();
  if (ids.length === 0) return null;
  return action === 'add' ? { add: ids, remove: [] } : { add: [], remove: ids };
}
