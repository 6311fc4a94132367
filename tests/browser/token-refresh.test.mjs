// getToken keeps a session alive: with 60-second access tokens the loader renews right away
// (about 60 s before exp), the frame re-authenticates its live socket, and messages keep flowing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createSite, removeDir, createMessenger, signContactJwt, startBusinessServer, sendHtml, sendJson,
  businessPage, launchBrowser, newPage, openMessenger, frameSend, frameMessages, findConversation, agentSend,
  waitFor, pageErrors,
} from './lib/harness.mjs';

let server;
let business;
let messenger;
let browser;
const tokenCalls = []; // {at, who}

before(async () => {
  server = await startServer({ mode: 'serve', args: ['--access-token-ttl', '60'] });
  business = await startBusinessServer();
  const site = await createSite(server);
  messenger = await createMessenger(server, { siteId: site.siteId, name: 'Refresh desk', allowedUrls: [business.origin] });
  business.routes = {
    // The page: installation code without a credential, then Confidant.init({getToken}).
    '/account': (req, res) =>
      sendHtml(
        res,
        businessPage({
          serverUrl: server.url,
          title: 'Account (getToken)',
          extraHead: `<script>
  window.__tokenCalls = 0;
  window.addEventListener('confidant:loaded', function () {
    window.__initResult = window.Confidant.init({
      siteId: ${messenger.siteId},
      messengerId: '${messenger.messengerId}',
      getToken: function () {
        window.__tokenCalls += 1;
        return fetch('/confidant-token', { method: 'POST' }).then(function (r) { return r.json(); }).then(function (d) { return d.contactJwt; });
      }
    });
  });
</script>`,
        }),
      ),
    // The business's backend: a short-lived Contact JWT for the signed-in customer.
    '/confidant-token': (req, res) => {
      tokenCalls.push({ at: Date.now() });
      sendJson(res, 200, {
        contactJwt: signContactJwt(messenger.sharedToken, { sub: 'renee@customer.test', 'comm100.name': 'Renee Refresh' }, { ttlSeconds: 120 }),
      });
    },
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

test('getToken renews a 60-second access token and the conversation keeps going', async () => {
  const { context, page } = await newPage(browser);
  try {
    const authorizes = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/securemessage/authorize')) authorizes.push(Date.now());
    });
    const sockets = [];
    page.on('websocket', (ws) => {
      const entry = { url: ws.url(), auths: 0, readies: 0, closed: false };
      sockets.push(entry);
      ws.on('framesent', (f) => { if (String(f.payload).includes('"type":"auth"')) entry.auths += 1; });
      ws.on('framereceived', (f) => { if (String(f.payload).includes('"type":"ready"')) entry.readies += 1; });
      ws.on('close', () => { entry.closed = true; });
    });
    await page.goto(`${business.origin}/account`);
    const frame = await openMessenger(page);
    assert.equal(await page.evaluate(() => window.__initResult), true);
    const first = `Before the refresh ${Date.now()}`;
    await frameSend(frame, first);
    const conv = await waitFor(() => findConversation(server, { siteId: messenger.siteId, identity: 'renee@customer.test' }), { what: 'the conversation' });

    // The access token lives 60 s; the loader asks getToken again right away (within seconds).
    const callsBefore = await page.evaluate(() => window.__tokenCalls);
    assert.ok(callsBefore >= 1);
    await waitFor(() => page.evaluate((n) => window.__tokenCalls > n, callsBefore), { timeout: 20000, what: 'a getToken() renewal' });
    await waitFor(() => authorizes.length >= 2, { timeout: 10000, what: 'the renewed Contact JWT being authorized' });
    assert.ok(tokenCalls.length >= 2, 'the business backend was asked for a new Contact JWT');

    // Messages still flow both ways after the renewal, over the same frame.
    const reply = `After the refresh, from the agent ${Date.now()}`;
    await agentSend(server, { siteId: messenger.siteId, conversationId: conv.conversationId, body: reply });
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(reply)}`, { timeout: 15000 });
    const second = `After the refresh, from the customer ${Date.now()}`;
    await frameSend(frame, second);

    // And after yet another renewal cycle.
    const callsNow = await page.evaluate(() => window.__tokenCalls);
    await waitFor(() => page.evaluate((n) => window.__tokenCalls > n, callsNow), { timeout: 20000, what: 'another renewal' });
    const reply2 = `Second renewal survived ${Date.now()}`;
    await agentSend(server, { siteId: messenger.siteId, conversationId: conv.conversationId, body: reply2 });
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(reply2)}`, { timeout: 15000 });

    // The renewals re-authenticated the live socket in place (auth frame, ready), no reconnect.
    // The last renewal's auth frame may still be on its way back: wait for its ready.
    assert.equal(sockets.length, 1, `one live socket, got ${JSON.stringify(sockets)}`);
    await waitFor(() => sockets[0].readies >= sockets[0].auths, { timeout: 5000, what: 'a ready for every auth frame' });
    assert.ok(sockets[0].auths >= 3 && sockets[0].readies >= 3, JSON.stringify(sockets));
    const shown = (await frameMessages(frame)).map((m) => m.body);
    assert.deepEqual(shown, [first, reply, second, reply2]);
    assert.equal(await frame.getAttribute('[data-testid="connection-state"]', 'data-state'), 'connected');
    assert.equal(await frame.isVisible('[data-testid="error"]'), false, 'no error banner in the frame');
    const errors = await page.evaluate(() => window.__confidant.events.filter((e) => e.name === 'error'));
    assert.deepEqual(errors, []);
    assert.deepEqual(pageErrors(page), []);
  } finally {
    await context.close();
  }
});
