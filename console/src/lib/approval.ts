// The approval inbox's rules (C8, A3–A6): which items wait for the user's
// review and which are the user's own, from the content and template lists.
import type { Schemas } from './api/client';
import { within, type Node } from './nodes.svelte';

/** A content item or a template (both carry the item fields). */
export type Reviewable = Schemas['ContentView'] & { template?: unknown };

/**
 * Items pending approval at a node inside one of the user's domain nodes
 * (the nodes an approver may approve, A6), oldest request first.
 */
export function toReview(items: Reviewable[], domain: string[], nodes: Map<string, Node>): Reviewable[] {
  return items
    .filter((i) => i.approval_state === 'pending' && domain.some((top) => within(nodes, i.node, top)))
    .sort((a, b) => a.updated_at.localeCompare(b.updated_at));
}

/** Items the user uploaded or saved last, newest first. */
export function mine(items: Reviewable[], user: string): Reviewable[] {
  return items
    .filter((i) => i.created_by === user || i.updated_by === user)
    .sort((a, b) => b.updated_at.localeCompare(a.updated_at));
}
