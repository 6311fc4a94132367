// The messenger frame for customers: the whole history across a closed conversation (older
// above a divider, loaded as the customer scrolls up), the messenger's look and its away
// message outside business hours (and none inside), links in messages (https a link with
// rel="noopener noreferrer", javascript: plain text), the signed-in account, and on a phone the
// full-screen panel as a modal dialog (Tab stays inside, Esc closes, focus back on the launcher).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  startServer, stopServer, removeDir, createMessenger, startBusinessServer, embedRoute, launchBrowser, newPage,
  openMessenger, messengerFrame, frameMessages, pageErrors, cspViolations, waitFor, api, agentSend, signContactJwt,
  freePort, createAgent, adminLogin, smtpArgs, FRAME,
} from './lib/harness.mjs';

const ALWAYS = Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'].map((d) => [d, [['00:00', '24:00']]]));

let server;
let business;
let messenger; // hours set per test through the API
let browser;

before(async () => {
  // A mail server address is configured (nothing needs to answer: no reply stays unread long
  // enough here), so that offline notices can be on.
  const smtpPort = await freePort();
  server = await startServer({ mode: 'demo', args: ['--rate-limits', 'off', ...smtpArgs(smtpPort)] });
  business = await startBusinessServer({});
  messenger = await createMessenger(server, { name: 'Frame support', allowedUrls: [`${business.origin}/`] });
  const claims = (url) => {
    const who = url.searchParams.get('who') || 'alice';
    const c = { sub: `${who}@customer.test`, 'comm100.name': url.searchParams.get('name') || `${who[0].toUpperCase()}${who.slice(1)} Customer` };
    if (url.searchParams.get('email') !== 'none') c['comm100.email'] = `${who}.mail@customer.test`;
    return c;
  };
  business.routes = { '/portal': embedRoute(server, messenger, { claims, title: 'Portal' }) };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

const appearancePath = () => `/api/v1/sites/${messenger.siteId}/messengers/${messenger.messengerId}/appearance`;

/** A contact's access token, from the API (as the business's backend would get it). */
async function contactToken(who) {
  const jwt = signContactJwt(messenger.sharedToken, { sub: `${who}@customer.test` });
  const data = await api(server, 'POST', '/securemessage/authorize', { siteId: messenger.siteId, messengerId: messenger.messengerId, contactJwt: jwt }, { token: null });
  return data.accessToken;
}

async function contactSend(token, body) {
  return api(server, 'POST', '/api/v1/messenger/messages', { clientMessageId: randomUUID(), body }, { token });
}

function pageErrorsAndCsp(page) {
  assert.deepEqual(pageErrors(page), []);
  assert.deepEqual(cspViolations(page), []);
}

test('the whole history: an earlier closed conversation above its divider, loaded on scrolling up', async () => {
  const token = await contactToken('hist');
  const first = await contactSend(token, 'My first question, from last time');
  const answer = await agentSend(server, { conversationId: first.conversationId, body: 'The answer to your first question' });
  // The customer read the answer then (an unread one would be shown at once).
  await api(server, 'POST', `/api/v1/messenger/conversations/${first.conversationId}/read`, { seq: answer.seq }, { token });
  await api(server, 'POST', `/api/v1/sites/${messenger.siteId}/conversations/${first.conversationId}/close`, {});
  // Writing again opens a new conversation; it gets long enough to fill the panel twice over.
  const second = await contactSend(token, 'A second question, after it was closed');
  assert.notEqual(second.conversationId, first.conversationId);
  for (let i = 1; i <= 60; i++) await agentSend(server, { conversationId: second.conversationId, body: `Reply number ${i}` });

  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/portal?who=hist`);
    const frame = await openMessenger(page);
    await waitFor(async () => (await frameMessages(frame)).some((m) => m.body === 'Reply number 60'), { what: 'the newest reply' });
    let shown = await frameMessages(frame);
    // The newest page only: neither the first conversation nor the start of this one yet.
    assert.ok(!shown.some((m) => m.body.includes('first question')), `older messages wait for scrolling up: ${shown.map((m) => `${m.seq}:${m.body}`).join(' | ')}`);
    assert.ok(!shown.some((m) => m.body === 'A second question, after it was closed'));
    assert.equal(await frame.locator('[data-testid="load-older"]').isVisible(), true);

    // Scroll up (again as each page arrives) until the first conversation is there.
    await waitFor(
      async () => {
        await frame.evaluate(() => {
          document.querySelector('.frame-body').scrollTop = 0;
        });
        const bodies = (await frameMessages(frame)).map((m) => m.body);
        return bodies.includes('My first question, from last time') && bodies.includes('The answer to your first question');
      },
      { what: 'the first conversation after scrolling up', interval: 400 },
    );
    // In order: the first conversation, its divider, then the second conversation.
    const order = await frame.$$eval('#message-list > li', (items) =>
      items.map((li) => (li.dataset.testid === 'conversation-divider' ? `--${li.textContent}--` : (li.querySelector('.bubble') || li).textContent)),
    );
    const iQuestion = order.indexOf('My first question, from last time');
    const iAnswer = order.indexOf('The answer to your first question');
    const iDivider = order.findIndex((t) => /^--Conversation of .+, closed--$/.test(t));
    const iSecond = order.indexOf('A second question, after it was closed');
    assert.ok(iQuestion >= 0 && iQuestion < iAnswer && iAnswer < iDivider && iDivider < iSecond, order.join(' | '));
    assert.equal(order.indexOf('Reply number 60'), order.length - 1);
    assert.equal(await frame.locator('[data-testid="conversation-divider"]').count(), 1);
    // Everything is there once: 2 + a close notice (if any) + 61, no duplicates.
    shown = await frameMessages(frame);
    const ids = await frame.$$eval('#message-list li[data-testid="message"]', (items) => items.map((li) => li.dataset.messageId));
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(shown.filter((m) => m.body.startsWith('Reply number')).length === 60);
    await waitFor(async () => !(await frame.locator('[data-testid="load-older"]').isVisible()), { what: 'no more to load' });

    // Live messages, "Seen" and the unread count still work; a new send goes to the open one.
    const live = `Live after the history ${Date.now()}`;
    await agentSend(server, { conversationId: second.conversationId, body: live });
    await waitFor(async () => (await frameMessages(frame)).some((m) => m.body === live), { what: 'the live reply' });
    await frame.fill('#composer', 'And one more from me');
    await frame.press('#composer', 'Enter');
    await frame.waitForSelector('li[data-state="sent"][data-sender-type="contact"] >> text="And one more from me"');
    const conv = await api(server, 'GET', `/api/v1/sites/${messenger.siteId}/conversations/${second.conversationId}/messages?after=60&limit=10`);
    assert.ok(conv.messages.some((m) => m.body === 'And one more from me'));
    await api(server, 'POST', `/api/v1/sites/${messenger.siteId}/conversations/${second.conversationId}/read`, { seq: 1000 });
    await frame.waitForSelector('[data-testid="seen"]');
    pageErrorsAndCsp(page);
  } finally {
    await context.close();
  }
});

test('the look, and the away message outside business hours only', async () => {
  const notices = `/api/v1/sites/${messenger.siteId}/messengers/${messenger.messengerId}/notifications`;
  await api(server, 'PUT', notices, { email: { enabled: true, linkUrl: 'https://portal.example.com/messages' } });
  const away = 'We are closed right now. Leave us a message.';
  // No hours on any day: closed whatever the time of the test.
  await api(server, 'PUT', appearancePath(), {
    title: 'Acme care team',
    greeting: 'Hello! Ask us anything about your account.',
    color: '#0a7b4f',
    awayMessage: away,
    replyTime: 'within one business day',
    businessHours: { timeZone: 'Europe/Berlin', weekly: {} },
  });
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/portal?who=away`);
    await page.waitForSelector('[data-testid="confidant-launcher"]');
    const launcherColor = await page.$eval('[data-testid="confidant-launcher"]', (b) => getComputedStyle(b).backgroundColor);
    assert.equal(launcherColor, 'rgb(10, 123, 79)');
    const frame = await openMessenger(page);
    assert.equal(await frame.textContent('#frame-name'), 'Acme care team');
    assert.equal(await frame.$eval('.frame-header', (el) => getComputedStyle(el).backgroundColor), 'rgb(10, 123, 79)');
    await frame.waitForSelector('#frame-empty:not([hidden])');
    assert.equal(await frame.textContent('#frame-empty'), 'Hello! Ask us anything about your account.');
    await frame.waitForSelector('[data-testid="away"]:not([hidden])');
    assert.equal(await frame.textContent('[data-testid="away-message"]'), away);
    assert.equal(await frame.textContent('[data-testid="reply-time"]'), 'Expected reply: within one business day');
    // Offline notices are on and this customer has an email address.
    await frame.waitForSelector('[data-testid="email-notice"]:not([hidden])');
    assert.match(await frame.textContent('[data-testid="email-notice"]'), /email you when we reply/);
    pageErrorsAndCsp(page);
  } finally {
    await context.close();
  }

  // A customer without an email address is promised no email.
  const second = await newPage(browser);
  try {
    await second.page.goto(`${business.origin}/portal?who=noemail&email=none`);
    const frame = await openMessenger(second.page);
    await frame.waitForSelector('[data-testid="away"]:not([hidden])');
    await frame.waitForSelector('[data-testid="signed-in-as"]:not([hidden])');
    assert.equal(await frame.locator('[data-testid="email-notice"]').isVisible(), false);
  } finally {
    await second.context.close();
  }

  // Open around the clock: the same settings show no away message at all.
  await api(server, 'PUT', appearancePath(), {
    title: 'Acme care team',
    awayMessage: away,
    replyTime: 'within one business day',
    businessHours: { timeZone: 'Pacific/Auckland', weekly: ALWAYS },
  });
  const third = await newPage(browser);
  try {
    await third.page.goto(`${business.origin}/portal?who=inside`);
    const frame = await openMessenger(third.page);
    await frame.waitForSelector('#frame-empty:not([hidden])');
    assert.equal(await frame.locator('[data-testid="away"]').isVisible(), false);
    assert.equal(await frame.locator(`text=${away}`).count(), 0);
    assert.equal(await frame.locator('text=within one business day').count(), 0);
  } finally {
    await third.context.close();
    await api(server, 'PUT', appearancePath(), {});
    await api(server, 'PUT', notices, { email: { enabled: false } });
  }
});

