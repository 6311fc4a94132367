// The agent workflow in the console (CONTRACT §16): an admin assigns a conversation to another
// agent and it appears live in that agent's "Mine" list, with its assignee label and unread
// badge (and the total in the title bar) moving without a reload; a canned reply is inserted
// by typing "/" and its shortcut, then sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, freshDataDir, freePort, pageErrors,
  api, createSite, createMessenger, createAgent, signContactJwt, consoleLogin, adminLogin, waitFor,
} from './lib/harness.mjs';

let server;
let browser;
let dataDir;
let siteId;
let messenger;
let contactToken;
let conversationId;

const HOURS = 'We are open 9:00–17:00, Monday to Friday.';

/** The contact writes through the API (its page is not what this file tests). */
async function contactSend(body) {
  const m = await api(server, 'POST', '/api/v1/messenger/messages', { clientMessageId: randomUUID(), body }, { token: contactToken });
  return m;
}

before(async () => {
  dataDir = freshDataDir();
  server = await startServer({ mode: 'serve', port: await freePort(), dataDir, args: ['--rate-limits', 'off'] });
  siteId = (await createSite(server, 'Workflow')).siteId;
  messenger = await createMessenger(server, { siteId });
  const auth = await api(server, 'POST', '/securemessage/authorize', {
    siteId,
    messengerId: messenger.messengerId,
    contactJwt: signContactJwt(messenger.sharedToken, { sub: 'mark@example.test', 'comm100.name': 'Mark Tylor' }),
  }, { token: null });
  contactToken = auth.accessToken;
  conversationId = (await contactSend('Hello, I need help with my order')).conversationId;
  await api(server, 'POST', `/api/v1/sites/${siteId}/canned-replies`, { shortcut: 'hours', title: 'Opening hours', body: HOURS });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  removeDir(dataDir);
});

test('an assignment by an admin shows live in the other agent\'s Mine list, with badge and title', async () => {
  const admin = await createAgent(server, { siteId, role: 'admin', name: 'Ada Admin' });
  const bob = await createAgent(server, { siteId, role: 'agent', name: 'Bob Agent' });
  const a = await newPage(browser);
  const b = await newPage(browser);
  const errors = [...[a.page, b.page].map(pageErrors)];
  try {
    await consoleLogin(a.page, server, { siteId, email: admin.email, password: admin.password });
    await consoleLogin(b.page, server, { siteId, email: bob.email, password: bob.password });
    const item = `[data-testid="conversation-item"][data-conversation-id="${conversationId}"]`;

    // Bob looks at his own conversations: none yet.
    await b.page.click('[data-testid="filter-mine"]');
    await b.page.waitForSelector('#inbox-empty:not([hidden])');
    assert.equal(await b.page.locator(item).count(), 0);

    // The admin opens the conversation and assigns it to Bob.
    await a.page.click(item);
    await a.page.waitForSelector('[data-testid="assign-to"]:not([hidden]) option:has-text("Bob Agent")', { state: 'attached' });
    await a.page.selectOption('[data-testid="assign-to"]', { label: 'Bob Agent' });
    await a.page.waitForSelector('[data-testid="assignee"]:has-text("Bob Agent")');
    await a.page.waitForSelector(`${item} [data-testid="assignee-label"]:has-text("Bob Agent")`);

    // Bob's Mine list shows it, live, with its label. The admin read it (the agents share one
    // read marker), so nothing is unread.
    await b.page.waitForSelector(`${item} [data-testid="assignee-label"]:has-text("Me")`, { timeout: 10000 });
    assert.equal(await b.page.locator(`${item} [data-testid="unread-count"]`).count(), 0);
    // The admin leaves (an open conversation on screen is read at once).
    await a.page.goto('about:blank');

    // The customer writes again: the badge and the title move, without a reload.
    await contactSend('Are you there?');
    await b.page.waitForSelector(`${item} [data-testid="unread-count"]:has-text("1")`);
    await waitFor(async () => (await b.page.title()).startsWith('(1) '), { what: 'the unread total in the title' });
    await contactSend('Hello?');
    await b.page.waitForSelector(`${item} [data-testid="unread-count"]:has-text("2")`);
    await waitFor(async () => (await b.page.title()).startsWith('(2) '), { what: 'the title to count 2' });

    // Bob reads it: the badge goes, the title loses its count.
    await b.page.click(item);
    await b.page.waitForSelector(`${item} [data-testid="unread-count"]`, { state: 'detached' });
    await waitFor(async () => !(await b.page.title()).startsWith('('), { what: 'the title without a count' });
    assert.match(await b.page.textContent('[data-testid="assignee"]'), /Me/);

    // The contact panel lists the customer's conversation.
    await b.page.waitForSelector(`[data-testid="contact-panel"]:not([hidden]) [data-testid="history-item"][data-conversation-id="${conversationId}"]`);

    // The admin unassigns it (through the API this time): it leaves Bob's Mine list, live.
    const adminToken = (await api(server, 'POST', '/api/v1/auth/login', { siteId, email: admin.email, password: admin.password }, { token: null })).token;
    await api(server, 'POST', `/api/v1/sites/${siteId}/conversations/${conversationId}/assign`, { agentId: null }, { token: adminToken });
    await b.page.waitForSelector('[data-testid="assignee"]:has-text("Nobody")');
    await b.page.waitForSelector(item, { state: 'detached' });
    assert.deepEqual(errors.flat(), []);
  } finally {
    await a.context.close();
    await b.context.close();
  }
});

