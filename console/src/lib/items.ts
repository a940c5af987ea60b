// The item pages' rules (M3, M4, P5): which action buttons an item shows —
// only those the hub's `allowed` list names (permission held, publish
// settings allow it, so no button can answer 403) and that fit the item's
// kind — what a user may do with one comment, custom attribute values
// typed in a form and read back, share-link expiries and addresses, and
// where a rendition job stands.
//
// Owns: these pure decisions. Must not: call the hub.
import type { Schemas } from './api/client';

/** What the caller may do with an item and what others did. */
export type ItemActions = Schemas['ItemActions'];
/** A custom attribute of an item: definition and value. */
export type Attribute = Schemas['AttributeView'];
/** A custom attribute's type. */
export type AttributeType = Schemas['AttributeType'];
/** A rendition job. */
export type RenditionJob = Schemas['RenditionJobView'];

/** The controls an item's page shows. */
export interface Shown {
  download: boolean;
  share: boolean;
  rate: boolean;
  favorite: boolean;
  report: boolean;
  attributes: boolean;
  process: boolean;
  comments: { view: boolean; add: boolean; editOwn: boolean; deleteOwn: boolean; deleteOthers: boolean };
}

/**
 * The controls for an item of `kind` (`video`, `image`, `audio`,
 * `template`) when the hub allows `allowed`: each only when named there;
 * share and process only where the hub would not refuse them for the kind
 * (a template is not playable, only a video is processed).
 */
export function shownActions(kind: string, allowed: readonly string[]): Shown {
  const has = (p: string) => allowed.includes(p);
  return {
    download: has('download') && kind !== 'template',
    share: has('share') && kind !== 'template',
    rate: has('rate'),
    favorite: has('favorite'),
    report: has('feedback'),
    attributes: has('update_custom_attributes'),
    process: has('process_media') && kind === 'video',
    comments: {
      view: has('comment.view'),
      add: has('comment.add'),
      editOwn: has('comment.edit_own'),
      deleteOwn: has('comment.delete_own'),
      deleteOthers: has('comment.delete_others'),
    },
  };
}

/** Whether the user `me` may edit and delete a comment by `author`. */
export function commentControls(author: string, me: string | undefined, c: Shown['comments']): { edit: boolean; remove: boolean } {
  const own = !!me && author === me;
  return { edit: own && c.editOwn, remove: own ? c.deleteOwn : c.deleteOthers };
}

/** A rating after the user pressed `pressed` (pressing the current one clears it). */
export function nextRating(current: string | null | undefined, pressed: 'like' | 'dislike'): 'like' | 'dislike' | null {
  return current === pressed ? null : pressed;
}

// ------------------------------------------------------------ attributes

/** A value typed in a form, checked against its type: the JSON value (`null` clears) or why not. */
export type Parsed = { ok: true; value: string | number | boolean | null } | { ok: false; error: string };

/** Whether `text` is a real calendar date `YYYY-MM-DD`. */
export function isDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

/** `text` as a value of `type`; blank clears it. */
export function parseAttribute(type: AttributeType, text: string): Parsed {
  const t = type.type === 'string' ? text : text.trim();
  if (t.trim() === '') return { ok: true, value: null };
  switch (type.type) {
    case 'string':
      return [...t].length <= 1000 ? { ok: true, value: t } : { ok: false, error: 'at most 1000 characters' };
    case 'number': {
      const n = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) ? Number(t) : NaN;
      return Number.isFinite(n) ? { ok: true, value: n } : { ok: false, error: 'a number, e.g. 12 or 3.5' };
    }
    case 'bool':
      if (t === 'true' || t === 'false') return { ok: true, value: t === 'true' };
      return { ok: false, error: 'yes or no' };
    case 'date':
      return isDate(t) ? { ok: true, value: t } : { ok: false, error: 'a date, YYYY-MM-DD' };
    case 'enum':
      return type.values.includes(t) ? { ok: true, value: t } : { ok: false, error: `one of ${type.values.join(', ')}` };
  }
}

/** The form text of a stored value (blank when unset). */
export function attributeText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return String(value);
}

/**
 * The `values` of a PATCH from the form's texts: only the attributes whose
 * text changed, each as its type's JSON value; a text that does not parse
 * goes as typed, so the hub judges it and its refusal (400
 * `invalid_attribute_value`, nothing changed) is what the user reads.
 */
