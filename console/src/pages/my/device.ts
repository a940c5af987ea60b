// This browser as one of the member's devices (M6, L5): its id, name and
// token, kept in localStorage per user (the name is given once). The token
// is not the session: it only says which registered browser plays, and the
// hub checks it together with the session.
//
// Owns: reading, writing and forgetting the stored browser. Must not: keep
// the session token or the CSRF token.

/** A browser registered for a user. */
export interface StoredBrowser {
  /** Its id at the hub. */
  id: string;
  /** The name the user gave it. */
  name: string;
  /** The token the hub gave it. */
  token: string;
}

const key = (user: string) => `signet.player.browser.${user}`;

/** The browser stored for `user`, if any (and well-formed). */
export function storedBrowser(user: string, storage: Storage = localStorage): StoredBrowser | null {
  try {
    const v = JSON.parse(storage.getItem(key(user)) ?? 'null') as Partial<StoredBrowser> | null;
    if (v && typeof v.id === 'string' && typeof v.name === 'string' && typeof v.token === 'string') {
      return { id: v.id, name: v.name, token: v.token };
    }
  } catch {
    // Not JSON: treated as absent.
  }
  return null;
}

/** Stores `browser` for `user`. */
export function storeBrowser(user: string, browser: StoredBrowser, storage: Storage = localStorage): void {
  storage.setItem(key(user), JSON.stringify(browser));
}

/** Forgets the browser stored for `user`. */
export function forgetBrowser(user: string, storage: Storage = localStorage): void {
  storage.removeItem(key(user));
}

/** Items grouped by category, in the group's category order; items without one last under "Other". */
export function byCategory<T extends { categories: string[] }>(categories: string[], items: T[]): { name: string; items: T[] }[] {
  const sections = categories
    .map((name) => ({ name, items: items.filter((i) => i.categories.includes(name)) }))
    .filter((s) => s.items.length > 0);
  const other = items.filter((i) => !i.categories.some((c) => categories.includes(c)));
  if (other.length) sections.push({ name: sections.length ? 'Other' : 'All items', items: other });
  return sections;
}
