// Issue 16 in the console and the admin pages: closing asks first and can be undone (the
// toast's Undo reopens it), focus moves to the next conversation; switching Closed → Open shows
// an open conversation; each conversation names its messenger and the list filters by it; a
// locked-out agent is told to ask an admin, the Agents page shows "Locked out" and Unlock lets
// it in; the Security tab marks every bad allowed URL at once, in plain words, and clears an
// error as its field is fixed; a messenger is renamed, and deleted through a dialog that asks
// for its name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, freshDataDir, freePort, pageErrors,
  api, apiCall, createSite, createMessenger, createAgent, signContactJwt, consoleLogin, adminLogin, waitFor,
} from './lib/harness.mjs';

let server;
let browser;
let dataDir;
let siteId;
let support;
let sales;
let admin;
const conv = {};

async function contactWrites(messenger, identity, body) {
  const auth = await api(server, 'POST', '/securemessage/authorize', {
    siteId,
    messengerId: messenger.messengerId,
    contactJwt: signContactJwt(messenger.sharedToken, { sub: identity, 'comm100.name': identity }),
  }, { token: null });
  const m = await api(server, 'POST', '/api/v1/messenger/messages', { clientMessageId: randomUUID(), body }, { token: auth.accessToken });
  return m.conversationId;
}

const item = (id) => `[data-testid="conversation-item"][data-conversation-id="${id}"]`;

before(async () => {
  dataDir = freshDataDir();
  server = await startServer({ mode: 'serve', port: await freePort(), dataDir, args: ['--rate-limits', 'off'] });
  siteId = (await createSite(server, 'Console admin')).siteId;
  support = await createMessenger(server, { siteId, name: 'Support' });
  sales = await createMessenger(server, { siteId, name: 'Sales' });
  conv.ann = await contactWrites(support, 'ann@example.test', 'Hello from Ann');
  conv.ben = await contactWrites(support, 'ben@example.test', 'Hello from Ben');
  conv.cat = await contactWrites(sales, 'cat@example.test', 'A question about prices');
  admin = await createAgent(server, { siteId, role: 'admin', name: 'Ada Admin' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  removeDir(dataDir);
});

test('conversations name their messenger, and the list filters by it', async () => {
  const { page } = await newPage(browser);
  const errors = pageErrors(page);
  await consoleLogin(page, server, { siteId, email: admin.email, password: admin.password });
  await page.waitForSelector(item(conv.cat));
  assert.equal((await page.textContent(`${item(conv.cat)} [data-testid="messenger-label"]`)).trim(), 'Sales');
  assert.equal((await page.textContent(`${item(conv.ann)} [data-testid="messenger-label"]`)).trim(), 'Support');
  assert.match(await page.textContent('label:has(#preview-toggle)'), /Show test conversations from previews/);
  await page.waitForSelector('#messenger-filter-row:not([hidden])');
  await page.selectOption('[data-testid="messenger-filter"]', { label: 'Sales' });
  await waitFor(async () => (await page.$$('[data-testid="conversation-item"]')).length === 1, { what: 'only Sales' });
  assert.ok(await page.$(item(conv.cat)));
  await page.selectOption('[data-testid="messenger-filter"]', { value: '' });
  await waitFor(async () => (await page.$$('[data-testid="conversation-item"]')).length === 3, { what: 'all three again' });
  assert.deepEqual(errors, []);
  await page.close();
});

test('close asks first, focus moves on, and Undo reopens it; Closed → Open shows an open one', async () => {
  const { page } = await newPage(browser);
  const errors = pageErrors(page);
  await consoleLogin(page, server, { siteId, email: admin.email, password: admin.password });
  await page.click(item(conv.ann));
  await page.waitForSelector('#status-tag:text("Open")');
  assert.equal((await page.textContent('[data-testid="messenger-tag"]')).trim(), 'Support');

  // Cancel keeps it open.
  await page.click('[data-testid="close-conversation"]');
  await page.waitForSelector('[data-testid="close-dialog"][open]');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'close-confirm');
  await page.click('[data-testid="close-cancel"]');
  await page.waitForSelector('[data-testid="close-dialog"]', { state: 'hidden' });
  assert.ok(await page.$(item(conv.ann)));

  // Confirm: it leaves the Open list, focus is on another conversation, the toast offers Undo.
  await page.click('[data-testid="close-conversation"]');
  await page.click('[data-testid="close-confirm"]');
  await page.waitForSelector('[data-testid="toast"]:not([hidden])');
  assert.match(await page.textContent('[data-testid="toast"]'), /Conversation closed/);
  await waitFor(async () => !(await page.$(item(conv.ann))), { what: 'Ann leaves the Open list' });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.dataset.conversationId);
  assert.ok(focused && focused !== conv.ann, `focus on the next conversation, got ${focused}`);
  const server1 = await api(server, 'GET', `/api/v1/sites/${siteId}/conversations/${conv.ann}`);
  assert.equal(server1.status, 'closed');

  await page.click('[data-testid="toast-undo"]');
  await page.waitForSelector(item(conv.ann));
  await page.waitForSelector('#status-tag:text("Open")');
  assert.equal(await page.getAttribute(item(conv.ann), 'aria-current'), 'true');
  await page.waitForSelector('#messages li:has-text("reopened the conversation")');
  assert.equal((await api(server, 'GET', `/api/v1/sites/${siteId}/conversations/${conv.ann}`)).status, 'open');
  assert.ok(await page.isHidden('[data-testid="toast"]'));

  // Close it again, look at it in Closed, then switch back to Open: an open conversation shows.
  await page.click('[data-testid="close-conversation"]');
  await page.click('[data-testid="close-confirm"]');
  await waitFor(async () => !(await page.$(item(conv.ann))), { what: 'closed again' });
  await page.click('[data-testid="tab-closed"]');
  await page.click(item(conv.ann));
  await page.waitForSelector('#status-tag:text("Closed")');
  await page.waitForSelector('[data-testid="reopen-conversation"]:visible');
  await page.click('[data-testid="tab-open"]');
  await waitFor(async () => (await page.textContent('#status-tag')).trim() === 'Open', { what: 'an open conversation on screen' });
  const shown = await page.getAttribute('[data-testid="conversation-item"][aria-current="true"]', 'data-conversation-id');
  assert.ok(shown && shown !== conv.ann, `the pane shows an open conversation, got ${shown}`);
  assert.ok(await page.isVisible('#reply-form'));
  assert.deepEqual(errors, []);
  await page.close();
});

