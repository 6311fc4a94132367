#!/usr/bin/env python3
"""Every benchmark of Confidant in one run, printed as a table of figures and ratios.

    python3 bench/all.py [--duration 10] [--no-synapse] [--no-postgres] [--only SECTIONS] [--off-binary PATH]

Everything runs on loopback on this machine; each ratio compares two figures measured in this
same run. Load comes from wrk (2 threads, 16 connections) and from bench/floor's loadgen.
Baselines: a route that does no work (/livez), the raw crypto of the library Confidant uses,
the floor program (bench/floor: parse, verify, sign, answer — nothing else), and Matrix Synapse
doing the same jobs (../shared/peers/synapse/run.sh).
"""
import argparse, json, os, re, urllib.error, urllib.request, resource, shutil, signal, socket, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(__file__))
from lib import call, hs256  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
# The server binary under test; --binary swaps it (to compare two builds in one run).
BIN = [os.path.join(REL, "confidant")]
OP = "bench-operator-token-0123456789"
SECRET = "bench-shared-secret-0123456789abcdef0123"
ALGS = ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"]
rows = []


def row(name, value, unit, ratio="", note=""):
    rows.append((name, value, unit, ratio, note))
    print(f"  {name}: {value} {unit} {ratio} {note}", flush=True)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def wait_ready(port, timeout=60):
    """The port answers before the database is open (/healthz says "starting" with a 503)."""
    wait_port(port, timeout)
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"the server on {port} never became ready")


def wrk(url, script=None, duration=10):
    cmd = ["wrk", "-t2", "-c16", f"-d{duration}s"] + (["-s", script] if script else []) + [url]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    note = (f"non-2xx={bad.group(1)}" if bad else "") + (f" socket errors: {errs.group(1)}" if errs else "")
    return rps, note.strip()


def cpu_seconds(pid):
    """utime + stime of a process so far (/proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(url, pid, script=None, duration=10):
    """wrk against one process: (req/s, note, CPU µs of that process per request)."""
    before = cpu_seconds(pid)
    rps, note = wrk(url, script, duration)
    cpu = cpu_seconds(pid) - before
    return rps, note, cpu * 1e6 / max(rps * duration, 1)


def metric(srv, name):
    """A Prometheus metric on `srv`'s /metrics, summed over its label sets (0 when absent)."""
    text = urllib.request.urlopen(f"{srv.base}/metrics").read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def messages_stored(srv):
    return metric(srv, "confidant_messages_stored_total")


def lua_post(path, body_json, headers=None):
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    hs = "".join(f'wrk.headers["{k}"]="{v}"\n' for k, v in (headers or {}).items())
    f.write(f'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\n{hs}wrk.body=[[{body_json}]]\n')
    f.close(); return f.name


class Server:
    def __init__(self, db="sqlite", ulimit=False, bus=None, peer_of=None, binary=None, log="warn"):
        self.dir = tempfile.mkdtemp(prefix="confidant-bench-")
        self.port = free_port()
        url = f"sqlite://{self.dir}/bench.db?mode=rwc"
        if peer_of is not None:
            url = peer_of.url
        elif db == "postgres":
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "DROP DATABASE IF EXISTS confidant_bench WITH (FORCE)", "-c", "CREATE DATABASE confidant_bench"], check=True, capture_output=True)
            url = "postgres://postgres@127.0.0.1:5432/confidant_bench"
        self.url = url
        env = dict(os.environ, CONFIDANT_ADMIN_TOKEN=OP, CONFIDANT_DATA_DIR=self.dir)
        env.pop("RUST_LOG", None)
        if log is not None:
            env["RUST_LOG"] = log
        if peer_of is not None:
            # Every process on one database shares its master key.
            env["CONFIDANT_MASTER_KEY_FILE"] = os.path.join(peer_of.dir, "master.key")
        self.env = env
        extra = (["--bus-url", bus] if bus else []) + (["--public-url", peer_of.base] if peer_of else [])
        # The JWKS cases serve their set on loopback: a private URL.
        self.args = [binary or BIN[0], "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", url, "--rate-limits", "off", "--allow-private-urls", "on", *extra]
        self.launch()
        self.base = f"http://127.0.0.1:{self.port}"
        self.site = peer_of.site if peer_of else call("POST", f"{self.base}/api/v1/sites", {"name": "bench"}, OP)["siteId"]

    def messenger(self, validation):
        return call("POST", f"{self.base}/api/v1/sites/{self.site}/messengers", {"name": "bench", "security": {"validation": validation}}, OP)["messengerId"]

    def rss_kb(self, field="VmRSS"):
        """Resident memory in KiB; RssAnon leaves out the database file's mapped pages."""
        with open(f"/proc/{self.p.pid}/status") as f:
            return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))

    def launch(self, timeout=60):
        """Start the process and wait for /healthz 200; `ready_in` is the seconds that took."""
        t0 = time.time()
        self.p = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "a"))
        wait_ready(self.port, timeout)
        self.ready_in = time.time() - t0

    def restart(self):
        """Stop (keeping the data) and start again on the same database and port."""
        self.p.send_signal(signal.SIGTERM); self.p.wait(10)
        # A start may first seal rows stored in clear (seed_messages): allow it time.
        self.launch(timeout=900)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def floor_cmd(*args):
    return subprocess.run([os.path.join(REL, "confidant-floor"), *args], capture_output=True, text=True, check=True).stdout


