// The admin pages' Contacts section (CONTRACT §14): an admin finds a customer, exports its data
// (a JSON download), and erases it through the dialog that asks for the identity to be typed.
// The customer's messenger, open in another browser, is refused at once (its socket closes with
// 4401 and the frame says the session ended); nothing of it is left to find.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  startServer, stopServer, removeDir, createSite, createMessenger, createAgent, signContactJwt, startBusinessServer,
  sendHtml, businessPage, launchBrowser, newPage, openMessenger, frameSend, api, apiCall, waitFor, pageErrors,
  cspViolations,
} from './lib/harness.mjs';

const IDENTITY = 'erin.erase@customer.test';

let server;
let business;
let messenger;
let site;
let admin;
let browser;

before(async () => {
  server = await startServer({ mode: 'serve' });
  business = await startBusinessServer();
  site = await createSite(server, 'Erasure clinic');
  messenger = await createMessenger(server, { siteId: site.siteId, name: 'Clinic desk', allowedUrls: [business.origin] });
  admin = await createAgent(server, { siteId: site.siteId, role: 'admin', name: 'Ada Admin' });
  // The business's backend trades the Contact JWT for an access token; the page gets only that.
  const jwt = signContactJwt(messenger.sharedToken, { sub: IDENTITY, 'comm100.name': 'Erin Erase', 'comm100.email': 'erin@mail.test' });
  const authorized = await api(server, 'POST', '/securemessage/authorize', {
    siteId: site.siteId, messengerId: messenger.messengerId, contactJwt: jwt,
  }, { token: null });
  business.routes = {
    '/portal': (req, res) =>
      sendHtml(res, businessPage({
        serverUrl: server.url,
        siteId: messenger.siteId,
        messengerId: messenger.messengerId,
        accessToken: authorized.accessToken,
        title: 'Patient portal',
      })),
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

test('an admin exports and erases a contact; its open messenger is refused at once', async () => {
  const customer = await newPage(browser);
  const desk = await newPage(browser);
  try {
    // The customer writes from the portal.
    await customer.page.goto(`${business.origin}/portal`);
    const frame = await openMessenger(customer.page);
    await frameSend(frame, 'My lab results, please');

    // The admin signs in and finds the customer.
    const { page } = desk;
    await page.goto(`${server.url}/admin/?siteId=${site.siteId}`);
    await page.waitForSelector('#login-email', { state: 'visible' });
    await page.fill('#login-site', String(site.siteId));
    await page.fill('#login-email', admin.email);
    await page.fill('#login-password', admin.password);
    await page.click('#login-submit');
    await page.waitForSelector('#app:not([hidden])');
    await page.click('[data-testid="nav-contacts"]');
    await page.waitForSelector('#contacts-section:not([hidden])');
    await page.waitForSelector('[data-testid="retention-policy"]:has-text("no retention period")');
    // The run-now button is the operator's.
    assert.equal(await page.isHidden('[data-testid="retention-run"]'), true);
    await page.fill('[data-testid="contact-query"]', 'erin');
    await page.click('[data-testid="contact-search"]');
    await page.waitForSelector('[data-testid="contact-item"]');
    assert.equal(await page.locator('[data-testid="contact-item"]').count(), 1);
    await page.waitForSelector(`[data-testid="contact-identity"]:has-text("${IDENTITY}")`);
    const contactId = (await page.textContent('[data-testid="contact-id"]')).trim();
    assert.match(await page.textContent('[data-testid="contact-attributes"]'), /Erin Erase/);

    // Export: a JSON download with the message in clear.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('[data-testid="contact-export"]'),
    ]);
    assert.equal(download.suggestedFilename(), `contact-${contactId}.json`);
    const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
    assert.equal(exported.contact.identity, IDENTITY);
    assert.equal(exported.conversations.length, 1);
    assert.equal(exported.conversations[0].messages[0].body, 'My lab results, please');
    await page.waitForSelector('[data-testid="contact-status"]:has-text("Exported: 1 conversation")');

    // Erase: the button waits for the identity typed exactly.
    await page.click('[data-testid="contact-erase"]');
    await page.waitForSelector('[data-testid="erase-dialog"][open]');
    assert.match(await page.textContent('[data-testid="erase-dialog"]'), /all of its conversations/);
    assert.equal(await page.isDisabled('[data-testid="erase-confirm"]'), true);
    await page.fill('[data-testid="erase-confirm-input"]', IDENTITY.toUpperCase());
    assert.equal(await page.isDisabled('[data-testid="erase-confirm"]'), true);
    await page.fill('[data-testid="erase-confirm-input"]', IDENTITY);
    assert.equal(await page.isDisabled('[data-testid="erase-confirm"]'), false);
    await page.click('[data-testid="erase-confirm"]');
    await page.waitForSelector('[data-testid="contact-erased"]:not([hidden])');
    assert.equal(await page.isHidden('[data-testid="erase-dialog"]'), true);
    assert.equal(await page.locator('[data-testid="contact-item"]').count(), 0);

    // The customer's messenger is refused: the frame says the session ended.
    await frame.waitForSelector('[data-testid="error"]:not([hidden])', { timeout: 10000 });
    assert.match(await frame.textContent('[data-testid="error"]'), /session expired/i);

    // Nothing of the customer is left to find; the audit log names the contact id only.
    await page.fill('[data-testid="contact-query"]', 'erin');
    await page.click('[data-testid="contact-search"]');
    await page.waitForSelector('#contacts-empty:not([hidden])');
    const found = await api(server, 'GET', `/api/v1/sites/${site.siteId}/contacts?query=erin`);
    assert.deepEqual(found.contacts, []);
    const gone = await apiCall(server, 'GET', `/api/v1/sites/${site.siteId}/contacts/${contactId}`);
    assert.equal(gone.status, 404);
    const audit = await api(server, 'GET', `/api/v1/sites/${site.siteId}/audit`);
    const erased = audit.entries.filter((e) => e.action === 'contact.erased');
    assert.equal(erased.length, 1);
    assert.deepEqual(erased[0].target, { contactId });
    await waitFor(async () => (await apiCall(server, 'GET', `/api/v1/sites/${site.siteId}/conversations?status=open`)).body.conversations.length === 0, {
      what: 'no conversation left',
    });

    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
  } finally {
    await customer.context.close();
    await desk.context.close();
  }
});
