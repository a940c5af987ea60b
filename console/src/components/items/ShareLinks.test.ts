// An item's live share links (M3, P2): listed as the hub answers them
// (never a token), and revoked one by one with DELETE /api/v1/shares/{id}.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, screen, fireEvent, waitFor } from '@testing-library/svelte';
import ShareLinks from './ShareLinks.svelte';

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const LINKS = [
  { id: 's-2', created_by: 'u-2', created_by_name: 'mod', created_at: '2026-12-04T10:00:00Z', expires_at: '2026-12-11T10:00:00Z', mailed: 0 },
  { id: 's-1', created_by: 'u-1', created_by_name: 'contrib', created_at: '2026-12-04T09:00:00Z', expires_at: '2026-12-05T09:00:00Z', mailed: 2 },
];

afterEach(() => vi.unstubAllGlobals());

describe('m3_p2 share links of an item', () => {
  it('lists the live links and revokes the one asked for', async () => {
    const calls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (request: Request) => {
        const path = new URL(request.url).pathname;
        calls.push(`${request.method} ${path}`);
        if (request.method === 'DELETE') return new Response(null, { status: 204 });
        return json(LINKS);
      }),
    );
    render(ShareLinks, { id: 'c-1' });
    const items = await screen.findAllByRole('listitem');
    expect(items.map((li) => li.textContent)).toEqual([
      expect.stringContaining('By mod'),
      expect.stringMatching(/By contrib.*sent by mail to 2\s+addresses/s),
    ]);
    expect(calls).toEqual(['GET /api/v1/content/c-1/shares']);

    const revoke = screen.getAllByRole('button', { name: /Revoke/ });
    await fireEvent.click(revoke[1]!);
    expect((await screen.findByRole('status')).textContent).toContain('contrib revoked');
    expect(calls).toContain('DELETE /api/v1/shares/s-1');
    await waitFor(() => expect(screen.getAllByRole('listitem').map((li) => li.textContent)).toEqual([expect.stringContaining('By mod')]));
  });

  it("keeps the link and shows the hub's refusal", async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async (request: Request) =>
        request.method === 'DELETE'
          ? json({ error: 'not_own_share', message: 'only its maker revokes a share link' }, 403)
          : json(LINKS.slice(0, 1)),
      ),
    );
    render(ShareLinks, { id: 'c-1' });
    await fireEvent.click(await screen.findByRole('button', { name: /Revoke/ }));
    expect((await screen.findByRole('alert')).textContent).toContain('only its maker');
    expect(screen.getAllByRole('listitem')).toHaveLength(1);
  });

  it('says when there is none', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json([])));
    render(ShareLinks, { id: 'c-1' });
    expect(await screen.findByText('No live links you may revoke.')).toBeTruthy();
  });
});