def authorize_body(srv, messenger, jwt):
    return json.dumps({"siteId": srv.site, "messengerId": messenger, "contactJwt": jwt})


def send_script(tokens, seeded=0):
    """A wrk script: durable sends by contacts picked at random from `tokens`, each with a
    fresh clientMessageId; with `seeded`, every other request repeats one of the contact's
    stored clientMessageIds seed-1 … seed-<seeded> instead (`seed_sends`)."""
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    # Every wrk thread runs its own Lua state with the same random sequence, so the thread's
    # number goes into each clientMessageId and seeds its choice of contact: without it the
    # threads send the very same (contact, clientMessageId) pairs, and half the "sends" are
    # idempotent repeats.
    f.write("""counter = 0
threads = 0
tokens = {%s}
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
init = function(args)
  -- Several wrk processes (one per node) each number their threads from 1: the process's
  -- own number (the script's argument) keeps their contacts and clientMessageIds apart.
  if args[1] then tid = tid + 100 * tonumber(args[1]) end
  math.randomseed(tid * 7919 + os.time())
end
seeded = %d
request = function()
  counter = counter + 1
  local t = tokens[math.random(1, #tokens)]
  local cmid = tid .. '-' .. counter .. '-' .. os.time()
  if seeded > 0 and counter %% 2 == 0 then
    cmid = 'seed-' .. math.random(1, seeded)
  end
  local body = '{"clientMessageId":"' .. cmid .. '","body":"hello from the benchmark"}'
  return wrk.format("POST", "/api/v1/messenger/messages", {["Authorization"]="Bearer " .. t, ["Content-Type"]="application/json"}, body)
end
""" % (",".join(f'"{t}"' for t in tokens), seeded))
    f.close()
    return f.name


def sends(srv, label, d, contacts=200, with_load=True):
    m = srv.messenger({"method": "sharedToken", "sharedToken": SECRET})
    toks = []
    for i in range(contacts):
        j = hs256(SECRET, {"sub": f"s{i}@bench.test", "exp": int(time.time()) + 3600})
        toks.append(call("POST", f"{srv.base}/securemessage/authorize", {"siteId": srv.site, "messengerId": m, "contactJwt": j})["accessToken"])
    res = {}
    if not with_load:
        return m, toks, res
    for name, tl in (("one conversation", toks[:1]), (f"{contacts} conversations", toks)):
        # The server process's CPU per stored message beside the rate (steadier on shared cores).
        stored, cpu = messages_stored(srv), cpu_seconds(srv.p.pid)
        rps, note = wrk(srv.base, send_script(tl), d)
        n = max(messages_stored(srv) - stored, 1)
        res[name] = (rps, f"server CPU {(cpu_seconds(srv.p.pid) - cpu) * 1e6 / n:.0f} µs/send {note}".strip())
    return m, toks, res


def seed_sends(srv, tokens, per_contact):
    """Store the clientMessageIds seed-1 … seed-<per_contact> of every contact, through the API."""
    from concurrent.futures import ThreadPoolExecutor
    def send(job):
        tok, k = job
        call("POST", f"{srv.base}/api/v1/messenger/messages", {"clientMessageId": f"seed-{k}", "body": "seeded"}, tok)
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(send, [(t, k) for t in tokens for k in range(1, per_contact + 1)]))


def counters(srv, name):
    """A counter of the server's /metrics, by its labels (the whole label text)."""
    with urllib.request.urlopen(f"{srv.base}/metrics") as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? ([\d.e+]+)$", text, re.M)}


def retries(d, backends):
    """Sends where every other request repeats a clientMessageId already stored (a client's
    outbox after a lost answer or a restart) against all-fresh sends, on one server per
    backend, alternated twice; with the server's CPU time per request (utime + stime ÷
    requests), steadier than a rate on a shared machine."""
    for db in backends:
        print(f"retries, {db}: half the sends repeat a stored clientMessageId, vs all fresh:", flush=True)
        srv = Server(db)
        try:
            _, toks, _ = sends(srv, db, d, with_load=False)
            for label, tl, seeds in (("one conversation", toks[:1], 1000), (f"{len(toks)} conversations", toks, 20)):
                seed_sends(srv, tl, seeds)
                fresh, retry, stored = [], [], []
                for _ in range(2):
                    fresh.append(wrk_cpu(srv.base, srv.p.pid, send_script(tl), d))
                    before = counters(srv, "confidant_messages_stored_total").get(None, 0)
                    retry.append(wrk_cpu(srv.base, srv.p.pid, send_script(tl, seeded=seeds), d))
                    after = counters(srv, "confidant_messages_stored_total").get(None, 0)
                    stored.append((after - before) / max(retry[-1][0] * d, 1))
                fell = counters(srv, "confidant_send_batch_fallbacks_total")
                fell = ", ".join(f"{k[9:-2]}={v:.0f}" for k, v in sorted(fell.items()) if v)
                rates = lambda runs: " / ".join(f"{r[0]:.0f}" for r in runs)
                cpus = lambda runs: " / ".join(f"{r[2]:.1f}" for r in runs)
                ratios = " / ".join(f"{r[0] / f[0]:.2f}" for r, f in zip(retry, fresh))
                row(f"send {db}, {label}, all fresh", rates(fresh), "req/s", "1.00", f"CPU {cpus(fresh)} µs/request")
                row(f"send {db}, {label}, 50 % repeats", rates(retry), "req/s", f"{ratios} of fresh",
                    f"CPU {cpus(retry)} µs/request; stored {' / '.join(f'{x:.2f}' for x in stored)} of requests; fallbacks: {fell or 'none'}")
        finally:
            srv.stop()


