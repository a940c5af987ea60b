// The template document as the console edits it (D6), mirroring
// signet-common's `approval::template` types, and what a save means for
// approval (A3, A4): the same classification the hub applies.
//
// Owns: the zone model, the checks the hub will make (so the designer can
// say what is wrong before saving), feed variables `[1]`…`[25]`, the
// change classification and its approval consequence, and the live
// preview's text (clock formats, feed URLs with variables filled in).
// Must not: call the API; the hub stays the authority on every rule.
import type { Rect, Size } from './geometry';

/** What a zone shows. */
export type ZoneKind = 'video' | 'image' | 'text' | 'clock' | 'ticker';

/** Every zone kind, in the order the designer offers them. */
export const ZONE_KINDS: readonly ZoneKind[] = ['video', 'image', 'text', 'clock', 'ticker'];

/** Display names of zone kinds. */
export const KIND_LABEL: Record<ZoneKind, string> = {
  video: 'Video',
  image: 'Image',
  text: 'Text',
  clock: 'Clock',
  ticker: 'Ticker',
};

/** How a text, clock or ticker zone draws its text. */
export interface TextStyle {
  /** Font size in pixels, 1 to 2048. */
  font_size_px: number;
  /** Text colour as 0xRRGGBB. */
  color_rgb: number;
  /** Background colour as 0xRRGGBB, or null for transparent. */
  background_rgb: number | null;
  /** Horizontal alignment. */
  align: 'left' | 'center' | 'right';
}

/** A text or ticker zone's data feed. */
export interface FeedBinding {
  /** http(s) URL of a JSON document; may contain `[1]`…`[25]`. */
  url: string;
  /** RFC 6901 pointer to the value shown (`""` for the whole document). */
  json_pointer: string;
  /** Refresh interval in seconds (5 to 86 400). */
  refresh_secs: number;
  /** The last good value, shown while offline. */
  last_value: string | null;
}

/** One zone. */
export interface Zone {
  /** Unique within the template. */
  id: string;
  /** What it shows. */
  kind: ZoneKind;
  /** Where it is. */
  rect: Rect;
  /** The video or image item of a video or image zone. */
  source: string | null;
  /** Static text (text, ticker) or the clock's strftime format. */
  text: string | null;
  /** Text style (text, clock, ticker). */
  style: TextStyle | null;
  /** Data feed (text, ticker). */
  feed: FeedBinding | null;
}

/** A template: a canvas and zones drawn in order (later on top). */
export interface Template {
  /** The template's resolution. */
  canvas: Size;
  /** The zones, bottom first. */
  zones: Zone[];
}

/** Bounds of signet-common's template rules. */
export const LIMITS = {
  maxCanvasSide: 15_360,
  maxZones: 64,
  maxZoneIdLen: 64,
  maxTextChars: 4096,
  maxFeedUrlLen: 2048,
  maxPointerLen: 512,
  minRefresh: 5,
  maxRefresh: 86_400,
  maxVariable: 25,
  maxFontSize: 2048,
} as const;

/** Whether a zone of `kind` plays a content item. */
export const takesSource = (kind: ZoneKind) => kind === 'video' || kind === 'image';
/** Whether a zone of `kind` holds text (static text or clock format). */
export const takesText = (kind: ZoneKind) => kind === 'text' || kind === 'ticker' || kind === 'clock';
/** Whether a zone of `kind` may be bound to a data feed. */
export const takesFeed = (kind: ZoneKind) => kind === 'text' || kind === 'ticker';

/** The clock format a new clock zone gets (GStreamer clockoverlay, strftime). */
export const DEFAULT_CLOCK = '%H:%M';

/** A new zone of `kind` at `rect`, with an id not used in `zones`. */
export function newZone(kind: ZoneKind, rect: Rect, zones: readonly Zone[]): Zone {
  const used = new Set(zones.map((z) => z.id));
  let n = 1;
  while (used.has(`${kind}-${n}`)) n += 1;
  const fontSize = Math.max(12, Math.min(LIMITS.maxFontSize, Math.round(rect.height / (kind === 'clock' ? 2 : 4))));
  return {
    id: `${kind}-${n}`,
    kind,
    rect,
    source: null,
    text: kind === 'clock' ? DEFAULT_CLOCK : takesText(kind) ? (kind === 'ticker' ? 'News ticker' : 'Text') : null,
    style: takesText(kind) ? { font_size_px: fontSize, color_rgb: 0xffffff, background_rgb: 0x0f172a, align: kind === 'clock' ? 'center' : 'left' } : null,
    feed: null,
  };
}

