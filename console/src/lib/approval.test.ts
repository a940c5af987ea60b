// Approval inbox rules (C8, A6).
import { describe, expect, it } from 'vitest';
import { mine, mayDecide, decidedNote, rejectReason, type Reviewable } from './approval';

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
  it("lists the user's own items, newest first", () => {
    expect(mine(items, 'u-1').map((i) => i.id)).toEqual(['d', 'a', 'c']);
  });
  it('offers the decision on an item page only while pending and the hub allows approve_content (A6)', () => {
    expect(mayDecide('pending', ['rate', 'approve_content'])).toBe(true);
    expect(mayDecide('pending', ['rate', 'comment.view'])).toBe(false);
    expect(mayDecide('active', ['approve_content'])).toBe(false);
    expect(mayDecide('inactive', ['approve_content'])).toBe(false);
  });
  it('says what a decision did', () => {
    expect(decidedNote('Clip', 'approve')).toBe('Approved “Clip”.');
    expect(decidedNote('Clip', 'reject')).toBe('Rejected “Clip”.');
    expect(decidedNote('Clip', 'request')).toBe('Approval requested for “Clip”.');
  });
  it('sends a reject reason trimmed, and none when blank or too long', () => {
    expect(rejectReason('  too dark \n')).toBe('too dark');
    expect(rejectReason('   ')).toBeNull();
    expect(rejectReason('x'.repeat(2000))).toHaveLength(2000);
    expect(rejectReason('x'.repeat(2001))).toBeNull();
  });
});
