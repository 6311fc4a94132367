// Switching customers on one page (Confidant.shutdown() + init) must show the next customer
// nothing of the previous one: not their history, not their live events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  demoAndBrowser, newPage, messengerFrame, frameSend, frameMessages,
  findConversation, agentSend, waitFor, pageErrors, cspViolations, FRAME,
} from './lib/harness.mjs';

const demo = demoAndBrowser();

async function signIn(page, customer, route = 'jwt') {
  await page.selectOption('[data-testid="customer-select"]', customer);
  await page.click(`[data-testid="open-${route}"]`);
  await page.waitForSelector(`[data-testid="signed-in"]:has-text("Messenger running for")`);
  // demo.js calls Confidant.open(): the panel opens by itself once the messenger is built.
  const frame = await messengerFrame(page);
  await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]', { timeout: 15000 });
  await frame.waitForSelector('#frame-loading', { state: 'hidden' });
  return frame;
}

test('identity switch in the demo portal leaks nothing of the previous customer', async () => {
  const { server, browser } = demo;
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${server.url}/demo/`);
    await page.waitForSelector('[data-testid="customer-select"]:not([disabled])');

    // Customer A (Mark) writes, an agent answers.
    const frameA = await signIn(page, 'mark');
    const secretA = `Mark's private question ${Date.now()}`;
    await frameSend(frameA, secretA);
    const convA = await waitFor(() => findConversation(server, { identity: 'mark@healthify.test' }), { what: "Mark's conversation" });
    const replyA = `Private answer for Mark ${Date.now()}`;
    await agentSend(server, { conversationId: convA.conversationId, body: replyA });
    await frameA.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(replyA)}`);

    // Customer B (Ana) signs in on the same page: the portal calls shutdown() then init().
    const frameB = await signIn(page, 'ana');
    assert.equal(await page.locator(FRAME).count(), 1, 'only one messenger iframe on the page');
    assert.equal(await page.locator('[data-testid="confidant-launcher"]').count(), 1, 'only one launcher');
    assert.notEqual(frameB, frameA);
    assert.deepEqual(await frameMessages(frameB), [], "Ana's messenger starts empty");
    await frameB.waitForSelector('#frame-empty', { state: 'visible' });

    // A live reply to Mark after the switch must not reach Ana's frame or the page's events.
    const lateForMark = `Late note for Mark ${Date.now()}`;
    await agentSend(server, { conversationId: convA.conversationId, body: lateForMark });
    const mineB = `Ana writes ${Date.now()}`;
    await frameSend(frameB, mineB);
    const convB = await waitFor(() => findConversation(server, { identity: 'ana@healthify.test' }), { what: "Ana's conversation" });
    assert.notEqual(convB.conversationId, convA.conversationId);
    const replyB = `Answer for Ana ${Date.now()}`;
    await agentSend(server, { conversationId: convB.conversationId, body: replyB });
    await frameB.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(replyB)}`);

    const shownB = (await frameMessages(frameB)).map((m) => m.body);
    assert.deepEqual(shownB, [mineB, replyB]);
    const frameText = await frameB.textContent('body');
    for (const leaked of [secretA, replyA, lateForMark]) {
      assert.ok(!frameText.includes(leaked), `Ana's frame shows Mark's "${leaked}"`);
    }
    // The page's event log (Confidant.on('message')) only heard Ana's reply after the switch.
    const log = await page.textContent('[data-testid="event-log"]');
    assert.ok(!log.includes(lateForMark), 'the page heard a message of the previous customer');

    // Ana's own history really is hers: the server lists only her conversation for her token.
    const frameUrl = frameB.url();
    assert.ok(!/token|jwt/i.test(frameUrl), 'no token in the frame URL');
    const stored = await frameB.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
    assert.deepEqual(stored, [0, 0, ''], 'the frame keeps nothing in storage or cookies');

    // Logging out removes the messenger entirely.
    await page.click('[data-testid="logout-customer"]');
    await page.waitForSelector(FRAME, { state: 'detached' });
    assert.equal(await page.locator('[data-testid="confidant-launcher"]').count(), 0);
    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
  } finally {
    await context.close();
  }
});

test('the authorize route (page gets only an access token) switches customers cleanly too', async () => {
  const { server, browser } = demo;
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${server.url}/demo/`);
    await page.waitForSelector('[data-testid="customer-select"]:not([disabled])');
    const frameA = await signIn(page, 'li', 'authorize');
    const secret = `Li's note ${Date.now()}`;
    await frameSend(frameA, secret);

    const frameB = await signIn(page, 'ana', 'authorize');
    await waitFor(async () => (await frameMessages(frameB)).length > 0 || (await frameB.isVisible('#frame-empty')), {
      what: "Ana's history",
    });
    const bodies = (await frameMessages(frameB)).map((m) => m.body);
    assert.ok(!bodies.includes(secret), "Ana sees Li's message");
    assert.equal(await page.locator(FRAME).count(), 1);
  } finally {
    await context.close();
  }
});
