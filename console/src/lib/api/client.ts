// The one way the console talks to the hub: openapi-fetch over the types
// generated from the hub's OpenAPI document (console/openapi.json), so a
// call that does not match the API does not build.
//
// Owns: the session cookie travelling with every call (same origin), the
// CSRF header on writes, JSON error decoding, and telling the session when
// the hub answers 401. Must not: keep the session token anywhere (the hub
// keeps it in an HttpOnly cookie) or write the CSRF token to storage.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

/** Schemas of the hub's API, by name. */
export type Schemas = components['schemas'];

/** Methods that change nothing, so need no CSRF header (contract). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What the client needs from the session: the CSRF token and a 401 hook. */
export interface SessionHooks {
  /** The CSRF token of the current session, if any. */
  csrf(): string | null;
  /** Called when the hub answered 401 to an authenticated call. */
  unauthenticated(): void;
}

let hooks: SessionHooks = { csrf: () => null, unauthenticated: () => {} };

/** Connects the client to the session (done once by the session module). */
export function connectSession(h: SessionHooks): void {
  hooks = h;
}

/** The CSRF header for a write, from the session or the readable cookie. */
export function csrfHeader(method: string): Record<string, string> {
  if (SAFE_METHODS.has(method.toUpperCase())) return {};
  const token = hooks.csrf() ?? readCookie('signet_csrf');
  return token ? { 'X-CSRF-Token': token } : {};
}

/** A cookie's value, or null. */
export function readCookie(name: string): string | null {
  if (typeof document === 'undefined') return null;
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

const session: Middleware = {
  onRequest({ request }) {
    for (const [k, v] of Object.entries(csrfHeader(request.method))) request.headers.set(k, v);
    return request;
  },
  onResponse({ request, response }) {
    const login = new URL(request.url, 'http://x').pathname === '/api/v1/session' && request.method === 'POST';
    if (response.status === 401 && !login) hooks.unauthenticated();
    return response;
  },
};

function origin(): string {
  return typeof location === 'undefined' ? 'http://localhost' : location.origin;
}

/** The typed API client. */
export const api = createClient<paths>({
  baseUrl: origin(),
  credentials: 'same-origin',
  // Looked up at each call (not once at load), so tests can stand in for it.
  fetch: (request: Request) => globalThis.fetch(request),
});
api.use(session);

/** An error answer of the hub (`{"error","message"}`) or a network failure. */
export class ApiFailure extends Error {
  /** HTTP status; 0 when the hub could not be reached. */
  readonly status: number;
  /** The hub's error code (e.g. `not_found`, `csrf_failed`). */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The `{error, message}` body of a failed call as an [`ApiFailure`]. */
export function failure(status: number, body: unknown): ApiFailure {
  const b = (body ?? {}) as { error?: unknown; message?: unknown };
  const code = typeof b.error === 'string' ? b.error : `http_${status}`;
  const message = typeof b.message === 'string' && b.message ? b.message : `the hub answered ${status}`;
  return new ApiFailure(status, code, message);
}

/** The data of an openapi-fetch result, or throws its error as an ApiFailure. */
export async function ok<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result;
  try {
    result = await call;
  } catch (e) {
    throw new ApiFailure(0, 'network', `the hub could not be reached (${String(e)})`);
  }
  if (result.error !== undefined || !result.response.ok) throw failure(result.response.status, result.error);
  return result.data as T;
}
