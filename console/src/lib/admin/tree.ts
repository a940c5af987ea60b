// Tree operations of the tenancy page (T1–T4): children, the values a node
// inherits (time zone, country, region), owners of restricted nodes, devices
// per leaf and why a node cannot be deleted yet.
//
// Owns: reading the visible tree for the tree page. Must not: decide what
// is allowed (the hub refuses; this only explains ahead of time).
import type { Node } from '../nodes.svelte';

/** The children of `id`, by name. */
export function childrenOf(nodes: Map<string, Node>, id: string): Node[] {
  return [...nodes.values()].filter((n) => n.parent === id).sort((a, b) => a.name.localeCompare(b.name));
}

/** A locale field a node may set or inherit. */
export type LocaleField = 'time_zone' | 'country' | 'region';

/** The value of `field` at `id`: its own, else the nearest ancestor's, with where it comes from. */
export function inherited(nodes: Map<string, Node>, id: string, field: LocaleField): { value: string | null; from: string | null } {
  const seen = new Set<string>();
  let at: string | null | undefined = id;
  while (at && !seen.has(at)) {
    seen.add(at);
    const n = nodes.get(at);
    const v = n?.[field];
    if (v) return { value: v, from: at };
    at = n?.parent;
  }
  return { value: null, from: null };
}

/** Why `id` cannot be deleted, as far as the console can tell (the hub also checks users, content, groups). */
export function deleteBlockers(nodes: Map<string, Node>, id: string, devices: number, domain: readonly string[]): string[] {
  const n = nodes.get(id);
  if (!n) return ['It is not visible.'];
  const out: string[] = [];
  if (!n.parent) out.push('It is the root.');
  else if (domain.includes(id)) out.push('It is where your own domain starts; only a user above it may delete it.');
  const kids = childrenOf(nodes, id).length;
  if (kids) out.push(`It has ${kids} child ${kids === 1 ? 'node' : 'nodes'}.`);
  if (devices) out.push(`${devices} ${devices === 1 ? 'device is' : 'devices are'} attached to it.`);
  return out;
}

/** Whether a child may be created under `id`: not under a node holding devices (T1). */
export function mayAddChild(devices: number): boolean {
  return devices === 0;
}

/** How many devices each node holds. */
export function deviceCounts(devices: readonly { node: string }[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of devices) out.set(d.node, (out.get(d.node) ?? 0) + 1);
  return out;
}

/**
 * Where `id` may move (T1, T4): visible nodes outside its own subtree, other
 * than its parent, that hold no devices. The hub also refuses a move away
 * from a node holding what the subtree uses (T2), and says which.
 */
export function moveTargets(nodes: Map<string, Node>, id: string, counts: Map<string, number>): Node[] {
  const n = nodes.get(id);
  if (!n?.parent) return [];
  const below = (x: string): boolean => {
    const seen = new Set<string>();
    for (let at: string | null | undefined = x; at && !seen.has(at); at = nodes.get(at)?.parent) {
      if (at === id) return true;
      seen.add(at);
    }
    return false;
  };
  return [...nodes.values()].filter((x) => x.id !== n.parent && !below(x.id) && !(counts.get(x.id) ?? 0));
}
