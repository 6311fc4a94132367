#!/usr/bin/env bash
# Checks the API against its own OpenAPI document with schemathesis (PyPI): a `confidant demo` on
# a free loopback port with a fresh data directory, then every operation of
# /api/v1/openapi.json, in three passes that each carry the credentials their operations need
# (the operator token; a demo agent's session; a demo customer's access token). Every phase
# runs (examples, coverage, fuzzing, stateful). What must hold: no 5xx, every status documented,
# every answer's content type, headers and body as documented. Installs schemathesis when it
# is missing. Prints one `api schema: …` line at the end.
#
#   scripts/api-schema-test.sh                 build the debug binary, run the three passes
#   API_SCHEMA_EXAMPLES=100 scripts/...        more cases per operation (default 25)
set -uo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
examples=${API_SCHEMA_EXAMPLES:-25}

if ! st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "api-schema-test: pip install schemathesis==$SCHEMATHESIS_VERSION" >&2
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null 2>&1
  hash -r
fi
if ! command -v st >/dev/null 2>&1; then
  echo "api schema: FAILED (schemathesis could not be installed)"
  exit 1
fi

# The binary as `cargo test --workspace` builds it (the same features, so after the Rust suites
# this builds nothing; `cargo build -p confidant` would rebuild a dozen crates and the server).
cargo test --workspace --no-run --quiet || { echo "api schema: FAILED (build)"; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
operator=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
mkdir -m 700 "$work/data"
CONFIDANT_ADMIN_TOKEN=$operator "${CARGO_TARGET_DIR:-target}/debug/confidant" demo --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --rate-limits off >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q "^password: " "$work/server.log" && curl -fs "$base/livez" >/dev/null && break
  sleep 0.1
done
messenger=$(sed -n 's/^site: [0-9]*  messenger: //p' "$work/server.log")
email=$(sed -n 's/^email: //p' "$work/server.log")
password=$(sed -n 's/^password: //p' "$work/server.log")
if [ -z "$messenger" ] || [ -z "$password" ]; then
  cat "$work/server.log" >&2
  echo "api schema: FAILED (the demo did not start)"
  exit 1
fi
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
agent=$(curl -fs -H 'content-type: application/json' \
  -d "{\"siteId\": 10000, \"email\": \"$email\", \"password\": \"$password\"}" \
  "$base/api/v1/auth/login" | json_field token)
contact=$(curl -fs -H 'content-type: application/json' -d '{"customer": "mark"}' \
  "$base/demo/api/access-token" | json_field accessToken)

# Known ids most of the time, so that cases reach past the lookups; other values the rest.
cat >"$work/schemathesis.toml" <<EOF
[dictionaries.sites]
values = [10000]
[dictionaries.messengers]
values = ["$messenger"]
[parameters]
"path.siteId" = { dictionary = "sites", probability = 0.8 }
"path.messengerId" = { dictionary = "messengers", probability = 0.8 }
"query.siteId" = { dictionary = "sites", probability = 0.8 }
"query.messengerId" = { dictionary = "messengers", probability = 0.8 }
"body.siteId" = { dictionary = "sites", probability = 0.8 }
"body.messengerId" = { dictionary = "messengers", probability = 0.8 }
EOF

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
failed=0
summary=()
# pass NAME TOKEN FILTER...: one schemathesis run over the operations FILTER selects.
pass() {
  local name=$1 token=$2
  shift 2
  echo "==== api schema: $name ====" >&2
  if (cd "$work" && st --config-file schemathesis.toml run "$base/api/v1/openapi.json" \
      -H "Authorization: Bearer $token" --checks "$checks" -n "$examples" \
      --phases examples,coverage,fuzzing,stateful --workers 1 --seed 1 --no-color \
      --request-timeout 10 --suppress-health-check all "$@"); then
    summary+=("$name: ok")
  else
    summary+=("$name: FAILED")
    failed=1
  fi
}
# The two WebSocket routes answer only an upgrade (the Rust suite tests them); logout would end
# the pass's own session.
pass "agent" "$agent" --include-path-regex '^/api/v1/auth/(sessions|totp|ws-ticket|me)'
pass "contact" "$contact" --include-path-regex '^/api/v1/messenger/(conversations|messages|attachments|me$)'
# Last: the operator's pass may delete the demo messenger (and with it the contact's token).
pass "operator" "$operator" --exclude-path-regex '/ws$' \
  --exclude-path-regex '^/api/v1/(messenger/(conversations|messages|attachments|me$)|auth/(sessions|totp|ws-ticket|logout))'

if grep -q "panicked" "$work/server.log"; then
  grep -n "panicked" "$work/server.log" >&2
  summary+=("server log: a panic")
  failed=1
fi
printf 'api schema: %s\n' "$(IFS=';'; echo "${summary[*]}")"
exit $failed
