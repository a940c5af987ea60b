// The login form (C2): says why a session ended; shows the hub's refusal.
import { describe, expect, it, vi } from 'vitest';
import { render, screen, fireEvent } from '@testing-library/svelte';
import Login from './Login.svelte';

describe('Login', () => {
  it('says the session ended when it expired', () => {
    render(Login, { expired: true });
    expect(screen.getByRole('status').textContent).toContain('Your session has ended');
  });

  it("shows the hub's refusal and keeps the form", async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () =>
        new Response(JSON.stringify({ error: 'unauthenticated', message: 'wrong name or password' }), {
          status: 401,
          headers: { 'content-type': 'application/json' },
        }),
      ),
    );
    render(Login, {});
    await fireEvent.input(screen.getByLabelText('Name'), { target: { value: 'ann' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'bad' } });
    await fireEvent.submit(screen.getByRole('button', { name: 'Log in' }).closest('form')!);
    expect((await screen.findByRole('alert')).textContent).toBe('wrong name or password');
    vi.unstubAllGlobals();
  });
});
