// The pages reached from mailed links without a login (DESIGN §8: their
// paths are a contract, used in mails under `public_url`; M5, C11).
import type { Component } from 'svelte';
import Invite from './Invite.svelte';
import Signup from './Signup.svelte';
import SignupConfirm from './SignupConfirm.svelte';
import PasswordSet from './PasswordSet.svelte';

/** A public page and the path pattern it answers. */
export interface PublicRoute {
  /** Path pattern, `:name` for a parameter. */
  pattern: string;
  /** The page. */
  page: Component<{ params: Record<string, string> }>;
  /** Document title. */
  title: string;
  /** Whether other sites may frame it (the hub says so per group). */
  embeddable?: boolean;
}

/** Every public page; `/signup/confirm/:token` before `/signup/:group_id`. */
export const PUBLIC_ROUTES: PublicRoute[] = [
  { pattern: '/invite/:token', page: Invite, title: 'Invitation' },
  { pattern: '/signup/confirm/:token', page: SignupConfirm, title: 'Confirm your signup' },
  { pattern: '/signup/:group_id', page: Signup, title: 'Sign up', embeddable: true },
  { pattern: '/password/set/:token', page: PasswordSet, title: 'Set your password' },
];
