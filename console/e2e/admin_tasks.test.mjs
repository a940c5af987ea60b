// The operator tasks docs/console-tasks.md had marked "manual", each done
// through the console in Chromium against the real hub of
// tests/tests/console.rs (issue 19 Acceptance), the way an operator does
// it, and its effect checked through the API: own password and sessions
// (S8); moving a node, a refused and a done delete (T1, T2, T4) and a
// node's time zone and strict feeds (A4); ending a user's sessions,
// disabling and deleting users (T3, S8); a deferred and
// a daily publish stored at the node's wall-clock time, then cancelled
// (U5, C8); alert thresholds (U4); retrying a failed mail that the real
// SMTP listener then receives (A5); device commands reaching a real screen
// (C4, D8), its agent's output and reports showing that it restarted its
// player and purged a picture nothing needed any more (C4, D8, L3); device
// members of an access group in bulk, one member's end date, slot and
// removal (L4, L5); moving and unpairing a device (C4); the Approvals menu
// for a Viewer whom a permission group grants approve_content, and the
// group's delete (A6, P4, P2). axe-core runs on every page; each test saves
// its final page under SIGNET_E2E_SCREENS.
//
// Screens paired here are simulated (their own Ed25519 keys, as an agent
// asks) and are all unpaired before the file ends: console.test.mjs counts
// the fixture's three.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE, FIXTURE, as, axe, call, launch, login, noProblems, open, screenshot, until } from './support.mjs';

const MAIL_DIR = process.env.SIGNET_E2E_MAIL_DIR;
const SMTP_REFUSE = process.env.SIGNET_E2E_SMTP_REFUSE;
const AGENT_LOGS = process.env.SIGNET_E2E_AGENT_LOGS;

let browser;
/** The tenant admin's bearer token, for setting up and checking. */
let bearer;
/** Nodes made here under Acme: `east` (Europe/Berlin) and `west`. */
const nodes = {};
/** Simulated screens paired here (unpaired again by the end). */
const sims = [];

before(async () => {
  browser = await launch();
  bearer = await token(FIXTURE.tenant_admin);
});
after(async () => {
  // Whatever failed, leave no simulated screen and no refusing mail server behind.
  if (SMTP_REFUSE) rmSync(SMTP_REFUSE, { force: true });
  for (const s of sims) await api('DELETE', `/api/v1/devices/${s.id}`).catch(() => {});
  await browser?.close();
});

