#!/usr/bin/env python3
"""Restart time after a crash under a steady send load (issue 11, finding 7).

    python3 bench/crash_restart.py [--binary PATH] [--seconds 60]

SQLite. 200 contacts send for `--seconds` (wrk, as bench/all.py's send case), the server is
killed with SIGKILL in the middle of the load, and started again on the same data: the figures
are the WAL file's size at the kill and the time from the new process's start to `/healthz` 200
(the WAL replay). A clean start of the same data is timed after it as the baseline.
"""
import argparse, importlib.util, os, signal, subprocess, threading, time

spec = importlib.util.spec_from_file_location("allbench", os.path.join(os.path.dirname(__file__), "all.py"))
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)


def start_timed(srv):
    t0 = time.time()
    srv.p = subprocess.Popen(srv.p.args, env=srv.env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(srv.dir, "log"), "a"))
    bench.wait_ready(srv.port, timeout=900)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="")
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    if a.binary:
        bench.BIN[0] = os.path.abspath(a.binary)
    srv = bench.Server()
    try:
        _, toks, _ = bench.sends(srv, "sqlite", a.seconds, with_load=False)
        load = threading.Thread(target=bench.wrk, args=(srv.base, bench.send_script(toks), a.seconds + 5))
        load.start()
        time.sleep(a.seconds)
        wal = os.path.join(srv.dir, "bench.db-wal")
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        srv.p.send_signal(signal.SIGKILL); srv.p.wait(10)
        load.join()
        after_crash = start_timed(srv)
        srv.p.send_signal(signal.SIGTERM); srv.p.wait(30)
        clean = start_timed(srv)
        print(f"binary {bench.BIN[0]}: WAL at the kill {size / 2**20:.1f} MiB beside a "
              f"{os.path.getsize(os.path.join(srv.dir, 'bench.db')) / 2**20:.1f} MiB database; "
              f"start after the crash {after_crash:.2f} s, clean start {clean:.2f} s")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
