// The template model: checks, feed variables and the approval consequence of a save (issue 16 Deliver 4; D6, A3, A4).
import { describe, expect, it } from 'vitest';
import { classify, clone, consequence, feedVariables, fillVariables, newZone, problems, strftime, withKind, type Template } from './template';

function sample(): Template {
  const clock = newZone('clock', { x: 0, y: 0, width: 400, height: 100 }, []);
  const text = newZone('text', { x: 0, y: 100, width: 800, height: 100 }, [clock]);
  text.feed = { url: 'https://feeds.example/[1]/[12].json', json_pointer: '/now', refresh_secs: 60, last_value: null };
  return { canvas: { width: 1920, height: 1080 }, zones: [clock, text] };
}

describe('zones', () => {
  it('gives new zones unique ids and the clock a format', () => {
    const t = sample();
    expect(t.zones.map((z) => z.id)).toEqual(['clock-1', 'text-1']);
    expect(t.zones[0]?.text).toBe('%H:%M');
    expect(newZone('clock', { x: 0, y: 0, width: 8, height: 8 }, t.zones).id).toBe('clock-2');
  });

  it('changing the kind drops what the kind cannot hold (the hub would refuse it)', () => {
    const v = withKind(sample().zones[1]!, 'video');
    expect(v.text).toBeNull();
    expect(v.style).toBeNull();
    expect(v.feed).toBeNull();
  });
});

describe('checks', () => {
  it('finds the problems the hub refuses', () => {
    const t = sample();
    expect(problems(t)).toEqual([]);
    t.zones[1]!.rect.x = 1500;
    t.zones[1]!.feed!.url = 'ftp://x/[26]';
    t.zones[1]!.feed!.refresh_secs = 2;
    t.zones.push({ ...t.zones[0]!, rect: { ...t.zones[0]!.rect } });
    const texts = problems(t).map((p) => `${p.zone}: ${p.text}`);
    expect(texts).toContain('text-1: The zone reaches outside the canvas.');
    expect(texts.some((s) => s.includes('http://'))).toBe(true);
    expect(texts.some((s) => s.includes('[26]'))).toBe(true);
    expect(texts.some((s) => s.includes('refresh'))).toBe(true);
    expect(texts.some((s) => s.includes('used twice'))).toBe(true);
  });

  it('reads per-device variables [1]…[25] like the hub', () => {
    expect(feedVariables('https://x/[3]?a=[1]&b=[3]')).toEqual({ variables: [1, 3], bad: null });
    expect(feedVariables('https://[::1]/x').bad).toBeNull();
    expect(feedVariables('https://x/[0]').bad).toBe('0');
    expect(feedVariables('https://x/[07]').bad).toBe('07');
    expect(feedVariables('https://x/[26]').bad).toBe('26');
    expect(fillVariables('https://x/[1]/[2]', { '1': 'Berlin Mitte' })).toBe('https://x/Berlin%20Mitte/[2]');
  });
});

describe('approval consequence of a save (A4)', () => {
  it('feed-only changes keep the state', () => {
    const old = sample();
    const next = clone(old);
    next.zones[1]!.feed!.refresh_secs = 300;
    next.zones[1]!.feed!.url = 'https://feeds.example/[2].json';
    const change = classify(old, next);
    expect(change).toEqual({ kind: 'feed_only', urlChanged: true });
    const c = consequence(change, 'active', true, false);
    expect(c.kept).toBe(true);
    expect(c.after).toBe('active');
  });

  it('a feed-URL change counts as content in strict mode', () => {
    const old = sample();
    const next = clone(old);
    next.zones[1]!.feed!.url = 'https://feeds.example/other.json';
    const c = consequence(classify(old, next), 'active', true, true);
    expect(c.after).toBe('inactive');
    expect(c.kept).toBe(false);
    next.zones[1]!.feed!.url = old.zones[1]!.feed!.url;
    next.zones[1]!.feed!.json_pointer = '/later';
    expect(consequence(classify(old, next), 'active', true, true).kept).toBe(true);
  });

  it('layout changes, and binding or unbinding a feed, are content', () => {
    const old = sample();
    const moved = clone(old);
    moved.zones[0]!.rect.x = 8;
    expect(classify(old, moved)).toEqual({ kind: 'content' });
    const unbound = clone(old);
    unbound.zones[1]!.feed = null;
    expect(classify(old, unbound)).toEqual({ kind: 'content' });
    const restacked = clone(old);
    restacked.zones.reverse();
    expect(classify(old, restacked)).toEqual({ kind: 'content' });
    expect(consequence({ kind: 'content' }, 'active', true, false).after).toBe('inactive');
    expect(consequence({ kind: 'content' }, 'inactive', false, false).after).toBe('active');
    expect(classify(old, clone(old))).toEqual({ kind: 'none' });
  });
});

describe('clock preview', () => {
  it('renders strftime formats', () => {
    const t = new Date(2026, 11, 3, 9, 5, 7);
    expect(strftime('%H:%M:%S', t)).toBe('09:05:07');
    expect(strftime('%a %d %b %Y', t)).toBe('Thu 03 Dec 2026');
    expect(strftime('%I:%M %p %%', t)).toBe('09:05 AM %');
  });
});
