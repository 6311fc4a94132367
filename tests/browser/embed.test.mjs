// Embedding on a business page: the allowed page shows the messenger and talks to the console;
// another origin cannot frame it nor call the API; a path outside the allowed prefix shows nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, removeDir, createMessenger, createAgent, signContactJwt, startBusinessServer,
  sendHtml, embedRoute, launchBrowser, newPage, openMessenger, frameSend, frameMessages, consoleLogin,
  pageErrors, cspViolations, waitFor, FRAME,
} from './lib/harness.mjs';

let server;
let business; // the allowed origin (pages under /portal/ are allowed)
let stranger; // an origin that is not allowed at all
let messenger;
let browser;

before(async () => {
  server = await startServer({ mode: 'demo' });
  business = await startBusinessServer({});
  stranger = await startBusinessServer({});
  messenger = await createMessenger(server, { name: 'Portal support', allowedUrls: [`${business.origin}/portal/`] });

  const claims = (url) => {
    const who = url.searchParams.get('who') || 'alice';
    return { sub: `${who}@customer.test`, 'comm100.name': `${who[0].toUpperCase()}${who.slice(1)} Customer` };
  };
  const page = (title) => embedRoute(server, messenger, { claims, title });
  business.routes = {
    '/portal/': page('Portal — my account'),
    '/portal/inbox': page('Portal — inbox'),
    '/public/': page('Public page outside the allowed prefix'),
  };
  stranger.routes = {
      '/': embedRoute(server, messenger, { claims: { sub: 'mallory@customer.test' }, title: 'Not an allowed origin' }),
      '/frame-it': (req, res) =>
        sendHtml(
          res,
          `<!doctype html><html><head><meta charset="utf-8"><title>Framing attempt</title></head><body>
<h1>Framing attempt</h1>
<iframe id="direct" title="direct" width="400" height="400"
  src="${server.url}/messenger/v1/frame?siteId=${messenger.siteId}&amp;messengerId=${messenger.messengerId}"></iframe>
</body></html>`,
        ),
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stranger?.close();
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

// The loader on `url` reports origin_not_allowed and draws neither the frame nor the launcher.
async function expectRefused(page, url) {
  await page.goto(url);
  const err = await waitFor(
    () => page.evaluate(() => window.__confidant.events.find((e) => e.name === 'error')),
    { what: 'an error event from the loader' },
  );
  assert.equal(err.payload.code, 'origin_not_allowed');
  assert.equal(await page.locator(FRAME).count(), 0);
  assert.equal(await page.locator('[data-testid="confidant-launcher"]').count(), 0);
}

test('an allowed page shows the messenger; customer and agent talk both ways', async () => {
  const agent = await createAgent(server, { name: 'Dana Agent' });
  const { context, page } = await newPage(browser);
  const { context: agentContext, page: consolePage } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/portal/inbox?who=alice`);
    const frame = await openMessenger(page);
    assert.equal(await frame.textContent('#frame-name'), 'Portal support');
    await waitFor(() => page.evaluate(() => window.__confidant.events.some((e) => e.name === 'ready')), { what: 'ready event' });

    const question = `Hello from Alice ${Date.now()}`;
    await frameSend(frame, question);

    await consoleLogin(consolePage, server, { email: agent.email, password: agent.password });
    const item = consolePage.locator('[data-testid="conversation-item"]', { hasText: 'Alice Customer' });
    await item.waitFor({ timeout: 15000 });
    await item.click();
    await consolePage.waitForSelector(`#messages li[data-sender-type="contact"] >> text=${JSON.stringify(question)}`);
    assert.equal(await consolePage.textContent('#contact-identity'), 'alice@customer.test');

    const reply = `Hi Alice, Dana here ${Date.now()}`;
    await consolePage.fill('#reply', reply);
    await consolePage.press('#reply', 'Enter');
    await consolePage.waitForSelector(`#messages li[data-state="sent"][data-sender-type="agent"] >> text=${JSON.stringify(reply)}`);

    // The reply arrives live in the frame, and the page hears it through Confidant.on('message').
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(reply)}`, { timeout: 15000 });
    await waitFor(
      () => page.evaluate((body) => window.__confidant.events.some((e) => e.name === 'message' && e.payload.body === body), reply),
      { what: 'message event on the page' },
    );
    // Confidant.on('message') is about new messages: never the customer's own send from this frame.
    const ownEvents = await page.evaluate(() =>
      window.__confidant.events.filter((e) => e.name === 'message' && e.payload.sender && e.payload.sender.type === 'contact'),
    );
    assert.deepEqual(ownEvents, []);
    const shown = await frameMessages(frame);
    assert.deepEqual(
      shown.map((m) => [m.sender, m.body]),
      [['contact', question], ['agent', reply]],
    );
    // The agent's console now shows the "seen" marker (the panel is open and visible).
    await consolePage.waitForSelector('#messages [data-testid="seen"]', { timeout: 15000 });
    assert.deepEqual(pageErrors(page), []);
    assert.deepEqual(cspViolations(page), []);
    assert.deepEqual(pageErrors(consolePage), []);
    assert.deepEqual(cspViolations(consolePage), []);
  } finally {
    await context.close();
    await agentContext.close();
  }
});

test('another origin can neither frame the messenger nor call its API', async () => {
  const { context, page } = await newPage(browser);
  try {
    // 1. The installation code on a foreign origin: the config call is refused, no iframe.
    await expectRefused(page, `${stranger.origin}/`);

    // 2. The page's own call to authorize: 403 origin_not_allowed, readable by the page (ACAO).
    const answer = await page.evaluate(
      async ({ url, siteId, messengerId, jwt }) => {
        const res = await fetch(`${url}/securemessage/authorize`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ siteId, messengerId, contactJwt: jwt, isPreview: false }),
        });
        return { status: res.status, body: await res.json() };
      },
      {
        url: server.url,
        siteId: messenger.siteId,
        messengerId: messenger.messengerId,
        jwt: signContactJwt(messenger.sharedToken, { sub: 'mallory@customer.test' }),
      },
    );
    assert.equal(answer.status, 403);
    assert.equal(answer.body.error.code, 'origin_not_allowed');

    // 3. Framing the frame page directly: CSP frame-ancestors makes the browser refuse it.
    const framePage = await fetch(`${server.url}/messenger/v1/frame?siteId=${messenger.siteId}&messengerId=${messenger.messengerId}`);
    const ancestors = /frame-ancestors([^;]*)/.exec(framePage.headers.get('content-security-policy') || '');
    assert.ok(ancestors, 'the frame page sends CSP frame-ancestors');
    assert.deepEqual(ancestors[1].trim().split(/\s+/).sort(), [business.origin, server.url].sort());
    await page.goto(`${stranger.origin}/frame-it`);
    await waitFor(
      () => page.__logs.some((l) => /frame-ancestors/.test(l.text) && /Refused to frame|violates/.test(l.text)),
      { what: 'a frame-ancestors CSP violation in the console' },
    );
    const frame = await (await page.$('#direct')).contentFrame();
    // Blocked: the frame holds Chromium's error page, never the messenger's document.
    assert.ok(!frame || !frame.url().includes('/messenger/v1/frame') || (await frame.$('#composer')) === null);
    const readable = await page.evaluate(() => {
      try {
        return Boolean(document.getElementById('direct').contentDocument?.querySelector('#composer'));
      } catch {
        return false;
      }
    });
    assert.equal(readable, false);
  } finally {
    await context.close();
  }
});

test('a page of the allowed origin outside the allowed path prefix shows no messenger', async () => {
  const { context, page } = await newPage(browser);
  try {
    await expectRefused(page, `${business.origin}/public/?who=bob`);
    // Confidant.init gives the same answer when called by the page itself.
    const ok = await page.evaluate(
      ({ siteId, messengerId }) => window.Confidant.init({ siteId, messengerId, getToken: () => Promise.reject(new Error('never')) }),
      { siteId: messenger.siteId, messengerId: messenger.messengerId },
    );
    assert.equal(ok, false);
    assert.equal(await page.locator(FRAME).count(), 0);
  } finally {
    await context.close();
  }
});
