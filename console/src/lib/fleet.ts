// Pure rules of the fleet dashboard (C3): a device's display status, the
// filter, and how live events fold into the list. Tested in fleet.test.ts.
import type { Schemas } from './api/client';
import { pathNames, within, type Node } from './nodes.svelte';

/** A device of the fleet view. */
export type FleetDevice = Schemas['FleetDevice'];
/** The fleet counts. */
export type FleetCounts = Schemas['FleetCounts'];

/** What the list shows for a device, most urgent first. */
export type DeviceStatus = 'offline' | 'error' | 'out_of_sync' | 'playing' | 'online';

/** Filter choices of the status filter. */
export const STATUS_FILTERS = ['all', 'online', 'offline', 'out_of_sync', 'errors', 'playing'] as const;
/** One status filter choice. */
export type StatusFilter = (typeof STATUS_FILTERS)[number];

/** Human labels of statuses and filters. */
export const STATUS_LABEL: Record<DeviceStatus | StatusFilter, string> = {
  all: 'All',
  online: 'Online',
  offline: 'Offline',
  out_of_sync: 'Out of sync',
  errors: 'With errors',
  error: 'Error',
  playing: 'Playing',
};

/** The badge colour of a status. */
export const STATUS_TONE: Record<DeviceStatus, 'ok' | 'warn' | 'bad' | 'idle'> = {
  offline: 'idle',
  error: 'bad',
  out_of_sync: 'warn',
  playing: 'ok',
  online: 'ok',
};

/** The one status a device shows: offline, error, out of sync, playing, online. */
export function statusOf(d: FleetDevice): DeviceStatus {
  if (!d.online) return 'offline';
  if (d.last_error) return 'error';
  if (!d.in_sync) return 'out_of_sync';
  if (d.now_playing) return 'playing';
  return 'online';
}

/** Whether a device matches a status filter (the hub's count rules, U4). */
export function matchesStatus(d: FleetDevice, f: StatusFilter): boolean {
  switch (f) {
    case 'all':
      return true;
    case 'online':
      return d.online;
    case 'offline':
      return !d.online;
    case 'out_of_sync':
      return !d.in_sync;
    case 'errors':
      return !!d.last_error;
    case 'playing':
      return d.online && !!d.now_playing;
  }
}

/** What plays now, as the hub reports it. */
export interface NowPlaying {
  /** The item id. */
  item: string;
  /** The schedule entry, if any. */
  entry?: string;
  /** Since when. */
  since: string;
}

/** The `now_playing` object of a device, typed. */
export function nowPlaying(d: FleetDevice): NowPlaying | null {
  const n = d.now_playing as Partial<NowPlaying> | null | undefined;
  return n && typeof n.item === 'string' ? (n as NowPlaying) : null;
}

/** Name order for the list: numeric-aware, case-insensitive; one collator (localeCompare makes one per call). */
const byName = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** One row of the fleet list. */
export interface FleetRow {
  /** The device id. */
  id: string;
  /** Its display name (the id until the name is known). */
  name: string;
  /** Its node path, `Tenant / Site`. */
  path: string;
  /** Its display status. */
  status: DeviceStatus;
  /** What plays now, by name when known. */
  playing: string | null;
  /** The fleet view of it. */
  device: FleetDevice;
}

/** The fleet filters. */
export interface FleetFilter {
  /** Only devices at this node or below. */
  node: string | null;
  /** Status filter. */
  status: StatusFilter;
  /** Case-insensitive text in name, id, node path or what plays. */
  text: string;
}

/**
 * Rows of `devices` that pass `filter`, sorted by name then id, with names
 * from `names` and item names from `items`.
 */
export function fleetRows(
  devices: Iterable<FleetDevice>,
  names: Map<string, string>,
  items: Map<string, string>,
  nodes: Map<string, Node>,
  filter: FleetFilter,
): FleetRow[] {
  const text = filter.text.trim().toLowerCase();
  const paths = new Map<string, string>();
  const rows: FleetRow[] = [];
  for (const d of devices) {
    if (filter.node && !within(nodes, d.node, filter.node)) continue;
    if (!matchesStatus(d, filter.status)) continue;
    let path = paths.get(d.node);
    if (path === undefined) {
      path = pathNames(nodes, d.node).join(' / ');
      paths.set(d.node, path);
    }
    const np = d.online ? nowPlaying(d) : null;
    const playing = np ? (items.get(np.item) ?? np.item) : null;
    const name = names.get(d.device_id) ?? d.device_id;
    if (text) {
      const hay = `${name}\n${d.device_id}\n${path}\n${playing ?? ''}`.toLowerCase();
      if (!hay.includes(text)) continue;
    }
    rows.push({ id: d.device_id, name, path, status: statusOf(d), playing, device: d });
  }
  rows.sort((a, b) => byName.compare(a.name, b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return rows;
}

/** Bytes for humans: `512 MB`, `1.2 GB`. */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 10 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

/** How long ago `iso` was, relative to `now` (ms): `12 s ago`, `3 min ago`. */
export function ago(iso: string | null | undefined, now: number): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** The counts of `devices` by the hub's rules (FleetCounts::add, U4). */
export function countsOf(devices: Iterable<FleetDevice>): FleetCounts {
  const c: FleetCounts = { attached: 0, online: 0, offline: 0, in_sync: 0, out_of_sync: 0, playing: 0, with_errors: 0 };
  for (const d of devices) {
    c.attached++;
    if (d.online) c.online++;
    else c.offline++;
    if (d.in_sync) c.in_sync++;
    else c.out_of_sync++;
    if (d.online && d.now_playing) c.playing++;
    if (d.last_error) c.with_errors++;
  }
  return c;
}
