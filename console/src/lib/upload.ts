// Content upload with progress (C5): the raw file as the request body
// (`POST /api/v1/content?node=&name=`, or `PUT /api/v1/content/{id}` to
// replace an item's file), sent with XMLHttpRequest because
// fetch reports no upload progress. The session cookie goes with it and
// the CSRF header is added like every other write.
import { csrfHeader, failure, ApiFailure, type Schemas } from './api/client';

/** A stored content item. */
export type ContentItem = Schemas['ContentView'];

/** The display name of an uploaded file: its name without the extension. */
export function itemName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  const dot = base.lastIndexOf('.');
  const name = (dot > 0 ? base.slice(0, dot) : base).trim();
  return (name || base).slice(0, 256);
}

/** Why a file is refused before it is sent, or null. */
export function precheck(file: { name: string; size: number }): string | null {
  if (file.size === 0) return 'the file is empty';
  return null;
}

/** A transfer under way: its outcome and a way to cancel it. */
export interface Transfer {
  done: Promise<ContentItem>;
  abort: () => void;
}

/**
 * Uploads `file` to `node` as `name`; `progress` gets the fraction sent
 * (0–1). Resolves to the stored item; rejects with an ApiFailure carrying
 * the hub's refusal (type, size, pixels, permission).
 */
export function upload(file: Blob, node: string, name: string, progress: (fraction: number) => void): Transfer {
  return send('POST', `/api/v1/content?${new URLSearchParams({ node, name })}`, file, progress);
}

/**
 * Replaces the bytes of item `id` with `file` (`PUT /api/v1/content/{id}`,
 * A3: new bytes are a content change), with progress as for an upload.
 * Resolves to the item as stored now (new hash, revision and approval
 * state; unchanged when the bytes are the same).
 */
export function replace(file: Blob, id: string, progress: (fraction: number) => void): Transfer {
  return send('PUT', `/api/v1/content/${encodeURIComponent(id)}`, file, progress);
}

function send(method: 'POST' | 'PUT', url: string, file: Blob, progress: (fraction: number) => void): Transfer {
  const xhr = new XMLHttpRequest();
  const done = new Promise<ContentItem>((resolve, reject) => {
    xhr.open(method, url);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    for (const [k, v] of Object.entries(csrfHeader(method))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) progress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        progress(1);
        resolve(body as ContentItem);
      } else {
        reject(failure(xhr.status, body));
      }
    };
    xhr.onerror = () => reject(new ApiFailure(0, 'network', 'the upload was interrupted (network error)'));
    xhr.onabort = () => reject(new ApiFailure(0, 'aborted', 'the upload was cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}
