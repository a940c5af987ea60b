// What a template zone shows in the designer and its live preview (C6, D6).
import { describe, expect, it } from 'vitest';
import { render } from '@testing-library/svelte';
import ZoneView from './ZoneView.svelte';
import { newZone } from '../../lib/design/template';

const rect = { x: 0, y: 0, width: 400, height: 100 };
const now = new Date(2026, 11, 3, 9, 5, 7);
const itemName = (id: string) => `item ${id}`;

describe('ZoneView', () => {
  it('a clock zone shows the time in its format, in its style', () => {
    const zone = { ...newZone('clock', rect, []), text: '%H:%M:%S' };
    const { container } = render(ZoneView, { zone, scale: 0.5, now, itemName });
    expect(container.textContent?.trim()).toBe('09:05:07');
    const box = container.querySelector('.content') as HTMLElement;
    expect(box.style.fontSize).toBe('25px');
    expect(box.style.color).toBe('rgb(255, 255, 255)');
  });

  it('a feed zone shows its last value, else the URL with the device variables filled in', () => {
    const zone = { ...newZone('text', rect, []), feed: { url: 'https://x.example/[1]/[2].json', json_pointer: '/t', refresh_secs: 60, last_value: null } };
    const a = render(ZoneView, { zone, scale: 1, now, itemName, variables: { '1': 'Berlin' } });
    expect(a.container.textContent?.trim()).toBe('Feed: https://x.example/Berlin/[2].json → /t');
    const b = render(ZoneView, { zone: { ...zone, feed: { ...zone.feed, last_value: '21 °C' } }, scale: 1, now, itemName });
    expect(b.container.textContent?.trim()).toBe('21 °C');
  });

  it('a media zone shows its item, or says none is chosen', () => {
    const empty = render(ZoneView, { zone: newZone('video', rect, []), scale: 1, now, itemName });
    expect(empty.container.textContent?.trim()).toBe('No video chosen');
    const chosen = render(ZoneView, { zone: { ...newZone('image', rect, []), source: 'c-1' }, scale: 1, now, itemName });
    const img = chosen.container.querySelector('img') as HTMLImageElement;
    expect(img.getAttribute('src')).toBe('/api/v1/content/c-1/thumbnail');
    expect(img.alt).toBe('item c-1');
  });
});
