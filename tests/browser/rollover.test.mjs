// Validation rollover (CONTRACT §5) on the admin Security tab: switching a messenger from a shared
// token to a public key first says what stops working; with a 1-hour rollover the tab shows its
// end, and a page that still signs with the old shared token keeps working (a message
// round-trips); a later switch with the rollover off makes that page's token refused at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, waitFor, freshDataDir, freePort, pageErrors,
  createMessenger, startBusinessServer, embedRoute, openMessenger, frameSend, findConversation, agentSend, api,
  openSecurityTab,
} from './lib/harness.mjs';

let server;
let business;
let browser;
let dataDir;
let messenger;

const publicPem = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' });

before(async () => {
  dataDir = freshDataDir();
  server = await startServer({ mode: 'demo', port: await freePort(), dataDir });
  business = await startBusinessServer({});
  messenger = await createMessenger(server, { siteId: server.demo.siteId, name: 'Rollover', allowedUrls: [business.origin] });
  // The business's page still signs with the shared token it was given first.
  business.routes = {
    '/portal': embedRoute(server, messenger, {
      claims: (url) => ({ sub: `${url.searchParams.get('who')}@customer.test` }),
      title: 'Portal signing with the old shared token',
    }),
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  removeDir(dataDir);
});

async function reloadSecurityTab(page) {
  await page.reload();
  await page.waitForSelector('#app:not([hidden])');
  await page.click(`[data-testid="messenger-item"][data-messenger-id="${messenger.messengerId}"]`);
  await page.waitForSelector('#security-form:not([hidden])');
}

async function switchToPublicKey(page, pem) {
  await page.check('[data-testid="security-method-publicKey"]');
  await page.fill('[data-testid="security-public-key"]', pem);
  await page.click('[data-testid="security-save"]');
  await page.waitForSelector('[data-testid="rollover-confirm"]:not([hidden])');
}

const securityPath = () => `/api/v1/sites/${messenger.siteId}/messengers/${messenger.messengerId}`;

test('a switch with a 1-hour rollover keeps the old shared token working; a switch with it off ends that', async () => {
  const { context, page } = await newPage(browser);
  const errors = pageErrors(page);
  try {
    await openSecurityTab(page, server, messenger.messengerId);
    assert.equal(await page.isHidden('[data-testid="rollover-running"]'), true);

    // The warning comes before anything is saved, and says what stops working and when.
    await switchToPublicKey(page, publicPem());
    const off = await page.textContent('[data-testid="rollover-warning"]');
    assert.match(off, /Pages that sign Contact JWTs with the current shared token will be refused as soon as you save\./);
    assert.equal(await page.getAttribute('[data-testid="rollover-warning"]', 'role'), 'alert');
    assert.equal((await api(server, 'GET', securityPath())).security.validation.method, 'sharedToken');
    await page.check('[data-testid="rollover-1h"]');
    const warned = await page.textContent('[data-testid="rollover-warning"]');
    assert.match(warned, /will be refused from .+\./);
    const warnedAt = Date.parse(await page.getAttribute('[data-testid="rollover-warning"] time', 'datetime'));
    assert.ok(Math.abs(warnedAt - (Date.now() + 3600_000)) < 60_000, `the warning names ${new Date(warnedAt).toISOString()}`);
    await page.click('[data-testid="rollover-save"]');

    // The tab shows the running rollover with its end, as the server keeps it.
    await page.waitForSelector('[data-testid="rollover-running"]:not([hidden])');
    assert.match(await page.textContent('[data-testid="rollover-running-text"]'), /previous shared token are still accepted until/);
    const shownEnd = Date.parse(await page.getAttribute('[data-testid="rollover-running"] time', 'datetime'));
    const saved = (await api(server, 'GET', securityPath())).security;
    assert.equal(saved.validation.method, 'publicKey');
    assert.equal(saved.previousValidation.method, 'sharedToken');
    assert.equal(shownEnd, Date.parse(saved.previousValidation.until));
    // Still there after a reload.
    await reloadSecurityTab(page);
    await page.waitForSelector('[data-testid="rollover-running"]:not([hidden])');

    // The page that signs with the old shared token shows the messenger; a message round-trips.
    const { context: customer, page: portal } = await newPage(browser);
    try {
      await portal.goto(`${business.origin}/portal?who=olive`);
      const frame = await openMessenger(portal);
      const question = `Still signing with the old token ${Date.now()}`;
      await frameSend(frame, question);
      const conversation = await waitFor(() => findConversation(server, { siteId: messenger.siteId, identity: 'olive@customer.test' }), { what: 'the conversation' });
      const reply = `Your message arrived ${Date.now()}`;
      await agentSend(server, { siteId: messenger.siteId, conversationId: conversation.conversationId, body: reply });
      await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(reply)}`, { timeout: 15000 });
    } finally {
      await customer.close();
    }

    // Another switch, rollover left off: the warning also says the running rollover ends.
    await switchToPublicKey(page, publicPem());
    assert.equal(await page.isChecked('[data-testid="rollover-off"]'), true);
    assert.match(await page.textContent('[data-testid="rollover-warning"]'), /The rollover running now ends/);
    await page.click('[data-testid="rollover-save"]');
    await page.waitForSelector('[data-testid="rollover-confirm"]', { state: 'hidden' });
    await page.waitForSelector('[data-testid="rollover-running"]', { state: 'hidden' });
    assert.equal((await api(server, 'GET', securityPath())).security.previousValidation, null);

    // The same page's old token is refused now, with the contract's code.
    const { context: later, page: refused } = await newPage(browser);
    try {
      await refused.goto(`${business.origin}/portal?who=olive`);
      const err = await waitFor(
        () => refused.evaluate(() => window.__confidant.events.find((e) => e.name === 'error')),
        { what: 'an error event from the loader' },
      );
      assert.equal(err.payload.code, 'algorithm_not_allowed');
    } finally {
      await later.close();
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('cancel leaves the settings as they were; an unchanged key saves without the warning', async () => {
  const { context, page } = await newPage(browser);
  try {
    await openSecurityTab(page, server, messenger.messengerId);
    const before = (await api(server, 'GET', securityPath())).security;
    await switchToPublicKey(page, publicPem());
    await page.click('[data-testid="rollover-cancel"]');
    await page.waitForSelector('[data-testid="rollover-confirm"]', { state: 'hidden' });
    assert.deepEqual((await api(server, 'GET', securityPath())).security.validation, before.validation);

    // Reload the saved settings and change only the clock skew: saved at once, no warning.
    await reloadSecurityTab(page);
    await page.fill('[data-testid="security-clock-skew"]', '30');
    await page.click('[data-testid="security-save"]');
    await page.waitForSelector('[data-testid="security-status"] >> text=Saved.');
    assert.equal(await page.isHidden('[data-testid="rollover-confirm"]'), true);
    const after = (await api(server, 'GET', securityPath())).security;
    assert.equal(after.clockSkewSeconds, 30);
    assert.deepEqual(after.validation, before.validation);
  } finally {
    await context.close();
  }
});
