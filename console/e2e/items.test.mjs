// The item pages in Chromium against a real hub (issue 19 Deliver 5, the
// console side of issue 18; started by tests/tests/console.rs): a tenant
// admin defines custom attributes, shares a video (a working link, copied
// and mailed), likes it, marks it a favorite and finds it in My favorites,
// sets an attribute (the hub's refusal of a bad value shown by its field),
// comments, and processes the video into an H.264 rendition with real
// GStreamer; a Viewer sees only the actions the hub allows and reports
// the item, and a Moderator resolves the report in the feedback queue; a
// contributor adds, edits and deletes their own comment and cannot delete
// another's, and likes and comments on a playlist with the same
// controls (a tenant admin sets the playlist's custom attributes); a contributor whose saves need approval asks for it and a
// tenant admin, opening the item page approval mails link to, approves it
// there. axe-core runs on every page; each test saves its final page.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BASE, FIXTURE, as, axe, call, launch, screenshot, until } from './support.mjs';

let browser;
/** The video item the tests act on. */
let clip;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Uploads the fixture's video (or `file`) to `node` as `name` from the page; answers the item. */
async function uploadVideo(page, node, name, file = FIXTURE.video) {
  const bytes = [...readFileSync(file)];
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
    [node, name, bytes],
  );
  assert.equal(item.status, 201, JSON.stringify(item.body));
  return item.body;
}

/** The item's page, loaded. */
async function openItem(page, item) {
  await page.goto(`${BASE}/content/${encodeURIComponent(item.id)}`);
  await page.getByRole('heading', { level: 1, name: item.name }).waitFor();
}

/** A button of the item's actions bar. */
function action(page, name) {
  return page.getByRole('group', { name: /^Actions on / }).getByRole('button', { name });
}

