// Approval inbox rules (C8, A6).
import { describe, expect, it } from 'vitest';
import { toReview, mine, type Reviewable } from './approval';
import type { Node } from './nodes.svelte';

const nodes = new Map<string, Node>(
  [
    { id: 'root', parent: null, name: 'Root' },
    { id: 'acme', parent: 'root', name: 'Acme' },
    { id: 'lobby', parent: 'acme', name: 'Lobby' },
    { id: 'globex', parent: 'root', name: 'Globex' },
  ].map((n) => [n.id, n as Node]),
);

function item(id: string, node: string, state: string, by: string, at: string): Reviewable {
  return { id, node, approval_state: state, created_by: by, updated_by: by, updated_at: at } as Reviewable;
}

const items = [
  item('a', 'lobby', 'pending', 'u-1', '2026-01-02'),
  item('b', 'acme', 'pending', 'u-2', '2026-01-01'),
  item('c', 'globex', 'pending', 'u-1', '2026-01-01'),
  item('d', 'lobby', 'active', 'u-1', '2026-01-03'),
];

describe('approval inbox', () => {
  it('lists pending items inside the domain, oldest first', () => {
    expect(toReview(items, ['acme'], nodes).map((i) => i.id)).toEqual(['b', 'a']);
    expect(toReview(items, ['root'], nodes).map((i) => i.id)).toEqual(['b', 'c', 'a']);
  });
  it("lists the user's own items, newest first", () => {
    expect(mine(items, 'u-1').map((i) => i.id)).toEqual(['d', 'a', 'c']);
  });
});
