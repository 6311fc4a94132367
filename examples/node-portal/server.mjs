// A tiny business portal that shows the Confidant messenger to its logged-in customers.
//
// It plays the part of YOUR web application: a customer "logs in" (a picker, no real auth), and
// the page shows the messenger in one of the two ways Confidant supports:
//
//   /messages/jwt        the backend signs a Contact JWT and puts it in the installation code
//                        (data-contact-jwt); the loader exchanges it for an access token.
//   /messages/authorize  the backend exchanges the Contact JWT itself (POST /securemessage/authorize)
//                        and only the access token reaches the page; the page's getToken asks this
//                        backend (POST /api/confidant-token) for a fresh one before it expires.
//
// Start: `npm ci && npm start`. Settings: see README.md (environment variables only).
import { createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { SignJWT } from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Settings (environment variables; the defaults work against `cargo run --release -- demo`)

const env = process.env;
const CONFIDANT_URL = (env.CONFIDANT_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const HOST = env.HOST || '127.0.0.1';
const PORT = Number(env.PORT || 3000);
const IDENTITY_CLAIM = env.CONFIDANT_IDENTITY_CLAIM || 'sub';
const CONTACT_JWT_TTL_SECONDS = 600; // keep Contact JWTs short-lived: minutes

function fail(message) {
  console.error(`node-portal: ${message}`);
  process.exit(2);
}

/** How this backend signs Contact JWTs: the messenger's shared token (HS256) or a private key. */
function signingKey() {
  if (env.CONFIDANT_PRIVATE_KEY_FILE) {
    let key;
    try {
      key = createPrivateKey(readFileSync(env.CONFIDANT_PRIVATE_KEY_FILE, 'utf8'));
    } catch (err) {
      fail(`CONFIDANT_PRIVATE_KEY_FILE: cannot read a PEM private key from ${env.CONFIDANT_PRIVATE_KEY_FILE} (${err.message})`);
    }
    // The key type fixes the algorithm (CONTRACT §5): RSA → RS256, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA.
    const type = key.asymmetricKeyType;
    const curve = key.asymmetricKeyDetails && key.asymmetricKeyDetails.namedCurve;
    const alg =
      type === 'rsa' ? 'RS256'
      : type === 'ed25519' ? 'EdDSA'
      : type === 'ec' && curve === 'prime256v1' ? 'ES256'
      : type === 'ec' && curve === 'secp384r1' ? 'ES384'
      : null;
    if (!alg) fail(`CONFIDANT_PRIVATE_KEY_FILE: a ${type}${curve ? ` (${curve})` : ''} key is not one Confidant accepts (RSA, EC P-256/P-384, Ed25519)`);
    return { key, alg, describe: `private key ${env.CONFIDANT_PRIVATE_KEY_FILE} (${alg})` };
  }
  const secret = env.CONFIDANT_SHARED_TOKEN;
  if (!secret) {
    fail(
      'set CONFIDANT_SHARED_TOKEN to the messenger\'s shared token (`confidant demo` prints it on the line ' +
        '"messenger shared token"), or CONFIDANT_PRIVATE_KEY_FILE to a PEM private key whose public key is on the Security tab',
    );
  }
  const encoding = env.CONFIDANT_SHARED_TOKEN_ENCODING || 'text';
  if (encoding !== 'text' && encoding !== 'base64url') fail('CONFIDANT_SHARED_TOKEN_ENCODING must be text or base64url');
  const key = encoding === 'base64url' ? Buffer.from(secret, 'base64url') : new TextEncoder().encode(secret);
  return { key, alg: 'HS256', describe: `shared token (HS256, ${encoding})` };
}

const SIGNING = signingKey();

/**
 * The site and messenger to show. CONFIDANT_MESSENGER_ID names it; without it, the demo server's
 * own portal configuration (`GET /demo/api/config`, answered by `confidant demo` only) tells.
 */
let messengerCache = null;
async function messenger() {
  if (messengerCache) return messengerCache;
  if (env.CONFIDANT_MESSENGER_ID) {
    messengerCache = { siteId: Number(env.CONFIDANT_SITE_ID || 10000), messengerId: env.CONFIDANT_MESSENGER_ID };
    return messengerCache;
  }
  let res;
  try {
    res = await fetch(`${CONFIDANT_URL}/demo/api/config`, { headers: { Accept: 'application/json' } });
  } catch (err) {
    throw new Error(`Confidant at ${CONFIDANT_URL} cannot be reached (${err.cause?.code || err.message}); is it running?`);
  }
  if (!res.ok) {
    throw new Error(`CONFIDANT_MESSENGER_ID is not set and ${CONFIDANT_URL} is not a \`confidant demo\` server (GET /demo/api/config answered ${res.status})`);
  }
  const cfg = await res.json();
  messengerCache = { siteId: Number(env.CONFIDANT_SITE_ID || cfg.siteId), messengerId: cfg.messengerId };
  return messengerCache;
}

// ---------------------------------------------------------------------------------------------
// The portal's customers and sessions (made up; a real portal has its own login)

const CUSTOMERS = {
  mark: { id: 'mark', name: 'Mark Tylor', email: 'mark@example-portal.test', phone: '+1 555 0101', city: 'Boston' },
  ana: { id: 'ana', name: 'Ana Souza', email: 'ana@example-portal.test', phone: '+1 555 0102', city: 'Austin' },
};

const sessions = new Map(); // session id → customer id (in memory: a restart logs everyone out)
const SESSION_COOKIE = 'portal_session';

function currentCustomer(req) {
  const cookies = Object.fromEntries(
    (req.headers.cookie || '').split(';').map((c) => c.trim().split('=')).filter((kv) => kv.length === 2),
  );
  const id = sessions.get(cookies[SESSION_COOKIE]);
  return id ? CUSTOMERS[id] : null;
}

// ---------------------------------------------------------------------------------------------
// What a business backend does for Confidant

/** A Contact JWT for the customer: the identity claim, a short exp, and profile claims. */
async function contactJwt(customer) {
  return new SignJWT({
    [IDENTITY_CLAIM]: customer.email,
    'comm100.name': customer.name,
    'comm100.email': customer.email,
    'comm100.phone': customer.phone,
    'comm100.city': customer.city,
  })
    .setProtectedHeader({ alg: SIGNING.alg, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(`${CONTACT_JWT_TTL_SECONDS}s`)
    .sign(SIGNING.key);
}

/** The backend authorize exchange: Contact JWT → Confidant access token (the page never sees the JWT). */
async function authorize(customer) {
  const { siteId, messengerId } = await messenger();
  const res = await fetch(`${CONFIDANT_URL}/securemessage/authorize`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ siteId, messengerId, contactJwt: await contactJwt(customer) }),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (body && body.error) || {};
    const e = new Error(`authorize answered ${res.status} ${err.code || ''}: ${err.message || ''}`);
    e.code = err.code || 'unavailable';
    throw e;
  }
  return { accessToken: body.accessToken, expiresIn: body.expiresIn };
}

// ---------------------------------------------------------------------------------------------
// Pages

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function layout({ title, customer, body, head = '' }) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} — Example Portal</title>
<link rel="stylesheet" href="/static/portal.css">
${head}
</head>
<body>
<header>
  <strong>Example Portal</strong> <small>(Node.js: express + jose)</small>
  ${customer ? `<span class="who">Signed in as <b data-testid="customer-name">${esc(customer.name)}</b></span>
  <form method="post" action="/logout" id="logout-form"><button type="submit" id="logout">Log out</button></form>` : ''}
</header>
<main>
${body}
</main>
</body>
</html>`;
}

function loginPage() {
  const buttons = Object.values(CUSTOMERS)
    .map((c) => `<button type="submit" name="customer" value="${esc(c.id)}" data-testid="login-${esc(c.id)}">${esc(c.name)}</button>`)
    .join('\n    ');
  return layout({
    title: 'Log in',
    body: `<h1>Log in</h1>
<p>This example has no real login: pick the customer you are.</p>
<form method="post" action="/login" class="picker">
    ${buttons}
</form>`,
  });
}

function accountPage(customer) {
  return layout({
    title: 'Your account',
    customer,
    body: `<h1>Hello, ${esc(customer.name)}</h1>
<p>Talk to us securely. Two ways to put the messenger in a page:</p>
<ul>
  <li><a href="/messages/jwt" data-testid="flow-jwt">Messages (Contact JWT in the page)</a>: the backend signs a
    Contact JWT and puts it in the installation code.</li>
  <li><a href="/messages/authorize" data-testid="flow-authorize">Messages (backend authorize)</a>: the backend trades the
    Contact JWT for an access token; the page gets only that, and renews it through <code>getToken</code>.</li>
</ul>`,
  });
}

// portal.js comes first, as a plain script: it listens for `confidant:loaded` before the (async)
// loader can run, so it hears every event, even when the loader starts the messenger by itself
// from the installation code's data attributes.
const LOADER_TAGS = `<script src="/static/portal.js"></script>
<script async src="${esc(CONFIDANT_URL)}/messenger/v1/loader.js"></script>`;

/** The part of a messages page that shows what the messenger tells the page (Confidant.on). */
const STATUS = `<p>Messenger: <span id="messenger-status" data-state="loading">loading…</span>
  · unread: <span id="unread-count" data-testid="unread-count">0</span></p>
<p><button type="button" id="open-messenger">Message us</button></p>
<h2>Events from <code>Confidant.on</code></h2>
<ol id="event-log" data-testid="event-log"></ol>`;

function jwtPage(customer, m, jwt) {
  // (a) The installation code (CONTRACT §8) with data-contact-jwt filled in; the loader does the rest.
  return layout({
    title: 'Messages (Contact JWT)',
    customer,
    head: LOADER_TAGS,
    body: `<h1>Messages: Contact JWT in the page</h1>
<p>The backend signed a Contact JWT for ${esc(customer.name)}; the loader exchanges it for an access token.</p>
${STATUS}
<div id="confidant-messenger" data-site-id="${esc(m.siteId)}" data-messenger-id="${esc(m.messengerId)}"
     data-contact-jwt="${esc(jwt)}" data-access-token=""></div>`,
  });
}

function authorizePage(customer, m, token) {
  // (b) No installation-code placeholders: portal.js calls Confidant.init({accessToken, getToken}).
  return layout({
    title: 'Messages (backend authorize)',
    customer,
    head: LOADER_TAGS,
    body: `<h1>Messages: backend authorize</h1>
<p>The backend traded a Contact JWT for an access token; this page never sees the Contact JWT.</p>
${STATUS}
<div id="portal-messenger" data-site-id="${esc(m.siteId)}" data-messenger-id="${esc(m.messengerId)}"
     data-access-token="${esc(token.accessToken)}" data-token-url="/api/confidant-token"></div>`,
  });
}

function errorPage(customer, err) {
  return layout({
    title: 'Messenger unavailable',
    customer,
    body: `<h1>The messenger is unavailable</h1>
<p id="portal-error" data-code="${esc(err.code || '')}">${esc(err.message)}</p>
<p><a href="/account">Back</a></p>`,
  });
}

// The portal's own Content-Security-Policy: its scripts plus what the Confidant loader needs.
function cspHeader() {
  const confidant = new URL(CONFIDANT_URL).origin;
  return [
    "default-src 'self'",
    `script-src 'self' ${confidant}`,
    `connect-src 'self' ${confidant}`,
    `frame-src ${confidant}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
}

