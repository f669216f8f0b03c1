"""Concurrent-insert benchmark: many processes adding jobs at once, and dbserver capacity.

What is measured
----------------
1. Concurrent ``dag.add_job`` (table 1).  For each client count (``--clients``)
   and each mode (``--modes``) a fresh DB is made with ``balsam init`` and the
   application ``bench`` (executable ``echo``) is registered.  Modes:

   * ``dbserver`` -- a dbserver (group commit) started with
     ``balsam dbserver --path DB --host 127.0.0.1``;
   * ``nogroup``  -- the same server started with ``--no-group-commit``
     (every request committed alone);
   * ``direct``   -- no server: every process writes the SQLite file itself;
   * ``postgres`` -- with ``--db-type postgres``: a PostgreSQL DB
     (``balsam init --db-type postgres``, served by ``balsam dbserver``; made
     as the user ``balsam-pg`` when run as root, see bench_postgres.py), every
     client writing through its own connection. Its cells are printed beside
     the SQLite ones of the same run; target: at 32 clients >= 0.8x the
     dbserver's inserts/s (of the medians over ``--repeat`` rounds; each
     round's own ratio is printed beside). ``srv cpu`` there is the server
     and all its backends.

   ``--repeat N`` runs the table N times, the modes in the given order in odd
   rounds and reversed in even ones, so that no mode always runs right after
   the other (in one-round runs, PostgreSQL's 32-client cell gave 5,100-5,600
   inserts/s six times of six when it ran first or alone, and 3,700-5,300
   right after the dbserver's cell). One round on two shared cores moves by
   +-20%: compare medians.

   N client processes are started with ``sys.executable`` (this script in its
   hidden ``--_client`` role).  Each one first does
   ``import balsam.launcher.dag as dag`` (interpreter, Django and DB set-up),
   reports "ready" on stdout and blocks reading its stdin: the start barrier.
   When every client is ready the benchmark writes "go" to all of them, so
   start-up is excluded from the timing.  Each client then makes
   ``--per-client`` sequential calls (default: 12,800 per cell, e.g. 400 per
   client at 32 clients -- long enough that the one-time CURVE handshakes and
   the last straggling clients do not dominate; at 125 per client they cost
   about a fifth of the 32-client figure)
   ``dag.add_job(name=f"c{client}_{i}", workflow="bench", application="bench")``,
   timing each with ``time.perf_counter`` and recording its outcome (``ok`` or
   the exception's class name; errors are counted, never fatal), and writes a
   JSON result file.  The first call of a server-mode client includes its
   ZeroMQ connect and CURVE handshake.

   Columns: calls made; inserts/s = successful calls / wall time from "go" to
   the end of the last client's last call (``time.monotonic``, one clock for all
   processes); p50 / p99 of the per-call latency over all calls; errors; lost =
   calls that returned successfully whose job (by name) is not in the DB
   afterwards; duplicated = names present more than once.  Both are counted
   with sqlite3 directly on ``db.sqlite3`` (``balsam_job.name``).  Diagnostics:
   ``srv batch`` is the server's mean batch (requests per commit) from its
   status; ``cli cpu ms`` the clients' mean CPU time per call
   (``time.process_time``); ``srv cpu`` the server process's CPU time (psutil)
   from "go" to the end of the run, as a share of the wall time (100% = one
   core).

   Targets: >= 3,000 inserts/s and p99 < 100 ms at 32 clients through the
   dbserver; 0 lost and 0 duplicated in every cell.

2. Server capacity (table 2).  A load generator that keeps many requests
   outstanding so that client-side Python (Django, models) is not the limit:
   ``--generators`` processes (this script in its hidden ``--_generator``
   role), each with one raw pyzmq DEALER socket using the DB's CURVE client
   keys and connected where a Balsam client on this host connects (the
   server's local socket when it posts one), keep ``--inflight`` requests in flight.  Requests are pre-encoded with
   ``balsam.wire.protocol.encode_request`` (op ``create_jobs``, one job per
   request).  A DEALER talks to the server's ROUTER like a REQ socket when it
   sends an empty delimiter frame first; replies arrive as ``[b"", reply]`` and
   are decoded with ``decode_reply``.  Each generator's socket does a ``ping``
   round trip before the start barrier (handshake excluded).  writes/s = ok
   replies / wall time from "go" to the last reply; ``srv cpu`` and
   ``srv us/write`` are the server's CPU share and CPU time per ok reply.  Measured with group commit
   on and off, each on a fresh DB; the server's own ``balsam dbserver --status``
   is printed after each run.

   Targets: >= 10,000 writes/s with group commit, and >= 3x the writes/s of
   the no-group-commit server.

Servers are started on 127.0.0.1 only and always stopped (``balsam dbserver
--stop``) in a ``finally``, also on errors, Ctrl-C or SIGTERM.  Scratch DBs go
to ``--workdir`` (default ``benchmarks/_work/concurrent_insert``) and are
removed after each cell unless ``--keep``.

How to run
----------
    .venv/bin/python benchmarks/concurrent_insert.py                       # full run, several minutes
    .venv/bin/python benchmarks/concurrent_insert.py --quick               # smaller numbers
    .venv/bin/python benchmarks/concurrent_insert.py --clients 8,32 --modes dbserver,direct --per-client 100
    .venv/bin/python benchmarks/concurrent_insert.py --clients '' --capacity-requests 50000   # table 2 only
    .venv/bin/python benchmarks/concurrent_insert.py --db-type postgres --clients 32 --modes dbserver,postgres --capacity-requests 0
    .venv/bin/python benchmarks/concurrent_insert.py --db-type postgres --clients 32 --modes dbserver,postgres --capacity-requests 0 --repeat 4

The script always exits 0 (it is a report); missed targets are marked MISS.
"""

