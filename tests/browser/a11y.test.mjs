// Accessibility: axe-core's rules (WCAG 2.x A and AA, and its best practices) run inside the
// demo portal, the messenger frame (desktop and phone), the agent console and the admin pages,
// each with real content on it (a conversation with messages both ways). No page may have a
// violation of any impact: serious and critical ones break a screen reader or keyboard user's
// path; moderate and minor ones (landmarks, headings) make it harder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  demoAndBrowser, newPage, messengerFrame, frameSend,
  consoleLogin, adminLogin, waitFor,
} from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const demo = demoAndBrowser();

/** The violations axe finds in one document (a page or a frame), iframes left to their own run. */
async function violations(target) {
  // evaluate() is not subject to the pages' Content-Security-Policy, a script tag would be.
  await target.evaluate(AXE);
  const result = await target.evaluate(() => window.axe.run(document, {
    iframes: false,
    resultTypes: ['violations'],
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  }));
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
  }));
}

function assertClean(found, where) {
  assert.deepEqual(found, [], `${where}: ${JSON.stringify(found, null, 2)}`);
}

test('the portal, the frame, the console and the admin pages have no axe violation', async () => {
  const { server, browser } = demo;
  const { context: portalContext, page: portal } = await newPage(browser);
  const { context: agentContext, page: agent } = await newPage(browser);
  try {
    await portal.goto(`${server.url}/demo/`);
    await portal.waitForSelector('[data-testid="customer-select"]:not([disabled])');
    assertClean(await violations(portal), 'demo portal (before the messenger)');
    await portal.selectOption('[data-testid="customer-select"]', 'mark');
    await portal.click('[data-testid="open-jwt"]');
    const frame = await messengerFrame(portal);
    await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]');
    await frameSend(frame, 'Hello, is anyone there? It is about order 17.');

    await consoleLogin(agent, server, { email: server.demo.email, password: server.demo.password });
    const item = agent.locator('[data-testid="conversation-item"]', { hasText: 'Mark' });
    await item.waitFor();
    await item.click();
    await agent.waitForSelector('#messages li[data-sender-type="contact"]');
    await agent.fill('#reply', 'Hello Mark, the order is at https://example.com/order/17');
    await agent.press('#reply', 'Enter');
    await frame.waitForSelector('li[data-sender-type="agent"] a[href="https://example.com/order/17"]');

    assertClean(await violations(portal), 'demo portal (messenger open)');
    assertClean(await violations(frame), 'messenger frame (1280x800)');
    assertClean(await violations(agent), 'agent console');

    // The admin pages: the messenger's tabs and the site sections.
    await agent.goto(`${server.url}/admin/?siteId=${server.demo.siteId}`);
    await agent.waitForSelector('#app:not([hidden])');
    await agent.waitForSelector('[data-testid="messenger-item"][aria-current="true"]');
    assertClean(await violations(agent), 'admin pages (installation code)');
    await agent.click('[data-testid="tab-security"]');
    await waitFor(() => agent.inputValue('[data-testid="security-allowed-urls"]'), { what: 'the Security form' });
    assertClean(await violations(agent), 'admin pages (Security tab)');
    for (const section of ['agents', 'contacts', 'canned', 'webhooks', 'settings', 'audit']) {
      await agent.click(`[data-testid="nav-${section}"]`);
      await agent.waitForSelector(`[data-testid="nav-${section}"][aria-pressed="true"]`);
      await agent.waitForLoadState('networkidle');
      assertClean(await violations(agent), `admin pages (${section})`);
    }

    // The agent's own account page (two-factor sign-in, sessions).
    await agent.goto(`${server.url}/console/account/`);
    await agent.waitForSelector('main.account');
    await agent.waitForLoadState('networkidle');
    assertClean(await violations(agent), 'account page');
  } finally {
    await portalContext.close();
    await agentContext.close();
  }
});

test('the installation code tab links to the JavaScript API page, which has no axe violation', async () => {
  const { server, browser } = demo;
  const { context, page } = await newPage(browser);
  try {
    await adminLogin(page, server);
    await page.waitForSelector('[data-testid="messenger-item"][aria-current="true"]');
    await page.click('[data-testid="tab-install"]');
    const statuses = [];
    const messages = [];
    context.on('response', (r) => r.url() === `${server.url}/docs/js-api` && statuses.push(r.status()));
    context.on('console', (m) => messages.push(m.text()));
    const [guide] = await Promise.all([context.waitForEvent('page'), page.click('[data-testid="js-api-link"]')]);
    await guide.waitForLoadState('load');
    assert.equal(guide.url(), `${server.url}/docs/js-api`);
    assert.deepEqual(statuses, [200]);
    assert.equal(await guide.textContent('main h1'), 'Confidant messenger — JavaScript API for integrators');
    assert.equal(await guide.locator('h1').count(), 1);
    // Its links lead within the server: to the integrating guide's sections.
    await guide.click('a[href="/docs/integrating#checking-a-token"]');
    await guide.waitForURL(`${server.url}/docs/integrating#checking-a-token`);
    assert.equal(await guide.locator('#checking-a-token').count(), 1);
    assertClean(await violations(guide), 'the integrating guide');
    await guide.goBack();
    assertClean(await violations(guide), 'the JavaScript API page');
    assert.deepEqual(messages.filter((t) => /Content Security Policy/i.test(t)), [], 'the guides break no rule of their policy');
  } finally {
    await context.close();
  }
});

test('the messenger frame on a phone has no axe violation', async () => {
  const { server, browser } = demo;
  const { context, page } = await newPage(browser, { viewport: { width: 375, height: 740 } });
  try {
    await page.goto(`${server.url}/demo/`);
    await page.waitForSelector('[data-testid="customer-select"]:not([disabled])');
    await page.selectOption('[data-testid="customer-select"]', 'ana');
    await page.click('[data-testid="open-jwt"]');
    const frame = await messengerFrame(page);
    await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]');
    await frameSend(frame, 'Hi from my phone');
    assertClean(await violations(frame), 'messenger frame (375x740)');
    assertClean(await violations(page), 'demo portal (375x740, messenger open)');
  } finally {
    await context.close();
  }
});