test('links: https is a safe link that opens a new tab, javascript: stays text', async () => {
  const token = await contactToken('links');
  const sent = await contactSend(token, 'Where do I find my invoices?');
  const body = 'Try javascript:alert(document.domain) or <a href="javascript:alert(1)">this</a>, or see https://example.org/help?topic=invoices. Thanks!';
  await agentSend(server, { conversationId: sent.conversationId, body });
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/portal?who=links`);
    const frame = await openMessenger(page);
    const bubble = frame.locator('li[data-sender-type="agent"] .bubble', { hasText: 'Try javascript:' });
    await bubble.waitFor();
    // The text is exactly the message: no markup from it became elements.
    assert.equal(await bubble.textContent(), body);
    const links = await bubble.locator('a').evaluateAll((as) => as.map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent })));
    assert.deepEqual(links, [
      { href: 'https://example.org/help?topic=invoices', rel: 'noopener noreferrer', target: '_blank', text: 'https://example.org/help?topic=invoices' },
    ]);
    assert.equal(await frame.locator('a[href^="javascript:"]').count(), 0);
    // A click opens a new tab that cannot reach back to the messenger.
    const [popup] = await Promise.all([
      context.waitForEvent('page'),
      bubble.locator('a').click(),
    ]);
    assert.equal(await popup.evaluate(() => window.opener), null);
    await popup.close();
    pageErrorsAndCsp(page);
  } finally {
    await context.close();
  }
});

test('the panel says who is signed in', async () => {
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/portal?who=mark&name=${encodeURIComponent('Mark Tylor')}`);
    const frame = await openMessenger(page);
    await frame.waitForSelector('[data-testid="signed-in-as"]:not([hidden])');
    assert.equal(await frame.textContent('[data-testid="signed-in-as"]'), 'Signed in as Mark Tylor (mark.mail@customer.test)');
  } finally {
    await context.close();
  }
});