test('six wrong passwords lock an agent out; an admin sees it and lifts the lock', async () => {
  const bob = await createAgent(server, { siteId, role: 'agent', name: 'Bob Locked' });
  const { page } = await newPage(browser);
  await page.goto(`${server.url}/console/?siteId=${siteId}`);
  await page.waitForSelector('#login-email', { state: 'visible' });
  await page.fill('#login-site', String(siteId));
  await page.fill('#login-email', bob.email);
  for (let i = 0; i < 6; i += 1) {
    await page.fill('#login-password', `wrong-password-${i}`);
    await page.click('#login-submit');
    await waitFor(async () => (await page.isVisible('#login-error')) && !(await page.isDisabled('#login-submit')), { what: `failure ${i + 1}` });
  }
  await page.fill('#login-password', bob.password);
  await page.click('#login-submit');
  await waitFor(async () => /ask an admin/i.test(await page.textContent('#login-error')), { what: 'the lockout message' });

  const a = await newPage(browser);
  await adminLogin(a.page, server, { siteId, email: admin.email, password: admin.password });
  await a.page.click('[data-testid="nav-agents"]');
  const row = `tr:has-text("${bob.email}")`;
  await a.page.waitForSelector(`${row} [data-testid="agent-locked"]:text("Locked out")`);
  await a.page.click(`${row} [data-testid="agent-unlock"]`);
  await waitFor(async () => !(await a.page.$(`${row} [data-testid="agent-locked"]`)), { what: 'the lock gone' });
  const audit = await api(server, 'GET', `/api/v1/sites/${siteId}/audit?limit=1000`);
  const unlock = audit.entries.find((e) => e.action === 'agent.updated' && e.target.email === bob.email);
  assert.ok(unlock && unlock.target.fields.includes('unlock'), JSON.stringify(unlock));

  await page.click('#login-submit');
  await page.waitForSelector('#app:not([hidden])');
  await a.page.close();
  await page.close();
});

