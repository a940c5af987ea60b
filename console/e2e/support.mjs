// End-to-end support (issue 16 tests): Debian's Chromium driven by
// playwright-core (no browser download) against a real hub started by the
// Rust test tests/tests/console.rs, which passes the hub's URL and its
// fixture (users, devices, nodes) in the environment:
//   SIGNET_E2E_URL       the hub, e.g. http://127.0.0.1:40123
//   SIGNET_E2E_FIXTURE   path of a JSON file: see tests/tests/console.rs
//   SIGNET_E2E_SCREENS   where each test saves its final page (PNG)
//   SIGNET_E2E_FLEET_PNG where the fleet screenshot for the README goes (optional)
//   CHROMIUM             the browser (default /usr/bin/chromium)
import { readFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

/** The hub's base URL. */
export const BASE = required('SIGNET_E2E_URL');
/** The fixture the Rust test made. */
export const FIXTURE = JSON.parse(readFileSync(required('SIGNET_E2E_FIXTURE'), 'utf8'));
/** Where screenshots go. */
export const SCREENS = process.env.SIGNET_E2E_SCREENS ?? 'test-results';
mkdirSync(SCREENS, { recursive: true });

/** How long any wait for the live page may take (a shared 2-core machine). */
export const WAIT = 60_000;

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the end-to-end suite through cargo test -p signet-tests --test console`);
  return v;
}

/** Starts Chromium (headless; no sandbox when running as root). */
export async function launch() {
  const args = ['--disable-dev-shm-usage', '--disable-gpu'];
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args });
}

/**
 * A fresh browser context (no cookies) at 1366×768 or a phone's size,
 * whose page fails the test on any Content-Security-Policy violation or
 * uncaught script error.
 */
export async function open(browser, { phone = false } = {}) {
  const context = await browser.newContext(
    phone
      ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true }
      : { viewport: { width: 1366, height: 768 } },
  );
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.problems = problems;
  return { context, page };
}

/** Logs in through the form as `user` ({name, password}) and waits for the fleet. */
export async function login(page, user, path = '/fleet') {
  await page.goto(`${BASE}${path}`);
  await page.getByLabel('Name').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
}

const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core in the page (evaluated through the DevTools protocol, so
 * the hub's CSP need not allow it) and fails on serious or critical
 * violations, naming each with its elements.
 */
export async function axe(page, what) {
  const violations = await page.evaluate(async (source) => {
    const w = /** @type {any} */ (window);
    if (!w.axe) (0, eval)(source);
    const result = await w.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
  }, AXE);
  assert.deepEqual(violations, [], `axe on ${what}`);
}

/** Saves the page as SCREENS/name.png (and copies it to `alsoTo` when given). */
export async function screenshot(page, name, alsoTo) {
  const path = join(SCREENS, `${name}.png`);
  await page.screenshot({ path });
  if (alsoTo) {
    mkdirSync(dirname(alsoTo), { recursive: true });
    copyFileSync(path, alsoTo);
  }
  return path;
}

/** Fails when the page reported CSP violations or script errors. */
export function noProblems(page) {
  assert.deepEqual(page.problems, [], 'the page had script errors or CSP violations');
}

/** The text of a count card (`online`, `playing`, …) on the fleet page. */
export async function count(page, key) {
  return (await page.locator(`[data-count="${key}"]`).textContent())?.trim();
}

/** Waits until `check()` resolves truthy, polling; fails after WAIT with `what`. */
export async function until(what, check, limit = WAIT) {
  const started = Date.now();
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() - started > limit) assert.fail(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Runs `steps(page)` in a fresh context (a phone's when `phone`) logged in
 * as `user` at `path`; then fails on script errors or CSP violations and
 * saves the page as `name`. The context is closed whatever happens.
 */
export async function as(browser, user, { path = '/fleet', phone = false, name }, steps) {
  const { context, page } = await open(browser, { phone });
  try {
    await login(page, user, path);
    await steps(page);
    noProblems(page);
    await screenshot(page, name);
  } finally {
    await context.close();
  }
}

/** Calls the hub's JSON API from the page, with the session's CSRF token; answers {status, body}. */
export async function call(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const csrf = decodeURIComponent(document.cookie.split('; ').find((c) => c.startsWith('signet_csrf='))?.slice(12) ?? '');
      const r = await fetch(path, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    [method, path, body],
  );
}