import argparse
import datetime
import json
import math
import os
import platform
import selectors
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_common import env_for, log, mark, median_ratio, prepare, print_table, print_verdict, run_balsam
from bench_common import fresh_db as _fresh_db
import bench_postgres
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "_work" / "concurrent_insert"
HOST = "127.0.0.1"
APP = "bench"
MODES = ("dbserver", "nogroup", "direct", "postgres")
SQLITE_MODES = ("dbserver", "nogroup", "direct")
TARGET_PG_RATIO = 0.8  # PostgreSQL vs the SQLite dbserver, at TARGET_CLIENTS

DEFAULT_CLIENTS = "1,8,32,128"
DEFAULT_CALLS_PER_CELL = 12800  # --per-client defaults to max(MIN_PER_CLIENT, this // clients)
MIN_PER_CLIENT = 20
DEFAULT_CAPACITY_REQUESTS = 30_000
CAPACITY_MAX_SEC = 60  # generators stop sending new requests after this long
READY_TIMEOUT_SEC = 600  # 128 Django start-ups on 2 cores take a while
RUN_TIMEOUT_SEC = 900

TARGET_CLIENTS = 32
TARGET_INSERTS = 3000  # inserts/s at 32 clients through the dbserver
TARGET_P99_MS = 100
TARGET_CAPACITY = 10_000  # writes/s with group commit
TARGET_RATIO = 3.0  # group commit vs no group commit


# ---------------------------------------------------------------------------
# the client role (a separate process): import dag, wait for go, insert
# ---------------------------------------------------------------------------
def client_main(argv):
    """``--_client CLIENT_ID CALLS OUT_FILE``; BALSAM_DB_PATH selects the DB."""
    import balsam.launcher.dag as dag  # first: interpreter + Django set-up happen before the barrier

    from balsam.core import write_client

    client_id, calls, out_file = int(argv[0]), int(argv[1]), argv[2]
    mode = write_client.get().mode  # resolves dbserver vs direct (no request sent)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return 1
    latencies, outcomes, samples = [], [], {}
    perf = time.perf_counter
    cpu_start = time.process_time()
    start = time.monotonic()
    for i in range(calls):
        t0 = perf()
        try:
            dag.add_job(name=f"c{client_id}_{i}", workflow="bench", application=APP)
            outcome = "ok"
        except Exception as exc:  # counted, never fatal
            outcome = type(exc).__name__
            samples.setdefault(outcome, " ".join(str(exc).split())[:200])
        latencies.append(perf() - t0)
        outcomes.append(outcome)
    end = time.monotonic()
    cpu = time.process_time() - cpu_start
    result = {"client": client_id, "mode": mode, "start": start, "end": end, "cpu": cpu,
              "latencies": latencies, "outcomes": outcomes, "samples": samples}
    Path(out_file).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------
