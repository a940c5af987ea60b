// The shell (C1, P1): navigation by role, the tenant shown, logout button.
import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import { createRawSnippet } from 'svelte';
import Shell from './Shell.svelte';
import { session, type User } from '../lib/session.svelte';
import { tree, type Node } from '../lib/nodes.svelte';

const children = createRawSnippet(() => ({ render: () => '<p>page</p>' }));

function as(role: string, permissions: string[] = []): void {
  session.user = { id: 'u', name: 'ann', role, domain: ['acme'] } as User;
  session.permissions = permissions;
  session.status = 'active';
  tree.byId = new Map([
    ['root', { id: 'root', parent: null, name: 'Root', leaf: false } as Node],
    ['acme', { id: 'acme', parent: 'root', name: 'Acme', leaf: false } as Node],
    ['lobby', { id: 'lobby', parent: 'acme', name: 'Lobby', leaf: true } as Node],
  ]);
}

describe('Shell', () => {
  it('shows a Viewer no pairing and no approvals', () => {
    as('viewer');
    render(Shell, { children });
    const links = screen.getAllByRole('link').map((a) => a.textContent);
    expect(links).toContain('Fleet');
    expect(links).toContain('Content');
    expect(links).not.toContain('Pair a screen');
    expect(links).not.toContain('Approvals');
    expect(screen.getByText('Acme', { selector: '.tenant' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Log out' })).toBeTruthy();
  });

  it('P4, A6: shows Approvals to a Viewer whom a permission group grants approve_content', () => {
    as('viewer', ['comment.view', 'approve_content']);
    render(Shell, { children });
    const links = screen.getAllByRole('link').map((a) => a.textContent);
    expect(links).toContain('Approvals');
    expect(links).not.toContain('Pair a screen');
    expect(links).not.toContain('Feedback');
  });

  it('shows a Viewer holding other permissions no Approvals', () => {
    as('viewer', ['comment.view', 'publish']);
    render(Shell, { children });
    expect(screen.getAllByRole('link').map((a) => a.textContent)).not.toContain('Approvals');
  });

  it('shows a Manager every page, and the nodes as the work context', () => {
    as('manager');
    render(Shell, { children });
    const links = screen.getAllByRole('link').map((a) => a.textContent);
    expect(links).toEqual(expect.arrayContaining(['Fleet', 'Pair a screen', 'Content', 'Approvals', 'Publishing']));
    const options = screen.getAllByRole('option').map((o) => o.textContent?.trim());
    expect(options).toEqual(['All my nodes', 'Root', 'Acme', 'Lobby']);
    expect(screen.getByText('page')).toBeTruthy();
  });
});
