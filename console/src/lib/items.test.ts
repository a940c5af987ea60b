// The item pages' rules (M3, M4, P5): which controls show, comment rights,
// attribute values, share input and rendition states.
import { describe, expect, it } from 'vitest';
import {
  shownActions, commentControls, nextRating, parseAttribute, attributeText, changedValues,
  isDate, validKey, refusedKey, processed, enumValues, parseEmails, shareLink, anyRunning, jobLabel,
  favoriteEntries, type Attribute, type RenditionJob,
} from './items';

const ALL = [
  'download', 'share', 'rate', 'favorite', 'feedback', 'update_custom_attributes', 'process_media',
  'comment.view', 'comment.add', 'comment.edit_own', 'comment.delete_own', 'comment.delete_others',
];

describe('m3_p5 which actions an item shows', () => {
  it('shows only what the hub allows', () => {
    const viewer = shownActions('image', ['rate', 'favorite', 'feedback', 'comment.view']);
    expect(viewer).toMatchObject({ download: false, share: false, rate: true, favorite: true, report: true, attributes: false, process: false });
    expect(viewer.comments).toEqual({ view: true, add: false, editOwn: false, deleteOwn: false, deleteOthers: false });
    const none = shownActions('video', []);
    expect(Object.values(none).filter((v) => v === true)).toEqual([]);
    expect(Object.values(none.comments).some(Boolean)).toBe(false);
  });
  it('shows share and download only for playable items, process only for videos', () => {
    expect(shownActions('video', ALL)).toMatchObject({ download: true, share: true, process: true, attributes: true });
    expect(shownActions('image', ALL)).toMatchObject({ share: true, process: false });
    expect(shownActions('template', ALL)).toMatchObject({ download: false, share: false, process: false, rate: true });
  });
  it('m4 lets the author edit and delete their own comment, others only delete', () => {
    const c = shownActions('image', ALL).comments;
    expect(commentControls('u-1', 'u-1', c)).toEqual({ edit: true, remove: true });
    expect(commentControls('u-2', 'u-1', c)).toEqual({ edit: false, remove: true });
    const contributor = shownActions('image', ['comment.view', 'comment.add', 'comment.edit_own', 'comment.delete_own']).comments;
    expect(commentControls('u-2', 'u-1', contributor)).toEqual({ edit: false, remove: false });
    expect(commentControls('u-1', 'u-1', contributor)).toEqual({ edit: true, remove: true });
    expect(commentControls('u-1', undefined, contributor)).toEqual({ edit: false, remove: false });
  });
  it('pressing the current rating clears it', () => {
    expect(nextRating(null, 'like')).toBe('like');
    expect(nextRating('like', 'like')).toBeNull();
    expect(nextRating('like', 'dislike')).toBe('dislike');
  });
});