describe('item pages', () => {
  it('M3, P5: a tenant admin defines attributes, shares, rates, favors, sets values, comments and processes a video', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'items-admin' }, async (page) => {
      await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
      const site = FIXTURE.tenants.acme.site;
      clip = await uploadVideo(page, site, 'Items clip');
      const on = await call(page, 'PATCH', `/api/v1/content/${clip.id}`, { settings: { allow_share: true, allow_download: true } });
      assert.equal(on.status, 200, JSON.stringify(on.body));

      // The node's attribute definitions (Manager+).
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Custom attributes' }).click();
      await page.getByRole('heading', { level: 1, name: 'Custom attributes' }).waitFor();
      await page.getByLabel('At node').selectOption(site);
      await page.getByLabel('Key').fill('shelf_life');
      await page.getByLabel('Label').fill('Shelf life (days)');
      await page.getByLabel('Type').selectOption('number');
      await page.getByRole('button', { name: 'Save attribute' }).click();
      await page.getByRole('status').filter({ hasText: '(shelf_life) is defined' }).waitFor();
      await page.getByLabel('Key').fill('audience');
      await page.getByLabel('Label').fill('Audience');
      await page.getByLabel('Type').selectOption('enum');
      await page.getByLabel('Allowed values, one a line').fill('staff\nvisitors');
      await page.getByRole('button', { name: 'Save attribute' }).click();
      await page.getByRole('cell', { name: 'Audience', exact: true }).waitFor();
      await axe(page, 'the custom attributes page');

      // Processing first: the rendition is made while the rest goes on.
      await openItem(page, clip);
      await page.getByRole('button', { name: 'Process for screens' }).click();
      await page.getByText('Processing of “Items clip” asked for.').waitFor();
      await axe(page, 'the item page');

      // Share: a link with an expiry, copied, mailed; it plays without a login.
      await action(page, 'Share…').click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Link works for').selectOption('86400');
      await dialog.getByLabel('Mail it to (optional)').fill('friend@example.com');
      await dialog.getByLabel('Message (optional)').fill('Have a look');
      await dialog.getByRole('button', { name: 'Make link' }).click();
      await dialog.getByText('mailed to 1 address').waitFor();
      const link = await dialog.getByRole('textbox', { name: 'Share link' }).inputValue();
      assert.match(link, /\/api\/v1\/shared\/[^/]+$/);
      await dialog.getByRole('button', { name: 'Copy link' }).click();
      await dialog.getByRole('status').filter({ hasText: 'Copied.' }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link);
      await axe(page, 'the share dialog');
      const shared = await browser.newContext();
      try {
        const r = await shared.request.get(link);
        assert.equal(r.status(), 200, 'the share link plays without a login');
        assert.equal((await r.body()).length, clip.size);
      } finally {
        await shared.close();
      }
      await dialog.getByRole('button', { name: 'Close' }).click();

      // Rate: like, then dislike instead (one rating per user).
      await action(page, /^Like/).click();
      await until('a like', async () => (await action(page, /^Like/).getAttribute('aria-pressed')) === 'true');
      assert.match(await action(page, /^Like/).innerText(), /Like\s*1/);
      await action(page, /^Dislike/).click();
      await until('a dislike', async () => /Dislike\s*1/.test(await action(page, /^Dislike/).innerText()));
      assert.match(await action(page, /^Like/).innerText(), /Like\s*0/);
      assert.equal(await page.getByRole('link', { name: 'Download' }).getAttribute('href'), `/api/v1/content/${clip.id}/download`);

      // Favorite, then My favorites lists it.
      await action(page, /Favorite/).click();
      await until('a favorite', async () => (await action(page, /Favorite/).getAttribute('aria-pressed')) === 'true');
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My favorites' }).click();
      await page.getByRole('heading', { level: 1, name: 'My favorites' }).waitFor();
      await page.getByRole('list', { name: 'My favorites' }).getByRole('link', { name: 'Items clip' }).click();
      await page.getByRole('heading', { level: 1, name: 'Items clip' }).waitFor();

      // Attributes: the hub refuses a bad number by its field; a good one saves.
      const values = page.getByRole('form', { name: 'Custom attributes of Items clip' });
      await values.getByLabel(/Shelf life/).fill('soon');
      await values.getByRole('button', { name: 'Save attributes' }).click();
      await page.getByRole('alert').filter({ hasText: 'shelf_life must be' }).waitFor();
      assert.equal(await values.getByLabel(/Shelf life/).getAttribute('aria-invalid'), 'true');
      await values.getByLabel(/Shelf life/).fill('42');
      await values.getByLabel(/Audience/).selectOption('visitors');
      await values.getByRole('button', { name: 'Save attributes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved the attributes of “Items clip”.' }).waitFor();
      const stored = await call(page, 'GET', `/api/v1/content/${clip.id}/attributes`);
      assert.deepEqual(Object.fromEntries(stored.body.map((a) => [a.key, a.value])), { shelf_life: 42, audience: 'visitors' });

      // A comment of the admin's, for the others to see.
      await page.getByLabel('Your comment').fill('Approved for the lobby.');
      await page.getByRole('button', { name: 'Add comment' }).click();
      await page.getByRole('list', { name: 'Comments on Items clip' }).getByText('Approved for the lobby.').waitFor();

      // The rendition is ready: H.264, made by GStreamer.
      await until('the rendition', async () => (await page.getByRole('list', { name: 'Renditions of Items clip' }).innerText()).includes('Ready: H264'));
      await axe(page, 'the item page with its rendition');
    }));

  it('M3, M4, P5: a Viewer sees only what the hub allows and reports the item; a Moderator resolves it', async () => {
    await as(browser, FIXTURE.viewer, { name: 'items-viewer' }, async (page) => {
      await openItem(page, clip);
      await action(page, 'Report…').waitFor();
      for (const hidden of ['Share…', 'Process for screens', 'Add comment']) {
        assert.equal(await page.getByRole('button', { name: hidden }).count(), 0, `a Viewer sees ${hidden}`);
      }
      assert.equal(await page.getByRole('link', { name: 'Download' }).count(), 0, 'a Viewer sees Download');
      assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0, 'a Viewer may delete a comment');
      await page.getByText('Approved for the lobby.').waitFor();
      await action(page, 'Report…').click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Reason').selectOption('question');
      await dialog.getByLabel('What is wrong, asked or suggested').fill('Is this clip meant for visitors?');
      await axe(page, 'the report dialog');
      await dialog.getByRole('button', { name: 'Send report' }).click();
      await page.getByRole('status').filter({ hasText: 'went to the moderators' }).waitFor();
      await axe(page, 'the item page as a Viewer');
    });
    await as(browser, FIXTURE.tenant_admin, { name: 'items-feedback', path: '/feedback' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Feedback' }).waitFor();
      const row = page.getByRole('row').filter({ hasText: 'Is this clip meant for visitors?' });
      await row.getByLabel('Note').fill('Yes, both.');
      await row.getByRole('button', { name: 'Resolve the report on Items clip' }).click();
      await page.getByRole('status').filter({ hasText: 'The report on “Items clip” is resolved.' }).waitFor();
      await axe(page, 'the feedback queue');
    });
  });

  it('M4: a contributor adds, edits and deletes their own comment, on a phone, and cannot delete another’s', () =>
    as(browser, FIXTURE.contributor, { name: 'items-comments', phone: true }, async (page) => {
      await openItem(page, clip);
      const list = page.getByRole('list', { name: 'Comments on Items clip' });
      const others = list.getByRole('listitem').filter({ hasText: 'Approved for the lobby.' });
      await others.waitFor();
      assert.equal(await others.getByRole('button').count(), 0, 'a contributor may edit or delete another’s comment');
      await page.getByLabel('Your comment').fill('Looks good on the left screen.');
      await page.getByRole('button', { name: 'Add comment' }).click();
      await list.getByText('Looks good on the left screen.').waitFor();
      const mine = list.getByRole('listitem').first(); // newest first
      await mine.getByRole('button', { name: /^Edit/ }).click();
      await mine.getByLabel('Edit your comment').fill('Looks good on both screens.');
      await axe(page, 'editing a comment on a phone');
      await mine.getByRole('button', { name: 'Save comment' }).click();
      const edited = list.getByRole('listitem').filter({ hasText: 'Looks good on both screens.' });
      await edited.getByText('(edited').waitFor();
      await edited.getByRole('button', { name: /^Delete/ }).click();
      await page.getByRole('status').filter({ hasText: 'Comment deleted.' }).waitFor();
      assert.equal(await list.getByText('Looks good on both screens.').count(), 0);
      await axe(page, 'the item page on a phone');
    }));

  it('M3, M4: on a playlist page a contributor likes it, comments and finds it in My favorites; a tenant admin sets its custom attributes', async () => {
    let playlist = '';
    await as(browser, FIXTURE.contributor, { name: 'items-playlist' }, async (page) => {
      const made = await call(page, 'POST', '/api/v1/playlists', { node: FIXTURE.tenants.acme.site, name: 'Items loop', items: [{ item: clip.id, duration_ms: 5000 }] });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      playlist = made.body.id;
      await page.goto(`${BASE}/playlists/${encodeURIComponent(made.body.id)}`);
      await page.getByRole('heading', { level: 1, name: 'Playlist “Items loop”' }).waitFor();
      await action(page, /^Like/).click();
      await page.waitForFunction(() => document.querySelector('button[aria-pressed="true"]')?.textContent?.includes('1'));
      assert.equal(await action(page, /^Dislike/).getAttribute('aria-pressed'), 'false');
      assert.equal(await action(page, /^Share/).count(), 0, 'a playlist offers sharing');
      await page.getByLabel('Your comment').fill('Runs well in the lobby.');
      await page.getByRole('button', { name: 'Add comment' }).click();
      const list = page.getByRole('list', { name: 'Comments on Items loop' });
      await list.getByText('Runs well in the lobby.').waitFor();
      const stored = await call(page, 'GET', `/api/v1/playlists/${made.body.id}/comments`);
      assert.equal(stored.body.comments[0].body, 'Runs well in the lobby.');
      const rated = await call(page, 'GET', `/api/v1/playlists/${made.body.id}/actions`);
      assert.equal(rated.body.my_rating, 'like');
      await axe(page, 'the playlist page with its comments');
      // The node's custom attributes show, read only: a contributor does
      // not hold update_custom_attributes.
      const attrs = page.getByRole('region', { name: 'Custom attributes' });
      await attrs.getByText('Shelf life (days)').waitFor();
      assert.equal(await attrs.getByRole('button', { name: 'Save attributes' }).count(), 0, 'a contributor may set attributes');
      // Favorite, then My favorites lists it, as a playlist, in the one list and leads back.
      await action(page, /Favorite/).click();
      await page.getByRole('status').filter({ hasText: '“Items loop” is among your favorites.' }).waitFor();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My favorites' }).click();
      await page.getByRole('heading', { level: 1, name: 'My favorites' }).waitFor();
      await axe(page, 'my favorites with a playlist');
      const entry = page.getByRole('list', { name: 'My favorites' }).getByRole('listitem').filter({ hasText: 'Items loop' });
      await entry.getByText(/^playlist · /).waitFor();
      await entry.getByRole('link', { name: 'Items loop' }).click();
      await page.getByRole('heading', { level: 1, name: 'Playlist “Items loop”' }).waitFor();
    });
    // A tenant admin sets the playlist's attributes as on the media page:
    // a bad number is refused by its field, a good one saved and shown
    // after a reload.
    await as(browser, FIXTURE.tenant_admin, { name: 'items-playlist-attributes', path: `/playlists/${encodeURIComponent(playlist)}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Playlist “Items loop”' }).waitFor();
      const values = page.getByRole('form', { name: 'Custom attributes of Items loop' });
      await values.getByLabel(/Shelf life/).fill('soon');
      await values.getByRole('button', { name: 'Save attributes' }).click();
      await page.getByRole('alert').filter({ hasText: 'shelf_life must be' }).waitFor();
      await values.getByLabel(/Shelf life/).fill('30');
      await values.getByLabel(/Audience/).selectOption('visitors');
      await values.getByRole('button', { name: 'Save attributes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved the attributes of “Items loop”.' }).waitFor();
      await page.reload();
      await page.getByRole('heading', { level: 1, name: 'Playlist “Items loop”' }).waitFor();
      await until('the saved value after a reload', async () => (await values.getByLabel(/Shelf life/).inputValue()) === '30');
      assert.equal(await values.getByLabel(/Audience/).inputValue(), 'visitors');
      const stored = await call(page, 'GET', `/api/v1/playlists/${playlist}/attributes`);
      assert.deepEqual(Object.fromEntries(stored.body.map((a) => [a.key, a.value])), { shelf_life: 30, audience: 'visitors' });
      await axe(page, 'the playlist page with its custom attributes');
    });
  });

  it('A5, A6: an approver opens the mailed item page of a pending upload and approves it there', async () => {
    let poster = { id: '', name: '' };
    await as(browser, FIXTURE.contributor, { name: 'items-approval-requested', path: '/content' }, async (page) => {
      poster = await uploadVideo(page, FIXTURE.tenants.acme.site, 'Items poster', FIXTURE.upload);
      const asked = await call(page, 'POST', `/api/v1/content/${poster.id}/request-approval`);
      assert.equal(asked.status, 200, JSON.stringify(asked.body));
      await openItem(page, poster);
      await page.getByText('Pending approval').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0, 'a contributor without approve_content sees Approve');
    });
    // Logged out, as from the mail: the login leads on to /content/{id}.
    await as(browser, FIXTURE.tenant_admin, { name: 'items-approved', path: `/content/${encodeURIComponent(poster.id)}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Items poster' }).waitFor();
      const box = page.getByRole('region', { name: 'Waiting for your approval' });
      await box.getByText('Revision ').waitFor();
      await box.getByRole('button', { name: 'Reject…' }).click();
      await box.getByLabel('Reason for rejecting').fill('   ');
      assert.equal(await box.getByRole('button', { name: 'Reject', exact: true }).isDisabled(), true, 'a blank reason can be sent');
      await axe(page, 'the item page with its approval');
      await screenshot(page, 'items-approval-pending');
      await box.getByRole('button', { name: 'Cancel' }).click();
      await box.getByRole('button', { name: 'Approve' }).click();
      await page.getByRole('status').filter({ hasText: 'Approved “Items poster”.' }).waitFor();
      await page.locator('.facts').getByText('Approved', { exact: true }).waitFor();
      assert.equal(await box.count(), 0, 'the decision is still offered after it was made');
      const now = await call(page, 'GET', `/api/v1/content/${poster.id}`);
      assert.equal(now.body.approval_state, 'active');
      await axe(page, 'the item page after approving');
    });
  });
});
