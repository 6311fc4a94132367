// The admin pages' "Test a token" box on a messenger's Security tab (CONTRACT §15): crosses and
// a hint for an expired token signed with the wrong secret, ticks for a good one; and the
// preview on the admin page, which prints the same check to the browser console.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, waitFor, freshDataDir, freePort, pageErrors,
  createMessenger, signContactJwt, openSecurityTab,
} from './lib/harness.mjs';

let server;
let browser;
let dataDir;
let messenger;

const CHECKS = ['format', 'algorithm', 'key', 'signature', 'expiry', 'notBefore', 'lifetime', 'issuer', 'audience', 'identity'];

before(async () => {
  dataDir = freshDataDir();
  server = await startServer({ mode: 'demo', port: await freePort(), dataDir });
  messenger = await createMessenger(server, { siteId: server.demo.siteId, name: 'Token check' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  removeDir(dataDir);
});

async function openTokenCheck(page) {
  await openSecurityTab(page, server, messenger.messengerId);
  await page.waitForSelector('[data-testid="token-check"]:not([hidden])');
}

async function check(page, token) {
  await page.fill('[data-testid="token-check-input"]', token);
  await page.click('[data-testid="token-check-submit"]');
  await page.waitForSelector('[data-testid="token-check-result"]:not([hidden])');
  await page.waitForSelector('[data-testid="token-check-row"]');
}

async function rowStates(page) {
  return page.$$eval('[data-testid="token-check-row"]', (rows) => rows.map((r) => [r.dataset.check, r.dataset.state]));
}

test('the Security tab shows crosses and a hint for a bad token, ticks for a good one', async () => {
  const { context, page } = await newPage(browser);
  const errors = pageErrors(page);
  try {
    await openTokenCheck(page);

    // Expired an hour ago, and signed with another secret: the signature fails first.
    const now = Math.floor(Date.now() / 1000);
    const bad = signContactJwt('not-the-messengers-secret-0123456789', { sub: 'mark@example.test', iat: now - 7200, exp: now - 3600 });
    await check(page, bad);
    const states = await rowStates(page);
    assert.deepEqual(states.map((s) => s[0]), CHECKS);
    assert.deepEqual(states.slice(0, 3).map((s) => s[1]), ['pass', 'pass', 'pass']);
    assert.equal(states[3][1], 'fail');
    assert.ok(states.slice(4).every((s) => s[1] === 'notrun'), JSON.stringify(states));
    assert.equal(await page.textContent('[data-check="signature"] .mark'), '✗');
    assert.equal(await page.textContent('[data-check="expiry"] .detail'), 'not run');
    assert.match(await page.textContent('[data-testid="token-check-verdict"]'), /signature_invalid/);
    await page.waitForSelector('[data-testid="token-check-hint"]:not([hidden])');
    const hint = await page.textContent('[data-testid="token-check-hint"]');
    assert.match(hint, /shared token/);
    assert.match(hint, /exp is in the past/);
    // The decoded claims, with dates next to exp and iat.
    const claims = await page.textContent('[data-testid="token-check-claims"]');
    assert.match(claims, /"exp": \d+,?\s+\/\/ \d{4}-\d\d-\d\dT[\d:]+Z \((60 min|1 h) ago\)/);
    assert.match(claims, /"sub": "mark@example.test"/);
    assert.match(await page.textContent('[data-testid="token-check-header"]'), /"alg": "HS256"/);

    // A good token: ten ticks, no hint.
    const good = signContactJwt(messenger.sharedToken, { sub: 'mark@example.test' });
    await check(page, good);
    await page.waitForSelector('[data-testid="token-check-verdict"][data-ok="true"]');
    const ticks = await rowStates(page);
    assert.deepEqual(ticks, CHECKS.map((c) => [c, 'pass']));
    assert.equal(await page.isHidden('[data-testid="token-check-hint"]'), true);
    // The token's text is never rendered as HTML: a claim with markup stays text.
    const markup = signContactJwt(messenger.sharedToken, { sub: '<img src=x onerror=alert(1)>' });
    await check(page, markup);
    assert.equal(await page.locator('[data-testid="token-check-claims"] img').count(), 0);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('a preview on the admin page prints the check to the browser console when authorize refuses', async () => {
  const { context, page } = await newPage(browser);
  const groups = [];
  const infos = [];
  const all = [];
  page.on('console', (msg) => {
    all.push(msg.text());
    if (msg.type() === 'startGroupCollapsed') groups.push(msg.text());
    if (msg.type() === 'info') infos.push(msg.text());
  });
  try {
    await openTokenCheck(page);
    const bad = signContactJwt('not-the-messengers-secret-0123456789', { sub: 'mark@example.test' });
    await page.fill('[data-testid="token-check-input"]', bad);
    await page.click('[data-testid="token-check-preview"]');
    await waitFor(() => infos.some((t) => t.startsWith('Hint: ')), { what: 'the hint in the console' });
    assert.ok(groups.some((t) => t.includes('Confidant preview') && t.includes('signature_invalid')), JSON.stringify(groups));
    assert.ok(all.every((t) => !t.includes(bad)), 'the token is printed in the console');
    // A good token opens the messenger as a preview on this page (no allowed URL needed).
    const good = signContactJwt(messenger.sharedToken, { sub: 'preview@example.test' });
    await page.fill('[data-testid="token-check-input"]', good);
    await page.click('[data-testid="token-check-preview"]');
    await page.waitForSelector('iframe[data-testid="confidant-frame"]');
  } finally {
    await context.close();
  }
});