describe('m3 custom attribute values', () => {
  it('parses each type and clears on blank', () => {
    expect(parseAttribute({ type: 'number' }, ' 12.5 ')).toEqual({ ok: true, value: 12.5 });
    expect(parseAttribute({ type: 'number' }, '-3e2')).toEqual({ ok: true, value: -300 });
    expect(parseAttribute({ type: 'number' }, '12abc').ok).toBe(false);
    expect(parseAttribute({ type: 'number' }, 'Infinity').ok).toBe(false);
    expect(parseAttribute({ type: 'number' }, '')).toEqual({ ok: true, value: null });
    expect(parseAttribute({ type: 'bool' }, 'true')).toEqual({ ok: true, value: true });
    expect(parseAttribute({ type: 'bool' }, 'false')).toEqual({ ok: true, value: false });
    expect(parseAttribute({ type: 'bool' }, 'maybe').ok).toBe(false);
    expect(parseAttribute({ type: 'date' }, '2026-02-28')).toEqual({ ok: true, value: '2026-02-28' });
    expect(parseAttribute({ type: 'date' }, '2026-02-30').ok).toBe(false);
    expect(parseAttribute({ type: 'enum', values: ['red', 'blue'] }, 'blue')).toEqual({ ok: true, value: 'blue' });
    expect(parseAttribute({ type: 'enum', values: ['red', 'blue'] }, 'green')).toEqual({ ok: false, error: 'one of red, blue' });
    expect(parseAttribute({ type: 'string' }, ' keep spaces ')).toEqual({ ok: true, value: ' keep spaces ' });
    expect(parseAttribute({ type: 'string' }, 'x'.repeat(1001)).ok).toBe(false);
  });
  it('checks dates and keys', () => {
    expect(isDate('2024-02-29')).toBe(true);
    expect(isDate('2023-02-29')).toBe(false);
    expect(isDate('2024-2-9')).toBe(false);
    expect(validKey('shelf_life2')).toBe(true);
    expect(validKey('2x')).toBe(false);
    expect(validKey('Shelf')).toBe(false);
    expect(validKey('a'.repeat(65))).toBe(false);
    expect(enumValues('red\n blue, red,, green ')).toEqual(['red', 'blue', 'green']);
  });
  it('sends only the changed values, a bad one as typed for the hub to judge', () => {
    const attrs = [
      { key: 'count', label: 'Count', node: 'n', type: 'number', value: 3 },
      { key: 'live', label: 'Live', node: 'n', type: 'bool', value: null },
      { key: 'note', label: 'Note', node: 'n', type: 'string', value: 'hi' },
    ] as unknown as Attribute[];
    expect(attributeText(3)).toBe('3');
    expect(attributeText(null)).toBe('');
    expect(changedValues(attrs, { count: '3', live: 'true', note: '' })).toEqual({ live: true, note: null });
    expect(changedValues(attrs, { count: 'three', live: '', note: 'hi' })).toEqual({ count: 'three' });
    expect(refusedKey('count must be a finite number', ['note', 'count'])).toBe('count');
    expect(refusedKey('no attribute "gone" is defined at the item\'s node or above', ['gone'])).toBe('gone');
    expect(refusedKey('the hub answered 500', ['count'])).toBeNull();
  });
});

describe('m3 share and process', () => {
  it('reads addresses and links', () => {
    expect(parseEmails('a@x.org, b@y.org;a@x.org\nc@z.io')).toEqual({ ok: true, emails: ['a@x.org', 'b@y.org', 'c@z.io'] });
    expect(parseEmails('')).toEqual({ ok: true, emails: [] });
    expect(parseEmails('a@x.org nope')).toEqual({ ok: false, error: '“nope” is not an e-mail address' });
    expect(shareLink({ url: null, path: '/api/v1/shared/t' }, 'http://h')).toBe('http://h/api/v1/shared/t');
    expect(shareLink({ url: 'https://p/api/v1/shared/t', path: '/api/v1/shared/t' }, 'http://h')).toBe('https://p/api/v1/shared/t');
  });
  it('says where a job stands', () => {
    const job = (state: string, extra = {}) => ({ state, percent: 40, ...extra }) as unknown as RenditionJob;
    expect(anyRunning([job('done'), job('running')])).toBe(true);
    expect(anyRunning([job('done'), job('failed')])).toBe(false);
    expect(processed([job('done', { current: false }), job('running', { current: true })])).toBe(false);
    expect(processed([job('done', { current: true })])).toBe(true);
    expect(jobLabel(job('running'))).toBe('Processing: 40%');
    expect(jobLabel(job('failed', { reason: 'no decoder' }))).toBe('Failed: no decoder');
    expect(jobLabel(job('done', { rendition: { codec: 'h264', width: 1280, height: 720, fps: 30 } }))).toBe('Ready: H264 1280×720 at 30 fps');
  });
});

describe('m3 my favorites', () => {
  it('lists content items and playlists as one list, newest first, each with its page and routes', () => {
    const items = [
      { id: 'c-1', name: 'Clip', kind: 'video', node: 'n-a', favorited_at: '2026-12-05T10:00:00Z' },
      { id: 'c-2', name: 'Poster', kind: 'image', node: 'n-a', favorited_at: '2026-12-03T10:00:00Z' },
    ] as unknown as Parameters<typeof favoriteEntries>[0];
    const playlists = [{ id: 'pl-1', name: 'Lobby loop', node: 'n-b', favorited_at: '2026-12-04T10:00:00Z' }];
    const list = favoriteEntries(items, playlists);
    expect(list.map((f) => [f.id, f.kind, f.on])).toEqual([
      ['c-1', 'video', 'content'], ['pl-1', 'playlist', 'playlists'], ['c-2', 'image', 'content'],
    ]);
    expect(list.map((f) => f.href)).toEqual(['/content/c-1', '/playlists/pl-1', '/content/c-2']);
    expect(favoriteEntries([], [])).toEqual([]);
  });
});
