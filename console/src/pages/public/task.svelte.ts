// What every public page does with the hub (C11): read what the link
// names, then act once; a token refusal (used, expired, unknown) becomes a
// page of its own, any other failure stays on the form.
//
// Owns: the page's problem, error and busy state. Must not: know a route.
import { problemOf, type Problem } from './problems';

/** The state of one public page's calls. */
export class PublicTask {
  /** Why the link does not work: shown instead of the page. */
  problem = $state<Problem | null>(null);
  /** A failure the form shows. */
  error = $state<string | null>(null);
  /** Whether a call runs. */
  busy = $state(false);

  /** Reads what the page shows; any failure becomes the page's problem. */
  async load<T>(call: () => Promise<T>, title: string): Promise<T | null> {
    try {
      return await call();
    } catch (e) {
      this.problem = problemOf(e) ?? { code: 'error', title, text: e instanceof Error ? e.message : String(e) };
      return null;
    }
  }

  /** Acts once; a token refusal becomes the problem, another failure the error. */
  async run<T>(call: () => Promise<T>): Promise<T | null> {
    this.busy = true;
    this.error = null;
    try {
      return await call();
    } catch (e) {
      this.problem = problemOf(e);
      if (!this.problem) this.error = e instanceof Error ? e.message : String(e);
      return null;
    } finally {
      this.busy = false;
    }
  }
}
