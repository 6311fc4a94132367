// The runnable examples (examples/node-portal, examples/python-portal), exercised exactly as an
// integrator follows their READMEs: `confidant demo` runs (here with 60-second access tokens),
// the messenger's allowed URLs get the portal's origin, the portal starts with its one command
// (`npm start` / `python3 app.py`) and only CONFIDANT_URL, CONFIDANT_SHARED_TOKEN and PORT set
// (the site and messenger come from the demo), and Chromium uses the portal as a customer: log in
// with the picker, open the messenger, write; an agent sees it and replies; the reply shows.
// Both flows of each example: the Contact JWT in the page, and the backend authorize exchange
// whose access token is renewed through the page's getToken (which asks the portal backend).
//
// scripts/browser-test.sh installs what the examples need (npm ci; pip install -r
// requirements.txt); without it (no package registry) these tests say loudly that they were
// skipped, and fail under CI=true.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  REPO, startServer, stopServer, removeDir, api, createSite, freePort, waitFor, launchBrowser, newPage, openMessenger, frameSend,
  frameMessages, findConversation, agentSend, pageErrors, cspViolations, sleep,
} from './lib/harness.mjs';

const VERBOSE = Boolean(process.env.BROWSER_TEST_VERBOSE);
const CI = process.env.CI === 'true';

const EXAMPLES = [
  {
    name: 'node-portal',
    command: ['npm', ['start']],
    keyPair: () => ({ ...generateKeyPairSync('ed25519'), alg: 'EdDSA' }),
    // What `npm ci` installs (scripts/browser-test.sh runs it).
    missing: () =>
      ['express', 'jose'].find((p) => !existsSync(path.join(REPO, 'examples/node-portal/node_modules', p, 'package.json')))
        ? 'examples/node-portal/node_modules is incomplete (run `npm ci` there)'
        : null,
  },
  {
    name: 'python-portal',
    command: ['python3', ['app.py']],
    keyPair: () => ({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }), alg: 'ES256' }),
    missing: () =>
      spawnSync('python3', ['-c', 'import flask, jwt'], { stdio: 'ignore' }).status === 0
        ? null
        : 'Flask or PyJWT is not installed (run `pip install -r examples/python-portal/requirements.txt`)',
  },
];

const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const claimsOf = (token) => b64json(token.split('.')[1]);

