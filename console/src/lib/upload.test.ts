// Uploads (C5): progress is reported, the CSRF header is sent, and the
// hub's refusal comes back as its own message.
import { afterEach, describe, expect, it } from 'vitest';
import { itemName, precheck, replace, upload } from './upload';
import { connectSession } from './api/client';

class FakeXhr {
  static last: FakeXhr;
  headers: Record<string, string> = {};
  upload: { onprogress: ((e: { lengthComputable: boolean; loaded: number; total: number }) => void) | null } = {
    onprogress: null,
  };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  status = 0;
  responseText = '';
  withCredentials = false;
  url = '';
  constructor() {
    FakeXhr.last = this;
  }
  method = '';
  open(m: string, url: string) {
    this.method = m;
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send() {}
  abort() {
    this.onabort?.();
  }
}

const real = globalThis.XMLHttpRequest;
afterEach(() => {
  globalThis.XMLHttpRequest = real;
});

describe('upload', () => {
  it('reports progress and resolves to the stored item', async () => {
    globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
    connectSession({ csrf: () => 'csrf-9', unauthenticated: () => {} });
    const seen: number[] = [];
    const u = upload(new Blob(['x']), 'n-1', 'Menu', (f) => seen.push(f));
    const x = FakeXhr.last;
    expect(x.url).toBe('/api/v1/content?node=n-1&name=Menu');
    expect(x.headers['X-CSRF-Token']).toBe('csrf-9');
    expect(x.withCredentials).toBe(true);
    x.upload.onprogress?.({ lengthComputable: true, loaded: 50, total: 200 });
    x.status = 201;
    x.responseText = JSON.stringify({ id: 'c-1', name: 'Menu' });
    x.onload?.();
    await expect(u.done).resolves.toMatchObject({ id: 'c-1' });
    expect(seen).toEqual([0.25, 1]);
  });

  it("rejects with the hub's refusal", async () => {
    globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
    const u = upload(new Blob(['x']), 'n-1', 'Notes', () => {});
    const x = FakeXhr.last;
    x.status = 415;
    x.responseText = JSON.stringify({ error: 'unsupported_media_type', message: 'not a known media type' });
    x.onload?.();
    await expect(u.done).rejects.toMatchObject({ status: 415, code: 'unsupported_media_type', message: 'not a known media type' });
  });
});

describe('replace (A3)', () => {
  it("PUTs the new bytes to the item, with the CSRF header, and resolves to the item as stored now", async () => {
    globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
    connectSession({ csrf: () => 'csrf-3', unauthenticated: () => {} });
    const seen: number[] = [];
    const u = replace(new Blob(['new']), 'c/1', (f) => seen.push(f));
    const x = FakeXhr.last;
    expect(x.method).toBe('PUT');
    expect(x.url).toBe('/api/v1/content/c%2F1');
    expect(x.headers['X-CSRF-Token']).toBe('csrf-3');
    expect(x.headers['Content-Type']).toBe('application/octet-stream');
    x.status = 200;
    x.responseText = JSON.stringify({ id: 'c/1', sha256: 'ab', revision: 2 });
    x.onload?.();
    await expect(u.done).resolves.toMatchObject({ sha256: 'ab', revision: 2 });
    expect(seen).toEqual([1]);
  });

  it("rejects with the hub's refusal of a template or an unknown type", async () => {
    globalThis.XMLHttpRequest = FakeXhr as unknown as typeof XMLHttpRequest;
    const u = replace(new Blob(['x']), 'c-1', () => {});
    const x = FakeXhr.last;
    x.status = 415;
    x.responseText = JSON.stringify({ error: 'unsupported_media_type', message: 'a template is changed in the designer' });
    x.onload?.();
    await expect(u.done).rejects.toMatchObject({ status: 415, message: 'a template is changed in the designer' });
  });
});

describe('names and prechecks', () => {
  it('names an item after its file and refuses empty files', () => {
    expect(itemName('Lunch menu.png')).toBe('Lunch menu');
    expect(itemName('.hidden')).toBe('.hidden');
    expect(precheck({ name: 'a.png', size: 0 })).toBe('the file is empty');
    expect(precheck({ name: 'a.png', size: 10 })).toBeNull();
  });
});