# the generator role (a separate process): raw pyzmq DEALER, many in flight
# ---------------------------------------------------------------------------
def generator_main(argv):
    """``--_generator DB GEN_ID COUNT INFLIGHT MAX_SEC OUT_FILE``."""
    import uuid

    import zmq

    from balsam.wire import protocol
    from balsam.wire.credentials import client_keys
    from balsam.wire.serverinfo import ServerInfo

    db, gen, count, inflight, max_sec, out_file = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4]), argv[5]
    keys = client_keys(db)
    posted = ServerInfo(db).read()
    address = posted.get("local_address") or posted["address"]  # where a Balsam client on this host would connect
    frames = [
        protocol.encode_request(
            uuid.uuid4().hex, "create_jobs", {"rows": [{"name": f"g{gen}_{i}", "workflow": "cap", "application": APP}]}
        )
        for i in range(count)
    ]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_serverkey = keys["server_public"]
    sock.curve_publickey = keys["public"]
    sock.curve_secretkey = keys["secret"]
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(address)
    sock.send_multipart([b"", protocol.encode_request(uuid.uuid4().hex, "ping", {})])  # handshake before the barrier
    if not sock.poll(30_000):
        print(f"generator {gen}: no answer to ping from {address}", file=sys.stderr)
        return 1
    sock.recv_multipart()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return 1
    start = time.monotonic()
    stop_sending = start + max_sec
    sent = received = ok = 0
    errors, samples, stalled = Counter(), {}, False
    send, recv, decode = sock.send_multipart, sock.recv_multipart, protocol.decode_reply
    while sent < min(inflight, count):
        send([b"", frames[sent]])
        sent += 1
    while received < sent:
        if not sock.poll(30_000):
            stalled = True
            break
        _, frame = recv()
        received += 1
        reply = decode(frame)
        if reply["ok"]:
            ok += 1
        else:
            errors[reply.get("error")] += 1
            samples.setdefault(reply.get("error"), str(reply.get("message"))[:200])
        if sent < count and time.monotonic() < stop_sending:
            send([b"", frames[sent]])
            sent += 1
    end = time.monotonic()
    sock.close(linger=0)
    ctx.term()
    result = {"gen": gen, "start": start, "end": end, "sent": sent, "received": received, "ok": ok,
              "errors": dict(errors), "samples": samples, "stalled": stalled}
    Path(out_file).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------
# helpers for the driving process
# ---------------------------------------------------------------------------
def fresh_db(workdir, name):
    """A new DB with the application ``bench`` registered."""
    return _fresh_db(workdir, name, APP, "echo")


class Servers:
    """Every dbserver this benchmark starts; ``stop_all`` in a ``finally``."""

    def __init__(self):
        self.running = []
        self.running_pg = []  # PostgreSQL DBs: made and served as their owner (bench_postgres)

    def start(self, db, group_commit=True):
        self.running.append(db)  # before starting: an interrupted start is still stopped
        args = ["dbserver", "--path", str(db), "--host", HOST] + ([] if group_commit else ["--no-group-commit"])
        return run_balsam(db, *args, timeout=60).strip()

    def status(self, db):
        return run_balsam(db, "dbserver", "--status", "--path", str(db), timeout=30)

    def stop(self, db):
        if db in self.running_pg:
            bench_postgres.stop_pg(db)
            self.running_pg.remove(db)
            return
        if db not in self.running:
            return
        try:
            run_balsam(db, "dbserver", "--stop", "--path", str(db), timeout=60)
        except Exception as exc:  # fall back to the pids the server posted (processes we started)
            log(f"  balsam dbserver --stop failed ({exc}); signalling the posted pids")
            _kill_posted(db)
        self.running.remove(db)

    def stop_all(self):
        for db in list(self.running) + list(self.running_pg):
            try:
                self.stop(db)
            except Exception as exc:
                log(f"  could not stop the dbserver of {db}: {exc}")