test('typing "/" and a shortcut inserts a canned reply, Esc closes the list', async () => {
  const carol = await createAgent(server, { siteId, role: 'agent', name: 'Carol Agent' });
  const { context, page } = await newPage(browser);
  const errors = pageErrors(page);
  try {
    await consoleLogin(page, server, { siteId, email: carol.email, password: carol.password });
    await page.click(`[data-testid="conversation-item"][data-conversation-id="${conversationId}"]`);
    await page.waitForSelector('[data-testid="reply"]:visible');

    // Esc closes the list and leaves the text as typed.
    await page.click('[data-testid="reply"]');
    await page.keyboard.type('/h');
    await page.waitForSelector('[data-testid="canned-list"]:not([hidden]) [data-testid="canned-item"][data-shortcut="hours"]');
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid="canned-list"]', { state: 'hidden' });
    assert.equal(await page.inputValue('[data-testid="reply"]'), '/h');
    await page.fill('[data-testid="reply"]', '');

    // Typing filters; Enter inserts the body in place of "/hours" (and does not send).
    await page.keyboard.type('Hi Mark! /hou');
    await page.waitForSelector('[data-testid="canned-list"]:not([hidden]) [data-testid="canned-item"][aria-selected="true"][data-shortcut="hours"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="canned-list"]', { state: 'hidden' });
    assert.equal(await page.inputValue('[data-testid="reply"]'), `Hi Mark! ${HOURS}`);

    // The keyboard shortcut opens the list at the caret too; Tab inserts.
    await page.fill('[data-testid="reply"]', '');
    await page.keyboard.press('Control+/');
    await page.waitForSelector('[data-testid="canned-list"]:not([hidden]) [data-testid="canned-item"]');
    await page.keyboard.press('Tab');
    assert.equal(await page.inputValue('[data-testid="reply"]'), HOURS);

    // Enter now sends it (confirmed: the pending item shows the text before the server has it).
    await page.keyboard.press('Enter');
    await page.waitForSelector(`#messages li[data-sender-type="agent"][data-state="sent"]:has-text("Monday to Friday")`);
    const stored = await api(server, 'GET', `/api/v1/sites/${siteId}/conversations/${conversationId}/messages`);
    assert.equal(stored.messages.at(-1).body, HOURS);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('an admin adds and deletes canned replies in the admin pages', async () => {
  const admin = await createAgent(server, { siteId, role: 'admin', name: 'Ada Admin' });
  const { context, page } = await newPage(browser);
  page.on('dialog', (d) => d.accept());
  const errors = pageErrors(page);
  try {
    await adminLogin(page, server, { siteId, email: admin.email, password: admin.password });
    await page.click('[data-testid="nav-canned"]');
    await page.waitForSelector('[data-testid="canned-row"][data-shortcut="hours"]');
    // Every bad field at once, in the server's words, beside each field.
    await page.fill('[data-testid="canned-shortcut"]', 'Refund Policy');
    await page.click('[data-testid="canned-create"]');
    await page.waitForSelector('[data-testid="field-error"][data-field="body"]');
    const marked = await page.$$eval('[data-testid="field-error"]', (els) => els.map((e) => e.dataset.field));
    assert.deepEqual(marked, ['shortcut', 'title', 'body']);

    await page.fill('[data-testid="canned-shortcut"]', 'refund');
    await page.waitForSelector('[data-testid="field-error"][data-field="shortcut"]', { state: 'detached' });
    await page.fill('[data-testid="canned-title"]', 'Refunds');
    await page.fill('[data-testid="canned-body"]', 'Refunds take 5 working days.');
    await page.click('[data-testid="canned-create"]');
    await page.waitForSelector('[data-testid="canned-row"][data-shortcut="refund"]');

    // A shortcut taken: the server's 409 is explained.
    await page.fill('[data-testid="canned-shortcut"]', 'refund');
    await page.fill('[data-testid="canned-title"]', 'Again');
    await page.fill('[data-testid="canned-body"]', 'x');
    await page.click('[data-testid="canned-create"]');
    await page.waitForSelector('[data-testid="field-error"][data-field="shortcut"]:has-text("Another canned reply already has this shortcut.")');

    await page.click('[data-testid="canned-row"][data-shortcut="refund"] [data-testid="canned-delete"]');
    await page.waitForSelector('[data-testid="canned-row"][data-shortcut="refund"]', { state: 'detached' });
    const left = await api(server, 'GET', `/api/v1/sites/${siteId}/canned-replies`);
    assert.deepEqual(left.cannedReplies.map((c) => c.shortcut), ['hours']);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
