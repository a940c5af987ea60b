// One way for the administration pages to run a change against the hub:
// busy while it runs, then a note in words — what was done, or the hub's
// refusal (with its code, so e.g. a membership cycle reads as one).
//
// Owns: the busy flag and the note of one page's actions, and loading a
// list with its error. Must not: retry or swallow a refusal.
import { ApiFailure } from '../api/client';
import { message } from '../format';
import { navigate } from '../router.svelte';

/** What the last action said. */
export interface Note {
  ok: boolean;
  text: string;
}

/** Refusal codes whose plain meaning beats the hub's message. */
const REFUSALS: Record<string, string> = {
  membership_cycle: 'Refused: this would make a cycle of groups (P3) — a group cannot contain itself, directly or through other groups.',
};

/** A refusal in words. */
export function refusal(e: unknown): string {
  if (e instanceof ApiFailure && REFUSALS[e.code]) return `${REFUSALS[e.code]} (${e.message})`;
  return message(e);
}

/** The actions of one page. */
export class Task {
  /** Whether an action is running. */
  busy = $state(false);
  /** What the last action said. */
  note = $state<Note | null>(null);

  /** Runs `fn`; on success notes `done` (text, or made from the result); on failure the refusal. Answers whether it worked. */
  async run<T>(fn: () => Promise<T>, done?: string | ((value: T) => string)): Promise<boolean> {
    this.busy = true;
    try {
      const value = await fn();
      if (done) this.note = { ok: true, text: typeof done === 'string' ? done : done(value) };
      return true;
    } catch (e) {
      this.note = { ok: false, text: refusal(e) };
      return false;
    } finally {
      this.busy = false;
    }
  }
}

/** A list (or any value) loaded from the hub, with its error. */
export class Loaded<T> {
  /** The value; null until loaded. */
  value = $state.raw<T | null>(null);
  /** Why loading failed. */
  error = $state<string | null>(null);
  /** How to load it. */
  readonly fetch: () => Promise<T>;

  constructor(fetch: () => Promise<T>) {
    this.fetch = fetch;
  }

  /** Loads (again). */
  async load(): Promise<void> {
    try {
      this.value = await this.fetch();
      this.error = null;
    } catch (e) {
      this.error = message(e);
    }
  }
}

/** A list the hub answers oldest first, newest first. */
export function newestFirst<T>(list: T[]): T[] {
  return list.slice().reverse();
}

/** The `q` query of a list the hub filters by name and e-mail; none when blank. */
export function search(q: string): { q?: string } {
  return q.trim() ? { q: q.trim() } : {};
}

/** Runs `make` (a creation that answers the new entry) as a task, then opens the entry's page. */
export async function createAndOpen(task: Task, make: () => Promise<{ id: string }>, page: (id: string) => string): Promise<void> {
  let id = '';
  if (await task.run(async () => (id = (await make()).id))) navigate(page(encodeURIComponent(id)));
}
