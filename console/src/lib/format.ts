// Display helpers shared by pages: dates, durations, document kinds.

/** A date and time in the browser's locale, or a dash. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '—' : t.toLocaleString();
}

/** Milliseconds as `1:05` / `1:02:03` (h:mm:ss), or a dash. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A percentage 0–100 of `part` in `whole` (100 when whole is 0). */
export function percent(part: number, whole: number): number {
  if (whole <= 0) return 100;
  return Math.max(0, Math.min(100, Math.round((part / whole) * 100)));
}

/** Human names of document kinds and sync states (U4). */
export const DOC_KIND: Record<string, string> = {
  device_assignment: 'Device assignment',
  group_manifest: 'Group manifest',
};

/** Human names of document states, with a badge tone. */
export const DOC_STATUS: Record<string, { label: string; tone: 'ok' | 'warn' | 'bad' | 'idle' }> = {
  in_sync: { label: 'Activated', tone: 'ok' },
  downloading: { label: 'Downloading', tone: 'warn' },
  waiting: { label: 'Waiting', tone: 'warn' },
  refused: { label: 'Refused', tone: 'bad' },
  not_received: { label: 'Not received', tone: 'idle' },
};

/** The message of an error thrown by the API client or anything else. */
export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Human names of approval states (A3), with a badge tone. */
export const APPROVAL_STATE: Record<string, { label: string; tone: 'ok' | 'warn' | 'idle' }> = {
  active: { label: 'Approved', tone: 'ok' },
  pending: { label: 'Pending approval', tone: 'warn' },
  inactive: { label: 'Not approved', tone: 'idle' },
};

/** An instant as a `datetime-local` value in the browser's zone (`YYYY-MM-DDTHH:MM`), or ''. */
export function toLocalInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A `datetime-local` value read in the browser's zone, as an RFC 3339 instant; null when empty or invalid. */
export function fromLocalInput(value: string): string | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