// ---------------------------------------------------------------------------------------------
// Routes

const app = express();
app.disable('x-powered-by');
app.use((req, res, next) => {
  res.set('Content-Security-Policy', cspHeader());
  res.set('Cache-Control', 'no-store');
  res.set('Referrer-Policy', 'same-origin');
  next();
});
app.use('/static', express.static(path.join(HERE, 'public')));
app.use(express.urlencoded({ extended: false }));

app.get('/', (req, res) => (currentCustomer(req) ? res.redirect('/account') : res.send(loginPage())));

app.post('/login', (req, res) => {
  const customer = CUSTOMERS[req.body && req.body.customer];
  if (!customer) return res.status(400).send(loginPage());
  const sid = randomBytes(24).toString('base64url');
  sessions.set(sid, customer.id);
  // SameSite=Lax: another site's scripts cannot POST to /api/confidant-token with this cookie.
  res.cookie(SESSION_COOKIE, sid, { httpOnly: true, sameSite: 'lax', path: '/' });
  res.redirect(303, '/account');
});

app.post('/logout', (req, res) => {
  const sid = (req.headers.cookie || '').match(new RegExp(`${SESSION_COOKIE}=([^;]+)`));
  if (sid) sessions.delete(sid[1]);
  res.clearCookie(SESSION_COOKIE, { path: '/' });
  res.redirect(303, '/');
});

