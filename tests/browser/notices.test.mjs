// Offline notices (CONTRACT §10): an agent's reply to a customer who has left the page produces
// exactly one email at a real SMTP server (the harness's tiny one), with no message content in
// it, and the agent console shows "customer notified by email at …", live and after a reload.
// The admin Notifications tab shows the settings, sends a test email, and marks every bad field
// at once (each error gone as soon as its field is fixed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, removeDir, createMessenger, createAgent, startBusinessServer, embedRoute,
  launchBrowser, newPage, openMessenger, frameSend, consoleLogin, adminLogin, pageErrors, api, waitFor, sleep,
  startSmtpSink, smtpArgs,
} from './lib/harness.mjs';

const AGENT_NAME = 'Quentin Quill';
const CUSTOMER_NAME = 'Alice Uniquename';
const CUSTOMER_EMAIL = 'alice.notices@customer.test';

/** Everything a reader of the mail could see: the raw text and its decoded text parts. */
function readable(raw) {
  const decoded = [];
  for (const m of raw.matchAll(/Content-Transfer-Encoding: (base64|quoted-printable)\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*?)(?:\r\n--|$)/gi)) {
    const body = m[2];
    if (m[1].toLowerCase() === 'base64') decoded.push(Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8'));
    else decoded.push(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16))));
  }
  return `${raw}\n${decoded.join('\n')}`;
}

let sink;
let server;
let business;
let messenger;
let browser;