def _kill_posted(db):
    try:
        info = json.loads((db / "dbwriter_address").read_text())
    except (OSError, ValueError):
        return
    for key in ("watchdog_pid", "server_pid"):
        pid = info.get(key)
        if pid:
            try:
                os.kill(int(pid), signal.SIGTERM)
            except (ProcessLookupError, PermissionError, ValueError):
                pass


class ServerCPU:
    """CPU seconds the posted dbserver process used between two calls (psutil)."""

    def __init__(self, db):
        self.db = db
        self.samples = []

    def __call__(self):
        import psutil

        try:
            if (self.db / "balsamdb").is_dir():
                self.samples.append(bench_postgres.server_cpu_seconds(self.db))
                return
            pid = json.loads((self.db / "dbwriter_address").read_text())["server_pid"]
            times = psutil.Process(int(pid)).cpu_times()
            self.samples.append(times.user + times.system)
        except Exception:
            self.samples.append(None)

    def used(self):
        if len(self.samples) != 2 or None in self.samples:
            return None
        return self.samples[1] - self.samples[0]


def mean_batch(status_text):
    for line in status_text.splitlines():
        if "mean batch size" in line:
            return line.split(":", 1)[1].split()[0]
    return "?"


def spawn(role_args, env, err_file):
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *role_args],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file, text=True,
    )


def wait_ready(procs, timeout):
    """Block until every process printed "ready"; raise if one dies or the timeout passes."""
    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ, p)
    pending, deadline = len(procs), time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{pending} of {len(procs)} processes not ready after {timeout} s")
            for key, _ in sel.select(left):
                line = key.fileobj.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"process {key.data.pid} exited before it was ready (code {key.data.wait()})")
                sel.unregister(key.fileobj)
                pending -= 1
    finally:
        sel.close()


def go(procs):
    """Release the barrier; returns the start time (``time.monotonic``)."""
    start = time.monotonic()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdin.close()
    return start


def wait_all(procs, timeout):
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"  process {p.pid} still running after {timeout} s; killing it")
            p.kill()
            p.wait()


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def run_processes(role_args_list, env, err_path, probe=None):
    """Start processes, wait for all to be ready, release them, wait for them; returns go time.

    ``probe()`` (optional) is called just before "go" and after the processes end.
    """
    procs = []
    with open(err_path, "ab") as err:
        try:
            for role_args in role_args_list:
                procs.append(spawn(role_args, env, err))
            wait_ready(procs, READY_TIMEOUT_SEC)
            if probe:
                probe()
            start = go(procs)
            wait_all(procs, RUN_TIMEOUT_SEC)
            if probe:
                probe()
            return start
        finally:
            kill_all(procs)
            for p in procs:
                p.stdout.close()


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def name_counts(db):
    if (db / "balsamdb").is_dir():
        return dict(bench_postgres.query(db, "SELECT name, count(*) FROM balsam_job GROUP BY name"))
    conn = sqlite3.connect(f"file:{db / 'db.sqlite3'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT name, count(*) FROM balsam_job GROUP BY name").fetchall())
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# table 1: concurrent dag.add_job
# ---------------------------------------------------------------------------
def bench_cell(args, servers, mode, clients, per_client):
    if mode == "postgres":
        servers.running_pg.append(Path(args.workdir) / f"t1_{mode}_{clients}")
        db = bench_postgres.fresh_pg_db(args.workdir, f"t1_{mode}_{clients}", APP, "echo")
    else:
        db = fresh_db(args.workdir, f"t1_{mode}_{clients}")
    out_dir = db / "bench_results"
    out_dir.mkdir()
    server_line, status = "", ""
    try:
        if mode in ("dbserver", "nogroup"):
            server_line = servers.start(db, group_commit=(mode == "dbserver"))
        role_args = [["--_client", str(c), str(per_client), str(out_dir / f"client{c}.json")] for c in range(clients)]
        server_cpu = ServerCPU(db) if mode != "direct" else None
        start = run_processes(role_args, env_for(db), db / "log" / "bench_clients.err", probe=server_cpu)
        if mode in ("dbserver", "nogroup"):
            status = servers.status(db)
        counts = name_counts(db)  # while a PostgreSQL server still runs
    finally:
        servers.stop(db)
    results = []
    for c in range(clients):
        path = out_dir / f"client{c}.json"
        results.append(json.loads(path.read_text()) if path.exists() else None)
    row = summarize_cell(db, mode, clients, per_client, start, results, status, server_cpu and server_cpu.used(),
                         counts)
    if not args.keep:
        shutil.rmtree(db, ignore_errors=True)
    return row, server_line