export function changedValues(
  attributes: readonly Attribute[],
  texts: Record<string, string>,
): Record<string, string | number | boolean | null> {
  const values: Record<string, string | number | boolean | null> = {};
  for (const a of attributes) {
    const text = texts[a.key] ?? '';
    if (text === attributeText(a.value)) continue;
    const parsed = parseAttribute(a, text);
    values[a.key] = parsed.ok ? parsed.value : text;
  }
  return values;
}

/** The attribute a refusal of the hub is about (its message starts with the key), or null. */
export function refusedKey(message: string, keys: readonly string[]): string | null {
  return keys.find((k) => message.startsWith(`${k} `) || message.includes(`"${k}"`)) ?? null;
}

/** A definition's key: a lowercase letter, then up to 63 lowercase letters, digits or `_`. */
export function validKey(key: string): boolean {
  return /^[a-z][a-z0-9_]{0,63}$/.test(key);
}

/** The values of an enum typed one a line (or comma separated): trimmed, blanks and repeats dropped. */
export function enumValues(text: string): string[] {
  return [...new Set(text.split(/[\n,]/).map((v) => v.trim()).filter(Boolean))];
}

// ------------------------------------------------------------------ share

/** The expiries a share link offers, in seconds (60 s to 30 days). */
export const EXPIRIES: readonly { secs: number; label: string }[] = [
  { secs: 3_600, label: '1 hour' },
  { secs: 86_400, label: '1 day' },
  { secs: 604_800, label: '7 days' },
  { secs: 2_592_000, label: '30 days' },
];

/** Addresses typed in one field (commas, semicolons, spaces or lines between): the list, or the first bad one. */
export function parseEmails(text: string): { ok: true; emails: string[] } | { ok: false; error: string } {
  const emails = [...new Set(text.split(/[\s,;]+/).map((e) => e.trim()).filter(Boolean))];
  if (emails.length > 20) return { ok: false, error: 'at most 20 addresses' };
  const bad = emails.find((e) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e));
  return bad ? { ok: false, error: `“${bad}” is not an e-mail address` } : { ok: true, emails };
}

/** The whole link of a share: the hub's `url` when `public_url` is set, else the path under `origin`. */
export function shareLink(view: { url?: string | null; path: string }, origin: string): string {
  return view.url ?? `${origin}${view.path}`;
}

// ------------------------------------------------------------- renditions

/** Whether any job still moves (so the page keeps asking). */
export function anyRunning(jobs: readonly RenditionJob[]): boolean {
  return jobs.some((j) => j.state === 'queued' || j.state === 'running');
}

/** Whether a rendition of the item's current bytes is ready (asking again would only answer that job). */
export function processed(jobs: readonly RenditionJob[]): boolean {
  return jobs.some((j) => j.current && j.state === 'done');
}

/** A job's state in words. */
export function jobLabel(j: RenditionJob): string {
  switch (j.state) {
    case 'queued':
      return 'Queued';
    case 'running':
      return `Processing: ${j.percent}%`;
    case 'done':
      return j.rendition
        ? `Ready: ${j.rendition.codec.toUpperCase()} ${j.rendition.width}×${j.rendition.height} at ${j.rendition.fps} fps`
        : 'Ready';
    case 'failed':
      return `Failed${j.reason ? `: ${j.reason}` : ''}`;
  }
}

// ------------------------------------------------------------- favorites

/** One entry of My favorites: a content item or a playlist (M3). */
export interface FavoriteEntry {
  id: string;
  name: string;
  /** `video`, `image`, `audio`, `template` or `playlist`. */
  kind: string;
  node: string;
  favoritedAt: string;
  /** Its page. */
  href: string;
  /** Whose routes take it off the list. */
  on: 'content' | 'playlists';
}

/**
 * The caller's favorite content items and playlists as one list, newest
 * first (the hub answers the two kinds by two routes, each newest first).
 */
export function favoriteEntries(
  items: readonly Schemas['FavoriteView'][],
  playlists: readonly Schemas['FavoriteSubjectView'][],
): FavoriteEntry[] {
  const entries: FavoriteEntry[] = [
    ...items.map((f) => ({ id: f.id, name: f.name, kind: f.kind, node: f.node, favoritedAt: f.favorited_at,
      href: `/content/${encodeURIComponent(f.id)}`, on: 'content' as const })),
    ...playlists.map((f) => ({ id: f.id, name: f.name, kind: 'playlist', node: f.node, favoritedAt: f.favorited_at,
      href: `/playlists/${encodeURIComponent(f.id)}`, on: 'playlists' as const })),
  ];
  return entries.sort((a, b) => Date.parse(b.favoritedAt) - Date.parse(a.favoritedAt));
}
