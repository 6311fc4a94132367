#!/usr/bin/env python3
"""The server's memory while attachments upload (CONTRACT §11, issue 12).

    python3 bench/attachments_rss.py [--binary target/debug/confidant] [--uploads 20] [--mb 25]

Starts one server (SQLite and a local attachment store in a temporary data directory), makes a
messenger that takes PDFs up to 25 MiB, and reads the server's VmRSS (/proc/PID/status) before
and, every 20 ms, while `--uploads` contacts each upload a `--mb` MB file at once (each body
streamed from this script in 64 KiB writes). Prints the growth at the peak; the goal is under
100 MB for twenty 25 MB uploads. Every upload must answer 201 with the right SHA-256.
"""
import argparse, hashlib, http.client, json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request
sys.path.insert(0, os.path.dirname(__file__))
from lib import call, hs256  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OP = "bench-operator-token-0123456789"
SECRET = "bench-shared-secret-0123456789abcdef0123"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_ready(base, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit("the server exited")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("the server never became ready")


def upload(port, token, size, seed, results, i):
    """Stream a multipart body of `size` bytes (a PDF header, then a pattern) in 64 KiB writes."""
    boundary = "bench-boundary-1f2e"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{i}.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = (b"%PDF-1.7\n" + bytes((seed + j) % 251 for j in range(65536 - 9)))
    digest = hashlib.sha256()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.putrequest("POST", "/api/v1/messenger/attachments")
    c.putheader("Authorization", f"Bearer {token}")
    c.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    c.putheader("Content-Length", str(len(head) + size + len(tail)))
    c.endheaders()
    c.send(head)
    sent = 0
    while sent < size:
        part = block[: min(len(block), size - sent)]
        c.send(part); digest.update(part); sent += len(part)
    c.send(tail)
    r = c.getresponse()
    body = json.loads(r.read() or b"null")
    results[i] = (r.status, body.get("sha256") == digest.hexdigest() if r.status == 201 else body)
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "confidant"))
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--mb", type=float, default=25)
    a = ap.parse_args()
    size = min(int(a.mb * 1_000_000), 26_214_400)
    data = tempfile.mkdtemp(prefix="confidant-rss-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, CONFIDANT_ADMIN_TOKEN=OP, CONFIDANT_DATA_DIR=data, CONFIDANT_RATE_LIMITS="off", RUST_LOG="warn")
    proc = subprocess.Popen([a.binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env)
    try:
        wait_ready(base, proc)
        site = call("POST", f"{base}/api/v1/sites", {"name": "rss"}, OP)["siteId"]
        m = call("POST", f"{base}/api/v1/sites/{site}/messengers", {"name": "m", "security": {
            "validation": {"method": "sharedToken", "sharedToken": SECRET},
            "attachments": {"enabled": True, "maxBytes": 26_214_400, "allowedTypes": ["application/pdf"]}}}, OP)["messengerId"]
        tokens = []
        for i in range(a.uploads):
            jwt = hs256(SECRET, {"sub": f"c{i}", "exp": int(time.time()) + 600})
            tokens.append(call("POST", f"{base}/securemessage/authorize", {"siteId": site, "messengerId": m, "contactJwt": jwt})["accessToken"])
        # Warm up (first upload pays for lazy set-up), then settle.
        warm = [None]
        upload(port, tokens[0], 1_000_000, 7, warm, 0)
        time.sleep(1)
        before = rss_kb(proc.pid)
        results = [None] * a.uploads
        threads = [threading.Thread(target=upload, args=(port, tokens[i], size, i, results, i)) for i in range(a.uploads)]
        peak = before
        t0 = time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kb(proc.pid)); time.sleep(0.02)
        took = time.time() - t0
        ok = sum(1 for r in results if r and r[0] == 201 and r[1] is True)
        print(f"uploads: {a.uploads} x {size / 1e6:.1f} MB in {took:.1f} s; {ok} answered 201 with the right sha256")
        if ok != a.uploads:
            print("failures:", [r for r in results if not (r and r[0] == 201 and r[1] is True)][:3])
        print(f"VmRSS before: {before / 1024:.1f} MiB, peak: {peak / 1024:.1f} MiB, growth: {(peak - before) / 1024:.1f} MiB")
        stored = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(data, "attachments")) for f in fs)
        print(f"attachment store: {stored / 1e6:.1f} MB on disk")
        sys.exit(0 if ok == a.uploads and (peak - before) < 100 * 1024 else 1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["rm", "-rf", data])


if __name__ == "__main__":
    main()
