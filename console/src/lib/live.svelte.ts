// The live fleet (C3): every visible device's fleet view, its display
// name, the counts, kept current by the hub's server-sent events
// (`GET /api/v1/fleet/stream`: `device`, `summary`, `resync`).
//
// Owns: the first load (paged), the event stream and its reconnection,
// batching updates to one re-render per 400 ms. Must not: compute
// status itself — the hub's fleet view does (statuses come from it).
import { api, ok } from './api/client';
import { expire, restore, session } from './session.svelte';
import type { FleetCounts, FleetDevice } from './fleet';

/** How long device events are gathered before the list re-renders. */
const FLUSH_MS = 400;
/** The most devices one fleet page answers (the hub's MAX_FLEET_PAGE). */
const PAGE = 1000;

class LiveFleet {
  /** Devices by id; replaced (not mutated) so readers re-render. */
  devices = $state.raw<Map<string, FleetDevice>>(new Map());
  /** Display names by device id. */
  names = $state.raw<Map<string, string>>(new Map());
  /** Item names (content and templates) by id, for "what plays now". */
  items = $state.raw<Map<string, string>>(new Map());
  /** The counts. */
  summary = $state.raw<FleetCounts | null>(null);
  /** Whether the first load finished. */
  loaded = $state(false);
  /** Whether the event stream is connected. */
  live = $state(false);
  /** Why loading failed, if it did. */
  error = $state<string | null>(null);
}

/** The one live fleet of this page. */
export const fleet = new LiveFleet();

let users = 0;
let pending = new Map<string, FleetDevice>();
let frame: number | null = null;
let namesTimer: ReturnType<typeof setTimeout> | null = null;

/** Every device of the fleet view, page by page. */
async function loadDevices(): Promise<Map<string, FleetDevice>> {
  const all = new Map<string, FleetDevice>();
  let after: string | undefined;
  for (;;) {
    const page = await ok(api.GET('/api/v1/fleet', { params: { query: { limit: PAGE, after } } }));
    for (const d of page) all.set(d.device_id, d);
    const last = page.at(-1);
    if (page.length < PAGE || !last) return all;
    after = last.device_id;
  }
}

async function loadNames(): Promise<void> {
  const devices = await ok(api.GET('/api/v1/devices'));
  fleet.names = new Map(devices.map((d) => [d.id, d.name]));
}

async function loadItems(): Promise<void> {
  const [content, templates] = await Promise.all([
    ok(api.GET('/api/v1/content')).catch(() => []),
    ok(api.GET('/api/v1/templates')).catch(() => []),
  ]);
  const items = new Map<string, string>();
  for (const c of content) items.set(c.id, c.name);
  for (const t of templates) items.set(t.id, t.name);
  fleet.items = items;
}

/** Loads everything again (first load, and after `resync`). */
export async function reload(): Promise<void> {
  try {
    const [devices, summary] = await Promise.all([
      loadDevices(),
      ok(api.GET('/api/v1/fleet/summary', { params: { query: {} } })),
      loadNames(),
      loadItems(),
    ]);
    fleet.devices = devices;
    fleet.summary = summary;
    fleet.error = null;
  } catch (e) {
    fleet.error = e instanceof Error ? e.message : String(e);
  } finally {
    fleet.loaded = true;
  }
}

function flush(): void {
  frame = null;
  if (pending.size === 0) return;
  const next = new Map(fleet.devices);
  let unknown = false;
  for (const [id, d] of pending) {
    next.set(id, d);
    if (!fleet.names.has(id)) unknown = true;
  }
  pending = new Map();
  fleet.devices = next;
  // A device paired since the load: fetch names again, at most every 2 s.
  if (unknown && !namesTimer) {
    namesTimer = setTimeout(() => {
      namesTimer = null;
      void loadNames().catch(() => {});
    }, 2000);
  }
}

/** Folds one `device` event in (batched: one re-render per FLUSH_MS). */
export function onDevice(d: FleetDevice): void {
  pending.set(d.device_id, d);
  // One re-render per FLUSH_MS at most: a 10,000-device list re-filters
  // and re-sorts on every change, and a busy fleet sends many events.
  if (frame === null) frame = setTimeout(flush, FLUSH_MS) as unknown as number;
}

function parse<T>(e: MessageEvent): T | null {
  try {
    return JSON.parse(e.data as string) as T;
  } catch {
    return null;
  }
}

/** What a stream's events are handed to. */
export interface StreamHandlers {
  /** A `device` event: one device's fleet view. */
  device?(d: FleetDevice): void;
  /** A `summary` event: the counts. */
  summary?(s: FleetCounts): void;
  /** A `resync` event, or a reconnection: refetch. */
  resync(): void;
  /** Connected (true) or not (false). */
  live?(on: boolean): void;
}

/**
 * Opens the hub's fleet event stream (cookie-authenticated). EventSource
 * reconnects by itself after a dropped connection; when the hub refused
 * it, the session is asked and, while it holds, the stream is opened again
 * after 3 s. Answers a function that closes it.
 */
export function openStream(h: StreamHandlers): () => void {
  let es: EventSource | null = null;
  let closed = false;
  let retry: ReturnType<typeof setTimeout> | null = null;
  let opened = false;
  const connectNow = () => {
    if (closed || typeof EventSource === 'undefined') return;
    es = new EventSource('/api/v1/fleet/stream', { withCredentials: true });
    es.onopen = () => {
      h.live?.(true);
      // Anything may have changed while disconnected.
      if (opened) h.resync();
      opened = true;
    };
    es.addEventListener('device', (e) => {
      const d = parse<FleetDevice>(e as MessageEvent);
      if (d && typeof d.device_id === 'string') h.device?.(d);
    });
    es.addEventListener('summary', (e) => {
      const s = parse<FleetCounts>(e as MessageEvent);
      if (s) h.summary?.(s);
    });
    es.addEventListener('resync', () => h.resync());
    es.onerror = () => {
      h.live?.(false);
      if (es?.readyState === EventSource.CLOSED) {
        es = null;
        void restore().then(() => {
          if (session.status !== 'active') return expire();
          if (!closed) retry = setTimeout(connectNow, 3000);
        });
      }
    };
  };
  connectNow();
  return () => {
    closed = true;
    if (retry) clearTimeout(retry);
    es?.close();
    es = null;
    h.live?.(false);
  };
}

let close: (() => void) | null = null;

function start(): void {
  void reload();
  close = openStream({
    device: onDevice,
    summary: (s) => {
      fleet.summary = s;
        },
    resync: () => void reload(),
    live: (on) => (fleet.live = on),
  });
}

/** Starts the live fleet for one page; call the answer to stop. */
export function follow(): () => void {
  users++;
  if (users === 1) start();
  return () => {
    users--;
    if (users === 0) {
      close?.();
      close = null;
    }
  };
}

/** Forgets everything (logout). */
export function forget(): void {
  fleet.devices = new Map();
  fleet.names = new Map();
  fleet.items = new Map();
  fleet.summary = null;
  fleet.loaded = false;
}