test('on a phone the full-screen panel is a modal dialog: Tab stays inside, Esc closes', async () => {
  const { context, page } = await newPage(browser, { viewport: { width: 375, height: 740 } });
  try {
    await page.goto(`${business.origin}/portal?who=phone`);
    const launcher = page.locator('[data-testid="confidant-launcher"]');
    await launcher.focus();
    await page.keyboard.press('Enter');
    const frame = await messengerFrame(page);
    await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]');
    await frame.waitForSelector('#composer:not([disabled])');
    const panel = page.locator('[role="dialog"]');
    assert.equal(await panel.getAttribute('aria-modal'), 'true');
    const box = await panel.boundingBox();
    assert.deepEqual([box.width, box.height], [375, 740]);
    // Focus went into the frame; thirty Tabs (and Shift+Tabs) never leave it.
    await waitFor(() => page.evaluate(() => document.activeElement && document.activeElement.tagName === 'IFRAME'), { what: 'focus in the frame' });
    const seen = new Set();
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press(i < 20 ? 'Tab' : 'Shift+Tab');
      assert.equal(await page.evaluate(() => document.activeElement.tagName), 'IFRAME', `Tab ${i + 1} left the dialog`);
      const inFrame = await frame.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName));
      assert.notEqual(inFrame, 'BODY', `Tab ${i + 1} lost focus inside the frame`);
      seen.add(inFrame);
    }
    assert.ok(seen.has('composer') && seen.has('frame-close'), [...seen].join(', '));
    // Esc closes and focus returns to the launcher, which is shown again.
    await page.keyboard.press('Escape');
    await waitFor(() => panel.evaluate((el) => el.style.display === 'none'), { what: 'the panel closed' });
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.dataset.testid), 'confidant-launcher');
    assert.equal(await launcher.isVisible(), true);
    assert.equal(await panel.getAttribute('aria-modal'), null);
    // On a wide screen the same panel is not modal.
    await page.setViewportSize({ width: 1280, height: 800 });
    await launcher.click();
    await messengerFrame(page);
    assert.equal(await panel.getAttribute('aria-modal'), null);
    assert.ok(await page.locator(FRAME).isVisible());
    pageErrorsAndCsp(page);
  } finally {
    await context.close();
  }
});

