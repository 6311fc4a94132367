// The TypeScript types of the browser API (web/messenger/v1/confidant.d.ts): served by the
// server at /messenger/v1/confidant.d.ts as text, valid TypeScript (tsc --strict compiles a usage
// file that uses every call and event), and precise (each misuse in types/misuse.ts is refused,
// on its own line). The loader's own behaviour behind them is checked in a real page too: the
// calls and events the types name are the ones `window.Confidant` has.
//
// `typescript` is a dev dependency of tests/browser (scripts/browser-test.sh installs it); without
// it this file says loudly that it skipped the compile checks, and fails under CI=true.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  REPO, startServer, stopServer, removeDir, startBusinessServer, sendHtml, businessPage, launchBrowser, newPage,
} from './lib/harness.mjs';

const DTS = path.join(REPO, 'web/messenger/v1/confidant.d.ts');
const TYPES_DIR = path.join(REPO, 'tests/browser/types');
const TSC = path.join(REPO, 'tests/browser/node_modules/typescript/bin/tsc');
const CI = process.env.CI === 'true';

let server;

before(async () => {
  server = await startServer({ mode: 'serve' });
});

after(async () => {
  await stopServer(server);
  if (server) removeDir(server.dataDir);
});

test('GET /messenger/v1/confidant.d.ts serves the declarations as text, to any origin', async () => {
  const res = await fetch(`${server.url}/messenger/v1/confidant.d.ts`, { headers: { Origin: 'https://portal.example.com' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(await res.text(), readFileSync(DTS, 'utf8'));
});

function tsc(config) {
  const run = spawnSync(process.execPath, [TSC, '-p', path.join(TYPES_DIR, config), '--pretty', 'false'], { encoding: 'utf8', timeout: 120000 });
  return { status: run.status, out: `${run.stdout}${run.stderr}` };
}

function tscMissing(t) {
  if (existsSync(TSC)) return false;
  const why = 'typescript is not installed in tests/browser (run npm ci there)';
  if (CI) assert.fail(`${why}; CI=true: failing`);
  console.error(`\n!!!! SKIPPED the TypeScript compile checks: ${why} !!!!\n`);
  t.skip(`SKIPPED: ${why}`);
  return true;
}

test('tsc --strict compiles a usage file that uses every call and event', (t) => {
  if (tscMissing(t)) return;
  const usage = readFileSync(path.join(TYPES_DIR, 'usage.ts'), 'utf8');
  for (const call of ['.init(', '.shutdown()', '.open()', '.close()', '.on(', '.off(', '.version', 'getToken', 'ConfidantSettings', "'confidant:loaded'"]) {
    assert.ok(usage.includes(call), `usage.ts uses ${call}`);
  }
  for (const event of ['ready', 'message', 'unread', 'error']) assert.ok(usage.includes(`on('${event}'`), `usage.ts listens to ${event}`);
  const { status, out } = tsc('tsconfig.json');
  assert.equal(status, 0, `tsc over confidant.d.ts + usage.ts:\n${out}`);
});

test('the types refuse what the loader does not accept or give', (t) => {
  if (tscMissing(t)) return;
  const lines = readFileSync(path.join(TYPES_DIR, 'misuse.ts'), 'utf8').split('\n');
  const expected = lines.flatMap((l, i) => (/\/\/ error \d+:/.test(l) ? [i + 1] : []));
  assert.ok(expected.length >= 7);
  const { status, out } = tsc('tsconfig.misuse.json');
  assert.notEqual(status, 0);
  const errorLines = [...new Set([...out.matchAll(/misuse\.ts\((\d+),\d+\): error TS\d+/g)].map((m) => Number(m[1])))];
  assert.deepEqual(errorLines, expected, `one error on each "// error" line, none elsewhere:\n${out}`);
  assert.ok(!/confidant\.d\.ts\(/.test(out), `no error inside confidant.d.ts itself:\n${out}`);
});

test("the loader's window.Confidant has exactly the calls the types declare", async () => {
  const business = await startBusinessServer();
  const browser = await launchBrowser();
  try {
    business.routes = { '/': (req, res) => sendHtml(res, businessPage({ serverUrl: server.url })) };
    const { page } = await newPage(browser);
    const loaded = page.waitForEvent('console', { predicate: (m) => m.text() === 'loaded', timeout: 15000 }).catch(() => null);
    await page.addInitScript(() => window.addEventListener('confidant:loaded', (e) => console.log(e.detail.version ? 'loaded' : 'no version')));
    await page.goto(`${business.origin}/`);
    await page.waitForFunction(() => window.Confidant && window.__confidant.loaded);
    assert.ok(await loaded, "the confidant:loaded event carries {version}");
    const shape = await page.evaluate(() =>
      Object.keys(window.Confidant).sort().map((k) => [k, typeof window.Confidant[k]]),
    );
    assert.deepEqual(shape, [
      ['close', 'function'], ['init', 'function'], ['off', 'function'], ['on', 'function'], ['open', 'function'],
      ['shutdown', 'function'], ['version', 'string'],
    ]);
    const dts = readFileSync(DTS, 'utf8');
    for (const [name] of shape) assert.match(dts, new RegExp(`readonly ${name}: `), `confidant.d.ts declares ${name}`);
    // init answers a Promise<boolean> and never rejects (bad options → false + an error event).
    const bad = await page.evaluate(async () => {
      const errors = [];
      window.Confidant.on('error', (e) => errors.push(e));
      const result = await window.Confidant.init({ siteId: 'x', messengerId: 'y' });
      return { result, errors };
    });
    assert.equal(bad.result, false);
    assert.equal(bad.errors[0].code, 'invalid_request');
    assert.equal(typeof bad.errors[0].message, 'string');
    // on() refuses an event the types do not name; it returns an off function.
    const onShape = await page.evaluate(() => {
      let threw = false;
      try {
        window.Confidant.on('opened', () => {});
      } catch {
        threw = true;
      }
      return { threw, off: typeof window.Confidant.on('unread', () => {}) };
    });
    assert.deepEqual(onShape, { threw: true, off: 'function' });
  } finally {
    await browser.close();
    await business.close();
  }
});