def summarize_cell(db, mode, clients, per_client, start, results, status, server_cpu, counts):
    latencies, outcomes, samples, ok_names = [], Counter(), {}, []
    modes_seen, missing, end, client_cpu = Counter(), 0, start, 0.0
    for c, r in enumerate(results):
        if r is None:
            missing += 1
            outcomes["no result (client died)"] += per_client
            continue
        modes_seen[r["mode"]] += 1
        end = max(end, r["end"])
        client_cpu += r["cpu"]
        latencies.extend(r["latencies"])
        outcomes.update(r["outcomes"])
        for name, text in r["samples"].items():
            samples.setdefault(name, text)
        ok_names.extend(f"c{c}_{i}" for i, o in enumerate(r["outcomes"]) if o == "ok")
    lost = sum(1 for name in ok_names if name not in counts)
    duplicated = sum(1 for n in counts.values() if n > 1)
    extra = sum(counts.values()) - len(ok_names)  # rows from calls that raised (committed, then an error)
    latencies.sort()
    ok = outcomes.get("ok", 0)
    errors = sum(n for o, n in outcomes.items() if o != "ok")
    wall = end - start
    rate = ok / wall if wall > 0 else 0.0
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    expected_mode = {"direct": "direct", "postgres": "postgres"}.get(mode, "dbserver")
    notes = []
    if set(modes_seen) - {expected_mode}:
        notes.append(f"clients wrote via {dict(modes_seen)}, expected {expected_mode}")
    for name, n in outcomes.items():
        if name != "ok":
            notes.append(f"{n} x {name}: {samples.get(name, '')}")
    if extra > 0:
        notes.append(f"{extra} row(s) in the DB from calls that raised")
    if missing:
        notes.append(f"{missing} client(s) wrote no result")
    targeted = mode == "dbserver" and clients == TARGET_CLIENTS
    passed = lost == 0 and duplicated == 0
    target = "0 lost, 0 dup"
    if targeted:
        passed = passed and rate >= TARGET_INSERTS and p99 < TARGET_P99_MS
        target = f">= {TARGET_INSERTS:,}/s, p99 < {TARGET_P99_MS} ms, 0 lost, 0 dup"
    row = {
        "mode": mode,
        "clients": clients,
        "calls": clients * per_client,
        "inserts/s": f"{rate:,.0f}",
        "p50 ms": f"{p50:.1f}",
        "p99 ms": f"{p99:.1f}",
        "errors": errors,
        "lost": lost,
        "duplicated": duplicated,
        "wall s": f"{wall:.2f}",
        "srv batch": mean_batch(status) if status else "-",
        "cli cpu ms": f"{client_cpu / len(latencies) * 1000:.2f}" if latencies else "-",
        "srv cpu": f"{server_cpu / wall:.0%}" if server_cpu is not None and wall > 0 else "-",
        "target": target,
        "ok?": mark(passed),
    }
    return row, notes, {"rate": rate, "p99": p99, "lost": lost, "duplicated": duplicated, "targeted": targeted}