/** A bearer token of `user` ({name, password}), or the hub's refusal {status, body}. */
async function session(user) {
  const r = await fetch(`${BASE}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: user.name, password: user.password }),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function token(user) {
  const s = await session(user);
  assert.equal(s.status, 200, JSON.stringify(s.body));
  return s.body.token;
}

/** Calls the API with `auth` (default: the tenant admin's token); answers {status, body}. */
async function api(method, path, body, auth = bearer) {
  const init = { method, headers: { authorization: `Bearer ${auth}` } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(`${BASE}${path}`, init);
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Like `api`, failing unless the hub answers 2xx; answers the body. */
async function must(method, path, body, auth) {
  const r = await api(method, path, body, auth);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Makes a user at Acme; answers {id, name, password, email}. */
async function makeUser(name, role = 'viewer') {
  const password = `${name}-tasks-pw-1`;
  const email = `${name}@example.com`;
  const u = await must('POST', '/api/v1/users', { name, email, password, role, domain: [FIXTURE.tenants.acme.id], requires_approval: false });
  return { id: u.id, name, password, email };
}

/** Opens `path` with a full load and waits for its heading. */
async function openPage(page, path, heading) {
  await page.goto(`${BASE}${path}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** A screen asking to pair as an agent does (its own key), approved at `node` as `name`; answers the device. */
async function simulatedScreen(node, name) {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const asked = await fetch(`${BASE}/api/v1/device/pairings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ public_key: raw.toString('base64'), agent_version: '0.1.0', os: 'Tasks test OS' }),
  });
  assert.equal(asked.status, 201, await asked.clone().text());
  const { code } = await asked.json();
  const admin = await token(FIXTURE.admin);
  const approved = await must('POST', `/api/v1/devices/pairings/${code}/approve`, { node, name }, admin);
  sims.push(approved.device);
  return approved.device;
}

/**
 * The output of the real agent of device `id` (the harness appends it to
 * SIGNET_E2E_AGENT_LOGS/{id}.log): `mark()` notes where it ends now,
 * `since(mark)` answers what it printed after.
 */
function agentLog(id) {
  assert.ok(AGENT_LOGS, 'SIGNET_E2E_AGENT_LOGS is not set');
  const read = () => (existsSync(join(AGENT_LOGS, `${id}.log`)) ? readFileSync(join(AGENT_LOGS, `${id}.log`), 'utf8') : '');
  return { mark: () => read().length, since: (mark) => read().slice(mark) };
}

/** Every mail the listener accepted: {to, data}. */
function mails() {
  assert.ok(MAIL_DIR, 'SIGNET_E2E_MAIL_DIR is not set');
  return readdirSync(MAIL_DIR)
    .filter((f) => f.endsWith('.eml'))
    .map((f) => {
      const data = readFileSync(join(MAIL_DIR, f), 'utf8');
      return { to: /^To: (.*)$/im.exec(data)?.[1]?.trim() ?? '', data };
    });
}

/** Has the test's SMTP listener refuse every recipient (`on`) or accept again, and waits until it does. */
async function smtpRefusing(on) {
  assert.ok(SMTP_REFUSE, 'SIGNET_E2E_SMTP_REFUSE is not set');
  if (on) writeFileSync(SMTP_REFUSE, 'refuse');
  else rmSync(SMTP_REFUSE, { force: true });
  const state = SMTP_REFUSE.replace(/\.[^./]*$/, '') + '.state';
  await until(`the SMTP listener ${on ? 'refusing' : 'accepting'}`, () => existsSync(state) && readFileSync(state, 'utf8') === (on ? 'refusing' : 'accepting'));
}

describe('the operator tasks that were manual', () => {
  it('S8: a user ends another own session and changes the own password; the old one stops working', async () => {
    const self = await makeUser('tasks-self');
    const other = await open(browser);
    const mine = await open(browser);
    try {
      await login(other.page, self);
      await login(mine.page, self, '/profile');
      await mine.page.getByRole('heading', { level: 1, name: 'My profile' }).waitFor();
      const table = mine.page.getByRole('table', { name: 'My sessions' });
      await until('two sessions listed', async () => (await table.getByRole('row').count()) === 3);
      await axe(mine.page, 'my profile');
      // End the other session (the one not marked as this one).
      await table.getByRole('button', { name: /^End the session from .*[^)]$/ }).click();
      await mine.page.getByRole('status').filter({ hasText: 'The session has ended.' }).waitFor();
      await until('one session listed', async () => (await table.getByRole('row').count()) === 2);
      assert.equal((await call(other.page, 'GET', '/api/v1/session')).status, 401, 'the ended session still works');
      assert.equal((await call(mine.page, 'GET', '/api/v1/session')).status, 200, 'this session ended too');

      // A new password: the old one is refused from now on, the new one works.
      const fresh = 'tasks-self-new-password-2';
      const form = mine.page.getByRole('region', { name: 'Change password' });
      await form.getByLabel('New password (12+ characters)').fill(fresh);
      await form.getByLabel('Again').fill(fresh);
      await form.getByRole('button', { name: 'Change password' }).click();
      await mine.page.getByRole('status').filter({ hasText: 'Your new password is set.' }).waitFor();
      const old = await session(self);
      assert.equal(old.status, 401, `the old password still logs in: ${JSON.stringify(old.body)}`);
      assert.equal((await session({ name: self.name, password: fresh })).status, 200, 'the new password does not log in');
      noProblems(mine.page);
      await screenshot(mine.page, 'tasks-profile');
    } finally {
      await other.context.close();
      await mine.context.close();
    }
  });

  it('T1, T2, T4, A4: a tenant admin sets a node’s time zone and strict feeds, moves a node, sees a refused delete in words and deletes the emptied node', async () => {
    const acme = FIXTURE.tenants.acme.id;
    nodes.east = await must('POST', '/api/v1/nodes', { parent: acme, name: 'Tasks east' });
    nodes.west = await must('POST', '/api/v1/nodes', { parent: acme, name: 'Tasks west' });
    const kiosk = await must('POST', '/api/v1/nodes', { parent: nodes.east.id, name: 'Tasks kiosk' });
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-tree', path: '/admin/tree' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Tenancy tree' }).waitFor();
      const tree = page.getByRole('navigation', { name: 'Nodes' });

      // The east node's time zone (T2), which publishing uses below.
      await tree.getByRole('button', { name: 'Tasks east', exact: true }).click();
      await page.getByRole('heading', { level: 2, name: 'Tasks east' }).waitFor();
      await page.getByLabel('Time zone (empty: inherited)').fill('Europe/Berlin');
      await page.getByLabel('Strict feeds (a feed-URL change needs approval again)').check();
      await page.getByRole('button', { name: 'Save node' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved “Tasks east”' }).waitFor();
      const east = await must('GET', `/api/v1/nodes/${nodes.east.id}`);
      assert.deepEqual({ zone: east.time_zone, strict: east.strict_feeds }, { zone: 'Europe/Berlin', strict: true });

      // Move the kiosk from east to west (T4).
      await tree.getByRole('button', { name: 'Tasks kiosk', exact: true }).click();
      await page.getByRole('heading', { level: 2, name: 'Tasks kiosk' }).waitFor();
      await page.getByLabel('Move to').selectOption({ label: 'Acme / Tasks west' });
      await axe(page, 'the tree with a node to move');
      await page.getByRole('button', { name: 'Move node' }).click();
      await page.getByRole('status').filter({ hasText: 'Moved under Acme / Tasks west' }).waitFor();
      assert.equal((await must('GET', `/api/v1/nodes/${kiosk.id}`)).parent, nodes.west.id, 'the node did not move');
      await page.locator('p.small.muted').filter({ hasText: 'Acme / Tasks west / Tasks kiosk' }).waitFor();

      // Content at the kiosk: the hub refuses its delete, in words (T2).
      const item = await page.evaluate(
        async ([node, bytes]) => {
          const csrf = decodeURIComponent(document.cookie.split('; ').find((c) => c.startsWith('signet_csrf='))?.slice(12) ?? '');
          const r = await fetch(`/api/v1/content?${new URLSearchParams({ node, name: 'Tasks kiosk poster' })}`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': csrf },
            body: new Uint8Array(bytes),
          });
          return r.json();
        },
        [kiosk.id, [...readFileSync(FIXTURE.upload)]],
      );
      assert.ok(item.id, JSON.stringify(item));
      await page.getByRole('button', { name: 'Delete…' }).click();
      let dialog = page.getByRole('dialog', { name: 'Delete Tasks kiosk?' });
      await dialog.getByRole('button', { name: 'Delete node' }).click();
      const refusal = dialog.getByRole('alert');
      await refusal.waitFor();
      const words = await refusal.innerText();
      assert.match(words, /1 content items?, templates, playlists or schedules live at the node: delete or copy them first/, `the refusal does not say why: ${words}`);
      await axe(page, 'the refused delete');
      await screenshot(page, 'tasks-tree-refused');
      assert.equal((await api('GET', `/api/v1/nodes/${kiosk.id}`)).status, 200, 'a refused delete removed the node');
      await dialog.getByRole('button', { name: 'Close' }).click();

      // Emptied, it goes.
      await must('DELETE', `/api/v1/content/${item.id}`);
      await page.getByRole('button', { name: 'Delete…' }).click();
      dialog = page.getByRole('dialog', { name: 'Delete Tasks kiosk?' });
      await dialog.getByRole('button', { name: 'Delete node' }).click();
      await page.getByRole('status').filter({ hasText: 'Deleted “Tasks kiosk”' }).first().waitFor();
      assert.equal((await api('GET', `/api/v1/nodes/${kiosk.id}`)).status, 404, 'the node is still there');
      await until('the tree without the kiosk', async () => (await tree.getByRole('button', { name: 'Tasks kiosk', exact: true }).count()) === 0);
    });
  });

  it('T3, S8: a tenant admin sets a user’s password, ends their sessions, disables the user, whose login is then refused, and deletes another', async () => {
    const leaving = await makeUser('tasks-leaving');
    const gone = await makeUser('tasks-gone');
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-users', path: `/admin/users/${leaving.id}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: leaving.name }).waitFor();
      // A password set for them (S8): the new one logs in, the old one no more.
      const reset = page.getByRole('region', { name: 'Reset password' });
      const fresh = 'tasks-leaving-set-by-admin';
      await reset.getByLabel('New password (12+ characters)').fill(fresh);
      await reset.getByLabel('Again').fill(fresh);
      await reset.getByRole('button', { name: 'Set password' }).click();
      await page.getByRole('status').filter({ hasText: 'The new password is set.' }).waitFor();
      assert.equal((await session(leaving)).status, 401, 'the old password still logs in');
      leaving.password = fresh;
      const theirs = await token(leaving);
      // Every session of theirs ended (S8).
      await page.getByRole('button', { name: 'End every session' }).click();
      await page.getByRole('status').filter({ hasText: 'Every session of this user has ended.' }).waitFor();
      assert.equal((await api('GET', '/api/v1/session', undefined, theirs)).status, 401, 'their session still works');
      await page.getByLabel('Disabled').check();
      await page.getByRole('button', { name: 'Save user' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      await page.getByText('· disabled').waitFor();
      assert.equal((await must('GET', `/api/v1/users/${leaving.id}`)).disabled, true);
      const refused = await session(leaving);
      assert.ok(refused.status === 401 || refused.status === 403, `a disabled user logs in: ${refused.status}`);
      await axe(page, 'a disabled user');

      await openPage(page, `/admin/users/${gone.id}`, gone.name);
      await page.getByRole('button', { name: 'Delete user…' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByRole('button', { name: 'Delete user', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor();
      assert.equal((await api('GET', `/api/v1/users/${gone.id}`)).status, 404, 'the user is still there');
      assert.equal((await session(gone)).status, 401, 'a deleted user logs in');
    });
  });

  it('U5, C8: a deferred and a daily publish are stored at the node’s wall-clock time, then cancelled', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'tasks-publishing', path: '/publishing' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Publishing' }).waitFor();
      const form = page.getByRole('form', { name: 'Publish' });
      await form.getByLabel('Node').selectOption({ label: 'Acme / Tasks east' });
      await form.getByLabel('At a date and time').check();
      // The zone follows the node (Europe/Berlin, set above), whatever the browser's.
      assert.equal(await form.getByLabel('Time zone (the node’s)').inputValue(), 'Europe/Berlin');
      await form.getByLabel('Date and time', { exact: true }).fill('2030-07-01T08:30');
      await form.getByRole('button', { name: 'Schedule' }).click();
      await page.getByRole('status').filter({ hasText: 'Scheduled: once at 2030-07-01 08:30 (Europe/Berlin)' }).waitFor();

      await form.getByLabel('Every day').check();
      await form.getByLabel('Time', { exact: true }).fill('06:15');
      await form.getByRole('button', { name: 'Schedule' }).click();
      await page.getByRole('status').filter({ hasText: 'Scheduled: every day at 06:15 (Europe/Berlin)' }).waitFor();
      await axe(page, 'publishing with two scheduled jobs');

      const jobs = (await must('GET', '/api/v1/publications?limit=50')).jobs.filter((j) => j.scope_node === nodes.east.id && j.state === 'pending');
      const once = jobs.find((j) => j.schedule.type === 'at');
      const daily = jobs.find((j) => j.schedule.type === 'daily');
      assert.ok(once && daily, `jobs: ${JSON.stringify(jobs)}`);
      // 08:30 in Berlin on a summer day is 06:30 UTC.
      assert.equal(new Date(once.schedule.at).toISOString(), '2030-07-01T06:30:00.000Z');
      assert.deepEqual({ time: daily.schedule.time.slice(0, 5), zone: daily.schedule.time_zone }, { time: '06:15', zone: 'Europe/Berlin' });
      const next = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(daily.next_run));
      assert.equal(next, '06:15', `the daily job next runs at ${daily.next_run}`);
      await page.getByRole('cell', { name: 'Daily at 06:15 (Europe/Berlin)', exact: true }).waitFor();
      // The one-off job is shown at the node's wall-clock time too, whatever the browser's zone.
      await page.getByRole('cell', { name: 'Once at 2030-07-01 08:30 (Europe/Berlin)', exact: true }).waitFor();
      await screenshot(page, 'tasks-publishing-scheduled');

      for (const j of [once, daily]) {
        await page.getByRole('button', { name: new RegExp(`^Cancel: ${j.schedule.type === 'at' ? 'Once' : 'Daily'} at .*, Acme / Tasks east$`) }).click();
        await until('the job cancelled', async () => (await must('GET', '/api/v1/publications?limit=50')).jobs.find((x) => x.id === j.id)?.state !== 'pending');
      }
      await until('no scheduled job listed', async () => (await page.getByRole('button', { name: /^Cancel: .*Tasks east$/ }).count()) === 0);
    }));

  it('U4: a tenant admin sets a node’s alert thresholds and clears them again', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'tasks-alerts', path: '/alerts' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Alerts' }).waitFor();
      const form = page.getByRole('form', { name: 'Set thresholds' });
      await form.getByLabel('At node').selectOption(nodes.west.id);
      await form.getByLabel('Offline, minutes (empty: inherit)').fill('7');
      await form.getByLabel('Out of sync, minutes (empty: inherit)').fill('12');
      await form.getByRole('button', { name: 'Save thresholds' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved the thresholds of Acme / Tasks west' }).waitFor();
      const set = (await must('GET', '/api/v1/alert-settings')).nodes.find((n) => n.node === nodes.west.id);
      assert.deepEqual({ offline: set?.offline_secs, sync: set?.out_of_sync_secs }, { offline: 420, sync: 720 });
      const row = page.getByRole('row').filter({ hasText: 'Acme / Tasks west' });
      await row.getByText('7 min').waitFor();
      await axe(page, 'alerts with a node’s thresholds');
      await screenshot(page, 'tasks-alerts-set');
      await row.getByRole('button', { name: 'Clear the thresholds of Acme / Tasks west' }).click();
      await page.getByRole('status').filter({ hasText: 'Acme / Tasks west inherits its thresholds again' }).waitFor();
      const cleared = (await must('GET', '/api/v1/alert-settings')).nodes.find((n) => n.node === nodes.west.id);
      assert.ok(!cleared || (cleared.offline_secs == null && cleared.out_of_sync_secs == null), JSON.stringify(cleared));
    }));

  it('A5: a root admin retries a mail that failed; the mail server then receives it', async () => {
    const reader = await makeUser('tasks-mailed');
    const admin = await token(FIXTURE.admin);
    await smtpRefusing(true);
    await as(browser, FIXTURE.admin, { name: 'tasks-mail', path: `/admin/users/${reader.id}` }, async (page) => {
      try {
        await page.getByRole('heading', { level: 1, name: reader.name }).waitFor();
        await page.getByRole('button', { name: 'Mail a set-password link' }).click();
        await page.getByRole('status').filter({ hasText: 'A set-password link is on its way' }).waitFor();
        const failed = await until('the mail failed', async () =>
          (await must('GET', '/api/v1/mail/outbox?status=failed', undefined, admin)).find((m) => m.mail.to === reader.email),
        );
        assert.ok(failed.last_error, 'the failed mail says no why');
      } finally {
        await smtpRefusing(false);
      }
      const before = mails().filter((m) => m.to.includes(reader.email)).length;
      assert.equal(before, 0, 'the refused mail was received');

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Mail outbox' }).click();
      await page.getByRole('heading', { level: 1, name: 'Mail outbox' }).waitFor();
      await page.getByLabel('State').selectOption('failed');
      await page.getByRole('button', { name: 'Show' }).click();
      const row = page.getByRole('row').filter({ hasText: reader.email });
      await row.getByText('failed').waitFor();
      await row.getByText('refusing all mail for now').waitFor();
      await axe(page, 'the outbox with a failed mail');
      await row.getByRole('button', { name: `Retry mail to ${reader.email}` }).click();
      await page.getByRole('status').filter({ hasText: `Mail to ${reader.email} is queued again.` }).waitFor();
      await until('the mail received', () => mails().some((m) => m.to.includes(reader.email)));
      await until('the outbox to say sent', async () =>
        (await must('GET', '/api/v1/mail/outbox?status=sent', undefined, admin)).some((m) => m.mail.to === reader.email),
      );
      await page.getByLabel('State').selectOption('sent');
      await page.getByRole('button', { name: 'Show' }).click();
      await page.getByRole('row').filter({ hasText: reader.email }).getByText('sent', { exact: true }).waitFor();
    });
  });

  it('C4, D8: a tenant admin’s commands reach a real screen: a screenshot arrives and a resync is delivered', async () => {
    const screen = FIXTURE.devices.find((d) => d.name === 'Lobby right');
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-commands', path: `/devices/${encodeURIComponent(screen.id)}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: screen.name }).waitFor();
      const takenAt = () =>
        page.evaluate(async (id) => {
          const r = await fetch(`/api/v1/devices/${encodeURIComponent(id)}/screenshot`, { cache: 'no-store' });
          await r.body?.cancel();
          return r.ok ? (r.headers.get('x-signet-taken-at') ?? r.headers.get('last-modified')) : null;
        }, screen.id);
      const before = await takenAt();
      await page.getByRole('button', { name: 'Take a screenshot' }).click();
      await page.getByRole('status').filter({ hasText: 'Screenshot received.' }).waitFor();
      const now = await takenAt();
      assert.ok(now && now !== before, `the hub holds no newer screenshot (${before} → ${now})`);
      await page.getByRole('img', { name: `Latest screenshot of ${screen.name}` }).waitFor();

      await page.getByRole('button', { name: 'Resync' }).click();
      const note = page.getByRole('status').filter({ hasText: /^Resync: / });
      await note.waitFor();
      assert.match(await note.innerText(), /^Resync: sent \(command \d+\)\.$/, 'the hub did not deliver the command');
      await axe(page, 'the device page after commands');
    });
  });

  it('C4, D8: Restart player in the console restarts a real screen’s player, which shows its content again', async () => {
    const screen = FIXTURE.devices.find((d) => d.name === 'Lobby right');
    const log = agentLog(screen.id);
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-restart', path: `/devices/${encodeURIComponent(screen.id)}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: screen.name }).waitFor();
      const mark = log.mark();
      const clicked = Date.now();
      await page.getByRole('button', { name: 'Restart player' }).click();
      const note = page.getByRole('status').filter({ hasText: /^Restart player: / });
      await note.waitFor();
      assert.match(await note.innerText(), /^Restart player: sent \(command \d+\)\.$/, 'the hub did not deliver the command');
      // The agent takes the command to its player, which builds a fresh
      // pipeline, and shows what it was showing again.
      await until('the screen to restart its player', () => log.since(mark).includes('restarting the player'));
      assert.doesNotMatch(log.since(mark), /cannot be restarted/, 'the screen could not restart its player');
      const playing = await until('the screen to play again after the restart', async () => {
        const d = await must('GET', `/api/v1/fleet/${encodeURIComponent(screen.id)}`);
        return d.online && d.now_playing && Date.parse(d.now_playing.since) >= clicked - 1000 ? d.now_playing : null;
      });
      assert.ok(playing.item, 'nothing plays after the restart');
      await page.reload();
      await page.getByRole('heading', { level: 1, name: screen.name }).waitFor();
      await axe(page, 'the device page after a restart');
    });
  });

  it('C4, D8, L3: Purge cache in the console empties a real screen’s cache of content nothing needs: an access group’s picture after the member’s end date', async () => {
    const screen = FIXTURE.devices.find((d) => d.name === 'Lobby right');
    const id = encodeURIComponent(screen.id);
    const fleet = () => must('GET', `/api/v1/fleet/${id}`);
    const log = agentLog(screen.id);
    // An access group whose only content is a picture nothing else shows,
    // with the screen as its member: the screen fetches it (L3) and keeps
    // the bytes uploaded.
    const png = readFileSync(FIXTURE.purge_png);
    const uploaded = await fetch(`${BASE}/api/v1/content?node=${encodeURIComponent(FIXTURE.tenants.acme.site)}&name=${encodeURIComponent('Tasks purge picture')}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}` },
      body: png,
    });
    const item = await uploaded.json();
    assert.equal(uploaded.status, 201, JSON.stringify(item));
    const group = await must('POST', '/api/v1/access-groups', {
      node: FIXTURE.tenants.acme.site,
      name: 'Tasks purge',
      license: { duration_from_join_secs: 30 * 24 * 3600, allow_offline: true, offline_grace_secs: 3600, allow_export: false },
    });
    const start = log.mark();
    const doc = (d, kind, subject) => d.documents.find((x) => x.kind === kind && x.subject === subject);
    /** Waits until the screen accepted an assignment newer than `version`. */
    const assigned = (version) =>
      until('the screen to accept its new assignment', async () => {
        const a = doc(await fleet(), 'device_assignment', screen.id);
        return a.desired_version > version && a.in_sync;
      });
    try {
      const first = await fleet();
      const base = first.cache_bytes;
      // The screen joins first and holds its membership before the content
      // comes: its window is open by the time it looks at the manifest (an
      // agent looks again at closed windows only once a minute).
      await must('POST', `/api/v1/access-groups/${group.id}/members/devices`, { add: [screen.id] });
      await assigned(doc(first, 'device_assignment', screen.id).desired_version);
      await must('PUT', `/api/v1/access-groups/${group.id}/items`, { items: [{ id: item.id }] });
      await must('POST', '/api/v1/publish', { scope: { kind: 'access_group', id: group.id } });
      let seen;
      const held = await until('the screen to fetch the group’s picture', async () => {
        const d = (seen = await fleet());
        return doc(d, 'group_manifest', group.id)?.in_sync && d.cache_bytes >= base + png.length ? d.cache_bytes : null;
      }).catch((e) => assert.fail(`${e.message}\nbase ${base}, picture ${png.length} bytes, state ${JSON.stringify(seen)}\nagent log:\n${log.since(start)}`));

      // The member's end date passes: the screen no longer needs the
      // picture, but its group's manifest still lists it, so it stays cached.
      const before = doc(await fleet(), 'device_assignment', screen.id).desired_version;
      await must('PATCH', `/api/v1/access-groups/${group.id}/members/device/${screen.id}`, { end_date: new Date().toISOString() });
      await assigned(before);
      const kept = await fleet();
      assert.ok(kept.cache_bytes >= held, `the picture left the cache before the purge (${held} → ${kept.cache_bytes} bytes)`);

      await as(browser, FIXTURE.tenant_admin, { name: 'tasks-purge', path: `/devices/${id}` }, async (page) => {
        await page.getByRole('heading', { level: 1, name: screen.name }).waitFor();
        const mark = log.mark();
        await page.getByRole('button', { name: 'Purge cache' }).click();
        const note = page.getByRole('status').filter({ hasText: /^Purge cache: / });
        await note.waitFor();
        assert.match(await note.innerText(), /^Purge cache: sent \(command \d+\)\.$/, 'the hub did not deliver the command');
        const purged = await until('the screen to purge its cache', () => /purge_cache: purged count=(\d+)/.exec(log.since(mark)));
        assert.ok(Number(purged[1]) >= 1, `the screen purged nothing; its log since the group was made:\n${log.since(start)}`);
        const after = await until('the screen to report the smaller cache', async () => {
          const d = await fleet();
          return d.cache_bytes <= kept.cache_bytes - png.length ? d : null;
        });
        // What the screen plays stays: it is still playing.
        assert.ok(after.online && after.now_playing, 'the screen stopped playing after the purge');
        await page.reload();
        await page.getByRole('heading', { level: 1, name: screen.name }).waitFor();
        await axe(page, 'the device page after a purge');
      });
    } finally {
      await api('DELETE', `/api/v1/access-groups/${group.id}`);
      await api('DELETE', `/api/v1/content/${item.id}`);
    }
  });

  it('L4, L5: a tenant admin adds and removes device members of an access group in bulk, by node and name; sets one’s end date, gives up its slot, removes it', async () => {
    const west = nodes.west.id;
    const a = await simulatedScreen(west, 'Tasks sim A');
    const b = await simulatedScreen(west, 'Tasks sim B');
    await simulatedScreen(west, 'Tasks sim C');
    const day = 24 * 3600;
    const group = await must('POST', '/api/v1/access-groups', {
      node: FIXTURE.tenants.acme.id,
      name: 'Tasks bulk screens',
      license: { duration_from_join_secs: 30 * day, allow_offline: true, offline_grace_secs: day, allow_export: false },
    });
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-bulk', path: `/access-groups/${encodeURIComponent(group.id)}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Tasks bulk screens' }).waitFor();
      await page.getByRole('tab', { name: 'Members' }).click();
      const bulk = page.getByRole('region', { name: 'Devices in bulk' });
      await bulk.getByLabel('Below node').selectOption(west);
      await bulk.getByLabel('Name or node contains').fill('sim');
      const list = bulk.getByRole('group');
      await until('the three simulated screens listed', async () => (await list.getByRole('checkbox').count()) === 3);
      assert.equal(await list.getByText('Lobby right').count(), 0, 'a screen outside the chosen node is offered');
      await list.getByLabel(/Tasks sim A/).check();
      await list.getByLabel(/Tasks sim B/).check();
      await axe(page, 'bulk device membership');
      await bulk.getByRole('button', { name: 'Add 2 selected' }).click();
      await page.getByRole('status').filter({ hasText: 'Added 2 devices in one change' }).first().waitFor();
      const members = async () =>
        (await must('GET', `/api/v1/access-groups/${group.id}/members`)).filter((m) => m.member.type === 'device' && !m.removed_at).map((m) => m.member.device_id).sort();
      assert.deepEqual(await members(), [a.id, b.id].sort());
      await until('two members marked', async () => (await list.getByText('member', { exact: true }).count()) === 2);

      await list.getByLabel(/Tasks sim A/).check();
      await bulk.getByRole('button', { name: 'Remove 1 selected' }).click();
      await page.getByRole('status').filter({ hasText: 'Removed 1 device in one change' }).first().waitFor();
      assert.deepEqual(await members(), [b.id]);
      await screenshot(page, 'tasks-bulk-members');

      // One member's end date, its device slot given up, then removed (L4, L5).
      const member = async () => (await must('GET', `/api/v1/access-groups/${group.id}/members`)).find((m) => m.member.device_id === b.id);
      const row = page.getByRole('table', { name: 'Members' }).getByRole('row').filter({ hasText: 'Tasks sim B' });
      await row.getByRole('button', { name: 'End date of Tasks sim B' }).click();
      const dialog = page.getByRole('dialog', { name: 'End date of Tasks sim B' });
      await dialog.getByLabel('End date (empty: none)').fill('2031-01-31T12:00');
      await dialog.getByRole('button', { name: 'Save end date' }).click();
      await page.getByRole('status').filter({ hasText: 'End date saved.' }).first().waitFor();
      assert.ok((await member()).end_date?.startsWith('2031-01-31'), 'the end date is not stored');
      await row.getByRole('button', { name: 'Deactivate' }).click();
      await page.getByRole('status').filter({ hasText: 'Device deactivated' }).first().waitFor();
      assert.equal((await member()).active, false, 'the device still holds a slot');
      await row.getByRole('button', { name: 'Remove Tasks sim B' }).click();
      await page.getByRole('status').filter({ hasText: 'Member removed' }).first().waitFor();
      const removed = await member();
      assert.ok(!removed || removed.removed_at, 'the member is not removed');
      assert.deepEqual(await members(), [], 'a device member is left');
    });
  });

  it('C4: a tenant admin moves a screen to another node and unpairs it', async () => {
    const sim = sims.find((s) => s.name === 'Tasks sim C');
    assert.ok(sim, 'the bulk test paired no screen C');
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-device', path: `/devices/${encodeURIComponent(sim.id)}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: sim.name }).waitFor();
      await page.getByLabel('Move to node').selectOption({ label: 'Acme / Tasks east' });
      await page.getByRole('button', { name: 'Move', exact: true }).click();
      await page.getByRole('status').filter({ hasText: /^Moved/ }).waitFor();
      assert.equal((await must('GET', `/api/v1/devices/${sim.id}`)).node, nodes.east.id, 'the screen did not move');
      await axe(page, 'the device page after a move');
      await screenshot(page, 'tasks-device-moved');

      await page.getByRole('button', { name: 'Unpair…' }).click();
      await page.getByRole('alert').filter({ hasText: `Unpair ${sim.name}?` }).waitFor();
      await page.getByRole('button', { name: 'Unpair now' }).click();
      await page.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor();
      assert.equal((await api('GET', `/api/v1/devices/${sim.id}`)).status, 404, 'the screen is still paired');
    });
    // The other simulated screens go too (console.test.mjs counts the fixture's three).
    for (const s of sims.splice(0)) if (s.id !== sim.id) await must('DELETE', `/api/v1/devices/${s.id}`);
  });

  it('A6, P4, P2: a Viewer whom a permission group grants approve_content finds Approvals in the menu, a plain Viewer does not; the group is deleted', async () => {
    const reviewer = await makeUser('tasks-reviewer');
    const group = await must('POST', '/api/v1/permission-groups', { node: FIXTURE.tenants.acme.id, name: 'Tasks reviewers', permissions: ['approve_content'] });
    await must('POST', `/api/v1/permission-groups/${group.id}/members/users`, { user: reviewer.id });
    await as(browser, reviewer, { name: 'tasks-reviewer' }, async (page) => {
      const nav = page.getByRole('navigation', { name: 'Main' });
      await nav.getByRole('link', { name: 'Approvals' }).click();
      await page.getByRole('heading', { level: 1, name: 'Approvals' }).waitFor();
      assert.equal((await call(page, 'GET', '/api/v1/approvals')).status, 200, 'the reviewer has no queue');
      assert.equal(await nav.getByRole('link', { name: 'Pair a screen' }).count(), 0, 'a Viewer is offered pairing');
      await axe(page, 'the approvals page of a Viewer with approve_content');
    });
    await as(browser, FIXTURE.viewer, { name: 'tasks-viewer' }, async (page) => {
      assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Approvals' }).count(), 0, 'a plain Viewer is offered Approvals');
    });
    // The group goes (P2): its grant with it.
    await as(browser, FIXTURE.tenant_admin, { name: 'tasks-group-deleted', path: `/admin/permission-groups/${group.id}` }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Tasks reviewers' }).waitFor();
      await page.getByRole('button', { name: 'Delete group…' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Delete group', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Permission groups' }).waitFor();
      assert.equal((await api('GET', `/api/v1/permission-groups/${group.id}`)).status, 404, 'the group is still there');
      assert.ok(!(await must('GET', `/api/v1/users/${reviewer.id}/permissions`)).effective.includes('approve_content'), 'the grant outlived its group');
    });
  });
});
