// The console's management actions that had needed curl (issue 19
// Acceptance): deleting items, templates, playlists and schedules with the
// hub's refusal in words, copying a template down from a restricted node
// (A2), and a device's feed variables `[1]`…`[25]` (D6).
//
// Owns: the plain words of a refused delete, which nodes a master may be
// copied to, and checking and shaping a device's variables before they are
// sent. Must not: decide what the hub allows (it authorizes every call and
// its refusal is shown as it says).
import { ApiFailure } from './api/client';
import { message } from './format';
import { ordered, within, type Node } from './nodes.svelte';

/** Refusal codes of a delete whose plain meaning goes before the hub's message. */
const IN_USE: Record<string, string> = {
  item_in_use: 'it is still used by a template, playlist or access group',
  playlist_in_use: 'a schedule still plays it',
  node_in_use: 'it still holds devices, content or child nodes',
};

/**
 * Why deleting `name` was refused, in words: 409 "still in use" said
 * plainly, then the hub's detail with the ids it names replaced by the
 * names in `names` (id → name) where known.
 */
export function deleteRefusal(name: string, e: unknown, names: Map<string, string> = new Map()): string {
  if (e instanceof ApiFailure && IN_USE[e.code]) {
    return `Not deleted: “${name}” is in use — ${IN_USE[e.code]}. Remove it there first. (${withNames(e.message, names)})`;
  }
  return `Not deleted: ${message(e)}`;
}

/** `text` with each id of `names` replaced by its name in quotes (longer ids first, so none is cut short). */
export function withNames(text: string, names: Map<string, string>): string {
  const ids = [...names.keys()].filter((id) => id.length > 0).sort((a, b) => b.length - a.length);
  return ids.reduce((out, id) => out.split(id).join(`“${names.get(id) ?? id}”`), text);
}

/**
 * The nodes a master item (one of the restricted node `from`) may be copied
 * to (A2): not restricted, strictly below `from`, in tree order.
 */
export function copyTargets(nodes: Map<string, Node>, from: string): Node[] {
  if (nodes.get(from)?.restricted !== true) return [];
  return ordered(nodes)
    .map((o) => o.node)
    .filter((n) => n.id !== from && !n.restricted && within(nodes, n.id, from));
}

/** How many feed variables a device has (D6: `[1]`…`[25]`). */
export const VARIABLES = 25;
/** The most bytes one variable's value may have (the hub's limit). */
export const VARIABLE_BYTES = 256;

/** One variable as the form edits it. */
export interface VariableRow {
  /** `1` to `25`. */
  number: number;
  value: string;
}

/** The 25 rows of a device's variables, blank where none is set. */
export function variableRows(stored: Record<string, string> | null | undefined): VariableRow[] {
  return Array.from({ length: VARIABLES }, (_, i) => ({ number: i + 1, value: stored?.[String(i + 1)] ?? '' }));
}

/** Why `value` cannot be a variable's value, or null (the hub's rules: ≤ 256 bytes, no control characters). */
export function variableProblem(value: string): string | null {
  if (new TextEncoder().encode(value).length > VARIABLE_BYTES) return `longer than ${VARIABLE_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) return 'contains a control character (a line break or tab)';
  return null;
}

/**
 * The body of `PUT /api/v1/devices/{id}/variables` from the form's rows:
 * blank rows left out (cleared), or the problems by variable number when a
 * value would be refused (then nothing is sent).
 */
export function variablesBody(rows: VariableRow[]): { variables: Record<string, string> } | { problems: Record<number, string> } {
  const variables: Record<string, string> = {};
  const problems: Record<number, string> = {};
  for (const row of rows) {
    if (row.value === '') continue;
    const problem = variableProblem(row.value);
    if (problem) problems[row.number] = problem;
    else variables[String(row.number)] = row.value;
  }
  return Object.keys(problems).length ? { problems } : { variables };
}

/** Whether the form's rows differ from what is stored. */
export function variablesChanged(rows: VariableRow[], stored: Record<string, string> | null | undefined): boolean {
  return rows.some((r) => r.value !== (stored?.[String(r.number)] ?? ''));
}

/**
 * An item's thumbnail address, naming the bytes it shows: the hub lets
 * browsers keep a thumbnail an hour, so after a file is replaced the new
 * hash makes a new address and the old picture is not shown from cache.
 */
export function thumbnailUrl(item: { id: string; sha256: string }): string {
  return `/api/v1/content/${encodeURIComponent(item.id)}/thumbnail?v=${encodeURIComponent(item.sha256.slice(0, 16))}`;
}
