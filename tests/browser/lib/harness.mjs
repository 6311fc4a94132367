// Shared helpers for the browser tests: Confidant server processes, a "business" web server on
// other loopback origins, Contact JWTs signed in node, and Debian's Chromium via playwright-core.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ADMIN_TOKEN = `browser-test-operator-${randomBytes(12).toString('hex')}`;
export const SCREENSHOT_DIR = path.join(REPO, 'docs', 'screenshots');

const BIN = process.env.CONFIDANT_BIN || path.join(REPO, 'target', 'debug', 'confidant');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const VERBOSE = Boolean(process.env.BROWSER_TEST_VERBOSE);

// ---------------------------------------------------------------------------------------------
// Ports, waiting

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value (or stops throwing). */
export async function waitFor(fn, { timeout = 15000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await sleep(interval);
  }
}

// ---------------------------------------------------------------------------------------------
// Confidant server processes

export function freshDataDir() {
  return mkdtempSync(path.join(os.tmpdir(), 'confidant-browser-'));
}

/**
 * Start `confidant demo|serve` on 127.0.0.1:port. Resolves once /healthz answers 200 (the port
 * answers "starting" with a 503 until the store is open), with
 * { proc, port, url, dataDir, output(), demo: {email, password, messengerId}? }.
 */
export async function startServer({ mode = 'demo', port, dataDir, args = [], env = {} } = {}) {
  if (!existsSync(BIN)) throw new Error(`no server binary at ${BIN}: run cargo build -p confidant (or set CONFIDANT_BIN)`);
  port = port || (await freePort());
  dataDir = dataDir || freshDataDir();
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  const childEnv = { ...process.env };
  // Settings from the outer environment must not leak in (each test owns a fresh SQLite dir).
  for (const key of Object.keys(childEnv)) if (key.startsWith('CONFIDANT_')) delete childEnv[key];
  const proc = spawn(BIN, [mode, '--listen', `127.0.0.1:${port}`, ...args], {
    env: {
      ...childEnv,
      CONFIDANT_DATA_DIR: dataDir,
      CONFIDANT_ADMIN_TOKEN: ADMIN_TOKEN,
      NO_COLOR: '1',
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const collect = (chunk) => {
    out += chunk.toString();
    if (VERBOSE) process.stderr.write(`[server ${port}] ${chunk}`);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const server = { proc, port, url, dataDir, exited, output: () => out };

  await Promise.race([
    waitFor(
      async () => {
        const res = await fetch(`${url}/healthz`);
        return res.ok;
      },
      { timeout: 30000, interval: 100, what: `confidant on ${url}` },
    ),
    exited.then(({ code, signal }) => {
      throw new Error(`confidant exited early (code ${code}, signal ${signal}):\n${out}`);
    }),
  ]);

  if (mode === 'demo') {
    // The credentials are printed before the listener starts; give stdout a moment anyway.
    await waitFor(() => /password:\s*\S+/.test(out), { timeout: 5000, what: 'demo credentials' }).catch(() => {});
    const email = /email:\s*(\S+)/.exec(out);
    const password = /password:\s*(\S+)/.exec(out);
    const cfg = await (await fetch(`${url}/demo/api/config`)).json();
    server.demo = {
      email: email && email[1],
      password: password && password[1],
      siteId: cfg.siteId,
      messengerId: cfg.messengerId,
      customers: cfg.customers,
    };
  }
  return server;
}

/** SIGTERM, then SIGKILL if it does not stop within `graceMs`. Resolves with the exit info. */
export async function stopServer(server, { graceMs = 10000 } = {}) {
  if (!server || !server.proc) return null;
  const { proc } = server;
  if (proc.exitCode !== null || proc.signalCode !== null) return server.exited;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  const result = await server.exited;
  clearTimeout(timer);
  return result;
}

export function removeDir(dir) {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // ignore
  }
}

/**
 * A `confidant demo` server and a browser for the tests of one file: started before them,
 * stopped (and the data removed) after. Read `.server` and `.browser` inside the tests.
 */
export function demoAndBrowser() {
  const shared = { server: null, browser: null };
  before(async () => {
    shared.server = await startServer({ mode: 'demo' });
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close();
    await stopServer(shared.server);
    if (shared.server) removeDir(shared.server.dataDir);
  });
  return shared;
}

// ---------------------------------------------------------------------------------------------
// Mail: a tiny SMTP server that keeps what it is sent, and the settings pointing a server at one

/** A minimal SMTP server on loopback: every mail's recipients and raw text, in `mails`. */
export async function startSmtpSink() {
  const port = await freePort();
  const mails = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    let inData = false;
    let data = [];
    let rcpt = [];
    const say = (line) => socket.write(`${line}\r\n`);
    say('220 sink.test ESMTP');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let i;
      while ((i = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            mails.push({ to: rcpt, raw: data.join('\r\n') });
            data = [];
            say('250 ok');
          } else {
            data.push(line.startsWith('.') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.split(/[ :]/)[0].toUpperCase();
        if (verb === 'EHLO') say('250-sink.test\r\n250 8BITMIME');
        else if (verb === 'HELO') say('250 sink.test');
        else if (verb === 'MAIL') { rcpt = []; say('250 ok'); }
        else if (verb === 'RCPT') { rcpt.push((/<([^>]*)>/.exec(line) || [])[1]); say('250 ok'); }
        else if (verb === 'DATA') { inData = true; say('354 go ahead'); }
        else if (verb === 'QUIT') { say('221 bye'); socket.end(); }
        else say('250 ok');
      }
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, mails, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** The server arguments that send offline notices to an SMTP server on `port` of loopback. */
export function smtpArgs(port) {
  return ['--smtp-url', `smtp://127.0.0.1:${port}`, '--smtp-from', 'Notices <notices@confidant.test>'];
}

// ---------------------------------------------------------------------------------------------
// Admin / agent API

export async function apiCall(server, method, apiPath, body, { token = ADMIN_TOKEN, headers = {} } = {}) {
  const res = await fetch(`${server.url}${apiPath}`, {
    method,
    headers: {
      Accept: 'application/json',
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  return { status: res.status, headers: res.headers, body: data };
}

export async function api(server, method, apiPath, body, opts) {
  const res = await apiCall(server, method, apiPath, body, opts);
  if (res.status < 200 || res.status >= 300) {
    throw new Error(`${method} ${apiPath} answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

export async function createSite(server, name = 'Browser Test Site') {
  return api(server, 'POST', '/api/v1/sites', { name });
}

/** A messenger on site `siteId` with a known shared token and the given allowed URLs. */
export async function createMessenger(server, { siteId = 10000, name = 'Browser test', allowedUrls = [], identityKey = 'sub' } = {}) {
  const sharedToken = `bt-shared-${randomBytes(24).toString('hex')}`;
  const messenger = await api(server, 'POST', `/api/v1/sites/${siteId}/messengers`, {
    name,
    security: {
      validation: { method: 'sharedToken', sharedToken },
      contactIdentityKey: identityKey,
      allowedUrls,
    },
  });
  return { ...messenger, sharedToken };
}

export async function createAgent(server, { siteId = 10000, role = 'agent', name = 'Test Agent' } = {}) {
  const email = `agent-${randomUUID().slice(0, 8)}@browser.test`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const agent = await api(server, 'POST', `/api/v1/sites/${siteId}/agents`, { email, password, name, role });
  return { ...agent, email, password };
}

export async function agentLogin(server, { siteId = 10000, email, password }) {
  const data = await api(server, 'POST', '/api/v1/auth/login', { siteId, email, password }, { token: null });
  return data.token;
}

/** The open conversation of a contact identity (as the operator sees it). */
export async function findConversation(server, { siteId = 10000, identity, preview = false }) {
  const data = await api(server, 'GET', `/api/v1/sites/${siteId}/conversations?status=open&preview=${preview}`);
  return (data.conversations || []).find((c) => c.contact && c.contact.identity === identity) || null;
}

export async function agentSend(server, { siteId = 10000, conversationId, body, token = ADMIN_TOKEN, clientMessageId = randomUUID() }) {
  return api(server, 'POST', `/api/v1/sites/${siteId}/conversations/${conversationId}/messages`, { clientMessageId, body }, { token });
}

// ---------------------------------------------------------------------------------------------
// Contact JWTs (what the business's backend does)

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function signContactJwt(secret, claims, { ttlSeconds = 600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'HS256', typ: 'JWT' };
  const payload = { iat: now, exp: now + ttlSeconds, ...claims };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = createHmac('sha256', secret).update(input).digest();
  return `${input}.${b64url(sig)}`;
}

// ---------------------------------------------------------------------------------------------
// The business's web server (another loopback origin)

/**
 * A tiny HTTP server. `routes` maps a pathname (exact) to (req, res, url) => void, or a pathname
 * prefix ending in "*" to the same. Resolves with { port, origin, routes, close() }; `routes` may
 * be replaced or extended after the start (pages often need the origin to be known first).
 */
export async function startBusinessServer(routes = {}, { port } = {}) {
  port = port || (await freePort());
  const self = { port, origin: `http://127.0.0.1:${port}`, routes };
  const srv = createServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    const routes = self.routes;
    let handler = routes[url.pathname];
    if (!handler) {
      const key = Object.keys(routes).find((k) => k.endsWith('*') && url.pathname.startsWith(k.slice(0, -1)));
      handler = key && routes[key];
    }
    try {
      if (handler) await handler(req, res, url);
      else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found');
      }
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(err && err.stack));
    }
  });
  await new Promise((resolve) => srv.listen(port, '127.0.0.1', resolve));
  self.close = () =>
    new Promise((resolve) => {
      srv.closeAllConnections?.();
      srv.close(() => resolve());
    });
  return self;
}

export function sendHtml(res, html) {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

export function sendJson(res, status, value) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(value));
}

const escapeAttr = (s) => String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * A business page. It records the loader's events in window.__confidant = {events: [...]} and,
 * with `snippet`, carries the installation code (data attributes) itself.
 */
export function businessPage({ serverUrl, siteId = '', messengerId = '', contactJwt = '', accessToken = '', title = 'Business page', extraHead = '', body = '' }) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeAttr(title)}</title>
<script>
  window.__confidant = { events: [], loaded: false };
  window.addEventListener('confidant:loaded', function () {
    window.__confidant.loaded = true;
    ['ready', 'message', 'unread', 'error'].forEach(function (name) {
      window.Confidant.on(name, function (payload) { window.__confidant.events.push({ name: name, payload: payload, at: Date.now() }); });
    });
  });
</script>
${extraHead}
</head>
<body>
<h1>${escapeAttr(title)}</h1>
${body}
<div id="confidant-messenger" data-site-id="${escapeAttr(siteId)}" data-messenger-id="${escapeAttr(messengerId)}"
     data-contact-jwt="${escapeAttr(contactJwt)}" data-access-token="${escapeAttr(accessToken)}"></div>
<script async src="${escapeAttr(serverUrl)}/messenger/v1/loader.js"></script>
</body>
</html>`;
}

// A business-server route that serves a page embedding `messenger` for the contact `claims`
// (an object, or a function of the request's URL giving one).
export function embedRoute(server, messenger, { claims, title }) {
  return (req, res, url) =>
    sendHtml(
      res,
      businessPage({
        serverUrl: server.url,
        siteId: messenger.siteId,
        messengerId: messenger.messengerId,
        contactJwt: signContactJwt(messenger.sharedToken, typeof claims === 'function' ? claims(url) : claims),
        title,
      }),
    );
}

// ---------------------------------------------------------------------------------------------
// Browser

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A fresh context + page with a 1280x800 viewport; console errors are collected on page.__logs. */
export async function newPage(browser, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.__logs = [];
  page.on('console', (msg) => {
    page.__logs.push({ type: msg.type(), text: msg.text(), url: msg.location() && msg.location().url });
    if (VERBOSE) process.stderr.write(`[console ${msg.type()}] ${msg.text()}\n`);
  });
  page.on('pageerror', (err) => {
    page.__logs.push({ type: 'pageerror', text: String(err && err.stack ? err.stack : err) });
    if (VERBOSE) process.stderr.write(`[pageerror] ${err}\n`);
  });
  return { context, page };
}

/** Page errors (uncaught exceptions) other than the ones a test expects. */
export function pageErrors(page) {
  return page.__logs.filter((l) => l.type === 'pageerror');
}

/** Console reports of Content-Security-Policy violations (inline code or styles, blocked loads). */
export function cspViolations(page) {
  return page.__logs.filter((l) => /Content Security Policy|Content-Security-Policy/i.test(l.text));
}

export function ensureScreenshotDir() {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return SCREENSHOT_DIR;
}

// ---------------------------------------------------------------------------------------------
// Messenger frame and console helpers

export const FRAME = 'iframe[data-testid="confidant-frame"]';

/** The messenger iframe's Frame (waits for it to be attached and loaded). */
export async function messengerFrame(page, { timeout = 15000 } = {}) {
  const handle = await page.waitForSelector(FRAME, { state: 'attached', timeout });
  const frame = await waitFor(async () => {
    const f = await handle.contentFrame();
    if (!f) return null;
    const url = f.url();
    return url.includes('/messenger/v1/frame') ? f : null;
  }, { timeout, what: 'the messenger frame' });
  await frame.waitForSelector('#composer', { timeout });
  return frame;
}

/** Open the panel (if closed) and wait until the frame is connected and ready to write. */
export async function openMessenger(page, { timeout = 20000 } = {}) {
  await page.waitForSelector('[data-testid="confidant-launcher"]', { timeout });
  const expanded = await page.getAttribute('[data-testid="confidant-launcher"]', 'aria-expanded');
  if (expanded !== 'true') await page.click('[data-testid="confidant-launcher"]');
  const frame = await messengerFrame(page, { timeout });
  await frame.waitForSelector('[data-testid="connection-state"][data-state="connected"]', { timeout });
  await frame.waitForSelector('#composer:not([disabled])', { timeout });
  return frame;
}

export async function frameSend(frame, text) {
  await frame.fill('#composer', text);
  await frame.press('#composer', 'Enter');
  await frame.waitForSelector(`li[data-testid="message"][data-state="sent"][data-sender-type="contact"] >> text=${JSON.stringify(text)}`, {
    timeout: 15000,
  });
}

/** Bodies of the messages the frame shows, in order. */
export async function frameMessages(frame) {
  return frame.$$eval('#message-list li[data-testid="message"]', (items) =>
    items.map((li) => ({
      body: li.querySelector('.bubble') ? li.querySelector('.bubble').textContent : '',
      sender: li.dataset.senderType,
      seq: Number(li.dataset.seq),
      state: li.dataset.state,
    })),
  );
}

/** Sign in on an agent page's form (the console and the admin pages share it). */
async function signIn(page, url, { siteId, email, password }) {
  await page.goto(`${url}?siteId=${siteId}`);
  await page.waitForSelector('#login-email', { state: 'visible' });
  await page.fill('#login-site', String(siteId));
  await page.fill('#login-email', email);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#app:not([hidden])');
}

/** Sign in to the admin pages (the demo agent, unless `who` says otherwise). */
export async function adminLogin(page, server, who = {}) {
  await signIn(page, `${server.url}/admin/`, { ...server.demo, ...who });
}

/** Sign in to the admin pages and open a messenger's Security tab. */
export async function openSecurityTab(page, server, messengerId, who) {
  await adminLogin(page, server, who);
  await page.click(`[data-testid="messenger-item"][data-messenger-id="${messengerId}"]`);
  await page.waitForSelector('#security-form:not([hidden])');
}

export async function consoleLogin(page, server, { siteId = 10000, email, password }) {
  await signIn(page, `${server.url}/console/`, { siteId, email, password });
  await page.waitForSelector('#live-state[data-state="connected"]', { timeout: 15000 });
}