def seed_messages(db, conversation, n):
    """Store n more messages in one conversation directly in SQLite (the server is stopped)."""
    import sqlite3, uuid
    c = sqlite3.connect(db)
    last = c.execute("SELECT last_seq FROM conversations WHERE conversation_id = ?", (conversation,)).fetchone()[0]
    now = int(time.time() * 1000)
    rows = ((str(uuid.uuid4()), conversation, last + i, "contact", "seed", "Seed", f"seeded message {i}", f"seed-{i}", now)
            for i in range(1, n + 1))
    c.executemany("INSERT INTO messages (message_id, conversation_id, seq, sender_type, sender_id, sender_name, body, client_message_id, created_at) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    c.execute("UPDATE conversations SET last_seq = ? WHERE conversation_id = ?", (last + n, conversation))
    # The rows are in clear: mark the database the way an upgrade from a clear database is
    # marked (migration 0003), so that the next start seals them (vault.rs).
    c.execute("INSERT OR REPLACE INTO vault_state (name, value) VALUES ('clear_data', 'seal on start')")
    c.commit(); c.close()
    return last + n


def fastest_start(srv, times=3):
    """Stop and start `srv` `times` times: the fastest time from process start to /healthz 200
    (interference on a shared machine only ever slows a start)."""
    best = float("inf")
    for _ in range(times):
        srv.restart()
        best = min(best, srv.ready_in)
    return best


def growth_rates(srv, tok, conv, authorize, d):
    """(send, history page of 50, authorize HS256) in req/s, on the store as it is now."""
    send, _ = wrk(srv.base, send_script([tok]), d)
    top = call("GET", f"{srv.base}/api/v1/messenger/conversations", None, tok)["conversations"][0]["lastSeq"]
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write("""request = function()
  return wrk.format("GET", "/api/v1/messenger/conversations/%s/messages?limit=50&after=" .. math.random(0, %d), {["Authorization"]="Bearer %s"})
end
""" % (conv, max(top - 50, 0), tok)); f.close()
    page, _ = wrk(srv.base, f.name, d)
    auth, _ = wrk(f"{srv.base}/securemessage/authorize", lua_post("/", authorize), d)
    return send, page, auth


def growth(d, sections):
    """The `growth` and `startup` sections share one server: measured empty, then with
    1,000,000 messages seeded into one conversation (and, for growth, 10,000 messengers)."""
    print("growth / start-up: 1,000,000 stored messages:", flush=True)
    srv = Server()
    try:
        m = srv.messenger({"method": "sharedToken", "sharedToken": SECRET})
        jwt = hs256(SECRET, {"sub": "grow@bench.test", "exp": int(time.time()) + 3600})
        authorize = authorize_body(srv, m, jwt)
        tok = call("POST", f"{srv.base}/securemessage/authorize", json.loads(authorize))["accessToken"]
        conv = call("POST", f"{srv.base}/api/v1/messenger/messages", {"clientMessageId": "first", "body": "first"}, tok)["conversationId"]
        empty_start = fastest_start(srv)
        empty = growth_rates(srv, tok, conv, authorize, d) if "growth" in sections else None
        srv.p.send_signal(signal.SIGTERM); srv.p.wait(10)
        seed_messages(os.path.join(srv.dir, "bench.db"), conv, 1_000_000)
        srv.restart()
        sealing = srv.ready_in
        if "startup" in sections:
            full_start = fastest_start(srv)
            row("start to /healthz 200, 1M messages stored (SQLite)", f"{full_start * 1000:.0f}", "ms",
                f"{full_start / empty_start:.2f} of empty ({empty_start * 1000:.0f} ms)", "fastest of 3")
            row("first start after seeding 1M messages in clear (seals them)", f"{sealing:.1f}", "s", "", "the upgrade path of migration 0003")
        if empty:
            for i in range(9_999):
                call("POST", f"{srv.base}/api/v1/sites/{srv.site}/messengers", {"name": f"m{i}"}, OP)
            full = growth_rates(srv, tok, conv, authorize, d)
            names = ("send, 1M messages stored", "history page of 50, 1M messages stored", "authorize HS256, 10,000 messengers")
            for name, than, e, f in zip(names, ("of empty", "of empty", "of one"), empty, full):
                row(name, f"{f:.0f}", "req/s", f"{f / e:.2f} {than} ({e:.0f})")
    finally:
        srv.stop()


def jwks_rotation(srv, d):
    """Authorize against a JWKS messenger while the business rotates its key: the set gains a
    new kid at a third of the run, and tokens switch to it at two thirds. No request may fail."""
    import base64, http.server, threading
    pem = floor_cmd("pem", "EdDSA")
    der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
    x = base64.urlsafe_b64encode(der[-32:]).rstrip(b"=").decode()
    jwk = lambda kid: {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig"}
    state = {"keys": [jwk("k1")], "hits": 0}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["hits"] += 1
            body = json.dumps({"keys": state["keys"]}).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "max-age=300"); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        m = srv.messenger({"method": "jwks", "jwksUrl": f"http://127.0.0.1:{httpd.server_port}/jwks.json"})
        t1 = floor_cmd("token-kid", "EdDSA", "rot@bench.test", "k1").strip()
        t2 = floor_cmd("token-kid", "EdDSA", "rot@bench.test", "k2").strip()
        call("POST", f"{srv.base}/securemessage/authorize", json.loads(authorize_body(srv, m, t1)))
        switch_at = int(time.time()) + 2 * d // 3 + 1
        f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        f.write("""b1 = [[%s]]
b2 = [[%s]]
request = function()
  local body = b1
  if os.time() >= %d then body = b2 end
  return wrk.format("POST", "/securemessage/authorize", {["Content-Type"]="application/json"}, body)
end
""" % (authorize_body(srv, m, t1), authorize_body(srv, m, t2), switch_at)); f.close()
        threading.Timer(d / 3, lambda: state.update(keys=[jwk("k1"), jwk("k2")])).start()
        rps, note = wrk(f"{srv.base}/securemessage/authorize", f.name, d)
        row("authorize EdDSA via JWKS during a key rotation", f"{rps:.0f}", "req/s", f"JWKS fetches: {state['hits']}", note or "no errors")
    finally:
        httpd.shutdown()


def edge(d):
    """The edge tax: GET /livez through every layer a request passes (request id, tracing at the
    default log level, metrics, CORS, the start gate) against the floor program's bare axum
    route answering the same JSON. Alternated twice, each keeps its better run; CPU time per
    request of each server process beside it (steadier than a rate on shared cores)."""
    srv = Server(log=None)
    fport = free_port()
    fp = subprocess.Popen([os.path.join(REL, "confidant-floor"), "serve", "HS256", str(fport)])
    wait_port(fport)
    best = {"confidant": (0.0, 0.0), "floor": (0.0, 0.0)}
    try:
        for _ in range(2):
            for name, url, pid in (("confidant", f"{srv.base}/livez", srv.p.pid),
                                   ("floor", f"http://127.0.0.1:{fport}/livez", fp.pid)):
                rps, _, cpu = wrk_cpu(url, pid, None, d)
                if rps > best[name][0]:
                    best[name] = (rps, cpu)
    finally:
        fp.terminate(); fp.wait(); srv.stop()
    (c, c_cpu), (f, f_cpu) = best["confidant"], best["floor"]
    row("GET /livez, every layer (default log level)", f"{c:.0f}", "req/s", f"{c / f:.2f} of floor ({f:.0f})",
        f"CPU {c_cpu:.1f} µs/request vs floor {f_cpu:.1f} ({f_cpu / c_cpu:.2f})")


def new_contacts(srv, auth, d):
    """A new contact's first authorize (a write each), against a returning contact's rate."""
    print("a new contact's first authorize (a write each):", flush=True)
    toks = [hs256(SECRET, {"sub": f"new{i}@bench.test", "exp": int(time.time()) + 3600}) for i in range(60000)]
    m = srv.messenger({"method": "sharedToken", "sharedToken": SECRET})
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write("tokens = {%s}\n" % ",".join(f'"{t}"' for t in toks))
    f.write("""local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args) i = id * 30000 end
request = function()
  i = i + 1
  return wrk.format("POST", "/securemessage/authorize", {["Content-Type"]="application/json"},
    '{"siteId":%d,"messengerId":"%s","contactJwt":"' .. tokens[i] .. '"}')
end
""" % (srv.site, m))
    f.close()
    n_rps, n_note = wrk(f"{srv.base}/securemessage/authorize", f.name, min(d, 5))
    ratio = f"{n_rps / auth['HS256']:.2f} of returning" if "HS256" in auth else ""
    row("authorize HS256, new contact", f"{n_rps:.0f}", "req/s", ratio, n_note)


def authorize_on_off(d, off_binary):
    """Authorize HS256 of a returning contact, this build against `off_binary` (a build without
    the audit log and encryption at rest), each on a fresh server, alternated twice; each keeps
    its better run. Neither feature is a switch of this build, so "off" is another build, and
    whatever else changed between the two counts too. By design neither is on the path: the
    contact's authorize writes no audit entry and opens no sealed value per request (the
    messenger's settings and the signing keys are opened once and cached)."""
    if not off_binary:
        row("authorize HS256, audit log and encryption at rest on vs off", "not measured", "", "", "--off-binary PATH: a build without them (e.g. commit 53f4517^)")
        return
    rate, cpu = {}, {}
    for name, binary in (("on", BIN[0]), ("off", off_binary)) * 2:
        srv = Server(binary=binary)
        try:
            m = srv.messenger({"method": "sharedToken", "sharedToken": SECRET})
            body = authorize_body(srv, m, hs256(SECRET, {"sub": "returning@bench.test", "exp": int(time.time()) + 3600}))
            call("POST", f"{srv.base}/securemessage/authorize", json.loads(body))
            rps, _, us = wrk_cpu(f"{srv.base}/securemessage/authorize", srv.p.pid, lua_post("/", body), d)
            rate[name], cpu[name] = max(rate.get(name, 0.0), rps), min(cpu.get(name, us), us)
        finally:
            srv.stop()
    row("authorize HS256, audit log and encryption at rest on", f"{rate['on']:.0f}", "req/s", f"{rate['on'] / rate['off']:.2f} of off ({rate['off']:.0f})",
        f"CPU per request {cpu['on']:.1f} µs on, {cpu['off']:.1f} µs off; off: {off_binary}")


ATTACHMENT = 10_000_000


def evict(paths):
    """Drop files' clean pages from the page cache (posix_fadvise DONTNEED: no root needed),
    so the next read comes from the disk."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def dd_seconds(*args):
    """dd's own figure for how long it took (its last line: "…, 0.0123 s, 812 MB/s")."""
    out = subprocess.run(["dd", *args, "bs=1000000", "count=10"], capture_output=True, text=True, check=True).stderr
    return float(re.search(r"copied, ([\d.e-]+) s", out).group(1))


def disk_rates(where, files):
    """The disk's sequential rates for `files` files of 10 MB in `where`, in MB/s: each written
    from /dev/zero and made durable (conv=fdatasync), like an upload; then each read back from
    the page cache, then again after evicting it."""
    paths = [os.path.join(where, f"dd-{i}") for i in range(files)]
    write = sum(dd_seconds("if=/dev/zero", f"of={p}", "conv=fdatasync") for p in paths)
    cached = sum(dd_seconds(f"if={p}", "of=/dev/null") for p in paths)
    evict(paths)
    cold = sum(dd_seconds(f"if={p}", "of=/dev/null") for p in paths)
    for p in paths:
        os.remove(p)
    mb = files * ATTACHMENT / 1e6
    return mb / write, mb / cached, mb / cold


def curl_seconds(*args):
    """One curl transfer: (HTTP status, body, curl's own time_total in seconds: the process's
    start is not counted)."""
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code} %{time_total}", *args], capture_output=True, text=True, check=True).stdout
    body, _, tail = out.rpartition("\n")
    code, took = tail.split()
    return code, body, float(took)