/** A zone changed to `kind`, dropping what the new kind cannot hold. */
export function withKind(zone: Zone, kind: ZoneKind): Zone {
  const fresh = newZone(kind, zone.rect, []);
  return {
    ...zone,
    kind,
    source: takesSource(kind) ? zone.source : null,
    text: takesText(kind) ? (zone.text ?? fresh.text) : null,
    style: takesText(kind) ? (zone.style ?? fresh.style) : null,
    feed: takesFeed(kind) ? zone.feed : null,
  };
}

/** The variables a feed URL uses, or the first bad one (as the hub reads them). */
export function feedVariables(url: string): { variables: number[]; bad: string | null } {
  const found = new Set<number>();
  const pattern = /\[(\d+)\]/g;
  for (const m of url.matchAll(pattern)) {
    const text = m[1] as string;
    const n = Number(text);
    if (text.startsWith('0') || n < 1 || n > LIMITS.maxVariable) return { variables: [...found].sort((a, b) => a - b), bad: text.slice(0, 16) };
    found.add(n);
  }
  return { variables: [...found].sort((a, b) => a - b), bad: null };
}

/** A feed URL with the device's variables filled in (unknown ones left as `[n]`). */
export function fillVariables(url: string, values: Record<string, string>): string {
  return url.replace(/\[(\d+)\]/g, (whole, n: string) => {
    const v = values[n];
    return v === undefined || v === '' ? whole : encodeURIComponent(v);
  });
}

/** A problem the hub would refuse, naming the zone. */
export interface Problem {
  /** The zone, or null for the template. */
  zone: string | null;
  /** What is wrong, in words. */
  text: string;
}

/** What the hub's `Template::validate` would refuse, all at once. */
export function problems(t: Template): Problem[] {
  const out: Problem[] = [];
  const { width, height } = t.canvas;
  const side = (v: number) => Number.isInteger(v) && v >= 1 && v <= LIMITS.maxCanvasSide;
  if (!side(width) || !side(height)) out.push({ zone: null, text: `The canvas must be 1 to ${LIMITS.maxCanvasSide} pixels on a side.` });
  if (t.zones.length > LIMITS.maxZones) out.push({ zone: null, text: `At most ${LIMITS.maxZones} zones.` });
  const ids = new Set<string>();
  for (const z of t.zones) {
    const say = (text: string) => out.push({ zone: z.id, text });
    if (!z.id || new TextEncoder().encode(z.id).length > LIMITS.maxZoneIdLen) say(`The zone name must be 1 to ${LIMITS.maxZoneIdLen} bytes.`);
    if (ids.has(z.id)) say(`The zone name “${z.id}” is used twice.`);
    ids.add(z.id);
    const r = z.rect;
    if (r.width < 1 || r.height < 1) say('The zone has no area.');
    if (r.x < 0 || r.y < 0 || r.x + r.width > width || r.y + r.height > height) say('The zone reaches outside the canvas.');
    if (takesText(z.kind) && z.text !== null && [...z.text].length > LIMITS.maxTextChars) say(`The text is longer than ${LIMITS.maxTextChars} characters.`);
    if (z.style && (z.style.font_size_px < 1 || z.style.font_size_px > LIMITS.maxFontSize)) say(`The font size must be 1 to ${LIMITS.maxFontSize} pixels.`);
    if (z.feed) {
      const url = z.feed.url;
      const lower = url.toLowerCase();
      const scheme = ['http://', 'https://'].some((s) => lower.startsWith(s) && lower.length > s.length);
      // eslint-disable-next-line no-control-regex
      if (!scheme || /[\s\u0000-\u001f\u007f]/.test(url) || url.length > LIMITS.maxFeedUrlLen) say('The feed URL must start with http:// or https:// and hold no spaces.');
      const vars = feedVariables(url);
      if (vars.bad !== null) say(`The feed URL uses [${vars.bad}]; only [1] to [25] exist.`);
      if (!(z.feed.json_pointer === '' || z.feed.json_pointer.startsWith('/')) || z.feed.json_pointer.length > LIMITS.maxPointerLen) say('The JSON pointer must be empty or start with “/”.');
      if (!Number.isInteger(z.feed.refresh_secs) || z.feed.refresh_secs < LIMITS.minRefresh || z.feed.refresh_secs > LIMITS.maxRefresh) say(`The refresh must be ${LIMITS.minRefresh} to ${LIMITS.maxRefresh} seconds.`);
    }
  }
  return out;
}

/** What a save changes, as signet-common's `classify_change` decides it (A4). */
export type Change = { kind: 'none' } | { kind: 'feed_only'; urlChanged: boolean } | { kind: 'content' };

/** The layout without feed settings (only whether a feed is bound counts). */
function layout(t: Template): string {
  return JSON.stringify({
    canvas: [t.canvas.width, t.canvas.height],
    zones: t.zones.map((z) => [
      z.id,
      z.kind,
      [z.rect.x, z.rect.y, z.rect.width, z.rect.height],
      z.source,
      z.text,
      z.style ? [z.style.font_size_px, z.style.color_rgb, z.style.background_rgb, z.style.align] : null,
      z.feed !== null,
    ]),
  });
}

