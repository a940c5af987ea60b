// One operator story end to end in Chromium against a real hub whose mail
// goes to a real SMTP listener (issue 19 tests; started by
// tests/tests/console.rs). Every operator step goes through the console's
// pages; only the hub's fixture (the media files) is uploaded over the API.
//  1. a tenant admin builds a tree with a restricted node (/admin/tree)
//     and defines a custom attribute for the items of a node;
//  2. creates a user who needs approval and a permission group granting
//     publish, with the user in it;
//  3. creates an access group with a licence (one device per member), gives
//     it a video, imports a CSV with two bad rows and sees them reported;
//  4. invites a member, who accepts from the mailed link and plays the
//     video in "My content" (/my, with thumbnails);
//  5. a second browser of the member, beyond the device limit, is refused;
//  6. the report shows the play and exports it as CSV;
//  7. the tenant admin restricts an item to the permission group; a Viewer
//     outside it does not see it, and its URL is 404 for them;
// and the group's self-signup form renders inside a page of another site.
// Every page passes axe-core; each step is saved under SIGNET_E2E_SCREENS
// as story-N-….png.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BASE, FIXTURE, axe, launch, login, noProblems, open, screenshot, until } from './support.mjs';

const MAIL_DIR = process.env.SIGNET_E2E_MAIL_DIR;
const MEMBER = 'story-member@members.example';
const PASSWORD = 'story member password';
const ADMIN = FIXTURE.tenant_admin;

let browser;
/** What the steps share: item ids, the access group's id, the member's id. */
const made = {};

before(async () => {
  browser = await launch();
  // The hub's fixture: the media the story works with, uploaded at Acme
  // (an upload is not one of the steps the story is about).
  const token = await bearer(FIXTURE.admin);
  const acme = FIXTURE.tenants.acme.id;
  const upload = async (name, file) => {
    const r = await fetch(`${BASE}/api/v1/content?node=${acme}&name=${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: readFileSync(file),
    });
    assert.equal(r.status, 201, await r.clone().text());
    return (await r.json()).id;
  };
  made.clip = await upload('Story clip', FIXTURE.video);
  made.secret = await upload('Story secret', FIXTURE.upload);
  made.open = await upload('Story notice', FIXTURE.upload);
});
after(async () => {
  await browser?.close();
});

/** A bearer token of `user` (fixture setup only). */
async function bearer(user) {
  const r = await fetch(`${BASE}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: user.name, password: user.password }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()).token;
}

/** Every mail the listener accepted: {to, body} (quoted-printable decoded). */
function mails() {
  if (!MAIL_DIR) assert.fail('SIGNET_E2E_MAIL_DIR is not set');
  return readdirSync(MAIL_DIR)
    .filter((f) => f.endsWith('.eml'))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    .map((f) => {
      const data = readFileSync(join(MAIL_DIR, f), 'utf8');
      const [head, ...rest] = data.split('\r\n\r\n');
      const header = (name) => head.match(new RegExp(`^${name}:\\s*(.*)$`, 'im'))?.[1] ?? '';
      let body = rest.join('\r\n\r\n');
      if (/quoted-printable/i.test(header('Content-Transfer-Encoding'))) {
        body = Buffer.from(
          body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16))),
          'latin1',
        ).toString('utf8');
      }
      return { to: header('To'), body };
    });
}

/** The link to `path` in the newest mail to `to` (waits for it). */
async function mailedLink(to, path) {
  return until(`a mail to ${to} with a ${path} link`, async () => {
    const mail = mails()
      .reverse()
      .find((m) => m.to.includes(to));
    const link = mail?.body.match(/https?:\/\/\S+/)?.[0];
    return link?.startsWith(`${BASE}${path}`) ? link : null;
  });
}

/**
 * Runs `steps(page)` in a fresh browser context (logged in as `user` at
 * `path` when given); then fails on script errors or CSP violations and
 * saves the page as `name`.
 * @param {string} name
 * @param {{ user?: { name: string, password: string }, path?: string | null }} where
 * @param {(page: any, context: any) => Promise<void>} steps
 */
async function step(name, { user, path = '/fleet' }, steps) {
  const { context, page } = await open(browser);
  try {
    if (user) await login(page, user, path ?? '/fleet');
    else if (path) await page.goto(`${BASE}${path}`);
    await steps(page, context);
    noProblems(page);
    await screenshot(page, name);
  } finally {
    await context.close();
  }
}