/** `npm start` / `python3 app.py` in the example's folder, on 127.0.0.1:port. */
async function startExample(example, env, port) {
  port = port || (await freePort());
  const origin = `http://127.0.0.1:${port}`;
  const childEnv = { ...process.env };
  for (const key of Object.keys(childEnv)) if (key.startsWith('CONFIDANT_')) delete childEnv[key];
  let out = '';
  const proc = spawn(example.command[0], example.command[1], {
    cwd: path.join(REPO, 'examples', example.name),
    env: { ...childEnv, ...env, HOST: '127.0.0.1', PORT: String(port), PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: `npm start` runs node as a child
  });
  const collect = (chunk) => {
    out += chunk.toString();
    if (VERBOSE) process.stderr.write(`[${example.name}] ${chunk}`);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const self = { proc, port, origin, exited, output: () => out };
  await Promise.race([
    waitFor(async () => (await fetch(`${origin}/`)).ok, { timeout: 30000, what: `${example.name} on ${origin}` }),
    exited.then(({ code, signal }) => {
      throw new Error(`${example.name} exited early (code ${code}, signal ${signal}):\n${out}`);
    }),
  ]);
  return self;
}

async function stopExample(ex) {
  if (!ex || ex.proc.exitCode !== null || ex.proc.signalCode !== null) return;
  try {
    process.kill(-ex.proc.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-ex.proc.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, 5000);
  await ex.exited;
  clearTimeout(timer);
}

/** What an integrator does in the admin pages' Security tab: add the portal's origin, keep the shared token. */
async function allowOrigin(server, origin) {
  const { siteId, messengerId } = server.demo;
  const m = await api(server, 'GET', `/api/v1/sites/${siteId}/messengers/${messengerId}`);
  const security = { ...m.security };
  delete security.previousValidation;
  security.validation = { method: 'sharedToken', sharedToken: null, encoding: m.security.validation.encoding || 'text' };
  security.allowedUrls = [...m.security.allowedUrls, origin];
  await api(server, 'PUT', `/api/v1/sites/${siteId}/messengers/${messengerId}/security`, security);
}

/** Log in with the portal's picker and open one of the two messages pages. */
async function loginAndOpen(page, ex, customer, flow) {
  await page.goto(`${ex.origin}/`);
  await page.click(`[data-testid="login-${customer}"]`);
  await page.waitForURL(`${ex.origin}/account`);
  await page.click(`[data-testid="flow-${flow}"]`);
  await page.waitForURL(`${ex.origin}/messages/${flow}`);
}

async function agentSees(server, identity, body) {
  const { siteId } = server.demo;
  const conv = await waitFor(() => findConversation(server, { siteId, identity }), { what: `the conversation of ${identity}` });
  await waitFor(
    async () => {
      const { messages } = await api(server, 'GET', `/api/v1/sites/${siteId}/conversations/${conv.conversationId}/messages?limit=200`);
      return messages.some((m) => m.body === body && m.sender.type === 'contact');
    },
    { what: `the agent side seeing ${JSON.stringify(body)}` },
  );
  return conv;
}

async function replyAndSee(server, page, frame, conv, body) {
  await agentSend(server, { siteId: server.demo.siteId, conversationId: conv.conversationId, body });
  await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(body)}`, { timeout: 15000 });
  // The page heard it through Confidant.on('message') (the example's event log).
  await page.waitForSelector(`#event-log li[data-event="message"]:has-text(${JSON.stringify(body)})`, { timeout: 10000 });
}

/** The page's Confidant.on('ready') arrived (else: what the page heard instead). */
async function pageSaysReady(page) {
  try {
    await page.waitForSelector('#event-log li[data-event="ready"]', { timeout: 20000 });
  } catch (err) {
    const log = await page.$$eval('#event-log li', (items) => items.map((i) => i.textContent)).catch(() => []);
    const status = await page.textContent('#messenger-status').catch(() => '?');
    throw new Error(`no ready event on the page (status ${JSON.stringify(status)}, events ${JSON.stringify(log)}, console ${JSON.stringify(page.__logs)}): ${err.message}`);
  }
}

function assertClean(page) {
  assert.deepEqual(pageErrors(page), [], 'no uncaught errors on the portal page');
  assert.deepEqual(cspViolations(page), [], "the portal's CSP (its own + Confidant's origin) blocks nothing");
}

for (const example of EXAMPLES) {
  describe(`examples/${example.name}`, () => {
    const missing = example.missing();
    if (missing) {
      if (CI) {
        test(`examples/${example.name} can run`, () => assert.fail(`${missing}; CI=true: failing`));
      } else {
        console.error(`\n!!!! SKIPPED examples/${example.name}: ${missing} !!!!\n`);
        test(`examples/${example.name}`, { skip: `SKIPPED: ${missing}` }, () => {});
      }
      return;
    }

    let server;
    let portal;
    let browser;

    before(async () => {
      // `cargo run --release -- demo`, as the README says (60-second access tokens: getToken runs within seconds).
      server = await startServer({ mode: 'demo', args: ['--access-token-ttl', '60'] });
      const token = /messenger shared token[^:]*:\s*(\S+)/.exec(server.output());
      assert.ok(token, `the demo prints its messenger's shared token:\n${server.output()}`);
      portal = await startExample(example, { CONFIDANT_URL: server.url, CONFIDANT_SHARED_TOKEN: token[1] });
      await allowOrigin(server, portal.origin);
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await stopExample(portal);
      await stopServer(server);
      if (server) removeDir(server.dataDir);
    });

    test('Contact JWT in the page: the messenger shows, a message round-trips', async () => {
      const { context, page } = await newPage(browser);
      try {
        // A slow portal.js must still hear the first events (it is included before the loader).
        await page.route('**/static/portal.js', async (route) => {
          await sleep(1500);
          await route.continue();
        });
        await loginAndOpen(page, portal, 'mark', 'jwt');
        assert.equal(await page.textContent('[data-testid="customer-name"]'), 'Mark Tylor');
        // The installation code carries a Contact JWT that the portal's backend signed (HS256, 10 minutes).
        const jwt = await page.getAttribute('#confidant-messenger', 'data-contact-jwt');
        assert.equal(b64json(jwt.split('.')[0]).alg, 'HS256');
        const claims = claimsOf(jwt);
        assert.equal(claims.sub, 'mark@example-portal.test');
        assert.equal(claims['comm100.name'], 'Mark Tylor');
        assert.ok(claims.exp - claims.iat <= 600);
        assert.equal(await page.getAttribute('#confidant-messenger', 'data-messenger-id'), server.demo.messengerId);

        const frame = await openMessenger(page);
        await pageSaysReady(page);
        const text = `Hello from the ${example.name} (Contact JWT) ${Date.now()}`;
        await frameSend(frame, text);
        const conv = await agentSees(server, 'mark@example-portal.test', text);
        assert.equal(conv.contact.attributes.name, 'Mark Tylor');
        const reply = `Agent answers Mark ${Date.now()}`;
        await replyAndSee(server, page, frame, conv, reply);
        assert.deepEqual((await frameMessages(frame)).map((m) => m.body), [text, reply]);
        assertClean(page);
      } finally {
        await context.close();
      }
    });

    test('backend authorize: only the access token reaches the page, getToken renews it through the backend', async () => {
      const { context, page } = await newPage(browser);
      try {
        const browserAuthorizes = [];
        const tokenCalls = [];
        page.on('request', (r) => {
          if (r.url().includes('/securemessage/authorize')) browserAuthorizes.push(r.url());
        });
        page.on('response', async (r) => {
          if (r.url() === `${portal.origin}/api/confidant-token`) tokenCalls.push({ status: r.status(), body: await r.json().catch(() => null) });
        });
        const sockets = [];
        page.on('websocket', (ws) => {
          const entry = { auths: 0, readies: 0 };
          sockets.push(entry);
          ws.on('framesent', (f) => { if (String(f.payload).includes('"type":"auth"')) entry.auths += 1; });
          ws.on('framereceived', (f) => { if (String(f.payload).includes('"type":"ready"')) entry.readies += 1; });
        });

        await loginAndOpen(page, portal, 'ana', 'authorize');
        // The page holds an access token (aud confidant:<messenger>), and no Contact JWT anywhere.
        const html = await page.content();
        assert.ok(!html.includes('data-contact-jwt'), 'no installation-code Contact JWT on this page');
        const token = await page.getAttribute('#portal-messenger', 'data-access-token');
        const claims = claimsOf(token);
        assert.equal(claims.aud, `confidant:${server.demo.messengerId}`);
        assert.equal(claims.exp - claims.iat, 60);
        for (const jwtish of html.match(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g) || []) {
          assert.match(String(claimsOf(jwtish).aud), /^confidant:/, 'every JWT in the page is a Confidant access token');
        }

        const frame = await openMessenger(page);
        await pageSaysReady(page);
        const text = `Hello from the ${example.name} (authorize) ${Date.now()}`;
        await frameSend(frame, text);
        const conv = await agentSees(server, 'ana@example-portal.test', text);
        const reply = `Agent answers Ana ${Date.now()}`;
        await replyAndSee(server, page, frame, conv, reply);

        // 60-second tokens: the loader calls getToken within seconds; the portal backend authorizes
        // again and answers a fresh access token (never a Contact JWT).
        await waitFor(() => tokenCalls.length >= 1, { timeout: 25000, what: "getToken() calling the portal's /api/confidant-token" });
        const renewed = tokenCalls[0];
        assert.equal(renewed.status, 200);
        assert.deepEqual(Object.keys(renewed.body).sort(), ['accessToken', 'expiresIn']);
        assert.equal(claimsOf(renewed.body.accessToken).aud, `confidant:${server.demo.messengerId}`);
        assert.equal(claimsOf(renewed.body.accessToken).sub, claims.sub, 'the same contact');
        await page.waitForSelector('#event-log li[data-event="getToken"]');
        // The frame's live socket took the renewed token in place.
        await waitFor(() => sockets.length === 1 && sockets[0].auths >= 2 && sockets[0].readies >= 2, {
          timeout: 15000,
          what: `the live socket re-authenticating (${JSON.stringify(sockets)})`,
        });

        // Messages keep flowing both ways after the renewal.
        const after = `After the renewal ${Date.now()}`;
        await frameSend(frame, after);
        await agentSees(server, 'ana@example-portal.test', after);
        const reply2 = `Agent again ${Date.now()}`;
        await replyAndSee(server, page, frame, conv, reply2);
        assert.deepEqual((await frameMessages(frame)).map((m) => m.body), [text, reply, after, reply2]);

        assert.deepEqual(browserAuthorizes, [], 'the browser never called authorize: the backend did');
        const errors = await page.$$eval('#event-log li[data-event="error"]', (items) => items.map((i) => i.textContent));
        assert.deepEqual(errors, []);
        assertClean(page);

        // Log out: the page calls Confidant.shutdown() and the messenger is gone.
        await page.click('#logout');
        await page.waitForURL(`${portal.origin}/`);
        assert.equal(await page.$('[data-testid="confidant-launcher"]'), null);
        const res = await page.request.post(`${portal.origin}/api/confidant-token`);
        assert.equal(res.status(), 401, 'no token for a signed-out visitor');
      } finally {
        await context.close();
      }
    });
  });

  // Pointed at your own messenger (README "Point it at your own messenger"): `serve`, a messenger
  // whose Security tab has a public key and the identity claim `email`, and the portal started
  // with CONFIDANT_SITE_ID, CONFIDANT_MESSENGER_ID, CONFIDANT_PRIVATE_KEY_FILE and
  // CONFIDANT_IDENTITY_CLAIM.
  describe(`examples/${example.name} with its own messenger and a private key`, () => {
    if (example.missing()) return; // said above
    let server;
    let portal;
    let browser;
    let messenger;
    let alg;

    before(async () => {
      server = await startServer({ mode: 'serve' });
      const site = await createSite(server, 'Own portal');
      const pair = example.keyPair();
      alg = pair.alg;
      const keyFile = path.join(server.dataDir, 'portal-private-key.pem');
      writeFileSync(keyFile, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      const port = await freePort();
      messenger = await api(server, 'POST', `/api/v1/sites/${site.siteId}/messengers`, {
        name: 'Own messenger',
        security: {
          validation: { method: 'publicKey', publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }) },
          contactIdentityKey: 'email',
          allowedUrls: [`http://127.0.0.1:${port}`],
        },
      });
      portal = await startExample(
        example,
        {
          CONFIDANT_URL: server.url,
          CONFIDANT_SITE_ID: String(site.siteId),
          CONFIDANT_MESSENGER_ID: messenger.messengerId,
          CONFIDANT_PRIVATE_KEY_FILE: keyFile,
          CONFIDANT_IDENTITY_CLAIM: 'email',
        },
        port,
      );
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await stopExample(portal);
      await stopServer(server);
      if (server) removeDir(server.dataDir);
    });

    test('a Contact JWT signed with the private key: the messenger shows, a message round-trips; authorize works too', async () => {
      const { context, page } = await newPage(browser);
      try {
        await loginAndOpen(page, portal, 'ana', 'jwt');
        const jwt = await page.getAttribute('#confidant-messenger', 'data-contact-jwt');
        assert.equal(b64json(jwt.split('.')[0]).alg, alg);
        assert.equal(claimsOf(jwt).email, 'ana@example-portal.test');
        assert.equal(claimsOf(jwt).sub, undefined, 'the identity claim is the one configured');
        const frame = await openMessenger(page);
        const text = `Signed with ${alg} ${Date.now()}`;
        await frameSend(frame, text);
        const siteId = messenger.siteId;
        const conv = await waitFor(() => findConversation(server, { siteId, identity: 'ana@example-portal.test' }), { what: 'the conversation' });
        const reply = `Reply to ${alg} ${Date.now()}`;
        await agentSend(server, { siteId, conversationId: conv.conversationId, body: reply });
        await frame.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(reply)}`, { timeout: 15000 });

        // The backend authorize page, on the same settings, shows the same conversation.
        await page.goto(`${portal.origin}/messages/authorize`);
        const again = await openMessenger(page);
        await again.waitForSelector(`li[data-sender-type="agent"] >> text=${JSON.stringify(reply)}`, { timeout: 15000 });
        assertClean(page);
      } finally {
        await context.close();
      }
    });
  });
}