/** Classifies the change from `old` to `next` like the hub (A4). */
export function classify(old: Template, next: Template): Change {
  if (layout(old) !== layout(next)) return { kind: 'content' };
  let changed = false;
  let urlChanged = false;
  old.zones.forEach((z, i) => {
    const a = z.feed;
    const b = next.zones[i]?.feed ?? null;
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      changed = true;
      if ((a?.url ?? null) !== (b?.url ?? null)) urlChanged = true;
    }
  });
  return changed ? { kind: 'feed_only', urlChanged } : { kind: 'none' };
}

/** What saving does to the template's approval state (A3, A4), in words and as the state expected after. */
export interface Consequence {
  /** The approval state after the save (`active`, `inactive` or `pending`). */
  after: string;
  /** Whether the state is kept. */
  kept: boolean;
  /** One sentence for the operator. */
  text: string;
}

/**
 * The approval consequence of saving `change` on an item in `state`, by a
 * user who does (or does not) need approval, at a node in strict feed mode
 * (or not), per signet-common's `ItemApproval::apply`.
 */
export function consequence(change: Change, state: string, requiresApproval: boolean, strictFeeds: boolean): Consequence {
  const asContent = change.kind === 'content' || (change.kind === 'feed_only' && change.urlChanged && strictFeeds);
  if (change.kind === 'none') return { after: state, kept: true, text: 'Nothing changed: saving writes nothing.' };
  if (!asContent) {
    return {
      after: state,
      kept: true,
      text: `Only data-feed settings changed: the approval state stays “${state}” (the change is written to the audit log).`,
    };
  }
  const why = change.kind === 'content' ? 'The layout or content changed' : 'The feed URL changed and this node treats feed URLs as content (strict mode)';
  if (requiresApproval) {
    return {
      after: 'inactive',
      kept: state === 'inactive',
      text: `${why}: the template becomes “inactive” and stops playing until it is approved again; request approval after saving.`,
    };
  }
  return { after: 'active', kept: state === 'active', text: `${why}: your saves need no approval, so the template is “active” with this version.` };
}

/** The time under a strftime format, for the preview of a clock zone (the common conversions). */
export function strftime(format: string, t: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const dayNames = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const monthNames = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
  const h12 = t.getHours() % 12 || 12;
  const map: Record<string, string> = {
    H: pad(t.getHours()),
    I: pad(h12),
    M: pad(t.getMinutes()),
    S: pad(t.getSeconds()),
    p: t.getHours() < 12 ? 'AM' : 'PM',
    d: pad(t.getDate()),
    e: String(t.getDate()).padStart(2, ' '),
    m: pad(t.getMonth() + 1),
    y: pad(t.getFullYear() % 100),
    Y: String(t.getFullYear()),
    a: days[t.getDay()] as string,
    A: dayNames[t.getDay()] as string,
    b: months[t.getMonth()] as string,
    B: monthNames[t.getMonth()] as string,
    R: `${pad(t.getHours())}:${pad(t.getMinutes())}`,
    T: `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`,
    '%': '%',
  };
  return format.replace(/%([a-zA-Z%])/g, (whole, c: string) => map[c] ?? whole);
}

/** `0xRRGGBB` as `#rrggbb`. */
export function hex(rgb: number): string {
  return `#${(rgb & 0xffffff).toString(16).padStart(6, '0')}`;
}

/** `#rrggbb` as `0xRRGGBB` (null for anything else). */
export function fromHex(text: string): number | null {
  return /^#[0-9a-fA-F]{6}$/.test(text) ? parseInt(text.slice(1), 16) : null;
}

/** A template read from the API's untyped object (missing optional fields as null). */
export function fromApi(raw: unknown): Template {
  const t = (raw ?? {}) as { canvas?: Partial<Size>; zones?: Partial<Zone>[] };
  return {
    canvas: { width: Number(t.canvas?.width ?? 1920), height: Number(t.canvas?.height ?? 1080) },
    zones: (t.zones ?? []).map((z) => ({
      id: String(z.id ?? ''),
      kind: (z.kind ?? 'text') as ZoneKind,
      rect: { x: z.rect?.x ?? 0, y: z.rect?.y ?? 0, width: z.rect?.width ?? 1, height: z.rect?.height ?? 1 },
      source: z.source ?? null,
      text: z.text ?? null,
      style: z.style ? { ...z.style, background_rgb: z.style.background_rgb ?? null } : null,
      feed: z.feed ? { ...z.feed, last_value: z.feed.last_value ?? null } : null,
    })),
  };
}

/** A deep copy (templates are plain JSON). */
export function clone(t: Template): Template {
  return JSON.parse(JSON.stringify(t)) as Template;
}
