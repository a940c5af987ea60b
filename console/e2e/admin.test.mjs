// The administration, access-group and report pages in Chromium against a
// real hub with real screens playing (issue 19 tests; started by
// tests/tests/console.rs). A tenant admin builds a tree with a restricted
// node, creates a user who needs approval and a permission group granting
// publish (and sees a membership cycle refused), creates an access group
// with a licence and imports a CSV with two bad rows, opens the report and
// exports CSV, and opens the audit log. Every page passes axe-core and each
// test saves its final page under SIGNET_E2E_SCREENS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BASE, FIXTURE, as, axe, launch, screenshot, until } from './support.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Goes to a console path through the navigation (no reload). */
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

/** Fills labelled fields of `scope` ({label: value}). */
async function fill(scope, fields) {
  for (const [label, value] of Object.entries(fields)) await scope.getByLabel(label).fill(value);
}

describe('administration', () => {
  it('C9, T1, T4, A1: a tenant admin builds a tree with a restricted node and sees its owner', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'admin-tree' }, async (page) => {
      await go(page, 'Tenancy tree');
      const nodes = page.getByRole('navigation', { name: 'Nodes' });
      const text = await nodes.innerText();
      assert.ok(!text.includes('Globex'), 'another tenant is shown in the tree');
      await nodes.getByRole('button', { name: 'Acme', exact: true }).click();
      await page.getByRole('heading', { level: 2, name: 'Acme' }).waitFor();
      await axe(page, 'the tree page');
      await page.getByRole('button', { name: 'Add child node…' }).click();
      const dialog = page.getByRole('dialog');
      await fill(dialog, { 'Node name': 'Vault', 'Country (ISO code)': 'de' });
      await dialog.getByLabel('Restricted (its content can be copied, never edited)').check();
      await axe(page, 'the new node dialog');
      await dialog.getByRole('button', { name: 'Create node' }).click();
      await page.getByRole('status').filter({ hasText: 'Created “Vault”' }).first().waitFor();
      await dialog.waitFor({ state: 'hidden' });
      await page.getByRole('heading', { level: 2, name: 'Vault' }).waitFor();
      const facts = page.locator('dl.facts');
      await facts.getByText(`${FIXTURE.tenant_admin.name} (you)`).waitFor();
      await facts.getByText('DE', { exact: true }).waitFor();
      await nodes.getByRole('button', { name: /Vault.*restricted/ }).waitFor();
      // Devices per leaf.
      await nodes.getByRole('button', { name: /Lobby/ }).click();
      await page.getByRole('link', { name: 'Lobby left' }).waitFor();
      await axe(page, 'the tree with a leaf and its devices');
    }));

  it('C9, A3, P3, P4: creates a user who needs approval and a permission group granting publish; a cycle is refused', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'admin-user' }, async (page) => {
      let dialog = await start(page, 'Users', 'New user…');
      await fill(dialog, { 'Login name': 'acme-newbie', 'E-mail': 'newbie@acme.example', 'First password (12+ characters)': 'newbie-password-12' });
      await dialog.getByLabel('Role').selectOption('contributor');
      await dialog.getByLabel('Content needs approval (A3)').check();
      await axe(page, 'the new user dialog');
      await dialog.getByRole('button', { name: 'Create user' }).click();
      await page.getByRole('heading', { level: 1, name: 'acme-newbie' }).waitFor();
      assert.equal(await page.getByLabel('Content needs approval (A3)').isChecked(), true);
      await go(page, 'Users');
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'acme-newbie' }) });
      await row.getByText('Needs approval').waitFor();
      await axe(page, 'the users page');

      for (const name of ['Publishers', 'Editors']) {
        dialog = await start(page, 'Permission groups', 'New group…');
        await fill(dialog, { 'Group name': name, 'Contact e-mail': `${name.toLowerCase()}@acme.example` });
        if (name === 'Publishers') await dialog.getByRole('checkbox', { name: 'Publish', exact: true }).check();
        if (name === 'Publishers') await axe(page, 'the new permission group dialog');
        await dialog.getByRole('button', { name: 'Create group' }).click();
        await page.getByRole('heading', { level: 1, name }).waitFor();
        if (name === 'Publishers') {
          await page.getByLabel('Add a user').selectOption({ label: 'acme-newbie (newbie@acme.example)' });
          await page.getByRole('button', { name: 'Add', exact: true }).first().click();
          await page.getByRole('cell', { name: 'acme-newbie', exact: true }).waitFor();
        } else {
          // Editors contains Publishers …
          await page.getByLabel('Add a group').selectOption({ label: 'Publishers (Acme)' });
          await page.getByRole('button', { name: 'Add', exact: true }).nth(1).click();
          await page.getByRole('link', { name: 'Publishers' }).waitFor();
        }
      }
      await go(page, 'Permission groups');
      // Filter by e-mail.
      await page.getByLabel('Filter by name or e-mail').fill('publishers@');
      await page.getByRole('button', { name: 'Filter' }).click();
      await until('one group listed', async () => (await page.locator('table tbody tr').count()) === 1);
      // … so Publishers cannot contain Editors (P3).
      await page.getByRole('link', { name: 'Publishers' }).click();
      await page.getByRole('heading', { level: 1, name: 'Publishers' }).waitFor();
      await page.getByLabel('Add a group').selectOption({ label: 'Editors (Acme)' });
      await page.getByRole('button', { name: 'Add', exact: true }).nth(1).click();
      await page.getByRole('alert').filter({ hasText: 'cycle' }).waitFor();
      await axe(page, 'a permission group with a refused cycle');
      await screenshot(page, 'admin-permission-group-cycle');

      // The new user's permissions name the group that grants publish (P4).
      await go(page, 'Users');
      await page.getByRole('link', { name: 'acme-newbie' }).click();
      await page.getByRole('heading', { level: 1, name: 'acme-newbie' }).waitFor();
      const publish = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'Publish', exact: true }) });
      await publish.getByText('group “Publishers”').waitFor();
      const download = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'Download', exact: true }) });
      await download.getByText('role default (contributor)').waitFor();
      await axe(page, 'a user page');
    }));

  it('C9, L2, L6, L7, L9: creates an access group with a licence, imports a CSV with two bad rows, invites, makes a shop key', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'access-group-members' }, async (page) => {
      const dialog = await start(page, 'Access groups', 'New access group…');
      await dialog.getByRole('checkbox', { name: 'Ends a time after joining' }).check();
      await fill(dialog, { 'Group name': 'Members club', 'Categories (comma-separated)': 'Films, Trailers', 'Max active devices (empty: no limit)': '2' });
      const summary = dialog.getByRole('region', { name: 'Licence summary' });
      await summary.getByText('Each member may play from when they join until 30 days after joining').waitFor();
      await summary.getByText('At most 2 devices may hold the licence at once').waitFor();
      await axe(page, 'the new access group dialog with the licence editor');
      await screenshot(page, 'access-group-licence');
      await dialog.getByRole('button', { name: 'Create access group' }).click();
      await page.getByRole('heading', { level: 1, name: 'Members club' }).waitFor();
      await axe(page, 'the access group page');

      await page.getByRole('tab', { name: 'CSV import' }).click();
      await page.getByLabel('Or paste the rows').fill(
        ['email,name,end_date', 'ann@example.com,Ann,2027-12-31', 'not-an-email,Bad address,', 'bob@example.com,Bob,31/12/2027', 'cid@example.com,Cid,'].join('\n'),
      );
      await page.getByRole('button', { name: 'Import members' }).click();
      await page.getByRole('status').filter({ hasText: '2 created' }).waitFor();
      const report = page.getByRole('table', { name: 'Import report, row by row' });
      await until('4 report rows', async () => (await report.locator('tbody tr').count()) === 4);
      const refused = report.locator('tbody tr').filter({ hasText: 'refused' });
      assert.equal(await refused.count(), 2);
      await refused.filter({ hasText: 'not-an-email' }).waitFor();
      await refused.filter({ hasText: 'bob@example.com' }).waitFor();
      await axe(page, 'the import report');
      await screenshot(page, 'access-group-import');

      await page.getByRole('tab', { name: 'Members' }).click();
      const members = page.getByRole('table', { name: 'Members' });
      await members.getByText('ann@example.com').waitFor();
      await members.getByText('Has access').first().waitFor();
      await axe(page, 'the members tab');
      await page.getByRole('tab', { name: 'Invites' }).click();
      await page.getByLabel('E-mail').fill('dan@example.com');
      await page.getByRole('button', { name: 'Send invite' }).click();
      await page.getByRole('status').filter({ hasText: 'Invited dan@example.com' }).waitFor();
      await page.getByRole('table', { name: 'Invites' }).getByText('open', { exact: true }).waitFor();
      await axe(page, 'the invites tab');
      await page.getByRole('tab', { name: 'Shop key' }).click();
      await page.getByRole('button', { name: 'Make shop key' }).click();
      await page.getByText('Copy it now; it is not shown again:').waitFor();
      await axe(page, 'the shop key tab');
    }));

  it('C10, U3: opens the report with charts, exports CSV, and reads the audit log and alerts', () =>
    as(browser, FIXTURE.tenant_admin, { name: 'admin-alerts-profile' }, async (page) => {
      await go(page, 'Reports');
      await until('plays in the report', async () => {
        await page.getByRole('button', { name: 'Show report' }).click();
        const text = (await page.locator('p.totals').textContent({ timeout: 5000 })) ?? '';
        return /^\s*[1-9]\d* plays/.test(text);
      });
      await page.getByRole('figure', { name: 'Plays per day' }).locator('svg').waitFor();
      await page.getByRole('figure', { name: 'Top items by plays' }).getByText('Welcome board').first().waitFor();
      await axe(page, 'the report page');
      await screenshot(page, 'reports');
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
      const csv = readFileSync(await download.path(), 'utf8');
      assert.ok(csv.startsWith('id,start,device,node,item'), `CSV header: ${csv.slice(0, 80)}`);
      assert.ok(csv.trim().split('\n').length >= 2, 'the CSV holds events');

      await go(page, 'Audit log');
      const table = page.getByRole('table', { name: 'Audit entries, newest first' });
      await table.getByText('node.create').first().waitFor();
      await page.getByLabel('Action (or prefix ending in “.”)').fill('access_group.');
      await page.getByRole('button', { name: 'Show', exact: true }).click();
      await until('only access-group entries', async () => {
        const actions = await table.locator('tbody code').allTextContents();
        return actions.length > 0 && actions.every((a) => a.startsWith('access_group.'));
      });
      await axe(page, 'the audit log');
      await screenshot(page, 'audit');

      await go(page, 'Alerts');
      await page.getByRole('heading', { name: 'Settings' }).waitFor();
      await axe(page, 'the alerts page');
      await page.getByRole('link', { name: 'My profile' }).first().click();
      await page.getByRole('heading', { level: 1, name: 'My profile' }).waitFor();
      await axe(page, 'the profile page');
      assert.equal(await page.getByRole('link', { name: 'Mail outbox' }).count(), 0, 'a tenant admin is offered the mail outbox');
    }));

  it('C10: a root admin reads the mail outbox; the admin pages work on a phone', () =>
    as(browser, FIXTURE.admin, { path: '/mail', phone: true, name: 'admin-phone' }, async (page) => {
      await page.getByRole('heading', { level: 1, name: 'Mail outbox' }).waitFor();
      await page.getByRole('table', { name: 'Mail, newest first' }).getByText('dan@example.com').first().waitFor();
      await axe(page, 'the mail outbox on a phone');
      await page.goto(`${BASE}/admin/tree`);
      await page.getByRole('heading', { level: 1, name: 'Tenancy tree' }).waitFor();
      await axe(page, 'the tree on a phone');
      await page.goto(`${BASE}/access-groups`);
      await page.getByRole('link', { name: 'Members club' }).click();
      await page.getByRole('tab', { name: 'Licence' }).focus();
      await page.keyboard.press('ArrowRight');
      await page.getByRole('tab', { name: 'Items', selected: true }).waitFor();
      await axe(page, 'an access group on a phone');
    }));
});
