#!/usr/bin/env bash
# Load figures on loopback, all measured in one run against the release binary:
#   GET /livez (a route that does no work), GET /healthz, authorize (HS256, returning contact),
#   durable sends into one conversation and into 200 conversations (a fresh clientMessageId each).
# wrk: 2 threads, 16 connections, 10 s each (WRK_DURATION to change). Prints a table with ratios.
# Usage: bench/run.sh [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-sqlite}
DUR=${WRK_DURATION:-10s}
command -v wrk >/dev/null || { apt-get update -qq; apt-get install -y -qq wrk; }
[ -x target/release/confidant ] || cargo build --release
PORT=${BENCH_PORT:-18181}
DIR=$(mktemp -d)
OP=bench-operator-token-0123456789
SECRET=bench-shared-secret-0123456789abcdef0123
DB="sqlite://$DIR/bench.db?mode=rwc"
if [ "$BACKEND" = postgres ]; then
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS confidant_bench WITH (FORCE)" -c "CREATE DATABASE confidant_bench" >/dev/null
  DB="postgres://postgres@127.0.0.1:5432/confidant_bench"
fi
CONFIDANT_ADMIN_TOKEN=$OP CONFIDANT_DATA_DIR=$DIR RUST_LOG=warn target/release/confidant serve \
  --listen 127.0.0.1:$PORT --database-url "$DB" --rate-limits off >"$DIR/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done
python3 bench/lib.py "http://127.0.0.1:$PORT" "$OP" "$SECRET" 200 "$DIR" >/dev/null
rps() { awk '/Requests\/sec/{print $2}'; }
run() { wrk -t2 -c16 -d"$DUR" "$@" 2>&1 | tee -a "$DIR/wrk.log" | rps; }
LIVEZ=$(run "http://127.0.0.1:$PORT/livez")
HEALTH=$(run "http://127.0.0.1:$PORT/healthz")
AUTH=$(run -s "$DIR/authorize.lua" "http://127.0.0.1:$PORT/securemessage/authorize")
ONE=$(run -s "$DIR/send_one.lua" "http://127.0.0.1:$PORT")
MANY=$(run -s "$DIR/send_many.lua" "http://127.0.0.1:$PORT")
if grep -E "Non-2xx|Socket errors" "$DIR/wrk.log" >/dev/null; then echo "note: some requests failed:"; grep -E "Non-2xx|Socket errors" "$DIR/wrk.log"; fi
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
printf '%-40s %12s %10s\n' "figure ($BACKEND, wrk -t2 -c16 -d$DUR)" "req/s" "÷ livez"
printf '%-40s %12s %10s\n' "GET /livez (no work)" "$LIVEZ" "1.00"
printf '%-40s %12s %10s\n' "GET /healthz (one DB round trip)" "$HEALTH" "$(ratio $HEALTH $LIVEZ)"
printf '%-40s %12s %10s\n' "authorize HS256, returning contact" "$AUTH" "$(ratio $AUTH $LIVEZ)"
printf '%-40s %12s %10s\n' "durable send, one conversation" "$ONE" "$(ratio $ONE $LIVEZ)"
printf '%-40s %12s %10s\n' "durable send, 200 conversations" "$MANY" "$(ratio $MANY $LIVEZ)"
