#!/usr/bin/env bash
# Browser tests for the web parts (loader, messenger frame, console, admin, demo portal).
#
# Drives Debian's Chromium (/usr/bin/chromium) with playwright-core under node's test runner.
# Never downloads a browser. Each test file starts its own confidant server(s) on free loopback
# ports with a fresh data dir, and stops them afterwards.
#
#   scripts/browser-test.sh                      # all tests
#   scripts/browser-test.sh tests/browser/restart.test.mjs   # some files
#
# Env: CONFIDANT_BIN (server binary; default: target/debug/confidant, built if missing or stale),
#      CHROMIUM_BIN (default /usr/bin/chromium), BROWSER_TEST_VERBOSE=1 (server + console output).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM_BIN" ]]; then
  echo "browser-test: installing Debian's chromium" >&2
  SUDO=""
  if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi

if ! command -v node >/dev/null 2>&1; then
  echo "browser-test: node (>= 20) is required" >&2
  exit 1
fi

if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  echo "browser-test: installing playwright-core (no browser download)" >&2
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  if [[ -f tests/browser/package-lock.json ]]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
  else
    (cd tests/browser && npm install --no-audit --no-fund)
  fi
fi

# axe-core (a11y.test.mjs): the accessibility rules run inside each page.
if [[ ! -f tests/browser/node_modules/axe-core/axe.min.js ]]; then
  echo "browser-test: installing axe-core" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) || echo "browser-test: installing axe-core failed" >&2
fi

# typescript (types.test.mjs compiles confidant.d.ts); a failed install leaves what is there, and
# the test says loudly that it skipped the compile checks (under CI=true it fails instead).
if [[ ! -f tests/browser/node_modules/typescript/package.json ]]; then
  echo "browser-test: installing typescript" >&2
  (cd tests/browser && npm install --no-audit --no-fund --loglevel=error) || echo "browser-test: installing typescript failed" >&2
fi

# The runnable examples (examples.test.mjs) need their own packages, installed the way their
# READMEs say and only when missing. Without a package registry the install fails quietly here and
# the test says loudly that it skipped that example (under CI=true it fails instead).
if [[ ! -f examples/node-portal/node_modules/express/package.json || ! -f examples/node-portal/node_modules/jose/package.json ]]; then
  echo "browser-test: npm ci in examples/node-portal" >&2
  (cd examples/node-portal && npm ci --no-audit --no-fund --loglevel=error) || echo "browser-test: npm ci in examples/node-portal failed" >&2
fi
if ! python3 -c 'import flask, jwt' >/dev/null 2>&1; then
  echo "browser-test: pip install -r examples/python-portal/requirements.txt" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r examples/python-portal/requirements.txt >/dev/null 2>&1 \
    || echo "browser-test: pip install -r examples/python-portal/requirements.txt failed" >&2
fi

if [[ -z "${CONFIDANT_BIN:-}" ]]; then
  # cargo only rebuilds what changed (web/ is embedded at compile time; the server's build.rs
  # makes edits there count). Built as `cargo test --workspace` builds it: the same features,
  # so after the Rust suites nothing is rebuilt.
  echo "browser-test: cargo test --workspace --no-run" >&2
  cargo test --workspace --no-run --quiet
  export CONFIDANT_BIN="$ROOT/target/debug/confidant"
fi
if [[ ! -x "$CONFIDANT_BIN" ]]; then
  echo "browser-test: no server binary at $CONFIDANT_BIN" >&2
  exit 1
fi
export CHROMIUM_BIN

if [[ $# -gt 0 ]]; then
  exec node --test "$@"
fi
exec node --test tests/browser/
