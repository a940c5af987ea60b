// The approval rules (C8, A3–A6) of the approval inbox and the item page:
// the user's review queue (the hub's `GET /api/v1/approvals`: exactly what
// the user may decide, by the approve_content permission), which items are
// the user's own; whether an item's page offers the
// decision (as the hub's `allowed` list says); and the one way both pages
// send a decision (approve, reject with a reason, request approval).
import { api, ok, type Schemas } from './api/client';

/** A content item or a template (both carry the item fields). */
export type Reviewable = Schemas['ContentView'] & { template?: unknown };

/** Items the user uploaded or saved last, newest first. */
export function mine(items: Reviewable[], user: string): Reviewable[] {
  return items
    .filter((i) => i.created_by === user || i.updated_by === user)
    .sort((a, b) => b.updated_at.localeCompare(a.updated_at));
}

/** The user's review queue as the hub keeps it (A6): whether they approve at all, and what waits for them. */
export type Queue = Schemas['ApprovalQueue'];

/** Asks the hub for the user's review queue. */
export async function reviewQueue(): Promise<Queue> {
  return ok(api.GET('/api/v1/approvals'));
}

/** A decision on an item's approval (A5, A6). */
export type Decision = { what: 'approve' } | { what: 'reject'; reason: string } | { what: 'request' };

/**
 * Whether an item's page offers Approve and Reject: the item is pending and
 * the hub's `allowed` list for it names `approve_content` (node inside the
 * caller's domain, permission held), so neither button can answer 403.
 */
export function mayDecide(state: string, allowed: readonly string[]): boolean {
  return state === 'pending' && allowed.includes('approve_content');
}

/** What the page says after `decision` on the item `name` went through. */
export function decidedNote(name: string, decision: Decision['what']): string {
  if (decision === 'approve') return `Approved “${name}”.`;
  if (decision === 'reject') return `Rejected “${name}”.`;
  return `Approval requested for “${name}”.`;
}

/** A reject reason as sent: trimmed; null when blank or over 2000 characters (the hub's bounds). */
export function rejectReason(text: string): string | null {
  const reason = text.trim();
  return reason && reason.length <= 2000 ? reason : null;
}

/**
 * Sends `decision` on item `i` (a template through the template routes) and
 * answers the item as the hub now has it; throws the hub's refusal.
 * Approve names the reviewed version (`approval_hash`), so a newer one is
 * refused, not approved unseen.
 */
export async function decide(i: Reviewable, decision: Decision): Promise<Schemas['ContentView']> {
  const path = { params: { path: { id: i.id } } };
  const template = i.kind === 'template';
  if (decision.what === 'approve') {
    const body = { content_hash: i.approval_hash };
    return ok(template ? api.POST('/api/v1/templates/{id}/approve', { ...path, body }) : api.POST('/api/v1/content/{id}/approve', { ...path, body }));
  }
  if (decision.what === 'reject') {
    const body = { reason: decision.reason };
    return ok(template ? api.POST('/api/v1/templates/{id}/reject', { ...path, body }) : api.POST('/api/v1/content/{id}/reject', { ...path, body }));
  }
  return ok(template ? api.POST('/api/v1/templates/{id}/request-approval', path) : api.POST('/api/v1/content/{id}/request-approval', path));
}