def bench_table1(args, servers):
    rows, notes, figures = [], [], []
    cells = []
    for round_no in range(1, args.repeat + 1):
        modes = args.modes if round_no % 2 else args.modes[::-1]  # see --repeat
        cells += [(round_no, c, m) for c in args.clients for m in modes]
    for n, (round_no, clients, mode) in enumerate(cells, 1):
        label = f"{mode} #{round_no}" if args.repeat > 1 else mode
        per_client = args.per_client or max(MIN_PER_CLIENT, args.calls_per_cell // clients)
        log(f"[table 1, {n}/{len(cells)}] {label}, {clients} client(s) x {per_client} calls ...")
        t0 = time.monotonic()
        (row, cell_notes, fig), server_line = bench_cell(args, servers, mode, clients, per_client)
        log(f"  {row['inserts/s']} inserts/s, p50 {row['p50 ms']} ms, p99 {row['p99 ms']} ms, errors {row['errors']}, "
            f"lost {row['lost']}, dup {row['duplicated']}, batch {row['srv batch']} ({time.monotonic() - t0:.0f} s with set-up)")
        row["mode"] = label
        rows.append(row)
        notes.extend(f"{label}/{clients}: {text}" for text in cell_notes)
        figures.append((mode, clients, round_no, fig))
    return rows, notes, figures


def pg_ratio(figures, clients):
    """PostgreSQL's inserts/s against the dbserver's at ``clients`` over the
    rounds (``bench_common.median_ratio``) and the two medians; None when
    not both ran."""
    rates = {mode: {} for mode in ("postgres", "dbserver")}
    for mode, n, round_no, fig in figures:
        if n == clients and mode in rates:
            rates[mode][round_no] = fig["rate"]
    rounds = sorted(set(rates["postgres"]) & set(rates["dbserver"]))
    if not rounds:
        return None
    pg, srv = ([rates[mode][r] for r in rounds] for mode in ("postgres", "dbserver"))
    ratio, each = median_ratio(pg, srv)
    return ratio, statistics.median(pg), statistics.median(srv), each


# ---------------------------------------------------------------------------
# table 2: server capacity
# ---------------------------------------------------------------------------
def bench_capacity(args, servers, group_commit):
    label = "group commit" if group_commit else "no group commit"
    db = fresh_db(args.workdir, f"t2_{'group' if group_commit else 'nogroup'}")
    out_dir = db / "bench_results"
    out_dir.mkdir()
    per_gen = math.ceil(args.capacity_requests / args.generators)
    try:
        servers.start(db, group_commit=group_commit)
        role_args = [
            ["--_generator", str(db), str(g), str(per_gen), str(args.inflight), str(CAPACITY_MAX_SEC), str(out_dir / f"gen{g}.json")]
            for g in range(args.generators)
        ]
        server_cpu = ServerCPU(db)
        start = run_processes(role_args, env_for(db), db / "log" / "bench_generators.err", probe=server_cpu)
        status = servers.status(db)
    finally:
        servers.stop(db)
    results = [json.loads(p.read_text()) for p in sorted(out_dir.glob("gen*.json"))]
    ok = sum(r["ok"] for r in results)
    sent = sum(r["sent"] for r in results)
    errors = Counter()
    samples = {}
    for r in results:
        errors.update(r["errors"])
        samples.update(r["samples"])
    end = max((r["end"] for r in results), default=start)
    wall = end - start
    rows_in_db = sum(name_counts(db).values())
    notes = [f"{label}: {n} x {e}: {samples.get(e, '')}" for e, n in errors.items()]
    if len(results) < args.generators:
        notes.append(f"{label}: {args.generators - len(results)} generator(s) wrote no result")
    if any(r["stalled"] for r in results):
        notes.append(f"{label}: a generator got no reply for 30 s and gave up")
    if sent < per_gen * args.generators:
        notes.append(f"{label}: stopped sending after {CAPACITY_MAX_SEC} s ({sent:,} of {per_gen * args.generators:,} sent)")
    if rows_in_db != ok:
        notes.append(f"{label}: {rows_in_db:,} rows in the DB for {ok:,} ok replies")
    if not args.keep:
        shutil.rmtree(db, ignore_errors=True)
    rate = ok / wall if wall > 0 else 0.0
    row = {
        "server": label,
        "generators x in flight": f"{args.generators} x {args.inflight}",
        "requests": f"{sent:,}",
        "ok": f"{ok:,}",
        "errors": sum(errors.values()),
        "wall s": f"{wall:.2f}",
        "writes/s": f"{rate:,.0f}",
        "srv batch": mean_batch(status),
        "srv cpu": f"{server_cpu.used() / wall:.0%}" if server_cpu.used() is not None and wall > 0 else "-",
        "srv us/write": f"{server_cpu.used() / ok * 1e6:.0f}" if server_cpu.used() is not None and ok else "-",
    }
    return row, rate, status, notes


def bench_table2(args, servers):
    log(f"[table 2, 1/2] capacity with group commit: {args.capacity_requests:,} requests ...")
    group_row, group_rate, group_status, notes = bench_capacity(args, servers, True)
    log(f"  {group_row['writes/s']} writes/s, mean batch {group_row['srv batch']}")
    log(f"[table 2, 2/2] capacity without group commit: {args.capacity_requests:,} requests ...")
    single_row, single_rate, single_status, more = bench_capacity(args, servers, False)
    log(f"  {single_row['writes/s']} writes/s, mean batch {single_row['srv batch']}")
    ratio = group_rate / single_rate if single_rate else float("inf")
    group_row.update(target=f">= {TARGET_CAPACITY:,}/s", **{"ok?": mark(group_rate >= TARGET_CAPACITY)})
    single_row.update(target="-", **{"ok?": "-"})
    return [group_row, single_row], ratio, {"group commit": group_status, "no group commit": single_status}, notes + more


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def print_header(args):
    import zmq

    print("Balsam concurrent-insert benchmark")
    print(f"date:    {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"python:  {platform.python_version()} ({sys.executable})")
    print(f"sqlite:  {sqlite3.sqlite_version}")
    print(f"pyzmq:   {zmq.__version__} (libzmq {zmq.zmq_version()})")
    print(f"host:    {platform.platform()}, {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    per_client = args.per_client or f"max({MIN_PER_CLIENT}, {args.calls_per_cell} // clients)"
    print(f"table 1: clients {','.join(map(str, args.clients)) or '-'}; modes {','.join(args.modes) or '-'}; "
          f"calls per client {per_client}; rounds {args.repeat}")
    print(f"table 2: {args.capacity_requests:,} requests from {args.generators} generators x {args.inflight} in flight")
    print()


def parse_list(text, kind=str):
    return [kind(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default=None, help=f"client counts for table 1 (default {DEFAULT_CLIENTS}; '' skips it)")
    p.add_argument("--per-client", type=int, default=None,
                   help=f"calls per client (default max({MIN_PER_CLIENT}, --calls-per-cell // clients))")
    p.add_argument("--calls-per-cell", type=int, default=None, help=f"total calls per cell when --per-client is not given (default {DEFAULT_CALLS_PER_CELL})")
    p.add_argument("--modes", default=None, help=f"modes for table 1 (default {','.join(SQLITE_MODES)}, "
                   "and postgres with --db-type postgres)")
    p.add_argument("--db-type", choices=("sqlite3", "postgres"), default="sqlite3",
                   help="postgres: add PostgreSQL cells to table 1, beside the SQLite ones (needs PostgreSQL)")
    p.add_argument("--capacity-requests", type=int, default=None,
                   help=f"requests per capacity run in table 2 (default {DEFAULT_CAPACITY_REQUESTS:,}; 0 skips it)")
    p.add_argument("--generators", type=int, default=4, help="load-generator processes for table 2 (default 4)")
    p.add_argument("--inflight", type=int, default=64, help="requests each generator keeps in flight (default 64)")
    p.add_argument("--quick", action="store_true", help="smaller numbers (clients 1,8,32; 600 calls per cell; 5,000 capacity requests)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"scratch directory (default {DEFAULT_WORKDIR})")
    p.add_argument("--keep", action="store_true", help="keep the scratch DBs")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of table 1, the modes' order reversed every other round (default 1)")
    args = p.parse_args(argv)
    if args.clients is None:
        args.clients = "1,8,32" if args.quick else DEFAULT_CLIENTS
    if args.calls_per_cell is None:
        args.calls_per_cell = 600 if args.quick else DEFAULT_CALLS_PER_CELL
    if args.capacity_requests is None:
        args.capacity_requests = 5000 if args.quick else DEFAULT_CAPACITY_REQUESTS
    try:
        args.clients = parse_list(args.clients, int)
    except ValueError:
        p.error("--clients must be a comma-separated list of numbers")
    if args.modes is None:
        args.modes = ",".join(SQLITE_MODES + (("postgres",) if args.db_type == "postgres" else ()))
    args.modes = parse_list(args.modes)
    bad = sorted(set(args.modes) - set(MODES))
    if bad:
        p.error(f"unknown mode {bad[0]!r}; modes: {', '.join(MODES)}")
    if any(c < 1 for c in args.clients) or (args.per_client is not None and args.per_client < 1):
        p.error("--clients and --per-client must be positive")
    if args.repeat < 1:
        p.error("--repeat must be positive")
    if args.capacity_requests < 0 or args.generators < 1 or args.inflight < 1:
        p.error("--capacity-requests must not be negative; --generators and --inflight must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    prepare(args)
    print_header(args)
    sys.stdout.flush()
    servers = Servers()
    t1 = t2 = None
    try:
        if args.clients and args.modes:
            t1 = bench_table1(args, servers)
        if args.capacity_requests:
            t2 = bench_table2(args, servers)
    except KeyboardInterrupt:
        log("interrupted; stopping servers")
        return 130
    finally:
        servers.stop_all()
    report(t1, t2)
    return 0


def report(t1, t2):
    checks = []
    if t1:
        rows, notes, figures = t1
        print("Table 1: concurrent dag.add_job (one job per call; latency over all calls)")
        print_table(rows)
        for text in notes:
            print(f"  note: {text}")
        print()
        for mode, clients, _, fig in figures:
            if fig["targeted"]:
                checks.append((f"dbserver, {clients} clients: inserts/s >= {TARGET_INSERTS:,}", f"{fig['rate']:,.0f}", fig["rate"] >= TARGET_INSERTS))
                checks.append((f"dbserver, {clients} clients: p99 < {TARGET_P99_MS} ms", f"{fig['p99']:.1f} ms", fig["p99"] < TARGET_P99_MS))
        compared = pg_ratio(figures, TARGET_CLIENTS)
        if compared:
            ratio, pg_rate, sqlite_rate, each = compared
            rounds = f"; each round: {', '.join(f'{r:.2f}' for r in each)}" if len(each) > 1 else ""
            checks.append((f"postgres, {TARGET_CLIENTS} clients: >= {TARGET_PG_RATIO:g}x the dbserver's inserts/s"
                           + (" (medians)" if len(each) > 1 else ""),
                           f"{ratio:.2f}x ({pg_rate:,.0f} vs {sqlite_rate:,.0f}{rounds})", ratio >= TARGET_PG_RATIO))
        lost = sum(f["lost"] for _, _, _, f in figures)
        dup = sum(f["duplicated"] for _, _, _, f in figures)
        checks.append(("0 lost (all cells)", str(lost), lost == 0))
        checks.append(("0 duplicated (all cells)", str(dup), dup == 0))
    if t2:
        rows, ratio, statuses, notes = t2
        print("Table 2: server capacity (raw pyzmq DEALER load generator, create_jobs with one job per request)")
        print_table(rows)
        for text in notes:
            print(f"  note: {text}")
        print(f"  group commit / no group commit: {ratio:.1f}x (target >= {TARGET_RATIO:g}x): {mark(ratio >= TARGET_RATIO)}")
        for label, status in statuses.items():
            print(f"\n  balsam dbserver --status after the {label} run:")
            for line in status.rstrip().splitlines():
                print(f"    {line}")
        print()
        group_rate = float(rows[0]["writes/s"].replace(",", ""))
        checks.append((f"capacity with group commit >= {TARGET_CAPACITY:,} writes/s", rows[0]["writes/s"], group_rate >= TARGET_CAPACITY))
        checks.append((f"group commit >= {TARGET_RATIO:g}x no group commit", f"{ratio:.1f}x", ratio >= TARGET_RATIO))
    if checks:
        print("Targets")
        print_table([{"target": t, "measured": m, "ok?": mark(p)} for t, m, p in checks])
        print_verdict([t for t, _, p in checks if not p])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_client":
        sys.exit(client_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "--_generator":
        sys.exit(generator_main(sys.argv[2:]))
    sys.exit(main())
