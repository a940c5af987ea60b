// History routing: path patterns and navigation (C1).
import { describe, expect, it } from 'vitest';
import { match, navigate, here, startRouter } from './router.svelte';
import { resolve } from '../routes';

describe('match', () => {
  it('matches literal paths and ignores trailing slashes', () => {
    expect(match('/fleet', '/fleet')).toEqual({});
    expect(match('/fleet', '/fleet/')).toEqual({});
    expect(match('/fleet', '/content')).toBeNull();
  });
  it('decodes parameters', () => {
    expect(match('/devices/:id', '/devices/d-1%2Fx')).toEqual({ id: 'd-1/x' });
    expect(match('/devices/:id', '/devices')).toBeNull();
    expect(match('/devices/:id', '/devices/%E0%A4%A')).toBeNull();
  });
});

describe('navigate', () => {
  it('pushes history and updates the location', () => {
    const stop = startRouter();
    navigate('/devices/d-7?x=1');
    expect(here.path).toBe('/devices/d-7');
    expect(here.search).toBe('x=1');
    expect(window.location.pathname).toBe('/devices/d-7');
    stop();
  });
});

describe('resolve', () => {
  it('answers the fleet page and a not-found page', () => {
    expect(resolve('/fleet').route.title).toBe('Fleet');
    expect(resolve('/no/such/page').route.title).toBe('Not found');
  });
});
