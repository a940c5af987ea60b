// HTML5 history routing: the hub answers index.html for every path that is
// not an API or asset path, and this module maps the path to a page.
//
// Owns: the current path and query, navigation, link interception, route
// matching. Must not: know about pages (App.svelte holds the route table).

/** The current location. */
class Location {
  /** The path, e.g. `/devices/d-1`. */
  path = $state('/');
  /** The query string without `?`. */
  search = $state('');
}

/** Where the page is now. */
export const here = new Location();

function read(): void {
  here.path = window.location.pathname;
  here.search = window.location.search.replace(/^\?/, '');
}

/** Starts following the browser's back and forward buttons. */
export function startRouter(): () => void {
  read();
  const onPop = () => read();
  window.addEventListener('popstate', onPop);
  return () => window.removeEventListener('popstate', onPop);
}

/** Goes to `to` (a path with optional query) without reloading. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const current = window.location.pathname + window.location.search;
  if (to === current) return;
  if (options.replace) window.history.replaceState({}, '', to);
  else window.history.pushState({}, '', to);
  read();
}

/** The query parameters of the current location. */
export function query(): URLSearchParams {
  return new URLSearchParams(here.search);
}

/** Sets query parameters in place (replacing history), dropping empty ones. */
export function setQuery(values: Record<string, string | null | undefined>): void {
  const q = query();
  for (const [k, v] of Object.entries(values)) {
    if (v) q.set(k, v);
    else q.delete(k);
  }
  const s = q.toString();
  navigate(here.path + (s ? `?${s}` : ''), { replace: true });
}

/**
 * Matches `path` against `pattern` (`/devices/:id`); answers the decoded
 * parameters, or null. Trailing slashes are ignored.
 */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const want = p[i] as string;
    const got = s[i] as string;
    if (want.startsWith(':')) {
      try {
        params[want.slice(1)] = decodeURIComponent(got);
      } catch {
        return null;
      }
    } else if (want !== got) {
      return null;
    }
  }
  return params;
}

/**
 * Svelte action for same-origin links: a plain left click navigates inside
 * the page; modified clicks (new tab, download) keep the browser's way.
 */
export function link(node: HTMLAnchorElement): { destroy(): void } {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const href = node.getAttribute('href');
    if (!href || !href.startsWith('/') || href.startsWith('//') || node.target) return;
    e.preventDefault();
    navigate(href);
  };
  node.addEventListener('click', onClick);
  return { destroy: () => node.removeEventListener('click', onClick) };
}
