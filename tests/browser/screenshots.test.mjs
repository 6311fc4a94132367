// Screenshots for the docs (docs/screenshots/), taken from a real demo run at 1280x800:
// messenger.png (demo portal with a short conversation), console.png (agent console with the
// conversation open), security.png (the admin Security tab).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { statSync } from 'node:fs';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, messengerFrame, frameSend, consoleLogin,
  ensureScreenshotDir, pageErrors, cspViolations, waitFor,
} from './lib/harness.mjs';

let server;
let browser;
let dir;

before(async () => {
  server = await startServer({ mode: 'demo' });
  browser = await launchBrowser();
  dir = ensureScreenshotDir();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

async function shoot(page, name, { fullPage = false } = {}) {
  const file = path.join(dir, name);
  // No blinking caret or half-finished transition in the pictures.
  await page.screenshot({ path: file, caret: 'hide', animations: 'disabled', fullPage });
  const size = statSync(file).size;
  assert.ok(size > 10_000 && size < 1_500_000, `${name} is ${size} bytes`);
}

test('screenshots of the messenger, the console and the Security tab', async () => {
  const { context: portalContext, page: portal } = await newPage(browser);
  const { context: agentContext, page: agent } = await newPage(browser);
  try {
    // The customer opens the messenger on the demo portal and asks a question.
    await portal.goto(`${server.url}/demo/`);
    await portal.waitForSelector('[data-testid="customer-select"]:not([disabled])');
    await portal.selectOption('[data-testid="customer-select"]', 'mark');
    await portal.click('[data-testid="open-jwt"]');
    const frame = await messengerFrame(portal);
    await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]');
    const question = 'Hi, are my blood test results in yet? I would like to go through them before Friday.';
    await frameSend(frame, question);

    // The demo agent answers from the console.
    await consoleLogin(agent, server, { email: server.demo.email, password: server.demo.password });
    const item = agent.locator('[data-testid="conversation-item"]', { hasText: 'Mark Tylor' });
    await item.waitFor();
    await item.click();
    await agent.waitForSelector(`#messages li[data-sender-type="contact"] >> text=${JSON.stringify(question)}`);
    const answer = 'Hello Mark, yes, they arrived this morning and everything is within the normal range. Dr. Osei will walk you through them on Friday at 14:00.';
    await agent.fill('#reply', answer);
    await agent.press('#reply', 'Enter');
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(answer)}`);
    const thanks = 'Great, thank you! See you on Friday.';
    await frameSend(frame, thanks);
    await agent.waitForSelector(`#messages li[data-sender-type="contact"] >> text=${JSON.stringify(thanks)}`);
    // The customer has read the answer: the console shows "Seen" under it.
    await agent.waitForSelector('#messages [data-testid="seen"]');

    await portal.mouse.move(0, 0);
    await shoot(portal, 'messenger.png');

    await agent.locator('#reply').blur();
    await shoot(agent, 'console.png');

    // The admin pages: the demo messenger's Security tab.
    await agent.goto(`${server.url}/admin/?siteId=${server.demo.siteId}`);
    await agent.waitForSelector('#app:not([hidden])');
    await agent.waitForSelector(`[data-testid="messenger-item"][data-messenger-id="${server.demo.messengerId}"][aria-current="true"]`);
    await agent.click('[data-testid="tab-security"]');
    await waitFor(() => agent.inputValue('[data-testid="security-allowed-urls"]'), { what: 'the filled Security form' });
    assert.equal(await agent.inputValue('[data-testid="security-allowed-urls"]'), server.url);
    await agent.mouse.move(0, 0);
    await shoot(agent, 'security.png', { fullPage: true });

    assert.deepEqual(pageErrors(portal), []);
    assert.deepEqual(cspViolations(portal), []);
    assert.deepEqual(pageErrors(agent), []);
    assert.deepEqual(cspViolations(agent), []);
  } finally {
    await portalContext.close();
    await agentContext.close();
  }
});
