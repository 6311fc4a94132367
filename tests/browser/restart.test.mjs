// The messenger frame survives the server restarting: it shows the outage, reconnects on its
// own, resumes, and shows what the agent sent meanwhile exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, removeDir, createMessenger, startBusinessServer, embedRoute, launchBrowser, newPage,
  openMessenger, frameSend, frameMessages, findConversation, agentSend, waitFor, freshDataDir, freePort, consoleLogin,
} from './lib/harness.mjs';

let server;
let business;
let messenger;
let browser;
let dataDir;
let port;

before(async () => {
  dataDir = freshDataDir();
  port = await freePort();
  server = await startServer({ mode: 'demo', port, dataDir });
  business = await startBusinessServer();
  messenger = await createMessenger(server, { name: 'Always there', allowedUrls: [business.origin] });
  business.routes = {
    '/': embedRoute(server, messenger, { claims: { sub: 'rita@customer.test', 'comm100.name': 'Rita Restart' }, title: 'Restart test' }),
  };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await business?.close();
  await stopServer(server);
  removeDir(dataDir);
});

const count = (list, body) => list.filter((m) => m.body === body).length;

test('the frame reconnects after a server restart and shows missed messages exactly once', async () => {
  const { context, page } = await newPage(browser);
  const { context: agentContext, page: consolePage } = await newPage(browser);
  try {
    await page.goto(`${business.origin}/`);
    const frame = await openMessenger(page);
    const hello = `Before the restart ${Date.now()}`;
    await frameSend(frame, hello);
    const conv = await waitFor(() => findConversation(server, { identity: 'rita@customer.test' }), { what: 'the conversation' });
    const early = `Agent before the restart ${Date.now()}`;
    await agentSend(server, { conversationId: conv.conversationId, body: early });
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(early)}`);
    await consoleLogin(consolePage, server, { email: server.demo.email, password: server.demo.password });
    await consolePage.locator('[data-testid="conversation-item"]', { hasText: 'Rita Restart' }).click();
    await consolePage.waitForSelector(`#messages li >> text=${JSON.stringify(early)}`);

    // SIGTERM: a clean shutdown (exit 0) that closes the frame's socket.
    const exit = await stopServer(server);
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}\n${server.output()}`);
    await frame.waitForSelector('[data-testid="connection-state"]:not([data-state="connected"])', { timeout: 10000 });
    await consolePage.waitForSelector('#live-state:not([data-state="connected"])', { timeout: 10000 });

    // Same data dir, same port. The agent writes as soon as the server is back, before the frame
    // has necessarily reconnected ("during" the restart, from the frame's point of view)…
    server = await startServer({ mode: 'demo', port, dataDir });
    const during = `Agent while you were away ${Date.now()}`;
    await agentSend(server, { conversationId: conv.conversationId, body: during });

    // …and the frame comes back by itself.
    await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]', { timeout: 30000 });
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(during)}`, { timeout: 15000 });
    const afterwards = `Agent after the reconnect ${Date.now()}`;
    await agentSend(server, { conversationId: conv.conversationId, body: afterwards });
    await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(afterwards)}`, { timeout: 15000 });

    // The customer can still write, into the same conversation.
    const back = `Customer after the restart ${Date.now()}`;
    await frameSend(frame, back);
    const again = await findConversation(server, { identity: 'rita@customer.test' });
    assert.equal(again.conversationId, conv.conversationId);

    // The agent console came back live too, and shows everything once.
    await consolePage.waitForSelector('#live-state[data-state="connected"]', { timeout: 30000 });
    await consolePage.waitForSelector(`#messages li[data-sender-type="contact"] >> text=${JSON.stringify(back)}`, { timeout: 15000 });
    const consoleBodies = await consolePage.$$eval('#messages li[data-testid="message"] .bubble', (els) => els.map((e) => e.textContent));
    assert.deepEqual(consoleBodies, [hello, early, during, afterwards, back]);

    const shown = await frameMessages(frame);
    for (const body of [hello, early, during, afterwards, back]) assert.equal(count(shown, body), 1, `"${body}" shown once`);
    assert.deepEqual(shown.map((m) => m.seq), [1, 2, 3, 4, 5], 'in seq order, no gaps, no duplicates');
    assert.equal(await frame.isVisible('[data-testid="error"]'), false, 'no error banner once reconnected');

    // The page heard each of the agent's messages once through Confidant.on('message').
    const heard = await page.evaluate(() => window.__confidant.events.filter((e) => e.name === 'message').map((e) => e.payload.body));
    for (const body of [early, during, afterwards]) assert.equal(heard.filter((b) => b === body).length, 1, `event for "${body}"`);
  } finally {
    await context.close();
    await agentContext.close();
  }
});
