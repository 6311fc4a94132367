// Agent accounts in the browser (CONTRACT §12): an agent sets up two-factor authentication on
// its Account page (QR code drawn locally, the key as text, a code to confirm), then signs in
// to the console with a code; an idle console is sent back to sign-in with a plain-words
// message once the site's idle timeout (1 minute here) has passed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  startServer, stopServer, removeDir, launchBrowser, newPage, freshDataDir, freePort, pageErrors, cspViolations,
  createAgent, api,
} from './lib/harness.mjs';

let server;
let browser;
let dataDir;

before(async () => {
  dataDir = freshDataDir();
  server = await startServer({ mode: 'demo', port: await freePort(), dataDir });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  removeDir(dataDir);
});

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The RFC 6238 code (HMAC-SHA1, 6 digits, 30 s) of `secret` for the step `offset` steps from now. */
function totpCode(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const o = mac[mac.length - 1] & 0x0f;
  const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

async function signIn(page, { siteId, email, password }) {
  await page.waitForSelector('#login-email', { state: 'visible' });
  await page.fill('#login-site', String(siteId));
  await page.fill('#login-email', email);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

test('an agent sets up two-factor authentication on its Account page, then signs in with a code', async () => {
  const siteId = server.demo.siteId;
  const agent = await createAgent(server, { siteId, name: 'Tess Totp' });
  const { context, page } = await newPage(browser);
  page.on('dialog', (d) => d.accept());
  try {
    await page.goto(`${server.url}/console/account/?siteId=${siteId}`);
    await signIn(page, { siteId, email: agent.email, password: agent.password });
    await page.waitForSelector('#app:not([hidden])');
    await page.waitForSelector('[data-testid="totp-status"]:has-text("is off")');
    // This device is listed among the sessions.
    await page.waitForSelector('[data-testid="session-item"][data-current="true"] [data-testid="this-device"]');

    await page.click('[data-testid="totp-start"]');
    await page.waitForSelector('[data-testid="totp-qr"] svg path');
    const shown = await page.textContent('[data-testid="totp-secret"]');
    const secret = shown.replace(/\s/g, '');
    assert.match(secret, /^[A-Z2-7]{32}$/);
    // A wrong code is refused in plain words; TOTP stays off.
    await page.fill('[data-testid="totp-code"]', totpCode(secret, 10));
    await page.click('[data-testid="totp-confirm"]');
    await page.waitForSelector('[data-testid="totp-error"]:not([hidden])');
    assert.match(await page.textContent('[data-testid="totp-error"]'), /does not match/);

    await page.fill('[data-testid="totp-code"]', totpCode(secret));
    await page.click('[data-testid="totp-confirm"]');
    await page.waitForSelector('[data-testid="totp-status"]:has-text("is on")');
    assert.equal((await page.content()).includes(secret), false, 'the secret stays on the page after set-up');
    const listed = await api(server, 'GET', `/api/v1/sites/${siteId}/agents`);
    assert.equal(listed.agents.find((a) => a.email === agent.email).totpEnabled, true);

    // Sign out; signing in to the console now asks for the code. The confirming code was of
    // this step, so the next step's (accepted one step ahead) is the fresh one.
    await page.click('[data-testid="logout"]');
    await page.goto(`${server.url}/console/?siteId=${siteId}`);
    await signIn(page, { siteId, email: agent.email, password: agent.password });
    await page.waitForSelector('[data-testid="login-totp"]', { state: 'visible' });
    assert.match(await page.textContent('#login-error'), /6-digit code/);
    await page.fill('[data-testid="login-totp"]', totpCode(secret, 1));
    await page.click('#login-submit');
    await page.waitForSelector('#app:not([hidden])');
    await page.waitForSelector('#live-state[data-state="connected"]', { timeout: 15000 });

    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
  } finally {
    await context.close();
  }
});

test('an idle console is sent back to sign-in, saying why', { timeout: 120_000 }, async () => {
  const site = await api(server, 'POST', '/api/v1/sites', { name: 'Idle site' });
  const siteId = site.siteId;
  await api(server, 'PUT', `/api/v1/sites/${siteId}/settings`, { idleTimeoutMinutes: 1 });
  const agent = await createAgent(server, { siteId, name: 'Ida Idle' });
  const { context, page } = await newPage(browser);
  try {
    await page.goto(`${server.url}/console/?siteId=${siteId}`);
    await signIn(page, { siteId, email: agent.email, password: agent.password });
    await page.waitForSelector('#live-state[data-state="connected"]', { timeout: 15000 });
    const started = Date.now();
    // Nobody touches the page: its socket pings on its own, which is not activity.
    await page.waitForSelector('#login-error:not([hidden])', { timeout: 90_000 });
    const waited = Date.now() - started;
    assert.ok(waited >= 55_000, `signed out after ${waited} ms, before the idle timeout`);
    assert.match(await page.textContent('#login-error'), /idle for too long/);
    assert.equal(await page.isVisible('#login-email'), true);
    assert.equal(await page.isHidden('#app'), true);
    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
  } finally {
    await context.close();
  }
});
