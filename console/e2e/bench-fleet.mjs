// The fleet page with a large fleet (issue 16 acceptance, C3): logs in,
// waits until every device is listed, then scrolls the list from top to
// bottom and back in steps, and reports the long tasks Chromium saw (a
// PerformanceObserver on `longtask`): during the first load and during the
// scroll. A measurement, not a test: it prints figures and fails only when
// the page does not show the fleet. Run by the Rust bench
// tests/benches/console_fleet.rs (which seeds the hub), or by hand with
// SIGNET_E2E_URL, SIGNET_BENCH_USER, SIGNET_BENCH_PASSWORD, SIGNET_BENCH_DEVICES.
import { chromium } from 'playwright-core';

const base = process.env.SIGNET_E2E_URL;
const user = process.env.SIGNET_BENCH_USER ?? 'admin';
const password = process.env.SIGNET_BENCH_PASSWORD;
const devices = Number(process.env.SIGNET_BENCH_DEVICES ?? 10000);
if (!base || !password) throw new Error('set SIGNET_E2E_URL and SIGNET_BENCH_PASSWORD');

const args = ['--disable-dev-shm-usage', '--disable-gpu'];
if (process.getuid?.() === 0) args.push('--no-sandbox');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args });
try {
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
  await page.addInitScript(() => {
    const w = /** @type {any} */ (window);
    w.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.goto(`${base}/fleet`);
  await page.getByLabel('Name').fill(user);
  await page.getByLabel('Password').fill(password);
  const started = Date.now();
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-count="attached"]').filter({ hasText: String(devices) }).waitFor({ timeout: 300_000 });
  await page.getByText(`${devices} of ${devices} devices`).waitFor({ timeout: 300_000 });
  const loadedMs = Date.now() - started;
  const rendered = await page.locator('[role=rowgroup][aria-label^="Devices:"] [role=row].vt-row').count();
  const load = await page.evaluate(() => /** @type {any} */ (window).__longTasks.splice(0));

  // Scroll through the whole list and back: 2 × 120 steps, each waiting
  // for two animation frames so every step renders.
  const scrolled = await page.evaluate(async () => {
    const el = /** @type {HTMLElement} */ (document.querySelector('[role=rowgroup][aria-label^="Devices:"]'));
    const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const steps = 120;
    const t0 = performance.now();
    for (const down of [true, false]) {
      for (let i = 1; i <= steps; i++) {
        const f = i / steps;
        el.scrollTop = (down ? f : 1 - f) * (el.scrollHeight - el.clientHeight);
        await frame();
      }
    }
    return { ms: performance.now() - t0, frames: steps * 2, height: el.scrollHeight };
  });
  const scroll = await page.evaluate(() => /** @type {any} */ (window).__longTasks.splice(0));
  const max = (l) => l.reduce((m, t) => Math.max(m, t.duration), 0);
  console.log(`fleet bench: ${devices} devices listed in ${loadedMs} ms after login; ${rendered} rows in the DOM`);
  console.log(`fleet bench: load: ${load.length} long tasks, longest ${max(load).toFixed(0)} ms`);
  console.log(
    `fleet bench: scroll: ${scrolled.frames} steps over ${(scrolled.height / 1e6).toFixed(2)} Mpx in ${scrolled.ms.toFixed(0)} ms ` +
      `(${(scrolled.ms / scrolled.frames).toFixed(1)} ms per step); ${scroll.length} long tasks, longest ${max(scroll).toFixed(0)} ms, ` +
      `${scroll.filter((t) => t.duration > 200).length} over 200 ms`,
  );
} finally {
  await browser.close();
}
