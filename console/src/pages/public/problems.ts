// What the public pages say when a mailed link no longer works (M5, C11):
// each error code the token routes answer gets a page of its own.
//
// Owns: the code → title and explanation table. Must not: call the hub.
import { ApiFailure } from '../../lib/api/client';

/** A page explaining why a link does not work. */
export interface Problem {
  /** The heading. */
  title: string;
  /** What happened and what to do. */
  text: string;
  /** The hub's error code. */
  code: string;
}

const PAGES: Record<string, Omit<Problem, 'code'>> = {
  invite_used: {
    title: 'This invitation was already accepted',
    text: 'An invitation works once. If you accepted it, log in with your e-mail address and password; otherwise ask for a new invitation.',
  },
  invite_expired: {
    title: 'This invitation has expired',
    text: 'Ask the person who invited you for a new invitation.',
  },
  invite_not_found: {
    title: 'This invitation is not known',
    text: 'The link may be incomplete or the invitation was withdrawn. Copy the whole link from the mail, or ask for a new invitation.',
  },
  signup_expired: {
    title: 'This confirmation link has expired',
    text: 'Sign up again; a new confirmation mail will follow.',
  },
  signup_not_found: {
    title: 'This confirmation link is not known, or was already used',
    text: 'If you already confirmed, log in with your e-mail address and password. Otherwise sign up again.',
  },
  signup_closed: {
    title: 'This group no longer takes signups',
    text: 'Ask the group’s administrator for an invitation.',
  },
  token_used: {
    title: 'This link was already used',
    text: 'Your password was set with it. Log in with your login name and password, or ask an administrator to reset it.',
  },
  token_expired: {
    title: 'This link has expired',
    text: 'Ask an administrator to reset your password.',
  },
  token_not_found: {
    title: 'This link is not known',
    text: 'Copy the whole link from the mail, or ask an administrator to reset your password.',
  },
  invalid_token: {
    title: 'This link is not complete',
    text: 'Copy the whole link from the mail into the address bar.',
  },
  not_found: {
    title: 'This page is not available',
    text: 'The group does not exist or does not take signups.',
  },
};

/** The page for a failure of a token route, or null for other failures. */
export function problemOf(e: unknown): Problem | null {
  if (!(e instanceof ApiFailure)) return null;
  const page = PAGES[e.code];
  return page ? { ...page, code: e.code } : null;
}
