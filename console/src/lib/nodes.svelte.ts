// The tenancy tree as the logged-in user sees it, and the node the console
// works in (the tenant/node context shown in the header).
//
// Owns: loading the visible nodes, node paths for display, the chosen node
// (for the whole session of this page). Must not:
// decide what a user may see — the hub answers only visible nodes.
import { api, ok, type Schemas } from './api/client';

/** A node as the hub shows it. */
export type Node = Schemas['NodeView'];

class Tree {
  /** Visible nodes by id. */
  byId = $state<Map<string, Node>>(new Map());
  /** Whether they have been loaded. */
  loaded = $state(false);
  /** Why loading failed, if it did. */
  error = $state<string | null>(null);
  /** The node the console works in; null for the whole domain. */
  current = $state<string | null>(null);
}

/** The visible nodes. */
export const tree = new Tree();

/** Loads the visible nodes (after login). */
export async function loadNodes(): Promise<void> {
  try {
    const nodes = await ok(api.GET('/api/v1/nodes'));
    tree.byId = new Map(nodes.map((n) => [n.id, n]));
    tree.error = null;
  } catch (e) {
    tree.error = e instanceof Error ? e.message : String(e);
  } finally {
    tree.loaded = true;
  }
}

/** Forgets the nodes (logout). */
export function clearNodes(): void {
  tree.byId = new Map();
  tree.loaded = false;
  tree.current = null;
}

/** The names from the topmost visible ancestor down to `id`. */
export function pathNames(nodes: Map<string, Node>, id: string): string[] {
  const names: string[] = [];
  const seen = new Set<string>();
  let at: string | null | undefined = id;
  while (at && !seen.has(at)) {
    seen.add(at);
    const node = nodes.get(at);
    if (!node) break;
    names.unshift(node.name);
    at = node.parent;
  }
  return names.length ? names : [id];
}

/** `Tenant / Site / Lobby` for display. */
export function nodePath(id: string): string {
  return pathNames(tree.byId, id).join(' / ');
}

/** Nodes in tree order (parents before children) with their depth. */
export function ordered(nodes: Map<string, Node>): { node: Node; depth: number }[] {
  const children = new Map<string, Node[]>();
  const roots: Node[] = [];
  for (const n of nodes.values()) {
    if (n.parent && nodes.has(n.parent)) {
      const list = children.get(n.parent) ?? [];
      list.push(n);
      children.set(n.parent, list);
    } else {
      roots.push(n);
    }
  }
  const byName = (a: Node, b: Node) => a.name.localeCompare(b.name);
  const out: { node: Node; depth: number }[] = [];
  const walk = (n: Node, depth: number) => {
    out.push({ node: n, depth });
    for (const c of (children.get(n.id) ?? []).sort(byName)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byName)) walk(r, 0);
  return out;
}

/** Whether `id` is `top` or below it. */
export function within(nodes: Map<string, Node>, id: string, top: string): boolean {
  const seen = new Set<string>();
  let at: string | null | undefined = id;
  while (at && !seen.has(at)) {
    if (at === top) return true;
    seen.add(at);
    at = nodes.get(at)?.parent;
  }
  return false;
}

/** The node the console works in, or null for the whole domain. */
export function currentNode(): string | null {
  const id = tree.current;
  return id && tree.byId.has(id) ? id : null;
}

/** Chooses the node the console works in. */
export function chooseNode(id: string | null): void {
  tree.current = id;
}

/** The leaf nodes (devices attach only there, T1). */
export function leaves(nodes: Map<string, Node>): Node[] {
  return ordered(nodes)
    .map((o) => o.node)
    .filter((n) => n.leaf);
}
