// The operator's session (C2): who is logged in, until when, and the CSRF
// token for writes. The session token itself lives only in the hub's
// HttpOnly cookie; the CSRF token only in this module's memory (the hub
// also sets it as a readable cookie, used after a reload).
//
// Owns: log in, log out, restore on load, expiry (at `expires_at`, or on
// any 401), the user's own effective permissions (P4, for what the menu
// offers). Must not: write any token to localStorage or sessionStorage.
import { api, ok, connectSession, readCookie, ApiFailure, type Schemas } from './api/client';

/** A user as the hub shows it. */
export type User = Schemas['UserView'];
/** A role, least to most powerful. */
export type Role = 'viewer' | 'contributor' | 'moderator' | 'manager' | 'admin';

/** Roles in order of power (P1). */
export const ROLES: readonly Role[] = ['viewer', 'contributor', 'moderator', 'manager', 'admin'];

/** Whether `role` is at least `needed`. */
export function atLeast(role: string | undefined, needed: Role): boolean {
  const have = ROLES.indexOf(role as Role);
  return have >= 0 && have >= ROLES.indexOf(needed);
}

/** Where the session stands. */
export type SessionStatus = 'loading' | 'anonymous' | 'active' | 'expired';

class SessionState {
  /** Where it stands. */
  status = $state<SessionStatus>('loading');
  /** The logged-in user. */
  user = $state<User | null>(null);
  /** When the hub ends it. */
  expiresAt = $state<Date | null>(null);
  /** The user's effective permissions (P4: role defaults and groups), as the hub computes them. */
  permissions = $state<readonly string[]>([]);
  /** The CSRF token for writes (memory only). */
  csrf: string | null = null;
  /** The timer that marks it expired at `expiresAt`. */
  timer: ReturnType<typeof setTimeout> | null = null;
}

/** The one session of this page. */
export const session = new SessionState();

connectSession({
  csrf: () => session.csrf ?? readCookie('signet_csrf'),
  unauthenticated: () => expire(),
});

function begin(user: User, expiresAt: string, csrf: string): void {
  session.user = user;
  session.csrf = csrf;
  session.expiresAt = new Date(expiresAt);
  session.status = 'active';
  if (session.timer) clearTimeout(session.timer);
  // setTimeout holds at most 2^31-1 ms; a longer session re-arms on reload.
  const ms = Math.min(session.expiresAt.getTime() - Date.now(), 2 ** 31 - 1);
  session.timer = setTimeout(expire, Math.max(ms, 0));
}

/** Whether the logged-in user holds `permission` (P4), by role default or through a permission group. */
export function holds(permission: string): boolean {
  return session.permissions.includes(permission);
}

/**
 * Reads the user's own effective permissions (`GET /api/v1/users/{id}/permissions`,
 * allowed for oneself). Unreadable, they are the empty list: the hub still
 * authorizes every call, the menu merely offers less.
 */
async function loadPermissions(): Promise<void> {
  const id = session.user?.id;
  if (!id) return;
  try {
    const view = await ok(api.GET('/api/v1/users/{id}/permissions', { params: { path: { id } } }));
    if (session.user?.id === id) session.permissions = view.effective;
  } catch {
    if (session.user?.id === id) session.permissions = [];
  }
}

function clear(status: SessionStatus): void {
  if (session.timer) clearTimeout(session.timer);
  session.timer = null;
  session.permissions = [];
  session.user = null;
  session.csrf = null;
  session.expiresAt = null;
  session.status = status;
}

/** Asks the hub for the current session (after a page load, or when the event stream was refused). */
export async function restore(): Promise<void> {
  try {
    const s = await ok(api.GET('/api/v1/session'));
    begin(s.user, s.expires_at, s.csrf_token);
    await loadPermissions();
  } catch (e) {
    // The hub unreachable for a moment ends nothing; a 401 has already
    // marked an active session expired (the client's 401 hook); on a page
    // load there simply is none.
    if (e instanceof ApiFailure && e.status === 0 && session.status === 'active') return;
    if (session.status !== 'expired') clear('anonymous');
  }
}

/** Logs in; throws an ApiFailure with the hub's message when refused. */
export async function login(name: string, password: string): Promise<void> {
  const s = await ok(api.POST('/api/v1/session', { body: { name, password } }));
  begin(s.user, s.expires_at, s.csrf_token);
  await loadPermissions();
}

/** Logs out (the hub clears both cookies); the page shows the login form. */
export async function logout(): Promise<void> {
  try {
    await ok(api.DELETE('/api/v1/session'));
  } finally {
    clear('anonymous');
  }
}

/** The session ended without a logout (expired, revoked): log in again. */
export function expire(): void {
  if (session.status === 'active') clear('expired');
}
