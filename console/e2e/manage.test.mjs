// The operator tasks that had needed curl, done in Chromium against a real
// hub (issue 19 Acceptance; started by tests/tests/console.rs): a tenant
// admin deletes an item, a playlist and a schedule — the hub's 409 while
// something still uses them shown in words, then each deleted in order;
// replaces an image's file and renames it; copies a template down from a restricted node
// (A2) and deletes the copy; sets a device's feed variables (D6), a bad
// value marked before anything is sent; a root-level admin rejects a
// pairing request (S7). Every effect is checked through the API; axe-core
// runs on each page and dialog; each test saves its final page.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deflateSync, crc32 } from 'node:zlib';
import { BASE, FIXTURE, as, axe, call, launch, screenshot, until } from './support.mjs';

let browser;
/** The nodes the tests make under Acme: a restricted one and a plain one below it. */
let masters;
let branch;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Like `call`, failing unless the hub answers 2xx; answers the body. */
async function must(page, method, path, body) {
  const r = await call(page, method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Uploads `bytes` to `node` as `name` from the page; answers the item. */
async function uploadBytes(page, node, name, bytes) {
  const item = await page.evaluate(
    async ([node, name, bytes]) => {
      const csrf = decodeURIComponent(document.cookie.split('; ').find((c) => c.startsWith('signet_csrf='))?.slice(12) ?? '');
      const r = await fetch(`/api/v1/content?${new URLSearchParams({ node, name })}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': csrf },
        body: new Uint8Array(bytes),
      });
      return { status: r.status, body: await r.json() };
    },
    [node, name, [...bytes]],
  );
  assert.equal(item.status, 201, JSON.stringify(item.body));
  return item.body;
}

/** A real PNG of one colour (`rgb`, e.g. 0x10b981), `w`×`h`. */
function png(rgb, w = 64, h = 36) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.alloc(1 + w * 3);
  for (let x = 0; x < w; x++) row.set([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  const sig = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Opens `path` (a full load, so the node tree is fresh) and waits for its heading. */
async function openPage(page, path, heading) {
  await page.goto(`${BASE}${path}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** Clicks `Delete {what}…`, then the dialog's `Delete {what}`; answers the dialog. */
async function confirmDelete(page, what) {
  await page.getByRole('button', { name: `Delete ${what}…` }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: `Delete ${what}`, exact: true }).click();
  return dialog;
}

describe('operator tasks without curl', () => {
  it('A1, A2, T2: a tenant admin deletes an item, its playlist and its schedule; the hub’s 409 is shown in words until each is free', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'manage-delete' }, async (page) => {
      const acme = FIXTURE.tenants.acme.id;
      masters = await must(page, 'POST', '/api/v1/nodes', { parent: acme, name: 'Manage masters', restricted: true });
      branch = await must(page, 'POST', '/api/v1/nodes', { parent: masters.id, name: 'Manage branch' });
      const poster = await uploadBytes(page, branch.id, 'Manage poster', png(0x2563eb));
      const loop = await must(page, 'POST', '/api/v1/playlists', { node: branch.id, name: 'Manage loop', items: [{ item: poster.id, duration_ms: 5000 }] });
      const schedule = await must(page, 'POST', '/api/v1/schedules', {
        target: { kind: 'node', id: branch.id },
        entries: [{ id: 'all-day', playlist: loop.id, priority: 1 }],
      });

      // The item: refused while the playlist uses it, in words, nothing changed.
      await openPage(page, `/content/${encodeURIComponent(poster.id)}`, 'Manage poster');
      let dialog = await confirmDelete(page, 'item');
      await dialog.getByRole('alert').filter({ hasText: '“Manage poster” is in use' }).waitFor();
      assert.match(await dialog.getByRole('alert').innerText(), /template, playlist or access group.*Remove it there first/s);
      assert.match(await dialog.getByRole('alert').innerText(), /used by playlist “Manage loop”/, 'the refusal does not name the playlist');
      await axe(page, 'the delete dialog with the hub’s refusal');
      await screenshot(page, 'manage-delete-refused');
      await dialog.getByRole('button', { name: 'Close' }).click();
      assert.equal((await call(page, 'GET', `/api/v1/content/${poster.id}`)).status, 200, 'a refused delete removed the item');

      // The playlist: refused while the schedule plays it.
      await openPage(page, `/playlists/${encodeURIComponent(loop.id)}`, 'Playlist “Manage loop”');
      dialog = await confirmDelete(page, 'playlist');
      await dialog.getByRole('alert').filter({ hasText: 'a schedule still plays it' }).waitFor();
      assert.match(await dialog.getByRole('alert').innerText(), /“Manage loop” is used by schedule “.*Manage branch”/, 'the refusal does not name the schedule');
      await dialog.getByRole('button', { name: 'Close' }).click();
      assert.equal((await call(page, 'GET', `/api/v1/playlists/${loop.id}`)).status, 200);

      // The schedule goes; then the playlist; then the item.
      await openPage(page, `/schedules/${encodeURIComponent(schedule.id)}`, /^Schedule of .*Manage branch$/);
      await confirmDelete(page, 'schedule');
      await page.getByRole('heading', { level: 1, name: 'Schedules' }).waitFor();
      assert.equal((await call(page, 'GET', `/api/v1/schedules/${schedule.id}`)).status, 404, 'the schedule is still there');

      await openPage(page, `/playlists/${encodeURIComponent(loop.id)}`, 'Playlist “Manage loop”');
      await confirmDelete(page, 'playlist');
      await page.getByRole('heading', { level: 1, name: 'Playlists' }).waitFor();
      assert.equal((await call(page, 'GET', `/api/v1/playlists/${loop.id}`)).status, 404, 'the playlist is still there');

      await openPage(page, `/content/${encodeURIComponent(poster.id)}`, 'Manage poster');
      await confirmDelete(page, 'item');
      await page.getByRole('heading', { level: 1, name: 'Content' }).waitFor();
      assert.equal((await call(page, 'GET', `/api/v1/content/${poster.id}`)).status, 404, 'the item is still there');
      assert.equal(await page.getByRole('link', { name: 'Manage poster' }).count(), 0, 'the library still lists the item');
      await axe(page, 'the content library after a delete');
    }));

  it('A3: a tenant admin replaces an image’s file and renames it from its page; the hub stores the new bytes and name', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'manage-replace' }, async (page) => {
      const sign = await uploadBytes(page, branch.id, 'Manage sign', readFileSync(FIXTURE.upload));
      const fresh = png(0x10b981, 80, 45);
      await openPage(page, `/content/${encodeURIComponent(sign.id)}`, 'Manage sign');
      const form = page.getByRole('form', { name: 'Replace the file of Manage sign' });
      assert.equal(await form.getByRole('button', { name: 'Replace file' }).isDisabled(), true, 'Replace is offered without a file');
      await form.getByLabel('New file').setInputFiles({ name: 'sign-green.png', mimeType: 'image/png', buffer: fresh });
      await axe(page, 'the item page with its manage section');
      await form.getByRole('button', { name: 'Replace file' }).click();
      await page.getByRole('status').filter({ hasText: 'Replaced the file of “Manage sign” with sign-green.png' }).waitFor();
      const now = await must(page, 'GET', `/api/v1/content/${sign.id}`);
      assert.notEqual(now.sha256, sign.sha256, 'the file’s hash did not change');
      assert.equal(now.sha256, createHash('sha256').update(fresh).digest('hex'));
      assert.equal(now.width, 80);
      assert.ok(now.revision > sign.revision, 'the revision did not grow');
      await page.locator('.facts').getByText('80×45').waitFor();
      // The page shows the new picture, not the old one from the browser's cache.
      const thumb = page.getByRole('img', { name: 'Thumbnail of Manage sign' });
      assert.ok((await thumb.getAttribute('src'))?.endsWith(`?v=${now.sha256.slice(0, 16)}`), 'the thumbnail address does not name the new bytes');
      await until('the new thumbnail', () => thumb.evaluate((img) => img.complete && img.naturalWidth === 80));

      // Renaming is no content change: the approval state stays.
      const rename = page.getByRole('form', { name: 'Rename Manage sign' });
      await rename.getByLabel('Name').fill('Manage sign, green');
      await rename.getByRole('button', { name: 'Rename' }).click();
      await page.getByRole('heading', { level: 1, name: 'Manage sign, green' }).waitFor();
      const renamed = await must(page, 'GET', `/api/v1/content/${sign.id}`);
      assert.equal(renamed.name, 'Manage sign, green');
      assert.equal(renamed.approval_state, now.approval_state);
      assert.equal(renamed.sha256, now.sha256);
    }));

  it('A2: a tenant admin copies a template down from a restricted node and deletes the copy', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'manage-copy' }, async (page) => {
      const master = await must(page, 'POST', '/api/v1/templates', {
        node: masters.id,
        name: 'Manage master layout',
        template: { canvas: { width: 1920, height: 1080 }, zones: [] },
      });
      await openPage(page, `/content/${encodeURIComponent(master.id)}`, 'Manage master layout');
      const form = page.getByRole('form', { name: 'Copy Manage master layout down' });
      const offered = await form.getByLabel('Copy to').locator('option').allInnerTexts();
      assert.equal(offered.length, 1, `the copy may go only to non-restricted nodes below the master, offered: ${offered}`);
      assert.match(offered[0], /Manage masters \/ Manage branch$/);
      await form.getByLabel('Name of the copy').fill('Branch layout');
      await form.getByRole('button', { name: 'Copy down' }).click();
      await form.getByRole('status').filter({ hasText: 'as “Branch layout”' }).waitFor();
      await axe(page, 'the item page after a copy');
      const copy = (await must(page, 'GET', '/api/v1/templates')).find((t) => t.name === 'Branch layout');
      assert.ok(copy, 'the copy is not listed');
      assert.equal(copy.node, branch.id);
      assert.notEqual(copy.id, master.id);

      // The copy opens from the note, and goes.
      await form.getByRole('link', { name: 'Open the copy' }).click();
      await page.getByRole('heading', { level: 1, name: 'Branch layout' }).waitFor();
      await confirmDelete(page, 'template');
      await page.getByRole('heading', { level: 1, name: 'Templates' }).waitFor();
      assert.equal((await call(page, 'GET', `/api/v1/templates/${copy.id}`)).status, 404, 'the copy is still there');
      assert.equal((await call(page, 'GET', `/api/v1/templates/${master.id}`)).status, 200, 'the master went too');
    }));

  it('D6: a tenant admin sets a screen’s feed variables; a bad value is marked and nothing is sent', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'manage-variables' }, async (page) => {
      const device = FIXTURE.devices.find((d) => d.node === FIXTURE.tenants.acme.site);
      const before = (await must(page, 'GET', `/api/v1/devices/${device.id}`)).variables ?? {};
      await openPage(page, `/devices/${encodeURIComponent(device.id)}`, device.name);
      const form = page.getByRole('form', { name: `Feed variables of ${device.name}` });
      await form.getByLabel('Variable [1]', { exact: true }).fill('store-12');
      await form.getByLabel('Variable [7]', { exact: true }).fill('line\tbreak');
      await form.getByRole('button', { name: 'Save variables' }).click();
      await page.getByRole('alert').filter({ hasText: '[7] contains a control character' }).waitFor();
      assert.equal(await form.getByLabel('Variable [7]', { exact: true }).getAttribute('aria-invalid'), 'true');
      assert.deepEqual((await must(page, 'GET', `/api/v1/devices/${device.id}`)).variables ?? {}, before, 'a refused form changed the variables');
      await form.getByLabel('Variable [7]', { exact: true }).fill('Lobby east');
      await form.getByLabel('Variable [25]', { exact: true }).fill('x'.repeat(256));
      await form.getByRole('button', { name: 'Save variables' }).click();
      await page.getByRole('status').filter({ hasText: `Saved 3 variables of ${device.name}` }).waitFor();
      await axe(page, 'the device page with its variables');
      const stored = await must(page, 'GET', `/api/v1/devices/${device.id}`);
      assert.deepEqual(stored.variables, { 1: 'store-12', 7: 'Lobby east', 25: 'x'.repeat(256) });

      // Clearing one: a blank field removes it.
      await form.getByLabel('Variable [25]', { exact: true }).fill('');
      await form.getByRole('button', { name: 'Save variables' }).click();
      await page.getByRole('status').filter({ hasText: `Saved 2 variables of ${device.name}` }).waitFor();
      assert.deepEqual((await must(page, 'GET', `/api/v1/devices/${device.id}`)).variables, { 1: 'store-12', 7: 'Lobby east' });
    }));

  it('S7: a root-level admin rejects a pairing request beside approving it; the screen’s poll is closed', async () => {
    // A screen asks to pair, as an agent does: its own Ed25519 key.
    const { publicKey } = generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const asked = await fetch(`${BASE}/api/v1/device/pairings`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ public_key: raw.toString('base64'), agent_version: '0.1.0', os: 'Manage test OS' }),
    });
    assert.equal(asked.status, 201, await asked.clone().text());
    const { code, ticket } = await asked.json();
    await as(browser, FIXTURE.admin, { name: 'manage-pairing', path: '/pair' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Pair a screen' }).waitFor();
      const row = page.getByRole('row').filter({ hasText: 'Manage test OS' });
      await row.getByRole('button', { name: `Reject code ${code}…` }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByText(`The screen showing ${code} is not paired`).waitFor();
      await axe(page, 'the reject dialog');
      await dialog.getByRole('button', { name: `Reject code ${code}`, exact: true }).click();
      await page.getByRole('status').filter({ hasText: `Rejected code ${code}` }).waitFor();
      await until('the rejected code to leave the list', async () => (await row.count()) === 0);
      const open = await must(page, 'GET', '/api/v1/devices/pairings');
      assert.ok(!open.some((p) => p.code === code), 'the rejected code is still open');
      await axe(page, 'the pairing page after a rejection');
    });
    const poll = await fetch(`${BASE}/api/v1/device/pairings/${encodeURIComponent(ticket)}`);
    assert.equal(poll.status, 200);
    assert.deepEqual(await poll.json(), { status: 'closed', reason: 'rejected by an operator' });
  });
});

