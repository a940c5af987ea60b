// Sessions (C2): login keeps the CSRF token in memory only and sends it on
// writes, never on reads; a 401 ends the session; logout clears it.
import { beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => {
  const log: { method: string; path: string; headers: Headers }[] = [];
  const answers: Record<string, () => Response> = {};
  globalThis.fetch = (async (input: RequestInfo | URL) => {
    const request = input as Request;
    const path = new URL(request.url).pathname;
    log.push({ method: request.method, path, headers: request.headers });
    const answer = answers[`${request.method} ${path}`];
    return answer ? answer() : new Response('{"error":"not_found","message":"nothing"}', { status: 404 });
  }) as typeof fetch;
  return { log, answers };
});

import { api, ok } from './api/client';
import { holds, login, logout, restore, session } from './session.svelte';

const user = {
  id: 'u-1',
  name: 'admin',
  email: 'a@example.com',
  role: 'admin',
  domain: ['n-root'],
  requires_approval: false,
  disabled: false,
  created_at: '2026-01-01T00:00:00Z',
};
const json = (body: unknown, status = 200) => () =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

beforeEach(() => {
  calls.log.length = 0;
  for (const k of Object.keys(calls.answers)) delete calls.answers[k];
});

describe('session', () => {
  it('logs in, sends the CSRF token on writes only, and keeps no token in storage', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    calls.answers['POST /api/v1/session'] = json({ token: 'tok', expires_at: expires, user, csrf_token: 'csrf-1' });
    calls.answers['GET /api/v1/nodes'] = json([]);
    calls.answers['DELETE /api/v1/session'] = () => new Response(null, { status: 204 });
    await login('admin', 'pw');
    expect(session.status).toBe('active');
    expect(session.user?.name).toBe('admin');
    expect(JSON.stringify({ ...localStorage })).not.toContain('csrf-1');
    expect(JSON.stringify({ ...sessionStorage })).not.toContain('tok');

    await ok(api.GET('/api/v1/nodes'));
    const read = calls.log.at(-1)!;
    expect(read.headers.get('x-csrf-token')).toBeNull();
    expect(read.headers.get('authorization')).toBeNull();

    await logout();
    const write = calls.log.find((c) => c.method === 'DELETE')!;
    expect(write.headers.get('x-csrf-token')).toBe('csrf-1');
    expect(session.status).toBe('anonymous');
    expect(session.csrf).toBeNull();
  });

  it('P4: logging in reads the user’s own effective permissions; a group’s approve_content counts; logout forgets them', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    const viewer = { ...user, id: 'u-2', name: 'vera', role: 'viewer' };
    calls.answers['POST /api/v1/session'] = json({ token: 'tok', expires_at: expires, user: viewer, csrf_token: 'csrf-2' });
    calls.answers['GET /api/v1/users/u-2/permissions'] = json({
      user: 'u-2', role: 'viewer', role_defaults: ['comment.view'], hidden_groups: 0,
      groups: [{ id: 'pg-1', name: 'Reviewers', node: 'n-root', direct: true, permissions: ['approve_content'] }],
      effective: ['comment.view', 'approve_content'],
    });
    calls.answers['DELETE /api/v1/session'] = () => new Response(null, { status: 204 });
    await login('vera', 'pw');
    expect(calls.log.map((c) => `${c.method} ${c.path}`)).toContain('GET /api/v1/users/u-2/permissions');
    expect(holds('approve_content')).toBe(true);
    expect(holds('publish')).toBe(false);
    await logout();
    expect(holds('approve_content')).toBe(false);
  });

  it('P4: permissions the hub will not show leave the session logged in, holding none', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    calls.answers['POST /api/v1/session'] = json({ token: 'tok', expires_at: expires, user, csrf_token: 'csrf-3' });
    calls.answers['DELETE /api/v1/session'] = () => new Response(null, { status: 204 });
    await login('admin', 'pw');
    expect(session.status).toBe('active');
    expect(session.permissions).toEqual([]);
    await logout();
  });

  it('a refused login throws the hub message and stays logged out', async () => {
    calls.answers['POST /api/v1/session'] = json({ error: 'unauthenticated', message: 'wrong name or password' }, 401);
    await expect(login('admin', 'bad')).rejects.toThrow('wrong name or password');
    expect(session.status).not.toBe('active');
    expect(session.status).not.toBe('expired');
  });

  it('a 401 on any call ends an active session as expired', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    calls.answers['GET /api/v1/session'] = json({ user, expires_at: expires, csrf_token: 'c' });
    await restore();
    expect(session.status).toBe('active');
    calls.answers['GET /api/v1/nodes'] = json({ error: 'unauthenticated', message: 'token expired' }, 401);
    await expect(ok(api.GET('/api/v1/nodes'))).rejects.toThrow('token expired');
    expect(session.status).toBe('expired');
  });

  it('an active session the hub no longer knows ends as expired when asked again', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    calls.answers['GET /api/v1/session'] = json({ user, expires_at: expires, csrf_token: 'c' });
    await restore();
    expect(session.status).toBe('active');
    calls.answers['GET /api/v1/session'] = json({ error: 'unauthorized', message: 'unknown or revoked token' }, 401);
    await restore();
    expect(session.status).toBe('expired');
  });

  it('a hub out of reach for a moment ends no session', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString();
    calls.answers['GET /api/v1/session'] = json({ user, expires_at: expires, csrf_token: 'c' });
    await restore();
    calls.answers['GET /api/v1/session'] = () => {
      throw new TypeError('fetch failed');
    };
    await restore();
    expect(session.status).toBe('active');
  });

  it('expires by itself at expires_at', async () => {
    vi.useFakeTimers();
    try {
      calls.answers['GET /api/v1/session'] = json({
        user,
        expires_at: new Date(Date.now() + 60_000).toISOString(),
        csrf_token: 'c',
      });
      await restore();
      expect(session.status).toBe('active');
      vi.advanceTimersByTime(61_000);
      expect(session.status).toBe('expired');
    } finally {
      vi.useRealTimers();
    }
  });
});
