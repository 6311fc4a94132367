// The admin pages' Webhooks tab: every bad field marked at once (each error gone as its field is
// fixed), create (the secret shown once), send a test event to a receiver on loopback, see it
// in the delivery log, delete.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, waitFor, freshDataDir, freePort, pageErrors, cspViolations,
  adminLogin,
} from './lib/harness.mjs';

let server;
let browser;
let dataDir;
let receiver;
const received = [];

before(async () => {
  dataDir = freshDataDir();
  // The receiver is on loopback: private URLs allowed.
  server = await startServer({ mode: 'demo', port: await freePort(), dataDir, args: ['--allow-private-urls', 'on'] });
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  receiver?.close();
  await stopServer(server);
  removeDir(dataDir);
});

test('an admin creates a webhook, sees its secret once, sends a test event and deletes it', async () => {
  const { context, page } = await newPage(browser);
  page.on('dialog', (d) => d.accept());
  try {
    await adminLogin(page, server);
    await page.click('[data-testid="nav-webhooks"]');
    await page.waitForSelector('#webhooks-section:not([hidden])');

    // Not a web address, and no event: the server names both, each beside its field at once.
    await page.fill('[data-testid="webhook-url"]', 'hooks.example.com/confidant');
    await page.uncheck('[data-testid="webhook-event-message.created"]');
    await page.click('[data-testid="webhook-create"]');
    const error = (field) => page.locator(`[data-testid="field-error"][data-field="${field}"]`);
    await error('url').waitFor();
    assert.equal(await error('url').textContent(), '“hooks.example.com/confidant” is not a web address: it needs https:// and a host');
    assert.match(await error('events').textContent(), /^choose at least one of /);
    assert.equal(await page.getAttribute('[data-testid="webhook-url"]', 'aria-invalid'), 'true');
    assert.match(await page.textContent('[data-testid="webhook-error"]'), /Please correct the fields marked below/);
    assert.equal(await page.locator('[data-testid="webhook-item"]').count(), 0, 'nothing was created');
    // Fixing the URL takes its error away, and only its error.
    const url = `http://127.0.0.1:${receiver.address().port}/hook`;
    await page.fill('[data-testid="webhook-url"]', url);
    await error('url').waitFor({ state: 'detached' });
    assert.equal(await error('events').count(), 1);
    assert.equal(await page.isVisible('[data-testid="webhook-error"]'), true);
    await page.check('[data-testid="webhook-event-conversation.closed"]');
    await error('events').waitFor({ state: 'detached' });
    assert.equal(await page.isHidden('[data-testid="webhook-error"]'), true);

    await page.click('[data-testid="webhook-create"]');
    await page.waitForSelector('[data-testid="webhook-secret-reveal"]:not([hidden])');
    const secret = await page.inputValue('[data-testid="webhook-secret"]');
    assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    await page.waitForSelector('[data-testid="webhook-item"]');
    assert.equal(await page.textContent('[data-testid="webhook-detail-url"]'), url);

    await page.click('[data-testid="webhook-test"]');
    await page.waitForSelector('[data-testid="webhook-test-result"]:has-text("Delivered: HTTP 200")');
    await waitFor(() => received.length === 1, { what: 'the test event at the receiver' });
    assert.equal(JSON.parse(received[0].body).type, 'webhook.test');
    assert.match(received[0].headers['confidant-signature'], /^t=\d+,v1=[0-9a-f]{64}$/);
    await page.waitForSelector('[data-testid="webhook-delivery"][data-delivered="true"]');

    // "I have saved it" hides the secret; a reload never shows it again.
    await page.click('#webhook-secret-done');
    assert.equal(await page.isHidden('[data-testid="webhook-secret-reveal"]'), true);
    await page.reload();
    await page.waitForSelector('#app:not([hidden])');
    await page.click('[data-testid="nav-webhooks"]');
    await page.waitForSelector('[data-testid="webhook-item"]');
    assert.equal(await page.isHidden('[data-testid="webhook-secret-reveal"]'), true);
    assert.equal((await page.content()).includes(secret), false, 'the secret is on the page after a reload');

    await page.click('[data-testid="webhook-delete"]');
    await page.waitForSelector('#webhooks-empty:not([hidden])');
    assert.equal(await page.locator('[data-testid="webhook-item"]').count(), 0);

    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
  } finally {
    await context.close();
  }
});