test('the Security tab marks every bad allowed URL at once, plainly, and clears it when fixed', async () => {
  const { page } = await newPage(browser);
  const errors = pageErrors(page);
  await adminLogin(page, server, { siteId, email: admin.email, password: admin.password });
  await page.click(`[data-testid="messenger-item"][data-messenger-id="${support.messengerId}"]`);
  await page.waitForSelector('#security-form:not([hidden])');
  await page.fill('[data-testid="security-allowed-urls"]', 'foo\nhttps://ok.example.com\nhttps://a.example.com/?q=1');
  await page.click('[data-testid="security-save"]');
  await page.waitForSelector('[data-testid="field-error"][data-field="allowedUrls"]');
  const texts = await page.$$eval('[data-testid="field-error"][data-field="allowedUrls"]', (els) => els.map((e) => e.textContent));
  assert.equal(texts.length, 2, JSON.stringify(texts));
  assert.match(texts[0], /line 1: “foo” is not a web address: it needs https:\/\/ or http:\/\/ and a host/);
  assert.match(texts[1], /line 3: /);
  assert.ok(!texts.join(' ').includes('relative URL'));
  assert.equal(await page.getAttribute('[data-testid="security-allowed-urls"]', 'aria-invalid'), 'true');
  await page.fill('[data-testid="security-allowed-urls"]', 'https://ok.example.com');
  await waitFor(async () => (await page.$$('[data-testid="field-error"]')).length === 0, { what: 'errors cleared on input' });
  assert.equal(await page.getAttribute('[data-testid="security-allowed-urls"]', 'aria-invalid'), null);
  assert.ok(await page.isHidden('[data-testid="security-error"]'));
  assert.deepEqual(errors, []);
  await page.close();
});

test('a messenger is renamed, then deleted through a dialog that asks for its name', async () => {
  const { page } = await newPage(browser);
  const errors = pageErrors(page);
  await adminLogin(page, server, { siteId, email: admin.email, password: admin.password });
  const entry = `[data-testid="messenger-item"][data-messenger-id="${sales.messengerId}"]`;
  await page.click(entry);
  await page.click('[data-testid="tab-install"]');
  assert.equal(await page.getAttribute('[data-testid="js-api-link"]', 'href'), '/docs/js-api');
  await page.click('[data-testid="messenger-rename"]');
  await page.fill('[data-testid="rename-name"]', 'Sales EU');
  await page.click('[data-testid="rename-save"]');
  await page.waitForSelector(`${entry}:has-text("Sales EU")`);
  assert.equal((await api(server, 'GET', `/api/v1/sites/${siteId}/messengers/${sales.messengerId}`)).name, 'Sales EU');

  await page.click('[data-testid="messenger-delete"]');
  await page.waitForSelector('[data-testid="delete-messenger-dialog"][open]');
  assert.match(await page.textContent('#delete-messenger-title'), /“Sales EU”/);
  assert.ok(await page.isDisabled('[data-testid="delete-messenger-confirm"]'));
  await page.fill('[data-testid="delete-messenger-confirm-input"]', 'Sales');
  assert.ok(await page.isDisabled('[data-testid="delete-messenger-confirm"]'));
  await page.fill('[data-testid="delete-messenger-confirm-input"]', 'Sales EU');
  await page.click('[data-testid="delete-messenger-confirm"]');
  await waitFor(async () => !(await page.$(entry)), { what: 'the messenger leaves the list' });
  assert.match(await page.textContent('[data-testid="messengers-status"]'), /was deleted/);
  const gone = await apiCall(server, 'GET', `/api/v1/sites/${siteId}/messengers/${sales.messengerId}`);
  assert.equal(gone.status, 404);
  // Its conversation stays, and says where it came from.
  const c = await api(server, 'GET', `/api/v1/sites/${siteId}/conversations/${conv.cat}`);
  assert.deepEqual([c.messenger.name, c.messenger.deleted], ['Sales EU', true]);
  const cons = await newPage(browser);
  await consoleLogin(cons.page, server, { siteId, email: admin.email, password: admin.password });
  await cons.page.waitForSelector(`${item(conv.cat)} [data-testid="messenger-label"]:text("Sales EU (deleted)")`);
  assert.deepEqual(errors, []);
  await cons.page.close();
  await page.close();
});
