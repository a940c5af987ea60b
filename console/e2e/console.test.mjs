// The console in Chromium against a real hub with three real headless
// screens (issue 16 tests; started by tests/tests/console.rs). Every test
// runs axe-core on each page it visits and saves its final page under
// SIGNET_E2E_SCREENS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
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
      const rows = page.locator('[role=rowgroup] [role=row]');
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
});
