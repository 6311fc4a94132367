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

if [[ -z "${CONFIDANT_BIN:-}" ]]; then
  # cargo only rebuilds what changed (web/ is embedded at compile time, so edits there count).
  echo "browser-test: cargo build -p confidant" >&2
  cargo build -p confidant
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