function requireCustomer(req, res, next) {
  const customer = currentCustomer(req);
  if (!customer) return req.method === 'GET' ? res.redirect('/') : res.status(401).json({ error: 'not signed in' });
  req.customer = customer;
  return next();
}

app.get('/account', requireCustomer, (req, res) => res.send(accountPage(req.customer)));

app.get('/messages/jwt', requireCustomer, async (req, res) => {
  try {
    res.send(jwtPage(req.customer, await messenger(), await contactJwt(req.customer)));
  } catch (err) {
    res.status(502).send(errorPage(req.customer, err));
  }
});

app.get('/messages/authorize', requireCustomer, async (req, res) => {
  try {
    res.send(authorizePage(req.customer, await messenger(), await authorize(req.customer)));
  } catch (err) {
    console.error(`node-portal: ${err.message}`);
    res.status(502).send(errorPage(req.customer, err));
  }
});

// The page's getToken(): authorize again for the signed-in customer, answer the access token only.
app.post('/api/confidant-token', requireCustomer, async (req, res) => {
  try {
    res.json(await authorize(req.customer));
  } catch (err) {
    console.error(`node-portal: ${err.message}`);
    res.status(502).json({ error: err.code || 'unavailable' });
  }
});

app.listen(PORT, HOST, (err) => {
  if (err) fail(`cannot listen on ${HOST}:${PORT}: ${err.message}`);
  const origin = `http://${HOST.includes(':') ? `[${HOST}]` : HOST}:${PORT}`;
  console.log(`Example portal (Node.js) on ${origin}/`);
  console.log(`  Confidant: ${CONFIDANT_URL}; Contact JWTs signed with the ${SIGNING.describe}`);
  console.log(`  The messenger's allowed URLs must include ${origin} (admin pages → Security tab).`);
});
