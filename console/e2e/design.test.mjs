// The design pages in Chromium against the real hub of tests/tests/console.rs
// (issue 16 tests: "design a template with a clock and a feed zone; make a
// playlist and a week schedule"). Each test runs axe-core on the pages it
// visits and saves its final page under SIGNET_E2E_SCREENS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, FIXTURE, axe, launch, login, noProblems, open, screenshot, until } from './support.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const lobby = FIXTURE.tenants.acme.site;

/** The x, y, width, height a zone's accessible name states. */
async function geometry(zone) {
  const label = await zone.locator('[data-geometry]').textContent();
  const m = /, (\d+)×(\d+) at (\d+),(\d+),/.exec(label ?? '');
  assert.ok(m, `zone label without geometry: ${label}`);
  return { width: Number(m[1]), height: Number(m[2]), x: Number(m[3]), y: Number(m[4]) };
}

/** Drags from the centre of `locator` by (dx, dy) screen pixels with the mouse. */
async function dragBy(page, locator, dx, dy) {
  await locator.scrollIntoViewIfNeeded();
  const box = await locator.boundingBox();
  assert.ok(box, 'the element is on screen');
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + dx / 2, y + dy / 2, { steps: 4 });
  await page.mouse.move(x + dx, y + dy, { steps: 4 });
  await page.mouse.up();
}

/** GET of the JSON API from inside the logged-in page (the session cookie travels). */
async function apiGet(page, path) {
  return page.evaluate(async (p) => (await fetch(p)).json(), path);
}

