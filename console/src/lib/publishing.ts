// Per-device progress of a publication run (C8, U4, U5): a device has
// reached a run when every document of the run that concerns it (its own
// assignment, the manifests of its groups) is activated at the run's
// version or later, by the fleet view's own document states.
import type { Schemas } from './api/client';
import { within, type Node } from './nodes.svelte';
import type { FleetDevice } from './fleet';

/** A publication run. */
export type Run = Schemas['PublicationRun'];

/** Where one device stands against one run. */
export interface DeviceProgress {
  /** The device. */
  device: string;
  /** `activated`, `downloading`, `refused`, `waiting` or `not_received`. */
  state: 'activated' | 'downloading' | 'refused' | 'waiting' | 'not_received';
  /** Bytes cached of bytes needed, while downloading. */
  progress: { cached: number; needed: number } | null;
  /** Why not, for a human. */
  reason: string | null;
}

/** The devices a run concerns: those attached at or below its scope node. */
export function runDevices(run: Run, devices: Iterable<FleetDevice>, nodes: Map<string, Node>): FleetDevice[] {
  return [...devices].filter((d) => within(nodes, d.node, run.scope_node));
}

/** Where `d` stands against `run`. */
export function progressOf(run: Run, d: FleetDevice): DeviceProgress {
  const relevant = d.documents.flatMap((doc) => {
    const published = run.documents.find((p) => p.kind === doc.kind && p.subject === doc.subject);
    return published ? [{ doc, version: published.version }] : [];
  });
  if (relevant.length === 0) {
    return { device: d.device_id, state: 'not_received', progress: null, reason: 'no document of this run concerns it yet' };
  }
  let worst: DeviceProgress = { device: d.device_id, state: 'activated', progress: null, reason: null };
  const rank = { activated: 0, waiting: 1, downloading: 2, not_received: 3, refused: 4 } as const;
  for (const { doc, version } of relevant) {
    let p: DeviceProgress;
    if ((doc.activated_version ?? -1) >= version) continue;
    if (doc.status === 'refused') p = { device: d.device_id, state: 'refused', progress: null, reason: doc.reason ?? 'refused' };
    else if ((doc.accepted_version ?? -1) >= version && doc.progress)
      p = {
        device: d.device_id,
        state: 'downloading',
        progress: { cached: doc.progress.bytes_cached, needed: doc.progress.bytes_needed },
        reason: doc.reason ?? null,
      };
    else if ((doc.accepted_version ?? -1) >= version)
      p = { device: d.device_id, state: 'waiting', progress: null, reason: doc.reason ?? null };
    else p = { device: d.device_id, state: 'not_received', progress: null, reason: doc.reason ?? (d.online ? null : 'offline') };
    if (rank[p.state] > rank[worst.state]) worst = p;
  }
  return worst;
}

/** How far `zone`'s wall clock is ahead of UTC at the instant `utcMs`, in ms. */
function zoneOffsetMs(zone: string, utcMs: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(utcMs));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second')) - utcMs;
}

/**
 * The instant (ISO 8601, UTC) at which the wall clock in the IANA time zone
 * `zone` reads `local` (`YYYY-MM-DDTHH:MM`, as a datetime-local field gives
 * it) — a deferred publish "at 08:00" means 08:00 where the screens are
 * (U5). In a gap (clocks put forward) the later side is taken. `null` for
 * a malformed time or an unknown zone.
 */
export function zonedToUtc(local: string, zone: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local.trim());
  if (!m) return null;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  if (!Number.isFinite(wall)) return null;
  try {
    let instant = wall - zoneOffsetMs(zone, wall);
    instant = wall - zoneOffsetMs(zone, instant);
    return new Date(instant).toISOString();
  } catch {
    return null;
  }
}

/**
 * The wall-clock time (`YYYY-MM-DD HH:MM`) in the IANA time zone `zone` at
 * the instant `iso` — how a deferred publish is shown: in the zone of the
 * screens it is for, as the form took it (U5), not the browser's. `null`
 * for a malformed instant or an unknown zone.
 */
export function utcToZoned(iso: string, zone: string): string | null {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return null;
  try {
    const wall = new Date(t + zoneOffsetMs(zone, t)).toISOString();
    return `${wall.slice(0, 10)} ${wall.slice(11, 16)}`;
  } catch {
    return null;
  }
}

/** The time zone of `node` (its own or the nearest ancestor's, T2), or UTC, the hub's default. */
export function nodeZone(nodes: Map<string, Node>, node: string): string {
  const seen = new Set<string>();
  let at: string | null | undefined = node;
  while (at && !seen.has(at)) {
    seen.add(at);
    const n = nodes.get(at);
    if (n?.time_zone) return n.time_zone;
    at = n?.parent;
  }
  return 'UTC';
}