def attachments(srv, d):
    """Sequential 10 MB uploads and downloads (one at a time, curl, local directory store) as a
    share of the same disk's dd rates, measured just before in the server's data directory."""
    files = max(5, 2 * d)
    disk_write, disk_cached, disk_cold = disk_rates(srv.dir, files)
    security = {"validation": {"method": "sharedToken", "sharedToken": SECRET},
                "attachments": {"enabled": True, "maxBytes": 26_214_400, "allowedTypes": ["application/pdf"]}}
    m = call("POST", f"{srv.base}/api/v1/sites/{srv.site}/messengers", {"name": "files", "security": security}, OP)["messengerId"]
    jwt = hs256(SECRET, {"sub": "files@bench.test", "exp": int(time.time()) + 3600})
    tok = call("POST", f"{srv.base}/securemessage/authorize", json.loads(authorize_body(srv, m, jwt)))["accessToken"]
    source = os.path.join(srv.dir, "upload.pdf")
    with open(source, "wb") as f:
        f.write(b"%PDF-1.7\n" + os.urandom(ATTACHMENT - 9))
    auth = ["-H", f"Authorization: Bearer {tok}"]
    ids, up = [], 0.0
    # The server's CPU per file beside each rate: steadier than a rate on shared cores.
    cpu0 = cpu_seconds(srv.p.pid)
    for _ in range(files):
        code, body, took = curl_seconds(*auth, "-H", "Expect:", "-F", f"file=@{source};type=application/pdf", f"{srv.base}/api/v1/messenger/attachments")
        if code != "201":
            raise SystemExit(f"upload answered {code}: {body[:200]}")
        ids.append(json.loads(body)["attachmentId"]); up += took

    def downloads():
        total = 0.0
        for i in ids:
            code, _, took = curl_seconds(*auth, "-o", "/dev/null", f"{srv.base}/api/v1/messenger/attachments/{i}")
            if code != "200":
                raise SystemExit(f"download answered {code}")
            total += took
        return files * ATTACHMENT / 1e6 / total

    cpu1 = cpu_seconds(srv.p.pid)
    cached = downloads()
    cpu2 = cpu_seconds(srv.p.pid)
    store = os.path.join(srv.dir, "attachments")
    evict([os.path.join(dp, f) for dp, _, fs in os.walk(store) for f in fs])
    cold = downloads()
    cpu3 = cpu_seconds(srv.p.pid)
    upload = files * ATTACHMENT / 1e6 / up
    per = lambda a, b: f"server CPU {(b - a) * 1000 / files:.1f} ms per file"  # noqa: E731
    note = f"{files} files one at a time; on the disk of this run's data directory"
    row("attachment upload, 10 MB files", f"{upload:.0f}", "MB/s", f"{upload / disk_write:.2f} of dd write ({disk_write:.0f} MB/s, conv=fdatasync per file)", f"{note}; {per(cpu0, cpu1)}")
    row("attachment download, 10 MB files, from the page cache", f"{cached:.0f}", "MB/s", f"{cached / disk_cached:.2f} of dd read from the page cache ({disk_cached:.0f} MB/s)", f"{note}; {per(cpu1, cpu2)}")
    row("attachment download, 10 MB files, evicted from the page cache", f"{cold:.0f}", "MB/s", f"{cold / disk_cold:.2f} of dd read after the same eviction ({disk_cold:.0f} MB/s)", f"posix_fadvise(DONTNEED) on the stored files; {per(cpu2, cpu3)}")