test('admin "Appearance & hours": errors beside their field, then saved and shown to customers', async () => {
  const admin = await createAgent(server, { role: 'admin', name: 'Ada Admin' });
  const { context, page } = await newPage(browser);
  try {
    await adminLogin(page, server, { siteId: 10000, email: admin.email, password: admin.password });
    await page.locator('[data-testid="messenger-item"]', { hasText: 'Frame support' }).click();
    await page.click('[data-testid="tab-appearance"]');
    await page.waitForSelector('[data-testid="appearance"]:not([hidden])');
    await waitFor(async () => (await page.textContent('[data-testid="appearance-status"]')) === '', { what: 'the settings loaded' });

    await page.fill('[data-testid="appearance-title"]', 'Night desk');
    await page.fill('[data-testid="appearance-away"]', 'The night desk is closed.');
    await page.fill('[data-testid="appearance-reply-time"]', 'by nine tomorrow');
    await page.check('[data-testid="appearance-hours-on"]');
    // An unknown zone, and Monday closing before it opens: both errors at once, each beside its field.
    await page.fill('[data-testid="appearance-zone"]', 'Europe/Atlantis');
    await page.fill('[data-testid="hours-mon-start"]', '17:00');
    await page.fill('[data-testid="hours-mon-end"]', '09:00');
    await page.click('[data-testid="appearance-save"]');
    const zoneError = page.locator('[data-field="businessHours.timeZone"][data-testid="field-error"]');
    const monError = page.locator('[data-field="businessHours.weekly.mon"][data-testid="field-error"]');
    await zoneError.waitFor();
    assert.match(await zoneError.textContent(), /"Europe\/Atlantis" is not a known time zone/);
    assert.equal(await page.getAttribute('[data-testid="appearance-zone"]', 'aria-invalid'), 'true');
    assert.match(await monError.textContent(), /hours 1: ends at 09:00 before it starts at 17:00/);
    assert.equal(await page.getAttribute('[data-testid="hours-mon-start"]', 'aria-invalid'), 'true');

    // Fixing the zone takes only its error away.
    await page.fill('[data-testid="appearance-zone"]', 'Asia/Tokyo');
    await zoneError.waitFor({ state: 'detached' });
    assert.equal(await monError.count(), 1);

    // No hours on any day (always closed), saved.
    for (const day of ['mon', 'tue', 'wed', 'thu', 'fri']) await page.click(`[data-testid="hours-${day}-remove"]`);
    await page.click('[data-testid="appearance-save"]');
    await waitFor(async () => (await page.textContent('[data-testid="appearance-status"]')) === 'Saved.', { what: 'Saved.' });
    const stored = await api(server, 'GET', appearancePath());
    assert.equal(stored.title, 'Night desk');
    assert.equal(stored.businessHours.timeZone, 'Asia/Tokyo');
    assert.deepEqual(stored.businessHours.weekly.mon, []);
    const log = await api(server, 'GET', '/api/v1/sites/10000/audit?limit=1000');
    const entry = log.entries.filter((e) => e.action === 'appearance.updated').pop();
    assert.equal(entry.actor.email, admin.email);

    // The customer's messenger shows it.
    const customer = await newPage(browser);
    try {
      await customer.page.goto(`${business.origin}/portal?who=night`);
      const frame = await openMessenger(customer.page);
      assert.equal(await frame.textContent('#frame-name'), 'Night desk');
      await frame.waitForSelector('[data-testid="away"]:not([hidden])');
      assert.equal(await frame.textContent('[data-testid="away-message"]'), 'The night desk is closed.');
      assert.equal(await frame.textContent('[data-testid="reply-time"]'), 'Expected reply: by nine tomorrow');
    } finally {
      await customer.context.close();
    }
    pageErrorsAndCsp(page);
  } finally {
    await context.close();
    await api(server, 'PUT', appearancePath(), {});
  }
});
