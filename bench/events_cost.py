#!/usr/bin/env python3
"""What the job queue's events cost a send (issue 12).

    python3 bench/events_cost.py [--duration 10] [--rounds 2] [--no-postgres] [--binary PATH]

Every stored message is written with an `event` job beside it, by a trigger in the send's own
transaction, and the runner claims and deletes those jobs in batches. This runs the send load
of bench/all.py (wrk, 2 threads, 16 connections, 200 contacts) against one release server
twice per round: as built, and with the event triggers dropped from its database (the same
binary, so the only difference is the events). Rounds alternate the order. Figures: sends per
second and the ratio with ÷ without events, on SQLite and on PostgreSQL.
"""
import argparse, os, sqlite3, subprocess, sys, time
sys.path.insert(0, os.path.dirname(__file__))
import all as bench  # noqa: E402

TRIGGERS = ["messages_event", "conversations_created_event", "conversations_closed_event"]


def drop_triggers(srv):
    if srv.url.startswith("sqlite"):
        path = srv.url[len("sqlite://"):].split("?")[0]
        c = sqlite3.connect(path, timeout=30)
        for t in TRIGGERS:
            c.execute(f"DROP TRIGGER IF EXISTS {t}")
        c.commit(); c.close()
    else:
        sql = "; ".join(f"DROP TRIGGER IF EXISTS {t} ON {'messages' if t.startswith('messages') else 'conversations'}" for t in TRIGGERS)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "confidant_bench", "-qc", sql], check=True)


def queued(srv):
    if srv.url.startswith("sqlite"):
        path = srv.url[len("sqlite://"):].split("?")[0]
        c = sqlite3.connect(path, timeout=30)
        n = c.execute("SELECT count(*) FROM jobs").fetchone()[0]; c.close(); return n
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "confidant_bench", "-tAc", "SELECT count(*) FROM jobs"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def run(db, events, d):
    srv = bench.Server(db=db)
    try:
        if not events:
            drop_triggers(srv)
        _, toks, _ = bench.sends(srv, db, d, with_load=False)
        rate, note = bench.wrk(srv.base, bench.send_script(toks), d)
        if note:
            print(f"    wrk: {note}", flush=True)
        time.sleep(1)
        left = queued(srv)
        return rate, left
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--binary", default="")
    a = ap.parse_args()
    if a.binary:
        bench.BIN[0] = a.binary
    for db in ["sqlite"] + ([] if a.no_postgres else ["postgres"]):
        got = {True: [], False: []}
        for r in range(a.rounds):
            order = [True, False] if r % 2 == 0 else [False, True]
            for events in order:
                rate, left = run(db, events, a.duration)
                got[events].append(rate)
                print(f"  {db} round {r + 1} events={'on ' if events else 'off'}: {rate:.0f} sends/s (jobs queued 1 s after: {left})", flush=True)
        on = sum(got[True]) / len(got[True]); off = sum(got[False]) / len(got[False])
        print(f"{db}: {on:.0f} sends/s with events, {off:.0f} without: ratio {on / off:.2f}", flush=True)


if __name__ == "__main__":
    main()