describe('design pages', () => {
  it('C6, D6, A4: designs a template with a clock and a feed zone, with a live preview and the approval consequence of saving', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.admin);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Templates' }).click();
      await page.getByRole('heading', { name: 'Templates', exact: true }).waitFor();
      await axe(page, 'the templates page');
      await page.getByLabel('Template name').fill('Lobby board');
      await page.getByLabel('Node', { exact: true }).selectOption(lobby);
      await page.getByLabel('Resolution').selectOption('1920x1080');
      await page.getByRole('button', { name: 'Create and design' }).click();
      await page.getByRole('heading', { name: 'Design “Lobby board”' }).waitFor();
      const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');

      // A clock zone, dragged (snapping to the 20 px grid), moved by keyboard, resized by its handle.
      await page.getByRole('button', { name: 'Add clock zone' }).click();
      const clock = page.locator('[data-zone="clock-1"]');
      await clock.waitFor();
      const placed = await geometry(clock);
      await dragBy(page, clock, 120, 60);
      const dragged = await geometry(clock);
      assert.ok(dragged.x > placed.x && dragged.y > placed.y, `the drag moved the zone: ${JSON.stringify([placed, dragged])}`);
      // The drag left the zone focused: the keys act on it.
      await page.keyboard.press('ArrowRight');
      const nudged = await geometry(clock);
      assert.equal(nudged.x, Math.min(dragged.x + 20, 1920 - dragged.width), 'ArrowRight moves one grid step');
      await page.keyboard.press('Shift+ArrowDown');
      assert.equal((await geometry(clock)).height, nudged.height + 20, 'Shift+ArrowDown grows the zone by one grid step');
      await dragBy(page, clock.locator('[data-handle="e"]'), 40, 0);
      const resized = await geometry(clock);
      assert.ok(resized.width > nudged.width, `the handle widened the zone: ${nudged.width} → ${resized.width}`);
      assert.equal(resized.x, nudged.x, 'resizing the right edge keeps the left edge');
      await page.getByLabel('Clock format').fill('%H:%M:%S');

      // A text zone bound to a data feed with per-device variables.
      await page.getByRole('button', { name: 'Add text zone' }).click();
      await page.locator('[data-zone="text-1"]').waitFor();
      await page.getByLabel('Bind to a data feed').check();
      await page.getByLabel('Feed URL').fill('https://feeds.example/weather/[1].json');
      await page.getByLabel('Insert device variable').selectOption('2');
      assert.equal(await page.getByLabel('Feed URL').inputValue(), 'https://feeds.example/weather/[1].json[2]');
      await page.getByLabel('Feed URL').fill('https://feeds.example/weather/[1]/[2].json');
      await page.getByText('Uses [1], [2].').waitFor();
      await page.getByLabel('JSON pointer').fill('/temperature');
      await page.getByLabel('Refresh every (s)').fill('120');
      await page.getByLabel('Refresh every (s)').press('Tab');

      // Live preview: the clock runs, the feed URL shows the device's values.
      await page.getByLabel('Value of [1]').fill('Berlin');
      const preview = page.getByRole('img', { name: 'Preview of Lobby board' });
      await preview.getByText('Feed: https://feeds.example/weather/Berlin/[2].json → /temperature').waitFor();
      const first = await preview.innerText();
      assert.match(first, /\d\d:\d\d:\d\d/, 'the preview shows the clock');
      await until('the preview clock ticks', async () => (await preview.innerText()) !== first, 5_000);

      // Saving a layout change: the consequence is stated before saving.
      const consequence = page.getByTestId('approval-consequence');
      assert.match(await consequence.innerText(), /layout or content changed/);
      await axe(page, 'the template designer');
      await page.getByRole('button', { name: 'Save template' }).click();
      await page.getByText(/^Saved revision 2\./).waitFor();
      const stored = await apiGet(page, `/api/v1/templates/${encodeURIComponent(id)}`);
      const zones = stored.template.zones;
      assert.deepEqual(zones.map((z) => [z.id, z.kind]), [['clock-1', 'clock'], ['text-1', 'text']]);
      assert.equal(zones[0].text, '%H:%M:%S');
      assert.deepEqual(zones[0].rect, { x: resized.x, y: resized.y, width: resized.width, height: resized.height });
      assert.equal(zones[1].feed.url, 'https://feeds.example/weather/[1]/[2].json');
      assert.equal(zones[1].feed.json_pointer, '/temperature');
      assert.equal(zones[1].feed.refresh_secs, 120);
      const stateAfterLayout = stored.approval_state;

      // A feed-only change keeps the approval state, and the page says so before and after.
      await page.locator('[data-zone="text-1"]').focus();
      await page.getByLabel('Feed URL').fill('https://feeds.example/weather/[3].json');
      assert.match(await consequence.innerText(), /Only data-feed settings changed: the approval state stays/);
      await page.getByRole('button', { name: 'Save template' }).click();
      await page.getByText(/^Saved revision 3\. Approval: stays “.*”\. Feed-only change: the approval state was kept\./).waitFor();
      const again = await apiGet(page, `/api/v1/templates/${encodeURIComponent(id)}`);
      assert.equal(again.approval_state, stateAfterLayout);
      assert.equal(again.approval_hash, stored.approval_hash, 'a feed-only change keeps the layout hash');

      await axe(page, 'the template designer after saving');
      noProblems(page);
      await page.getByRole('heading', { name: /^Canvas/ }).scrollIntoViewIfNeeded();
      await screenshot(page, 'template-designer');
    } finally {
      await context.close();
    }
  });

  it('C7, D5: makes a playlist by drag and drop and keyboard, then a week schedule edited by dragging, and asks what plays when', async () => {
    const { context, page } = await open(browser);
    try {
      await login(page, FIXTURE.admin);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Playlists' }).click();
      await page.getByRole('heading', { name: 'Playlists', exact: true }).waitFor();
      await axe(page, 'the playlists page');
      await page.getByLabel('Playlist name').fill('Morning loop');
      await page.getByLabel('Node', { exact: true }).selectOption(lobby);
      await page.getByRole('button', { name: 'Create and edit' }).click();
      await page.getByRole('heading', { name: 'Playlist “Morning loop”' }).waitFor();
      const playlistId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');

      // One item by button, one dragged from the library onto the list.
      await page.getByRole('button', { name: 'Add Welcome board' }).click();
      const list = page.getByRole('list', { name: 'Playlist items' });
      // Found in the library first, as a user with a long library would,
      // and back at the top of the page (the click above scrolled it): both
      // ends of the drag are then in view, so the drag need not scroll the
      // page on its way, which is not what is tested.
      await page.getByLabel('Find').fill('Welcome board');
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.locator('[data-item]').filter({ hasText: 'Welcome board' }).first().dragTo(list);
      await until('two items', async () => (await list.getByRole('listitem').count()) === 2);
      const durations = list.getByRole('textbox', { name: /^Duration of/ });
      await durations.nth(0).fill('5');
      await durations.nth(0).press('Tab');
      await durations.nth(1).fill('3');
      await durations.nth(1).press('Tab');
      // Keyboard reorder: Alt+ArrowUp on the second item's handle.
      await list.getByRole('button', { name: /^Reorder Welcome board, position 2 of 2/ }).focus();
      await page.keyboard.press('Alt+ArrowUp');
      await until('the 3 s item first', async () => (await durations.nth(0).inputValue()) === '3');
      assert.equal(await durations.nth(1).inputValue(), '5');
      await page.getByRole('button', { name: 'Save playlist' }).click();
      await page.getByText('Saved: 2 items, 0:08 per loop.').waitFor();
      const stored = await apiGet(page, `/api/v1/playlists/${encodeURIComponent(playlistId)}`);
      assert.deepEqual(stored.items.map((i) => i.duration_ms), [3000, 5000]);

      await page.getByRole('button', { name: 'Play preview' }).click();
      await page.getByTestId('preview-now').getByText('Item 1 of 2').waitFor();
      await until('the preview reaches item 2', async () => (await page.getByTestId('preview-now').innerText()).includes('Item 2 of 2'), 8_000);
      await page.getByRole('button', { name: 'Pause preview' }).click();
      await axe(page, 'the playlist editor');
      noProblems(page);
      await screenshot(page, 'playlist');

      // The Lobby's week schedule: an interrupt on weekday mornings, moved by dragging and keys.
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Schedules' }).click();
      await page.getByRole('heading', { name: 'Schedules', exact: true }).waitFor();
      await axe(page, 'the schedules page');
      await page.getByRole('link', { name: /Lobby$/ }).click();
      await page.getByRole('heading', { name: /^Schedule of .*Lobby$/ }).waitFor();
      await page.getByRole('button', { name: 'Add entry' }).click();
      const entry = page.getByRole('group', { name: 'Entry entry-2' });
      await entry.getByLabel('Playlist').selectOption({ label: 'Morning loop' });
      await entry.getByLabel('Layer').selectOption('interrupt');
      await entry.getByLabel('Priority').fill('5');
      await entry.getByLabel('Priority').press('Tab');
      const monday = page.getByRole('group', { name: /^Mon / }).locator('[data-entry="entry-2"]');
      assert.match((await monday.locator('[data-label]').textContent()) ?? '', /Morning loop, Interrupt priority 5, Mon 08:00–12:00/);
      // One hour down = 26 px.
      await dragBy(page, monday, 0, 26);
      await until('the window moved to 09:00', async () => /Mon 09:00–13:00/.test((await monday.locator('[data-label]').textContent()) ?? ''));
      await monday.focus();
      await page.keyboard.press('Shift+ArrowDown');
      await page.keyboard.press('ArrowRight');
      await entry.getByText('Tue, Wed, Thu, Fri, Sat, 09:00–13:15').waitFor();
      assert.equal(await page.getByRole('group', { name: /^Mon / }).locator('[data-entry="entry-2"]').count(), 0, 'Monday is no longer scheduled');
      await page.getByRole('button', { name: 'Save schedule' }).click();
      await page.getByText(/^Saved: 2 entries\./).waitFor();
      const schedules = await apiGet(page, '/api/v1/schedules');
      const saved = schedules.find((s) => s.target.id === lobby);
      const added = saved.entries.find((e) => e.id === 'entry-2');
      assert.deepEqual(
        { layer: added.layer, priority: added.priority, weekdays: added.weekdays, dayparts: added.dayparts, playlist: added.playlist },
        { layer: 'interrupt', priority: 5, weekdays: ['Tue', 'Wed', 'Thu', 'Fri', 'Sat'], dayparts: [{ start: '09:00:00', end: '13:15:00' }], playlist: playlistId },
      );

      // What plays on a device of the Lobby: Tuesday 10:00 the interrupt, Monday 10:00 the all-day entry.
      const answer = page.getByTestId('plays-now');
      await page.getByLabel('Where').selectOption({ label: FIXTURE.devices.find((d) => d.node === lobby).name });
      await page.getByLabel(/^When/).fill('2026-12-08T10:00');
      await page.getByRole('button', { name: 'Show what plays' }).click();
      await answer.getByText(/from entry entry-2 \(playlist Morning loop, Interrupt priority 5\)/).waitFor();
      await answer.getByText('2026-12-08 10:00:00').waitFor();
      await page.getByLabel(/^When/).fill('2026-12-07T10:00');
      await page.getByRole('button', { name: 'Show what plays' }).click();
      await answer.getByText(/from entry all-day/).waitFor();
      assert.match(await answer.innerText(), /Welcome board/);
      // A click on an empty spot of the calendar asks about that moment (Tuesday 14:00, after the interrupt).
      const tuesday = page.getByRole('group', { name: /^Tue / });
      await tuesday.scrollIntoViewIfNeeded();
      const tue = await tuesday.boundingBox();
      assert.ok(tue);
      await tuesday.click({ position: { x: tue.width - 4, y: 14 * 26 + 4 } });
      const picked = await until('the When field follows the click', async () => {
        const v = await page.getByLabel(/^When/).inputValue();
        return v.endsWith('T14:00') ? v : false;
      });
      await answer.getByText(`${picked.slice(0, 10)} 14:00:00`).waitFor();
      await answer.getByText(/from entry all-day/).waitFor();
      await axe(page, 'the schedule editor');
      noProblems(page);
      await page.getByRole('heading', { name: /^Week of/ }).scrollIntoViewIfNeeded();
      await screenshot(page, 'schedule-week');
    } finally {
      await context.close();
    }
  });

  it('C6, C7: the design pages work on a phone', async () => {
    const { context, page } = await open(browser, { phone: true });
    try {
      await login(page, FIXTURE.admin);
      const pages = [
        ['/templates', 'Templates'],
        ['/playlists', 'Playlists'],
        ['/schedules', 'Schedules'],
      ];
      for (const [path, heading] of pages) {
        await page.goto(`${BASE}${path}`);
        await page.getByRole('heading', { name: heading, exact: true }).waitFor();
        const link = page.locator('main table a').first();
        await link.waitFor();
        await link.click();
        await page.getByRole('heading', { level: 1 }).filter({ hasNotText: heading }).waitFor();
        await page.getByRole('button', { name: /^Save / }).waitFor();
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 390, `${path}/… scrolls sideways on a phone (${width}px wide)`);
        await axe(page, `a page under ${path} on a phone`);
      }
      noProblems(page);
      await screenshot(page, 'schedule-phone');
    } finally {
      await context.close();
    }
  });
});