before(async () => {
  sink = await startSmtpSink();
  server = await startServer({ mode: 'serve', args: smtpArgs(sink.port) });
  await api(server, 'POST', '/api/v1/sites', { name: 'Acme Clinic' });
  business = await startBusinessServer({});
  messenger = await createMessenger(server, { name: 'Clinic support', allowedUrls: [`${business.origin}/portal/`] });
  business.routes = {
    '/portal/': embedRoute(server, messenger, {
      claims: { sub: 'alice', 'comm100.name': CUSTOMER_NAME, 'comm100.email': CUSTOMER_EMAIL, 'comm100.phone': '+1-555-0199' },
      title: 'Clinic portal',
    }),
  };
  await api(server, 'PUT', `/api/v1/sites/10000/messengers/${messenger.messengerId}/notifications`, {
    email: { enabled: true, afterSeconds: 1, linkUrl: `${business.origin}/portal/`, subject: 'A secure message waits' },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  await sink?.close();
  if (server) removeDir(server.dataDir);
});

test('a reply to a customer who left is announced by exactly one email, and the console shows it', async () => {
  const agent = await createAgent(server, { name: AGENT_NAME });
  const customer = await newPage(browser);
  const { context: agentContext, page: consolePage } = await newPage(browser);
  try {
    await customer.page.goto(`${business.origin}/portal/`);
    const frame = await openMessenger(customer.page);
    await frameSend(frame, 'Are my results in?');
    // The customer leaves: the page, and so its socket, goes away.
    await customer.context.close();

    await consoleLogin(consolePage, server, { email: agent.email, password: agent.password });
    const item = consolePage.locator('[data-testid="conversation-item"]', { hasText: CUSTOMER_NAME });
    await item.waitFor({ timeout: 15000 });
    await item.click();
    assert.equal(await consolePage.isVisible('[data-testid="notified-tag"]'), false);
    const reply = `Your biopsy result is benign ${Date.now()}`;
    await consolePage.fill('#reply', reply);
    await consolePage.press('#reply', 'Enter');
    await consolePage.waitForSelector(`#messages li[data-state="sent"][data-sender-type="agent"] >> text=${JSON.stringify(reply)}`);

    await waitFor(() => sink.mails.length >= 1, { timeout: 20000, what: 'the notice email' });
    const mail = sink.mails[0];
    assert.deepEqual(mail.to, [CUSTOMER_EMAIL]);
    assert.match(mail.raw, /^Subject: A secure message waits$/m);
    assert.match(mail.raw, /^Auto-Submitted: auto-generated$/m);
    const text = readable(mail.raw);
    assert.ok(text.includes(`${business.origin}/portal/`), 'the link is in the email');
    for (const secret of [reply, 'biopsy', AGENT_NAME, 'Quentin', CUSTOMER_NAME, '555-0199', 'Are my results in']) {
      assert.ok(!text.includes(secret), `the email holds ${JSON.stringify(secret)}`);
    }

    // Live in the open conversation's header...
    const tag = consolePage.locator('[data-testid="notified-tag"]');
    await tag.waitFor({ state: 'visible', timeout: 15000 });
    assert.match(await tag.textContent(), /Customer notified by email at /);
    // ...and after a reload.
    await consolePage.reload();
    await consolePage.waitForSelector('#live-state[data-state="connected"]', { timeout: 15000 });
    await consolePage.locator('[data-testid="conversation-item"]', { hasText: CUSTOMER_NAME }).click();
    await consolePage.locator('[data-testid="notified-tag"]').waitFor({ state: 'visible', timeout: 15000 });

    // Exactly one: a second reply before the customer reads sends nothing more.
    await consolePage.fill('#reply', 'One more thing');
    await consolePage.press('#reply', 'Enter');
    await sleep(3000);
    assert.equal(sink.mails.length, 1);
    assert.deepEqual(pageErrors(consolePage), []);
  } finally {
    await agentContext.close();
  }
});

test('the admin Notifications tab shows the settings and sends a test email', async () => {
  const admin = await createAgent(server, { role: 'admin', name: 'Site Admin' });
  const { context, page } = await newPage(browser);
  try {
    await adminLogin(page, server, { siteId: 10000, email: admin.email, password: admin.password });
    await page.locator('[data-testid="messenger-item"]', { hasText: 'Clinic support' }).click();
    await page.click('[data-testid="tab-notifications"]');
    await waitFor(async () => (await page.inputValue('[data-testid="notifications-link"]')) === `${business.origin}/portal/`, { what: 'the link URL in the form' });
    assert.equal(await page.isChecked('[data-testid="notifications-enabled"]'), true);
    assert.equal(await page.inputValue('[data-testid="notifications-after"]'), '1');
    const before = sink.mails.length;
    await page.fill('[data-testid="notifications-test-to"]', 'admin.test@clinic.test');
    await page.click('[data-testid="notifications-test-send"]');
    await waitFor(async () => /Sent to/.test(await page.textContent('[data-testid="notifications-test-status"]')), { what: 'the test result' });
    await waitFor(() => sink.mails.length > before, { what: 'the test email' });
    assert.deepEqual(sink.mails.at(-1).to, ['admin.test@clinic.test']);
    assert.match(sink.mails.at(-1).raw, /^Subject: \[Test\] A secure message waits$/m);

    // Two bad fields: the server names both, and each stands beside its field at once.
    await page.fill('[data-testid="notifications-after"]', '1.5');
    await page.fill('[data-testid="notifications-link"]', 'portal/messages');
    await page.click('[data-testid="notifications-save"]');
    const error = (field) => page.locator(`[data-testid="field-error"][data-field="${field}"]`);
    await error('email.linkUrl').waitFor();
    assert.equal(await page.locator('[data-testid="field-error"]').count(), 2);
    assert.equal(await error('email.afterSeconds').textContent(), 'must be a whole number of seconds from 0 to 86400');
    assert.equal(await error('email.linkUrl').textContent(), '“portal/messages” is not a web address: it needs https:// and a host');
    assert.equal(await page.getAttribute('[data-testid="notifications-link"]', 'aria-invalid'), 'true');
    assert.match(await page.textContent('[data-testid="notifications-error"]'), /Please correct the fields marked below/);
    // Fixing the link takes its error away, and only its error.
    await page.fill('[data-testid="notifications-link"]', `${business.origin}/portal/`);
    await error('email.linkUrl').waitFor({ state: 'detached' });
    assert.equal(await page.getAttribute('[data-testid="notifications-link"]', 'aria-invalid'), null);
    assert.equal(await error('email.afterSeconds').count(), 1);
    assert.equal(await page.getAttribute('[data-testid="notifications-after"]', 'aria-invalid'), 'true');
    assert.equal(await page.isVisible('[data-testid="notifications-error"]'), true);
    // The last one fixed, the notice goes too, and the save goes through.
    await page.fill('[data-testid="notifications-after"]', '2');
    await error('email.afterSeconds').waitFor({ state: 'detached' });
    assert.equal(await page.isHidden('[data-testid="notifications-error"]'), true);
    await page.click('[data-testid="notifications-save"]');
    await waitFor(async () => (await page.textContent('[data-testid="notifications-status"]')) === 'Saved.', { what: 'Saved.' });
    const saved = await api(server, 'GET', `/api/v1/sites/10000/messengers/${messenger.messengerId}/notifications`);
    assert.equal(saved.email.afterSeconds, 2);
    assert.deepEqual(pageErrors(page), []);
  } finally {
    await context.close();
  }
});
