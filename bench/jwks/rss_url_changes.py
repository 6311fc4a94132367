#!/usr/bin/env python3
"""Review finding 4: the server's memory (RSS) while a site admin changes one messenger's JWKS
URL 1,000 times and makes one authorize per URL (each fetches and caches the URL's set).

Every URL serves the same hostile set: 1,821 P-256 keys sharing one kid (the most that fit the
fetcher's 256 KiB cap). The server runs from a binary you name, on a fresh SQLite database, with
private URLs allowed (the JWKS is on loopback).

    bench/jwks/rss_url_changes.py target/debug/confidant [--old-flags]

`--old-flags` is for builds from before `--allow-private-urls` (they fetched loopback http
without a flag)."""

import base64, json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.asymmetric import ec

KEYS, CHANGES, TOKEN = 1821, 1000, "rss-bench-operator-token-0123456789"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwk():
    n = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": "k",
            "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}


BODY = json.dumps({"keys": [jwk() for _ in range(KEYS)]}, separators=(",", ":")).encode()
assert len(BODY) <= 256 * 1024, len(BODY)


class Jwks(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *_):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body, token=TOKEN):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def main():
    binary, old = sys.argv[1], "--old-flags" in sys.argv
    jwks = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=jwks.serve_forever, daemon=True).start()
    jwks_base = f"http://127.0.0.1:{jwks.server_address[1]}"
    data = tempfile.mkdtemp(prefix="confidant-rss-")
    port = free_port()
    args = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
            "--database-url", f"sqlite://{data}/c.db?mode=rwc", "--rate-limits", "off"]
    if not old:
        args += ["--allow-private-urls", "on"]
    env = dict(os.environ, CONFIDANT_ADMIN_TOKEN=TOKEN, RUST_LOG="error")
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/livez", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        _, site = call(base, "POST", "/api/v1/sites", {"name": "RSS"})
        site = site["siteId"]
        security = lambda i: {"validation": {"method": "jwks", "jwksUrl": f"{jwks_base}/{i}/jwks.json"}}
        s, m = call(base, "POST", f"/api/v1/sites/{site}/messengers", {"name": "m", "security": security(0)})
        assert s == 201, (s, m)
        m = m["messengerId"]
        # A token the set has the kid of, signed by none of its keys: every authorize fetches
        # the new URL, caches its set, and is refused.
        token = ".".join([b64(json.dumps({"alg": "ES256", "kid": "k"}).encode()),
                          b64(json.dumps({"sub": "a", "exp": int(time.time()) + 3600}).encode()),
                          b64(b"\x01" * 64)])
        print(f"start: {rss_mb(server.pid):.1f} MB RSS")
        started = time.time()
        for i in range(1, CHANGES + 1):
            s, body = call(base, "PUT", f"/api/v1/sites/{site}/messengers/{m}/security", security(i))
            assert s == 200, (s, body)
            s, body = call(base, "POST", "/securemessage/authorize",
                           {"siteId": site, "messengerId": m, "contactJwt": token}, token=None)
            assert s == 401, (s, body)
            if i in (1, 10, 40, 100, 250, 500, 750, 1000):
                print(f"after {i:4} URL changes: {rss_mb(server.pid):7.1f} MB RSS "
                      f"({time.time() - started:.0f} s, last answer {body['error']['code']})")
    finally:
        server.terminate()
        server.wait()
        jwks.shutdown()


main()
