// Attachments (CONTRACT §11) end to end: a customer attaches a PDF and an image in the frame,
// the agent downloads both in the console and replies with a file, the customer downloads it;
// a file whose bytes are of a forbidden type shows the server's reason in the frame.
// Writes docs/screenshots/attachments-{messenger,console,refused}.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  startServer, stopServer, removeDir, api, createAgent, startBusinessServer, embedRoute, launchBrowser, newPage,
  openMessenger, consoleLogin, pageErrors, cspViolations, ensureScreenshotDir, SCREENSHOT_DIR,
} from './lib/harness.mjs';

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% lab results of alice\ntrailer\n%%EOF\n');
// A 2×2 red PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==',
  'base64',
);
const EXE = Buffer.concat([Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00', 'latin1'), Buffer.alloc(496)]);
const REPLY = Buffer.from(`%PDF-1.4\n% the invoice ${randomBytes(8).toString('hex')}\n%%EOF\n`);

let server;
let business;
let messenger;
let browser;

before(async () => {
  server = await startServer({ mode: 'demo' });
  business = await startBusinessServer({});
  const sharedToken = `bt-shared-${randomBytes(24).toString('hex')}`;
  messenger = {
    ...(await api(server, 'POST', '/api/v1/sites/10000/messengers', {
      name: 'Files support',
      security: {
        validation: { method: 'sharedToken', sharedToken },
        allowedUrls: [business.origin],
        attachments: { enabled: true, maxBytes: 5 * 1024 * 1024, allowedTypes: ['image/png', 'application/pdf'] },
      },
    })),
    sharedToken,
  };
  business.routes = {
    '/': embedRoute(server, messenger, { claims: { sub: 'alice@customer.test', 'comm100.name': 'Alice Customer' }, title: 'Portal' }),
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

async function downloaded(page, click) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), click()]);
  return { name: download.suggestedFilename(), bytes: readFileSync(await download.path()) };
}

test('a customer and an agent exchange files', async () => {
  ensureScreenshotDir();
  const agent = await createAgent(server, { name: 'Dana Agent' });
  const { context, page } = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  const { context: agentContext, page: consolePage } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/`);
    const frame = await openMessenger(page);
    await frame.waitForSelector('[data-testid="attach"]:not([hidden])');
    await frame.setInputFiles('[data-testid="attach-input"]', [
      { name: 'lab results.pdf', mimeType: 'application/pdf', buffer: PDF },
      { name: 'rash.png', mimeType: 'image/png', buffer: PNG },
    ]);
    await frame.waitForSelector('[data-testid="tray-item"][data-state="done"] >> nth=1', { timeout: 15000 });
    await frame.fill('#composer', 'Here are my results and a photo');
    await frame.click('#send');
    const sent = 'li[data-testid="message"][data-state="sent"][data-sender-type="contact"]';
    await frame.waitForSelector(`${sent} [data-testid="attachment"] >> nth=1`, { timeout: 15000 });
    await frame.waitForSelector(`${sent} img[data-testid="attachment-thumb"][src^="blob:"]`, { timeout: 15000 });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'attachments-messenger.png'), caret: 'hide', animations: 'disabled' });

    // The agent sees both files, downloads them, and replies with one.
    await consoleLogin(consolePage, server, { email: agent.email, password: agent.password });
    const item = consolePage.locator('[data-testid="conversation-item"]', { hasText: 'Alice Customer' });
    await item.waitFor({ timeout: 15000 });
    await item.click();
    const chip = (name) => consolePage.locator(`#messages [data-testid="attachment"][data-filename="${name}"]`);
    await chip('lab results.pdf').waitFor({ timeout: 15000 });
    const pdf = await downloaded(consolePage, () => chip('lab results.pdf').click());
    assert.equal(pdf.name, 'lab results.pdf');
    assert.deepEqual(pdf.bytes, PDF);
    const png = await downloaded(consolePage, () => chip('rash.png').click());
    assert.deepEqual(png.bytes, PNG);
    await consolePage.setInputFiles('#reply-attach-input', [{ name: 'invoice.pdf', mimeType: 'application/pdf', buffer: REPLY }]);
    await consolePage.waitForSelector('#reply-tray [data-testid="tray-item"][data-state="done"]', { timeout: 15000 });
    await consolePage.fill('#reply', 'Thanks, here is your invoice');
    await consolePage.click('#reply-send');
    await consolePage.waitForSelector('#messages li[data-state="sent"][data-sender-type="agent"] [data-testid="attachment"]', { timeout: 15000 });
    await consolePage.screenshot({ path: path.join(SCREENSHOT_DIR, 'attachments-console.png'), caret: 'hide', animations: 'disabled' });

    // The customer downloads the agent's file.
    const theirs = frame.locator('li[data-sender-type="agent"] [data-testid="attachment"][data-filename="invoice.pdf"]');
    await theirs.waitFor({ timeout: 15000 });
    const invoice = await downloaded(page, () => theirs.click());
    assert.equal(invoice.name, 'invoice.pdf');
    assert.deepEqual(invoice.bytes, REPLY);

    // A program named like an image: the server's reason, shown in the frame; nothing to send.
    await frame.setInputFiles('[data-testid="attach-input"]', [{ name: 'holiday.png', mimeType: 'image/png', buffer: EXE }]);
    const error = frame.locator('[data-testid="attachment-error"]');
    await error.waitFor({ timeout: 15000 });
    assert.match(await error.textContent(), /portable-executable/);
    assert.equal(await frame.isDisabled('#send'), true);
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'attachments-refused.png'), caret: 'hide', animations: 'disabled' });

    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
    assert.deepEqual(pageErrors(consolePage), []);
    assert.deepEqual(cspViolations(consolePage), []);
  } finally {
    await context.close();
    await agentContext.close();
  }
});
