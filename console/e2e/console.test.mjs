// The console in Chromium against a real hub with three real headless
// screens (issue 16 tests; started by tests/tests/console.rs). Every test
// runs axe-core on each page it visits and saves its final page under
// SIGNET_E2E_SCREENS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BASE, FIXTURE, axe, count, launch, login, noProblems, open, screenshot, until } from './support.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const acmeDevices = FIXTURE.devices.filter((d) => d.node === FIXTURE.tenants.acme.site);
const globexDevices = FIXTURE.devices.filter((d) => d.node === FIXTURE.tenants.globex.site);

describe('console', () => {
  it('C2, C3: logs in and shows three screens online and playing, live', async () => {
    const { context, page } = await open(browser);
    try {
      await page.goto(`${BASE}/`);
      await axe(page, 'the login page');
      await login(page, FIXTURE.admin);
      await page.waitForURL(`${BASE}/fleet`);
      await until('3 devices online and playing', async () => (await count(page, 'playing')) === '3');
      assert.equal(await count(page, 'online'), '3');
      assert.equal(await count(page, 'attached'), '3');
      for (const d of FIXTURE.devices) {
        const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: d.name, exact: true }) });
        await row.getByText('Playing', { exact: true }).waitFor();
        await row.getByText('Welcome board').waitFor();
        const shot = row.getByRole('img', { name: `Screenshot of ${d.name}` });
        await until(`the screenshot of ${d.name}`, () => shot.evaluate((img) => img.complete && img.naturalWidth > 0));
      }
      await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
      await axe(page, 'the fleet page');
      noProblems(page);
      await screenshot(page, 'fleet', process.env.SIGNET_E2E_FLEET_PNG);
    } finally {
      await context.close();
    }
  });

  it('C3: filters the fleet by node, status and text', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.admin);
      await until('3 devices', async () => (await count(page, 'attached')) === '3');
      const rows = page.locator('[role=rowgroup][aria-label^="Devices:"] [role=row].vt-row');
      await page.getByLabel('Search').fill('lobby');
      await until('2 lobby rows', async () => (await rows.count()) === 2);
      await page.getByLabel('Search').fill('');
      await page.getByLabel('Node', { exact: true }).selectOption(FIXTURE.tenants.globex.id);
      await until('1 Globex row', async () => (await rows.count()) === 1);
      await page.getByRole('link', { name: globexDevices[0].name }).waitFor();
      await page.getByLabel('Status').selectOption('offline');
      await until('no offline rows', async () => (await rows.count()) === 0);
      await page.getByText('No device matches.').waitFor();
      await axe(page, 'the filtered fleet page');
      noProblems(page);
      await screenshot(page, 'fleet-filtered');
    } finally {
      await context.close();
    }
  });

  it('C2: logging out ends the session; the API refuses the old cookie', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.admin);
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === 'signet_session');
      assert.ok(session, 'the hub set the session cookie');
      assert.equal(session.httpOnly, true, 'the session cookie is HttpOnly');
      assert.equal(session.sameSite, 'Strict');
      assert.equal(await page.evaluate(() => document.cookie.includes('signet_session')), false);
      assert.equal(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)).then((s) => s.includes(session.value)), false);
      // A write without the CSRF header is refused even with the cookie.
      const forged = await page.evaluate(async () => (await fetch('/api/v1/session', { method: 'DELETE' })).status);
      assert.equal(forged, 403);
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
      assert.equal(after, 401);
      await page.goto(`${BASE}/fleet`);
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      noProblems(page);
      await screenshot(page, 'logged-out');
    } finally {
      await context.close();
    }
  });

  it('T4: a tenant admin sees nothing of another tenant', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.tenant_admin);
      await until(`${acmeDevices.length} devices`, async () => (await count(page, 'attached')) === String(acmeDevices.length));
      for (const d of acmeDevices) await page.getByRole('link', { name: d.name, exact: true }).waitFor();
      const text = await page.locator('body').innerText();
      for (const d of globexDevices) assert.ok(!text.includes(d.name), `${d.name} of Globex is shown to Acme`);
      assert.ok(!text.includes('Globex'), 'the Globex node is shown to Acme');
      const options = await page.getByLabel('Work in node').locator('option').allTextContents();
      assert.ok(!options.some((o) => o.includes('Globex') || o.includes('Store')), `node choices: ${options}`);
      await page.goto(`${BASE}/devices/${encodeURIComponent(globexDevices[0].id)}`);
      await page.getByRole('heading', { name: 'Device not found' }).waitFor();
      assert.ok(!(await page.locator('body').innerText()).includes(globexDevices[0].name));
      await axe(page, 'a device page of another tenant');
      noProblems(page);
      await screenshot(page, 'tenant-isolation');
    } finally {
      await context.close();
    }
  });

  it('C4: the device page shows documents activated, proof of play and a screenshot on request', async () => {
    const { context, page } = await open(browser);
    const d = acmeDevices[0];
    try {
      await login(page, FIXTURE.admin);
      await page.getByRole('link', { name: d.name, exact: true }).click();
      await page.waitForURL(`${BASE}/devices/${encodeURIComponent(d.id)}`);
      await page.getByRole('heading', { name: d.name, level: 1 }).waitFor();
      const docs = page.getByRole('region', { name: 'Documents' });
      await docs.getByText('Group manifest').first().waitFor();
      await until('every document activated', async () => {
        const states = await docs.locator('tbody .badge').allTextContents();
        return states.length > 0 && states.every((s) => s === 'Activated');
      });
      await page.getByRole('region', { name: 'Recent proof of play' }).getByRole('cell', { name: 'Welcome board' }).first().waitFor();
      await page.getByRole('button', { name: 'Take a screenshot' }).click();
      await page.getByRole('img', { name: `Latest screenshot of ${d.name}` }).waitFor();
      await until('the screenshot loaded', () =>
        page.getByRole('img', { name: `Latest screenshot of ${d.name}` }).evaluate((img) => img.complete && img.naturalWidth > 0),
      );
      await page.getByRole('button', { name: 'Resync' }).click();
      await page.getByText('Resync: sent').waitFor();
      await axe(page, 'the device page');
      noProblems(page);
      await screenshot(page, 'device');
    } finally {
      await context.close();
    }
  });

  it('C4: renames a device and sees the new name in the fleet', async () => {
    const { context, page } = await open(browser);
    const d = acmeDevices[1];
    try {
      await login(page, FIXTURE.admin, `/devices/${encodeURIComponent(d.id)}`);
      await page.getByRole('heading', { name: d.name, level: 1 }).waitFor();
      await page.getByLabel('Name', { exact: true }).fill(`${d.name} (renamed)`);
      await page.getByRole('button', { name: 'Rename' }).click();
      await page.getByText('Renamed.').waitFor();
      await page.getByLabel('Name', { exact: true }).fill(d.name);
      await page.getByRole('button', { name: 'Rename' }).click();
      await page.getByText('Renamed.').waitFor();
      await page.getByRole('link', { name: 'Fleet', exact: true }).first().click();
      await page.getByRole('link', { name: d.name, exact: true }).waitFor();
      noProblems(page);
      await screenshot(page, 'device-renamed');
    } finally {
      await context.close();
    }
  });

  it('C5: uploads an image and a video by choosing files and sees their thumbnails; refuses a non-media file in words', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.admin);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Content' }).click();
      await page.getByRole('heading', { name: 'Content', level: 1 }).waitFor();
      await axe(page, 'the content page');
      await page.getByLabel('Upload to node').selectOption(FIXTURE.tenants.acme.site);
      const chooser = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: 'Choose files…' }).click();
      await (await chooser).setFiles([
        { name: 'upload.png', mimeType: 'image/png', buffer: readFileSync(FIXTURE.upload) },
        { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') },
        { name: 'clip.webm', mimeType: 'video/webm', buffer: readFileSync(FIXTURE.video) },
      ]);
      const uploads = page.getByRole('list', { name: 'Uploads' });
      await until('both media files uploaded', async () => (await uploads.getByText('Uploaded').count()) === 2);
      await uploads.getByText('Refused').waitFor();
      const clip = page.getByRole('list', { name: 'Content items' }).getByRole('listitem').filter({ hasText: 'clip' }).first();
      await clip.getByText('320×240').waitFor();
      const clipThumb = clip.getByRole('img', { name: 'Thumbnail of clip' });
      await until('the video thumbnail loaded', () => clipThumb.evaluate((img) => img.complete && img.naturalWidth > 0));
      assert.ok((await clipThumb.evaluate((img) => img.naturalWidth)) <= 320, 'video thumbnails are at most 320 px wide');
      // By its name's link: every item's facts say "Uploaded", so text alone would match the newest item.
      const item = page.getByRole('list', { name: 'Content items' }).getByRole('listitem').filter({ has: page.getByRole('link', { name: 'upload', exact: true }) }).first();
      await item.getByText('640×360').waitFor();
      const thumb = item.getByRole('img', { name: 'Thumbnail of upload' });
      await until('the thumbnail loaded', () => thumb.evaluate((img) => img.complete && img.naturalWidth > 0));
      assert.ok((await thumb.evaluate((img) => img.naturalWidth)) <= 320, 'thumbnails are at most 320 px wide');
      await axe(page, 'the content page after uploads');
      noProblems(page);
      await screenshot(page, 'content-upload');
    } finally {
      await context.close();
    }
  });

  it('P1: a Viewer sees no write controls', async () => {
    const { context, page } = await open(browser);
    const d = acmeDevices[0];
    try {
      await login(page, FIXTURE.viewer);
      await page.getByRole('link', { name: d.name, exact: true }).waitFor();
      const nav = page.getByRole('navigation', { name: 'Main' });
      assert.equal(await nav.getByRole('link', { name: 'Pair a screen' }).count(), 0);
      await page.getByRole('link', { name: d.name, exact: true }).click();
      await page.getByRole('heading', { name: d.name, level: 1 }).waitFor();
      await page.getByRole('region', { name: 'Documents' }).waitFor();
      for (const name of ['Take a screenshot', 'Resync', 'Restart player', 'Purge cache', 'Rename', 'Move', 'Unpair…']) {
        assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `a Viewer sees ${name}`);
      }
      await axe(page, 'the device page as a Viewer');
      await nav.getByRole('link', { name: 'Content' }).click();
      await page.getByRole('heading', { name: 'Content', level: 1 }).waitFor();
      await page.getByRole('list', { name: 'Content items' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Choose files…' }).count(), 0);
      assert.equal(await page.getByRole('region', { name: 'Drop files here to upload' }).count(), 0);
      assert.equal(await page.getByRole('button', { name: /Request approval|Copy down/ }).count(), 0);
      await nav.getByRole('link', { name: 'Publishing' }).click();
      await page.getByRole('heading', { name: 'History' }).waitFor();
      assert.equal(await page.getByRole('button', { name: /Publish now|Schedule|Cancel/ }).count(), 0);
      await axe(page, 'the publishing page as a Viewer');
      noProblems(page);
      await screenshot(page, 'viewer');
    } finally {
      await context.close();
    }
  });

  it('C8: publishes a node and watches each device reach activated', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.admin);
      // A change to publish: the image uploaded above joins the Lobby's
      // playlist (through the API, with the session cookie and CSRF token).
      const changed = await page.evaluate(async (site) => {
        const csrf = decodeURIComponent(document.cookie.split('; ').find((c) => c.startsWith('signet_csrf='))?.slice(12) ?? '');
        const headers = { 'content-type': 'application/json', 'x-csrf-token': csrf };
        const items = await (await fetch('/api/v1/content')).json();
        const added = items.find((i) => i.node === site && i.name === 'upload');
        const lists = await (await fetch('/api/v1/playlists')).json();
        const list = lists.find((l) => l.node === site);
        if (!added || !list) return `nothing to change (item ${!!added}, playlist ${!!list})`;
        const body = JSON.stringify({ items: [...list.items, { item: added.id, duration_ms: 2000 }] });
        const r = await fetch(`/api/v1/playlists/${list.id}`, { method: 'PATCH', headers, body });
        return r.ok ? 'ok' : `${r.status} ${await r.text()}`;
      }, FIXTURE.tenants.acme.site);
      assert.equal(changed, 'ok');
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Publishing' }).click();
      await page.getByLabel('Node', { exact: true }).selectOption(FIXTURE.tenants.acme.site);
      await page.getByRole('button', { name: 'Publish now' }).click();
      await page.getByText(/^Published .*: [1-9]\d* document\(s\) signed/).waitFor();
      const run = page.getByRole('listitem').filter({ has: page.getByRole('button', { name: 'Hide devices' }) });
      for (const d of acmeDevices) await run.getByRole('link', { name: d.name }).waitFor();
      await until('each device activated', async () => {
        const states = await run.locator('tbody .badge').allTextContents();
        return states.length === acmeDevices.length && states.every((s) => s === 'Activated');
      });
      await axe(page, 'the publishing page');
      noProblems(page);
      await screenshot(page, 'publishing');
    } finally {
      await context.close();
    }
  });

  it('C8, A5, A6: a contributor requests approval and a tenant admin approves', async () => {
    const editor = await open(browser);
    const approver = await open(browser);
    try {
      // The contributor's upload needs approval (requires_approval).
      await login(editor.page, FIXTURE.contributor, '/content');
      const chooser = editor.page.waitForEvent('filechooser');
      await editor.page.getByRole('button', { name: 'Choose files…' }).click();
      await (await chooser).setFiles([{ name: 'Spring offer.png', mimeType: 'image/png', buffer: readFileSync(FIXTURE.upload) }]);
      await editor.page.getByRole('list', { name: 'Uploads' }).getByText('Uploaded').waitFor();
      const nav = editor.page.getByRole('navigation', { name: 'Main' });
      await nav.getByRole('link', { name: 'Approvals' }).click();
      const mine = editor.page.getByRole('region', { name: 'My items' });
      const row = mine.getByRole('row').filter({ hasText: 'Spring offer' });
      await row.getByText('Not approved').waitFor();
      await row.getByRole('button', { name: 'Request approval' }).click();
      await row.getByText('Pending approval').waitFor();
      await axe(editor.page, 'the approval page of a contributor');

      await login(approver.page, FIXTURE.tenant_admin, '/approvals');
      const inbox = approver.page.getByRole('region', { name: /Waiting for your review/ });
      const card = inbox.getByRole('listitem').filter({ hasText: 'Spring offer' });
      await card.waitFor();
      await axe(approver.page, 'the approval inbox');
      await card.getByRole('button', { name: 'Approve' }).click();
      await approver.page.getByText('Approved “Spring offer”.').waitFor();
      await screenshot(approver.page, 'approvals-approver');

      await editor.page.reload();
      await editor.page.getByRole('region', { name: 'My items' }).getByRole('row').filter({ hasText: 'Spring offer' }).getByText('Approved').waitFor();
      noProblems(editor.page);
      noProblems(approver.page);
      await screenshot(editor.page, 'approvals-requester');
    } finally {
      await editor.context.close();
      await approver.context.close();
    }
  });

  it('C3: the fleet page works on a phone', async () => {
    const { context, page } = await open(browser, { phone: true });
    try {
      await login(page, FIXTURE.admin);
      await until('3 playing', async () => (await count(page, 'playing')) === '3');
      await page.getByRole('link', { name: FIXTURE.devices[0].name, exact: true }).waitFor();
      const menu = page.getByRole('button', { name: 'Menu' });
      await menu.click();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Content' }).waitFor();
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `the page scrolls sideways on a phone (${width}px wide)`);
      await axe(page, 'the fleet page on a phone');
      noProblems(page);
      await screenshot(page, 'fleet-phone');
    } finally {
      await context.close();
    }
  });
  it('C2: a revoked session sends the user back to the login form, saying why', async () => {
    const viewer = await open(browser);
    const admin = await open(browser);
    try {
      await login(viewer.page, FIXTURE.viewer);
      await login(admin.page, FIXTURE.admin);
      const status = await admin.page.evaluate(async (id) => {
        const csrf = decodeURIComponent(document.cookie.split('; ').find((c) => c.startsWith('signet_csrf='))?.slice(12) ?? '');
        const r = await fetch(`/api/v1/users/${id}/revoke-sessions`, { method: 'POST', headers: { 'x-csrf-token': csrf } });
        return r.status;
      }, FIXTURE.viewer.id);
      assert.ok(status < 300, `revoke-sessions answered ${status}`);
      await viewer.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Content' }).click();
      await viewer.page.getByText('Your session has ended. Log in again to continue.').waitFor();
      await viewer.page.getByRole('button', { name: 'Log in' }).waitFor();
      await axe(viewer.page, 'the login page after expiry');
      noProblems(viewer.page);
      await screenshot(viewer.page, 'session-ended');
    } finally {
      await viewer.context.close();
      await admin.context.close();
    }
  });

  it('C4: pairs a new screen by the code it shows, at a leaf node', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.tenant_admin);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Pair a screen' }).click();
      await page.getByRole('heading', { name: 'Pair a screen' }).waitFor();
      await axe(page, 'the pairing page');
      await page.getByLabel('Pairing code').fill(FIXTURE.pairing.code);
      await page.getByLabel('Name of the screen').fill('Lobby kiosk');
      await page.getByLabel('Node', { exact: true }).selectOption(FIXTURE.tenants.acme.site);
      await page.getByRole('button', { name: 'Pair', exact: true }).click();
      await page.getByRole('heading', { name: 'Lobby kiosk', level: 1 }).waitFor();
      assert.match(page.url(), /\/devices\/d-/);
      await screenshot(page, 'paired');
      await page.goto(`${BASE}/no/such/page`);
      await page.getByRole('heading', { name: 'Page not found' }).waitFor();
      await axe(page, 'the not-found page');
      noProblems(page);
      await screenshot(page, 'not-found');
    } finally {
      await context.close();
    }
  });
});
