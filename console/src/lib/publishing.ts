// Per-device progress of a publication run (C8, U4, U5): a device has
// reached a run when every document of the run that concerns it (its own
// assignment, the manifests of its groups) is activated at the run's
// version or later, by the fleet view's own document states.
import type { Schemas } from './api/client';
import { within, type Node } from './nodes.svelte';
import type { FleetDevice } from './fleet';
import { wallClock, zonedInstant } from './design/calendar';

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

/** Whether `zone` is an IANA time zone this browser knows. */
function knownZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * The instant (ISO 8601, UTC) at which the wall clock in the IANA time zone
 * `zone` reads `local` (`YYYY-MM-DDTHH:MM`, as a datetime-local field gives
 * it) — a deferred publish "at 08:00" means 08:00 where the screens are
 * (U5). In a gap (clocks put forward) the later side is taken. `null` for
 * a malformed time or an unknown zone. The zone arithmetic is the schedule
 * editor's (`zonedInstant`).
 */
export function zonedToUtc(local: string, zone: string): string | null {
  const value = local.trim();
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value) || !knownZone(zone)) return null;
  const instant = zonedInstant(value, zone);
  return Number.isNaN(instant.getTime()) ? null : instant.toISOString();
}

/**
 * The wall-clock time (`YYYY-MM-DD HH:MM`) in the IANA time zone `zone` at
 * the instant `iso` — how a deferred publish is shown: in the zone of the
 * screens it is for, as the form took it (U5), not the browser's. `null`
 * for a malformed instant or an unknown zone.
 */
export function utcToZoned(iso: string, zone: string): string | null {
  if (!Number.isFinite(Date.parse(iso)) || !knownZone(zone)) return null;
  return wallClock(iso, zone).slice(0, 16);
}
