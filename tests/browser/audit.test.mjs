// The admin pages' Audit log: an admin's change appears with who made it, "Verify chain" says
// the chain is whole, and after someone alters an entry in the database file behind the
// server's back it names that entry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, freshDataDir, freePort, api, pageErrors,
} from './lib/harness.mjs';

let server;
let browser;
let dataDir;

before(async () => {
  dataDir = freshDataDir();
  server = await startServer({ mode: 'demo', port: await freePort(), dataDir });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  removeDir(dataDir);
});

test('an admin reads the audit log, verifies the chain, and sees the entry someone altered named', async () => {
  const { context, page } = await newPage(browser);
  const errors = pageErrors(page);
  try {
    const siteId = server.demo.siteId;
    // A change made by the operator, before the page opens.
    await api(server, 'PUT', `/api/v1/sites/${siteId}/settings`, { retentionDays: 400 });

    await page.goto(`${server.url}/admin/?siteId=${siteId}`);
    await page.waitForSelector('#login-email', { state: 'visible' });
    await page.fill('#login-site', String(siteId));
    await page.fill('#login-email', server.demo.email);
    await page.fill('#login-password', server.demo.password);
    await page.click('#login-submit');
    await page.waitForSelector('#app:not([hidden])');

    await page.click('[data-testid="nav-audit"]');
    await page.waitForSelector('#audit-section:not([hidden])');
    const row = page.locator('[data-testid="audit-entry"]', { hasText: 'settings.updated' });
    await row.waitFor();
    assert.match(await row.textContent(), /Operator/);
    assert.match(await row.textContent(), /retentionDays/);

    await page.click('[data-testid="audit-verify"]');
    await page.waitForSelector('[data-testid="audit-verdict"]:has-text("The chain is whole")');

    // Someone with the database file lifts the guard and rewrites that entry.
    const seq = Number(await row.getAttribute('data-seq'));
    const db = path.join(dataDir, 'confidant.db');
    execFileSync('sqlite3', [db, `DROP TRIGGER audit_log_no_update; UPDATE audit_log SET target = '{"siteId":${siteId},"fields":[]}' WHERE site_id = ${siteId} AND seq = ${seq};`]);
    await page.click('[data-testid="audit-verify"]');
    await page.waitForSelector(`[data-testid="audit-verdict"]:has-text("broken at entry ${seq}")`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