def webhook_deliveries(d, backends):
    """bench/webhooks.py's two runs (sends without, then with a webhook) on each backend."""
    # webhooks.py imports this file as the module `all`; run as a script it is `__main__`:
    # one module under both names, so its rows land in this table and --binary holds.
    sys.modules.setdefault("all", sys.modules[__name__])
    import webhooks
    for db in backends:
        webhooks.measure(db, d, 200)


def pg_value(sql):
    return float(subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", sql], capture_output=True, text=True, check=True).stdout)


class Bus:
    """A nats-server for the nodes, with its monitoring port (message and byte counts)."""

    def __init__(self):
        port, self.monitor = free_port(), free_port()
        self.p = subprocess.Popen(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(self.monitor)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        self.url = f"nats://127.0.0.1:{port}"

    def varz(self):
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/varz"))

    def stop(self):
        self.p.terminate(); self.p.wait()


def node_counters(nodes, bus):
    """What a run's cost is the difference of: CPU seconds of the Confidant processes only
    (not PostgreSQL, NATS or wrk), messages they stored, send batches they wrote, NATS's
    messages, bytes and CPU, and PostgreSQL's WAL position (the whole cluster's)."""
    varz = bus.varz()
    return {
        "cpu": sum(cpu_seconds(n.p.pid) for n in nodes),
        "stored": sum(messages_stored(n) for n in nodes),
        "batches": sum(metric(n, "confidant_send_batch_size_count") for n in nodes),
        "bus messages in": varz["in_msgs"],
        "bus bytes in": varz["in_bytes"],
        "bus bytes out": varz["out_bytes"],
        "bus cpu": cpu_seconds(bus.p.pid),
        "wal": pg_value("SELECT pg_current_wal_lsn() - '0/0'"),
    }


def node_load(nodes, script, d, bus, connections=16):
    """The send load, `connections` in all split evenly over `nodes`: (req/s, the counters'
    differences over the run)."""
    before = node_counters(nodes, bus)
    per = len(nodes)
    procs = [subprocess.Popen(["wrk", f"-t{max(1, 2 // per)}", f"-c{connections // per}", f"-d{d}s", "-s", script, n.base, "--", str(i)], stdout=subprocess.PIPE, text=True)
             for i, n in enumerate(nodes)]
    rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", p.communicate()[0]).group(1)) for p in procs)
    after = node_counters(nodes, bus)
    return rps, {k: after[k] - before[k] for k in before}


def two_nodes(d):
    """Sends on PostgreSQL through one node, then with a second node sharing the database and a
    NATS bus: first all the load on the first node (the second only receives the bus's copy of
    every message), then split over both; the same load script (200 contacts), the same 16
    connections in total. The second node starts only after the first run, so that the one-node
    figures are one process's."""
    print("scale-out: one node vs two nodes on PostgreSQL + NATS:", flush=True)
    bus = Bus()
    nodes = [Server("postgres", bus=bus.url)]
    try:
        a = nodes[0]
        m = a.messenger({"method": "sharedToken", "sharedToken": SECRET})
        toks = []
        for i in range(200):
            j = hs256(SECRET, {"sub": f"n{i}@bench.test", "exp": int(time.time()) + 3600})
            toks.append(call("POST", f"{a.base}/securemessage/authorize", {"siteId": a.site, "messengerId": m, "contactJwt": j})["accessToken"])
        script = send_script(toks)
        one, c1 = node_load(nodes, script, d, bus)
        # Half the connections: the batch size each of two nodes sees, on one node.
        _, c_half = node_load(nodes, script, d, bus, connections=8)
        nodes.append(Server("postgres", bus=bus.url, peer_of=a))
        receiver = cpu_seconds(nodes[1].p.pid)
        _, c_recv = node_load(nodes[:1], script, d, bus)
        receive_us = (cpu_seconds(nodes[1].p.pid) - receiver) * 1e6 / c_recv["stored"]
        two, c2 = node_load(nodes, script, d, bus)
        per_cpu1, per_cpu2 = c1["stored"] / c1["cpu"], c2["stored"] / c2["cpu"]
        row("send PostgreSQL, 1 node, 200 conversations", f"{one:.0f}", "req/s", "1.00")
        row("send PostgreSQL, 2 nodes, 200 conversations", f"{two:.0f}", "req/s", f"{two / one:.2f} of 1 node")
        row("sends per CPU-second of the Confidant processes, 1 node", f"{per_cpu1:.0f}", "sends/s", "1.00", f"{1e6 / per_cpu1:.0f} µs CPU per send")
        row("sends per CPU-second of the Confidant processes, 2 nodes", f"{per_cpu2:.0f}", "sends/s", f"{per_cpu2 / per_cpu1:.2f} of 1 node (target ≥ 0.8)", f"{1e6 / per_cpu2:.0f} µs CPU per send, both nodes")
        row("a node that only receives the bus's copy of each message", f"{receive_us:.1f}", "µs CPU per message", "", "the load all on the other node")
        row("sends per CPU-second, 1 node with 8 connections (2 nodes' batch size)", f"{c_half['stored'] / c_half['cpu']:.0f}", "sends/s",
            f"{c_half['stored'] / c_half['cpu'] / per_cpu1:.2f} of 1 node with 16", f"{1e6 * c_half['cpu'] / c_half['stored']:.0f} µs CPU per send; {c_half['stored'] / c_half['batches']:.1f} sends per batch")
        for n, c in ((1, c1), (2, c2)):
            per = {k: v / c["stored"] for k, v in c.items()}
            row(f"per send, {n} node{'s' if n > 1 else ''}: NATS bytes in + out", f"{per['bus bytes in']:.0f} + {per['bus bytes out']:.0f}", "bytes",
                f"{per['bus messages in']:.2f} bus messages published; {1 / per['batches']:.1f} sends per batch",
                f"NATS CPU {per['bus cpu'] * 1e6:.1f} µs; {per['wal']:.0f} bytes of PostgreSQL WAL (the whole cluster's)")
    finally:
        for n in reversed(nodes):
            n.stop()
        bus.stop()


def idle_sockets(srv, n, per_contact):
    """RSS growth of the server per idle authenticated contact WebSocket, measured after the
    contacts are authorized (their cache entries are not the sockets' cost). Each server
    socket is a file descriptor: the count is cut to what this process's limit allows, and the
    sockets come from loadgen processes of at most 10,000 each (127.0.0.2 and up, ≤ 400 per
    source address, under the per-address cap)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    asked, n = n, min(n, limit - 500)
    print(f"memory of {n} idle authenticated WebSockets, {per_contact} per contact:", flush=True)
    m = srv.messenger({"method": "sharedToken", "sharedToken": SECRET})
    chunk, procs = 10000, []
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        procs.append(subprocess.Popen([os.path.join(REL, "loadgen"), "idle", srv.base, str(srv.site), m, SECRET, str(start), str(count), str(per_contact), "600"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    try:
        # Every process authorizes its contacts first; the sockets open once all have.
        for p in procs:
            line = p.stdout.readline().strip()
            if not line.startswith("authorized"):
                raise SystemExit(f"loadgen idle: {line or p.wait()}")
        time.sleep(1)
        before, anon_before = srv.rss_kb(), srv.rss_kb("RssAnon")
        t0 = time.time()
        for p in procs:
            p.stdin.write("go\n"); p.stdin.flush()
        opened = 0
        for p in procs:
            line = p.stdout.readline().strip()
            if not line.startswith("ready"):
                raise SystemExit(f"loadgen idle: {line or p.wait()}")
            opened += int(line.split()[1])
        took = time.time() - t0
        time.sleep(3)
        after, anon_after = srv.rss_kb(), srv.rss_kb("RssAnon")
        cut = f"; cut from {asked} by the file-descriptor limit ({limit})" if n < asked else ""
        row(f"{opened} idle WebSockets, {per_contact} per contact", f"{(after - before) * 1024 / opened / 1000:.1f}", "KB each",
            f"RSS {before // 1024} -> {after // 1024} MiB",
            f"anonymous memory (no file pages) {(anon_after - anon_before) * 1024 / opened / 1000:.1f} KB each; opened in {took:.1f} s{cut}")
    finally:
        for p in procs:
            p.terminate(); p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--no-synapse", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-growth", action="store_true")
    ap.add_argument("--algs", default="", help="comma-separated algorithms for the authorize section (default: all six)")
    ap.add_argument("--binary", default="", help="run this confidant binary instead of target/release/confidant (e.g. an older build, to compare)")
    ap.add_argument("--off-binary", default="", help="the `new` section: a confidant build without the audit log and encryption at rest, to compare authorize with")
    ap.add_argument("--idle-sockets", type=int, default=50000, help="the idle section: how many WebSockets (at most what the file-descriptor limit allows)")
    ap.add_argument("--idle-per-contact", type=int, default=1, help="the idle section: sockets per contact (the server allows 20)")
    ap.add_argument("--only", default="", help="comma-separated sections: crypto,edge,authorize,new,jwks,sends,live,idle,growth,startup,postgres,retries,nodes,synapse")
    a = ap.parse_args()
    if a.binary:
        BIN[0] = os.path.abspath(a.binary)
    algs = [x for x in a.algs.split(",") if x] or ALGS
    d = a.duration
    only = set(filter(None, a.only.split(",")))

    def want(section):
        return not only or section in only

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not shutil.which("wrk"):
        subprocess.run("apt-get update -qq && apt-get install -y -qq wrk", shell=True, check=True)
    # With --binary the server is given; the floor program is built only when missing.
    if not a.binary or not os.path.exists(os.path.join(REL, "confidant-floor")):
        pkgs = ["-p", "confidant-floor"] + ([] if a.binary else ["-p", "confidant"])
        subprocess.run(["cargo", "build", "--release", "-q", *pkgs], cwd=ROOT, check=True)
    print(f"machine: {os.cpu_count()} cores; wrk -t2 -c16 -d{d}s; load generator on the same cores", flush=True)

    if want("crypto"):
        print("raw crypto, one core (jsonwebtoken + aws-lc-rs):", flush=True)
        raw = {alg: float(floor_cmd("raw", alg)) for alg in ALGS}
        for alg in ALGS:
            row(f"raw verify {alg}", f"{raw[alg]:.0f}", "ops/s")
        row("raw sign access token (Ed25519)", floor_cmd("raw-sign").strip(), "ops/s")

    if want("edge"):
        print("the edge tax: GET /livez vs a bare axum route:", flush=True)
        edge(d)

    srv = Server()
    auth, sqlite_send, pg_send = {}, None, None
    try:
        livez, _ = wrk(f"{srv.base}/livez", None, d)
        row("GET /livez (no work)", f"{livez:.0f}", "req/s", "1.00 of livez")
        health, _ = wrk(f"{srv.base}/healthz", None, d)
        row("GET /healthz (one DB read)", f"{health:.0f}", "req/s", f"{health / livez:.2f} of livez")

        if want("authorize"):
            print("authorize of a returning contact vs the floor program, per algorithm:", flush=True)
            for alg in algs:
                if alg == "HS256":
                    m = srv.messenger({"method": "sharedToken", "sharedToken": SECRET})
                else:
                    m = srv.messenger({"method": "publicKey", "publicKey": floor_cmd("pem", alg)})
                jwt = floor_cmd("token", alg, "returning@bench.test").strip()
                call("POST", f"{srv.base}/securemessage/authorize", json.loads(authorize_body(srv, m, jwt)))
                fport = free_port()
                fp = subprocess.Popen([os.path.join(REL, "confidant-floor"), "serve", alg, str(fport)])
                wait_port(fport)
                # Alternate Confidant and the floor twice and keep each one's better run: on a
                # shared 2-core VM, interference (steal, other tenants) only ever lowers a rate.
                # CPU time per request of each server process beside the rate (steadier).
                c_rps, f_rps, c_note, c_cpu, f_cpu = 0.0, 0.0, "", 0.0, 0.0
                for _ in range(2):
                    r, note, cpu = wrk_cpu(f"{srv.base}/securemessage/authorize", srv.p.pid, lua_post("/", authorize_body(srv, m, jwt)), d)
                    if r > c_rps:
                        c_rps, c_note, c_cpu = r, note, cpu
                    r, _, cpu = wrk_cpu(f"http://127.0.0.1:{fport}/authorize", fp.pid, lua_post("/", authorize_body(srv, m, jwt)), d)
                    if r > f_rps:
                        f_rps, f_cpu = r, cpu
                fp.terminate(); fp.wait()
                auth[alg] = c_rps
                cpu_note = f"CPU {c_cpu:.1f} µs/request vs floor {f_cpu:.1f} ({f_cpu / c_cpu:.2f})"
                row(f"authorize {alg}", f"{c_rps:.0f}", "req/s", f"{c_rps / f_rps:.2f} of floor ({f_rps:.0f})", f"{cpu_note} {c_note}".strip())

        if want("new"):
            new_contacts(srv, auth, d)
            print("attachments, 10 MB files, vs the disk:", flush=True)
            attachments(srv, d)

        if want("jwks"):
            jwks_rotation(srv, d)

        toks = None
        if want("sends"):
            print("durable sends (acknowledged after commit), SQLite:", flush=True)
            m, toks, res = sends(srv, "sqlite", d)
            for k, (rps, note) in res.items():
                row(f"send SQLite, {k}", f"{rps:.0f}", "req/s", f"{rps / livez:.2f} of livez", note)
            sqlite_send = res["one conversation"][0]
        if toks is None and want("live"):
            _, toks, _ = sends(srv, "sqlite", d, with_load=False)

        if want("live"):
            print("live delivery, contact send -> agent WebSocket at 1000 and 5000 msg/s:", flush=True)
            agent_email = "lat@bench.test"
            call("POST", f"{srv.base}/api/v1/sites/{srv.site}/agents", {"email": agent_email, "password": "benchmark-password", "name": "Lat", "role": "agent"}, OP)
            agent = call("POST", f"{srv.base}/api/v1/auth/login", {"siteId": srv.site, "email": agent_email, "password": "benchmark-password"})["token"]
            # 1,000 a second is the session-3 figure; 5,000 is issue 15's target 5.
            for rate in (1000, 5000):
                out = subprocess.run([os.path.join(REL, "loadgen"), "latency", srv.base, toks[1], agent, str(rate), str(d)], capture_output=True, text=True).stdout.strip()
                row(f"live delivery at {rate} msg/s", out, "")

        if want("idle"):
            idle_sockets(srv, a.idle_sockets, a.idle_per_contact)
    finally:
        srv.stop()

    if want("new"):
        authorize_on_off(d, a.off_binary)
        webhook_deliveries(d, ["sqlite"] + ([] if a.no_postgres else ["postgres"]))

    stored = {"growth", "startup"} & (only or {"growth", "startup"})
    if a.no_growth:
        stored.discard("growth")
    if stored:
        growth(min(d, 5), stored)

    if not a.no_postgres and want("postgres"):
        srv = Server("postgres")
        try:
            _, _, res = sends(srv, "postgres", d)
            for k, (rps, note) in res.items():
                row(f"send PostgreSQL, {k}", f"{rps:.0f}", "req/s", "", note)
            pg_send = res["one conversation"][0]
        finally:
            srv.stop()

    if want("retries"):
        retries(d, ["sqlite"] + ([] if a.no_postgres else ["postgres"]))

    if not a.no_postgres and want("nodes") and os.path.exists("/usr/sbin/nats-server"):
        two_nodes(d)

    if not a.no_synapse and want("synapse"):
        print("Matrix Synapse, same machine, same wrk settings:", flush=True)
        out = subprocess.run(["bash", os.path.join(ROOT, "..", "shared", "peers", "synapse", "run.sh")], capture_output=True, text=True).stdout
        mm = re.search(r"login_rps=([\d.]+) send_rps=([\d.]+)", out)
        if mm:
            login, send = float(mm.group(1)), float(mm.group(2))
            vs_auth = f"Confidant HS256 authorize = {auth['HS256'] / login:.0f}x" if "HS256" in auth else ""
            parts = [f"Confidant SQLite send = {sqlite_send / send:.0f}x"] if sqlite_send else []
            if pg_send:
                parts.append(f"PostgreSQL = {pg_send / send:.0f}x")
            row("Synapse JWT login", f"{login:.0f}", "req/s", vs_auth)
            row("Synapse send", f"{send:.0f}", "req/s", ", ".join(parts))
        else:
            row("Synapse", "not measured", "", "", out[-200:])

    print("\n| figure | value | unit | ratio | note |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