/** Goes to a console page through the main navigation (no reload). */
async function go(page, label) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: label }).waitFor();
}

/** Goes to a list page and opens the dialog of its "New …" button. */
async function start(page, list, button) {
  await go(page, list);
  await page.getByRole('button', { name: button }).click();
  return page.getByRole('dialog');
}

/** Waits for a status line holding `text`. */
const said = (page, text) => page.getByRole('status').filter({ hasText: text }).first().waitFor();

describe('the operator story (issue 19)', () => {
  it('1. C9, T1, T4, A1, M3: a tenant admin builds a tree with a restricted node and a custom attribute', () =>
    step('story-1-tree', { user: ADMIN, path: '/admin/tree' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Tenancy tree' }).waitFor();
      const nodes = page.getByRole('navigation', { name: 'Nodes' });
      await nodes.getByRole('button', { name: 'Acme', exact: true }).click();
      await page.getByRole('heading', { level: 2, name: 'Acme' }).waitFor();
      for (const [name, restricted] of [
        ['Story region', false],
        ['Story archive', true],
      ]) {
        await page.getByRole('button', { name: 'Add child node…' }).click();
        const dialog = page.getByRole('dialog');
        await dialog.getByLabel('Node name').fill(name);
        await dialog.getByLabel('Region').fill('North');
        if (restricted) await dialog.getByLabel('Restricted (its content can be copied, never edited)').check();
        await dialog.getByRole('button', { name: 'Create node' }).click();
        await said(page, `Created “${name}”`);
        await dialog.waitFor({ state: 'hidden' });
        await page.getByRole('heading', { level: 2, name }).waitFor();
      }
      // The restricted node sits under the region, owned by its creator (A1).
      await nodes.getByRole('button', { name: /Story archive.*restricted/ }).waitFor();
      await page.locator('dl.facts').getByText(`${ADMIN.name} (you)`).waitFor();
      const path = await page.locator('section.detail > p').first().innerText();
      assert.match(path, /Acme.*Story region.*Story archive/, 'the restricted node is under the region');
      await axe(page, 'the tree with the new restricted node');
      // A custom attribute for the items of the region (M3), seen below it.
      await nodes.getByRole('button', { name: 'Story region', exact: true }).click();
      await page.getByRole('heading', { level: 2, name: 'Story region' }).waitFor();
      await page.getByLabel('Attribute label').fill('Age rating');
      await page.getByLabel('Attribute key').fill('age_rating');
      await page.getByLabel('Attribute type').selectOption('enum');
      await page.getByLabel('Values (comma-separated)').fill('all, 12, 18');
      await page.getByRole('button', { name: 'Define attribute' }).click();
      await said(page, 'Defined “Age rating”');
      await page.getByRole('table', { name: 'Custom attributes of items here' }).getByText('all, 12, 18').waitFor();
      await axe(page, 'a node with a custom attribute');
      await nodes.getByRole('button', { name: /Story archive/ }).click();
      const inherited = page.getByRole('table', { name: 'Custom attributes of items here' }).getByRole('row').filter({ hasText: 'Age rating' });
      await inherited.getByText(/Story region/).waitFor();
    }));

  it('2. C9, A3, P2, P4: creates a user who needs approval and a permission group granting publish', () =>
    step('story-2-user-and-group', { user: ADMIN }, async (page) => {
      let dialog = await start(page, 'Users', 'New user…');
      await dialog.getByLabel('Login name').fill('story-author');
      await dialog.getByLabel('E-mail').fill('author@acme.example');
      await dialog.getByLabel('First password (12+ characters)').fill('story-author-password');
      await dialog.getByLabel('Role').selectOption('contributor');
      await dialog.getByLabel('Content needs approval (A3)').check();
      await dialog.getByRole('button', { name: 'Create user' }).click();
      await page.getByRole('heading', { level: 1, name: 'story-author' }).waitFor();
      assert.equal(await page.getByLabel('Content needs approval (A3)').isChecked(), true);
      await axe(page, 'the new user');

      dialog = await start(page, 'Permission groups', 'New group…');
      await dialog.getByLabel('Group name').fill('Story publishers');
      await dialog.getByLabel('Contact e-mail').fill('publishers@acme.example');
      await dialog.getByRole('checkbox', { name: 'Publish', exact: true }).check();
      await dialog.getByRole('button', { name: 'Create group' }).click();
      await page.getByRole('heading', { level: 1, name: 'Story publishers' }).waitFor();
      await page.getByLabel('Add a user').selectOption({ label: 'story-author (author@acme.example)' });
      await page.getByRole('button', { name: 'Add', exact: true }).first().click();
      await page.getByRole('cell', { name: 'story-author', exact: true }).waitFor();
      await axe(page, 'the permission group with its member');

      // The user's permissions say which group grants publish (P4).
      await go(page, 'Users');
      await page.getByRole('link', { name: 'story-author' }).click();
      const publish = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'Publish', exact: true }) });
      await publish.getByText('group “Story publishers”').waitFor();
      await axe(page, 'the user’s effective permissions');
    }));

  it('3. C9, L1, L2, L5, L7: creates an access group with a licence and a video, imports a CSV with two bad rows', () =>
    step('story-3-access-group-import', { user: ADMIN }, async (page) => {
      const dialog = await start(page, 'Access groups', 'New access group…');
      await dialog.getByLabel('Group name').fill('Story club');
      await dialog.getByLabel('Categories (comma-separated)').fill('Films');
      await dialog.getByRole('checkbox', { name: 'Ends a time after joining' }).check();
      await dialog.getByLabel('Max active devices (empty: no limit)').fill('1');
      const summary = dialog.getByRole('region', { name: 'Licence summary' });
      await summary.getByText('At most 1 device may hold the licence at once').waitFor();
      await axe(page, 'the licence editor');
      await dialog.getByRole('button', { name: 'Create access group' }).click();
      await page.getByRole('heading', { level: 1, name: 'Story club' }).waitFor();
      made.group = new URL(page.url()).pathname.split('/').pop();

      await page.getByRole('tab', { name: 'Items' }).click();
      await page.getByLabel('Add an item').selectOption({ label: 'Story clip (video, Acme)' });
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      const items = page.getByRole('table', { name: 'Items' });
      await items.getByRole('checkbox', { name: 'Films' }).check();
      await page.getByRole('button', { name: 'Save items' }).click();
      await said(page, 'Saved');
      await axe(page, 'the items of the access group');

      await page.getByRole('tab', { name: 'CSV import' }).click();
      await page.getByLabel('Or paste the rows').fill(
        ['email,name,end_date', 'eve@story.example,Eve,2030-01-31', 'no-at-sign,Nobody,', 'finn@story.example,Finn,31.12.2030', 'gus@story.example,Gus,'].join('\n'),
      );
      await page.getByRole('button', { name: 'Import members' }).click();
      await said(page, '2 created');
      const report = page.getByRole('table', { name: 'Import report, row by row' });
      await until('4 report rows', async () => (await report.locator('tbody tr').count()) === 4);
      const refused = report.locator('tbody tr').filter({ hasText: 'refused' });
      assert.equal(await refused.count(), 2, 'two rows refused');
      await refused.filter({ hasText: 'no-at-sign' }).waitFor();
      await refused.filter({ hasText: 'finn@story.example' }).waitFor();
      for (const why of await refused.locator('td:nth-child(4)').allInnerTexts()) assert.ok(why.trim().length > 0, 'a refused row says why');
      await axe(page, 'the import report');
    }));

  it('4. L6, M5, M6, C11: invites a member, who accepts from the mailed link and plays the video in My content', async () => {
    await step('story-4-invite-sent', { user: ADMIN, path: `/access-groups/${made.group}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Story club' }).waitFor();
      await page.getByRole('tab', { name: 'Invites' }).click();
      await page.getByLabel('E-mail').fill(MEMBER);
      await page.getByRole('button', { name: 'Send invite' }).click();
      await said(page, `Invited ${MEMBER}`);
      await page.getByRole('table', { name: 'Invites' }).getByRole('row').filter({ hasText: MEMBER }).getByText('open').waitFor();
      await axe(page, 'the invites tab');
    });
    const link = await mailedLink(MEMBER, '/invite/');
    await step('story-4-invite-accepted', { path: null }, async (page) => {
      await page.goto(link);
      await page.getByRole('heading', { level: 1, name: 'Join Story club' }).waitFor();
      await page.getByLabel('New password (at least 12 characters)').fill(PASSWORD);
      await page.getByLabel('Repeat the password').fill(PASSWORD);
      await axe(page, 'the invitation page');
      await page.getByRole('button', { name: 'Accept the invitation' }).click();
      await page.getByRole('heading', { level: 1, name: 'Welcome to Story club' }).waitFor();
      await axe(page, 'the accepted invitation');
    });
    await step('story-4-my-content-playing', { user: { name: MEMBER, password: PASSWORD }, path: '/my' }, async (page) => {
      await page.getByRole('heading', { level: 2, name: 'Story club' }).waitFor();
      await page.getByRole('heading', { level: 3, name: 'Films' }).waitFor();
      const thumb = page.locator('li').filter({ hasText: 'Story clip' }).locator('img.thumb');
      await until('the thumbnail loads', () => thumb.evaluate((img) => img.complete && img.naturalWidth > 0));
      await axe(page, 'My content');
      await page.getByLabel('Name of this browser').fill('Laptop');
      await page.getByRole('button', { name: 'Use this browser' }).click();
      await page.getByText('This browser is registered as Laptop').waitFor();
      const progress = page.waitForResponse((r) => r.url().includes('/api/v1/my/plays/') && r.status() === 204);
      await page.getByRole('button', { name: 'Play Story clip' }).click();
      const video = page.locator('video');
      await video.waitFor();
      // Autoplay follows the click; should the browser hold it, start it muted.
      await page.evaluate(() => {
        const v = document.querySelector('video');
        if (v && v.paused && v.currentTime === 0) {
          v.muted = true;
          return v.play();
        }
        return undefined;
      });
      await until('the clip plays past a second', () => video.evaluate((v) => v.ended || v.currentTime > 1));
      await page.getByRole('heading', { level: 2, name: 'Now playing: Story clip' }).waitFor();
      await video.evaluate((v) => v.pause());
      await progress;
      await axe(page, 'My content playing');
    });
  });

  it('5. M6, L5: a second browser of the member beyond the device limit is refused with a clear message', () =>
    step('story-5-second-browser-refused', { user: { name: MEMBER, password: PASSWORD }, path: '/my' }, async (page) => {
      await page.getByLabel('Name of this browser').fill('Phone');
      await page.getByRole('button', { name: 'Use this browser' }).click();
      const refusal = page.getByRole('alert').and(page.locator('[data-error="too_many_devices"]'));
      await refusal.waitFor();
      assert.match(await refusal.innerText(), /Your licence allows no more devices/);
      assert.ok(await page.getByRole('button', { name: 'Play Story clip' }).isDisabled(), 'no playing in a refused browser');
      await page.getByText('Laptop').first().waitFor();
      await axe(page, 'the refusal of a second browser');
    }));

  it('6. C10, U1, U3, L8: the report shows the member’s play and exports it as CSV', () =>
    step('story-6-report', { user: ADMIN, path: '/reports' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Reports' }).waitFor();
      const users = page.getByRole('combobox', { name: /^User/ });
      const member = await until('the member among the users', async () =>
        users.locator('option').evaluateAll((options, email) => options.find((o) => o.textContent?.includes(email))?.value, MEMBER),
      );
      await users.selectOption(member);
      await page.getByRole('combobox', { name: /^Access group/ }).first().selectOption({ label: 'Story club' });
      const rows = page.getByRole('table', { name: /Proof of play/ }).locator('tbody tr');
      await until('the play in the report', async () => {
        await page.getByRole('button', { name: 'Show report' }).click();
        return (await rows.filter({ hasText: 'Story clip' }).filter({ hasText: MEMBER }).filter({ hasText: 'Web browser' }).count()) > 0;
      });
      await page.getByRole('figure', { name: 'Top items by plays' }).getByText('Story clip').first().waitFor();
      await axe(page, 'the report with the member’s play');
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
      const lines = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
      const header = lines[0].split(',');
      const col = (name) => {
        const i = header.indexOf(name);
        assert.ok(i >= 0, `the CSV has a ${name} column: ${lines[0]}`);
        return i;
      };
      const events = lines.slice(1).map((l) => l.split(','));
      assert.ok(events.length >= 1, 'the CSV holds the play');
      for (const e of events) {
        assert.equal(e[col('user')], member, 'only the member’s events');
        assert.equal(e[col('access_group')], made.group);
      }
      const play = events.find((e) => e[col('item')] === made.clip);
      assert.ok(play, `the clip's play is in the CSV: ${lines.join(' | ')}`);
      assert.equal(play[col('outcome')], 'played');
      assert.match(play[col('device')], /^web-/);
      assert.ok(Number(play[col('duration_ms')]) > 0, 'the play has its duration');
    }));

  it('7. M1, P6, T4: a Viewer sees only what M1 allows — an item restricted to a permission group is absent and 404 by URL', async () => {
    await step('story-7-restricted-by-admin', { user: ADMIN, path: '/content' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Content' }).waitFor();
      await page.getByRole('button', { name: /^Visibility… of Story secret/ }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel(/Only members of chosen permission groups/).check();
      await dialog.getByRole('checkbox', { name: /^Story publishers/ }).check();
      await axe(page, 'the visibility dialog');
      await dialog.getByRole('button', { name: 'Save visibility' }).click();
      await dialog.waitFor({ state: 'hidden' });
      await page.getByRole('button', { name: /^Visibility… of Story secret.*1 group/ }).waitFor();
    });
    await step('story-7-viewer', { user: FIXTURE.viewer, path: '/content' }, async (page) => {
      const library = page.getByRole('list', { name: 'Content items' });
      await library.getByRole('heading', { name: 'Story notice' }).waitFor();
      const names = await library.getByRole('heading').allInnerTexts();
      assert.ok(!names.includes('Story secret'), `the restricted item is listed: ${names.join(', ')}`);
      assert.ok(!names.includes('Story clip'), 'an item of an access group the viewer has no licence in is listed');
      await axe(page, 'the viewer’s content list');
      // By URL, with the viewer's session: the item, its thumbnail.
      for (const path of [`/api/v1/content/${made.secret}`, `/api/v1/content/${made.secret}/thumbnail`]) {
        const answer = await page.goto(`${BASE}${path}`);
        assert.equal(answer?.status(), 404, `${path} answers the viewer`);
        assert.match(await page.locator('body').innerText(), /"error"\s*:\s*"not_found"/);
      }
      const shown = await page.goto(`${BASE}/api/v1/content/${made.open}`);
      assert.equal(shown?.status(), 200, 'an open item is there by URL');
      await page.goto(`${BASE}/content`);
      await library.getByRole('heading', { name: 'Story notice' }).waitFor();
    });
  });

  it('C11, L6: the group’s self-signup form renders inside a page of another site', async () => {
    await step('story-8-signup-settings', { user: ADMIN, path: `/access-groups/${made.group}` }, async (page) => {
      await page.getByRole('tab', { name: 'Self-signup' }).click();
      await page.getByRole('checkbox', { name: /may sign up/ }).check();
      await page.getByLabel('Allowed domains (comma-separated)').fill('members.example');
      await page.getByRole('button', { name: 'Save self-signup' }).click();
      await said(page, 'Self-signup is open.');
      // The snippet another site pastes to embed the form.
      const snippet = await page.getByLabel('Embed code for another site').inputValue();
      assert.ok(snippet.includes(`${BASE}/signup/${made.group}?embed=1`), snippet);
      await axe(page, 'the self-signup settings');
    });
    // Another site: a page of its own origin (localhost, not the hub's
    // 127.0.0.1 — another site for cookies too) framing the form. It is
    // served from loopback like the hub: Chromium's Local Network Access
    // checks block a frame from a public (or routed, address-less) page to
    // a loopback hub (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS), which
    // is why a page.route()d site showed nothing here before; the hub's
    // headers (no X-Frame-Options, frame-ancestors *) were never the cause.
    const form = `${BASE}/signup/${made.group}?embed=1`;
    const site = createServer((_, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html lang="en"><title>Members</title><main><h1>A members' site</h1><iframe title="Sign up for Story club" src="${form}" width="600" height="700"></iframe></main></html>`);
    });
    await new Promise((resolve) => site.listen(0, '127.0.0.1', () => resolve(null)));
    const port = /** @type {import('node:net').AddressInfo} */ (site.address()).port;
    try {
      await step('story-8-signup-embedded', { path: null }, async (page) => {
        await page.goto(`http://localhost:${port}/`);
        const frame = page.frameLocator('iframe[title="Sign up for Story club"]');
        await frame.getByRole('heading', { level: 1, name: 'Sign up for Story club' }).waitFor();
        await frame.getByText('@members.example').waitFor();
        await frame.getByLabel('E-mail address').fill('story-signup@members.example');
        await frame.getByLabel('New password (at least 12 characters)').fill(PASSWORD);
        await frame.getByLabel('Repeat the password').fill(PASSWORD);
        await frame.getByRole('button', { name: 'Sign up' }).click();
        await frame.getByRole('heading', { level: 1, name: 'Check your mail' }).waitFor();
        await axe(page, 'the members’ site with the form');
      });
    } finally {
      await new Promise((resolve) => site.close(() => resolve(null)));
    }
    await mailedLink('story-signup@members.example', '/signup/confirm/');
  });
});
