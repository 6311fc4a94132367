#!/usr/bin/env python3
"""Webhook delivery throughput, end to end, against the release build.

    python3 bench/webhooks.py [--duration 10] [--contacts 200] [--postgres] [--binary PATH]

One server (`--allow-private-urls on`, rate limits off) and a receiver on loopback (raw asyncio
HTTP/1.1, keep-alive, answers 200 at once, counts distinct event ids). Two runs of the same
send load (wrk, 2 threads, 16 connections, `--contacts` conversations):

1. without webhooks: the send rate;
2. with one webhook on `message.created`: the send rate again, and the events delivered per
   second, from the start of the load to the last delivery (the queue drains after the load
   ends; that lag is printed too).

Reports both send rates, their ratio, the delivered rate and delivered / sent. Target: at least
1,000 events/s delivered.
"""
import argparse, asyncio, os, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
import importlib  # noqa: E402

bench = importlib.import_module("all")
from lib import call, hs256  # noqa: E402


class Receiver:
    """Counts distinct event ids; answers every request 200 with keep-alive."""

    def __init__(self):
        self.ids = set()
        self.requests = 0
        self.first = None
        self.last = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        me = self

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                self.t = transport
                self.buf = b""

            def data_received(self, data):
                self.buf += data
                while True:
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    head = self.buf[:end].decode("latin-1").lower()
                    length = 0
                    for line in head.split("\r\n"):
                        if line.startswith("content-length:"):
                            length = int(line.split(":", 1)[1])
                    if len(self.buf) < end + 4 + length:
                        return
                    body = self.buf[end + 4:end + 4 + length]
                    self.buf = self.buf[end + 4 + length:]
                    # The envelope starts with {"id":"<uuid>", …
                    i = body.find(b'"id":"')
                    now = time.time()
                    me.requests += 1
                    me.ids.add(body[i + 6:i + 42])
                    me.first = me.first or now
                    me.last = now
                    self.t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

        server = self.loop.run_until_complete(self.loop.create_server(Proto, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()


def run_load(srv, tokens, d):
    rps, note = bench.wrk(srv.base, bench.send_script(tokens), d)
    return rps, note


def contacts(srv, n):
    m = srv.messenger({"method": "sharedToken", "sharedToken": bench.SECRET})
    toks = []
    for i in range(n):
        j = hs256(bench.SECRET, {"sub": f"w{i}@bench.test", "exp": int(time.time()) + 3600})
        toks.append(call("POST", f"{srv.base}/securemessage/authorize", {"siteId": srv.site, "messengerId": m, "contactJwt": j})["accessToken"])
    return toks


def measure(db, duration, n_contacts):
    """Both runs on `db` ("sqlite" or "postgres"); prints their rows."""
    print(f"webhooks: {db}, {duration} s of sends per run, {n_contacts} conversations", flush=True)
    srv = bench.Server(db=db)
    try:
        toks = contacts(srv, n_contacts)
        base_rps, note = run_load(srv, toks, duration)
        bench.row(f"send {db}, no webhooks", f"{base_rps:.0f}", "req/s", "", note)
    finally:
        srv.stop()

    rx = Receiver()
    srv = bench.Server(db=db)
    try:
        toks = contacts(srv, n_contacts)
        call("POST", f"{srv.base}/api/v1/sites/{srv.site}/webhooks",
             {"url": f"http://127.0.0.1:{rx.port}/hook", "events": ["message.created"]}, bench.OP)
        before = bench.messages_stored(srv)
        start = time.time()
        rps, note = run_load(srv, toks, duration)
        load_end = time.time()
        sent = int(bench.messages_stored(srv) - before)
        # Wait for the queue to drain: every stored message delivered, or no progress for 30 s.
        seen, idle_since = -1, time.time()
        while len(rx.ids) < sent and time.time() - idle_since < 30:
            if len(rx.ids) != seen:
                seen, idle_since = len(rx.ids), time.time()
            time.sleep(0.1)
        delivered = len(rx.ids)
        span = (rx.last or load_end) - start
        rate = delivered / span if span > 0 else 0
        lag = max(0.0, (rx.last or load_end) - load_end)
        bench.row(f"send {db}, one webhook on message.created", f"{rps:.0f}", "req/s", f"{rps / base_rps:.2f} of no webhooks ({base_rps:.0f})", note)
        bench.row(f"webhook events delivered end to end, {db}", f"{rate:.0f}", "events/s",
                  f"{delivered}/{sent} delivered ({delivered / max(sent, 1):.3f})",
                  f"{rx.requests - delivered} repeats; last delivery {lag:.1f} s after the load ended; target ≥ 1000/s")
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--contacts", type=int, default=200)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--binary")
    a = ap.parse_args()
    if a.binary:
        bench.BIN[0] = a.binary
    if not os.path.exists(bench.BIN[0]):
        raise SystemExit(f"no server binary at {bench.BIN[0]}: cargo build --release -p confidant")
    measure("postgres" if a.postgres else "sqlite", a.duration, a.contacts)


if __name__ == "__main__":
    main()
