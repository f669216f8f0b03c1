"""Launcher throughput benchmark: how fast ``balsam launcher`` runs many tiny jobs.

What is measured
----------------
For each mode and repeat a fresh DB is made with ``balsam init``, the
application ``noop`` (executable ``/bin/true``) is registered with
``balsam app``, and ``--jobs`` jobs (names ``n0`` ..., workflow ``tp``,
``node_packing_count`` = ``--packing``) are added with ``api.add_jobs`` in a
child Python process that has ``BALSAM_DB_PATH`` set.  Modes:

* ``direct``   -- no server: the launcher writes the SQLite file itself;
* ``dbserver`` -- (with ``--dbserver``) a server started with
  ``balsam dbserver --path DB --host 127.0.0.1`` before the jobs are added,
  stopped with ``balsam dbserver --stop --path DB`` in a ``finally``;
  target: within 10% of ``direct`` (>= 0.9x its jobs/s);
* ``postgres`` -- (with ``--db-type postgres``) a PostgreSQL DB made with
  ``balsam init --db-type postgres`` and served by ``balsam dbserver`` (as the
  user ``balsam-pg`` when run as root: bench_postgres.py); the launcher
  writes through its own connection. Printed beside the SQLite rows of the
  same run; target: >= 0.8x the ``direct`` (SQLite) jobs/s.

The ratios are of the modes' median jobs/s over ``--repeat`` runs (each run's
own ratio is printed beside).

``--launchers N`` runs N launchers at once on each DB (each job must still
run exactly once: ``events ok?``).

Then ``balsam launcher --consume-all --until-idle --max-ranks-per-node R``
(serial job mode, the default) runs as a child process, stdout and stderr to a
log file in the DB directory.  ``time.time()`` is recorded just before it is
started.

Columns:

* ``launcher wall s`` -- launcher start to exit (``time.perf_counter``),
  interpreter and Django start-up and the shutdown included;
* ``jobs/s`` -- jobs in JOB_FINISHED / (last JOB_FINISHED event - launcher
  start).  The last event is ``max(timestamp)`` of ``balsam_job_event`` rows
  with ``to_state = 'JOB_FINISHED'``, read with sqlite3 directly from
  ``db.sqlite3`` after the launcher exited; timestamps are stored as UTC text
  (``YYYY-MM-DD HH:MM:SS.ffffff``) and are converted to epoch seconds as UTC;
  the start is the launcher's ``time.time()``.  Start-up is included, the
  launcher's shutdown is not;
* ``raw spawn/s`` -- the machine's process-spawn rate, measured just before
  each launcher run: a minimal loop that keeps 2 ``/bin/true`` processes in
  flight (``subprocess.Popen``, stdio to /dev/null; when 2 are running it
  reaps every finished one with ``poll`` or else ``wait``s for the oldest) for
  ``--spawns`` spawns.  ``% of raw`` = jobs/s / raw spawn/s;
* ``all finished?`` -- jobs whose ``balsam_job.state`` is JOB_FINISHED, of
  ``--jobs``;
* ``events ok?`` -- jobs whose events in ``balsam_job_event`` are exactly the
  7 of a job's life: READY, STAGED_IN, PREPROCESSED, RUNNING, RUN_DONE,
  POSTPROCESSED, JOB_FINISHED (one each);
* diagnostics: ``1st event s`` (launcher start to the first event: start-up
  and the first claim), ``last event s`` (launcher start to the last
  JOB_FINISHED event), ``cpu s`` (user + system CPU of the launcher, its
  spawner and the jobs, from ``getrusage(RUSAGE_CHILDREN)``), ``srv cpu s``
  (the dbserver process's CPU time over the launcher run, psutil).

Target (per row): >= 300 jobs/s and >= 30% of the raw spawn rate.

The scratch DBs go to ``--workdir`` (default
``benchmarks/_work/launcher_throughput``) and are removed once every run is
done, unless ``--keep``: not between runs, because on ext4 without a journal
(as on this project's machines) a file system skips inodes freed in the last
30 s when it allocates new ones, so the 10,000 directories and output files a
run makes would cost several times more right after the previous run's were
deleted (measured: 35 us vs 350-600 us per mkdir).  A launcher still running at ``--timeout`` gets SIGTERM
(it shuts down cleanly), then SIGKILL.

How to run
----------
    .venv/bin/python benchmarks/launcher_throughput.py                     # 5,000 jobs, direct
    .venv/bin/python benchmarks/launcher_throughput.py --dbserver          # direct and through a dbserver
    .venv/bin/python benchmarks/launcher_throughput.py --jobs 1000 --repeat 3 --max-ranks-per-node 2 --packing 2
    .venv/bin/python benchmarks/launcher_throughput.py --db-type postgres                  # direct and postgres
    .venv/bin/python benchmarks/launcher_throughput.py --db-type postgres --launchers 2 --jobs 10000

The script always exits 0 (it is a report); missed targets are marked MISS.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench_common import (BALSAM, env_for, fresh_db, log, mark, median_ratio, prepare, print_table, print_verdict,
                          run_balsam)
import bench_postgres
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "_work" / "launcher_throughput"
HOST = "127.0.0.1"
APP = "noop"
EXECUTABLE = "/bin/true"
WORKFLOW = "tp"
JOB_EVENTS = ("READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
SPAWN_INFLIGHT = 2
TARGET_RATE = 300  # jobs/s
TARGET_SHARE = 0.30  # of the raw spawn rate
TARGET_PG_RATIO = 0.8  # PostgreSQL's jobs/s vs SQLite's (direct) in the same run
TARGET_DBSERVER_RATIO = 0.9  # through the dbserver vs direct, same run
STOP_GRACE_SEC = 60  # after SIGTERM to a launcher that overran --timeout

ADD_JOBS_CODE = """
import sys
from balsam import api
api.attach()
n, packing = int(sys.argv[1]), int(sys.argv[2])
api.add_jobs([{"name": f"n{i}", "workflow": %r, "application": %r, "node_packing_count": packing} for i in range(n)])
""" % (WORKFLOW, APP)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def init_db(workdir, name):
    """A new DB with the application ``noop`` registered (no jobs yet)."""
    return fresh_db(workdir, name, APP, EXECUTABLE)


def add_jobs(db, jobs, packing):
    """``api.add_jobs`` in a child process with BALSAM_DB_PATH set (through the dbserver if one runs)."""
    proc = subprocess.run([sys.executable, "-c", ADD_JOBS_CODE, str(jobs), str(packing)], env=env_for(db),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"adding {jobs} jobs failed ({proc.returncode}): {proc.stderr.strip()}")
    found = query(db, "SELECT count(*) FROM balsam_job")[0][0]
    if found != jobs:
        raise RuntimeError(f"api.add_jobs({jobs}) left {found} jobs in the DB")


def query(db, statement, params=()):
    """Read the DB directly: the file (read-only) with sqlite3, or PostgreSQL with psycopg."""
    if (db / "balsamdb").is_dir():
        for value in params:  # the statements here hold only fixed state names
            statement = statement.replace("?", "'" + value.replace("'", "''") + "'", 1)
        return bench_postgres.query(db, statement)
    conn = sqlite3.connect(f"file:{db / 'db.sqlite3'}?mode=ro", uri=True)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def utc_epoch(text):
    """A stored UTC timestamp ('YYYY-MM-DD HH:MM:SS[.ffffff]') as epoch seconds."""
    if isinstance(text, datetime.datetime):  # PostgreSQL's timestamptz
        return text.timestamp()
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc).timestamp()


# ---------------------------------------------------------------------------
# the dbserver
# ---------------------------------------------------------------------------
class Server:
    """One dbserver on 127.0.0.1; ``stop`` is safe to call more than once."""

    def __init__(self, db):
        self.db = db
        self.running = False

    def start(self):
        self.running = True  # before starting: an interrupted start is still stopped
        return run_balsam(self.db, "dbserver", "--path", str(self.db), "--host", HOST, timeout=60).strip()

    def cpu_seconds(self):
        import psutil

        try:
            pid = json.loads((self.db / "dbwriter_address").read_text())["server_pid"]
            times = psutil.Process(int(pid)).cpu_times()
            return times.user + times.system
        except Exception:
            return None

    def stop(self):
        if not self.running:
            return
        self.running = False
        try:
            run_balsam(self.db, "dbserver", "--stop", "--path", str(self.db), timeout=60)
        except Exception as exc:  # fall back to the pids the server posted (processes this benchmark started)
            log(f"  balsam dbserver --stop failed ({exc}); signalling the posted pids")
            try:
                info = json.loads((self.db / "dbwriter_address").read_text())
            except (OSError, ValueError):
                return
            for key in ("watchdog_pid", "server_pid"):
                if info.get(key):
                    try:
                        os.kill(int(info[key]), signal.SIGTERM)
                    except (ProcessLookupError, PermissionError, ValueError):
                        pass


class PostgresServer:
    """A PostgreSQL DB's server (started by ``bench_postgres.fresh_pg_db``, as its owner)."""

    def __init__(self, db):
        self.db = db
        self.running = True

    def start(self):
        pass

    def cpu_seconds(self):
        try:
            return bench_postgres.server_cpu_seconds(self.db)
        except Exception:
            return None

    def stop(self):
        if self.running:
            self.running = False
            bench_postgres.stop_pg(self.db)


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------
def raw_spawn_rate(count, inflight=SPAWN_INFLIGHT):
    """Spawns/s of ``/bin/true`` with ``inflight`` processes kept running."""
    running, started = [], 0
    t0 = time.perf_counter()
    while started < count or running:
        while started < count and len(running) < inflight:
            running.append(subprocess.Popen([EXECUTABLE], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            started += 1
        alive = [p for p in running if p.poll() is None]
        if len(alive) == len(running):  # none finished yet: block on the oldest
            running[0].wait()
            alive = running[1:]
        running = alive
    return count / (time.perf_counter() - t0)


def run_launcher(db, max_ranks, timeout, launchers=1):
    """Run ``launchers`` launchers at once to completion; returns (start epoch, wall s, cpu s, summary line)."""
    argv = [BALSAM, "launcher", "--consume-all", "--until-idle", "--max-ranks-per-node", str(max_ranks)]
    out_paths = [db / "log" / f"bench_launcher{i}.out" for i in range(launchers)]
    out_paths[0].parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outs = [open(path, "wb") for path in out_paths]
    procs = []
    try:
        start_epoch = time.time()
        t0 = time.perf_counter()
        procs = [subprocess.Popen(argv, env=env_for(db), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
                 for out in outs]
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0))))
            except subprocess.TimeoutExpired:
                log(f"  launcher still running after {timeout} s; sending SIGTERM")
                codes.append(None)
        wall = time.perf_counter() - t0
    finally:
        for proc in procs:
            if proc.poll() is None:  # overran or interrupted: clean stop, then kill (our own children only)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_SEC)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for out in outs:
            out.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summaries = []
    for path, code in zip(out_paths, codes):
        lines = path.read_text(errors="replace").splitlines()
        summary = next((ln for ln in reversed(lines) if ln.startswith("launcher stopped")), lines[-1] if lines else "")
        summaries.append(summary if code == 0 else f"exit code {code}: {summary}")
    return start_epoch, wall, cpu, " / ".join(summaries)


def check_db(db):
    """Finished jobs, jobs with exactly their 7 events, first and last event times."""
    finished = query(db, "SELECT count(*) FROM balsam_job WHERE state = 'JOB_FINISHED'")[0][0]
    states = dict(query(db, "SELECT state, count(*) FROM balsam_job GROUP BY state"))
    marks = ", ".join("?" * len(JOB_EVENTS))
    events_ok = query(db, f"""
        SELECT count(*) FROM (
            SELECT job_seq, count(*) AS n, count(DISTINCT to_state) AS d, sum(CASE WHEN to_state IN ({marks}) THEN 1 ELSE 0 END) AS k
            FROM balsam_job_event GROUP BY job_seq
        ) AS per_job WHERE n = {len(JOB_EVENTS)} AND d = {len(JOB_EVENTS)} AND k = {len(JOB_EVENTS)}""", JOB_EVENTS)[0][0]
    total_events = query(db, "SELECT count(*) FROM balsam_job_event")[0][0]
    first = query(db, "SELECT min(timestamp) FROM balsam_job_event")[0][0]
    last = query(db, "SELECT max(timestamp) FROM balsam_job_event WHERE to_state = 'JOB_FINISHED'")[0][0]
    return {
        "finished": finished,
        "states": states,
        "events_ok": events_ok,
        "total_events": total_events,
        "first": utc_epoch(first) if first else None,
        "last_finished": utc_epoch(last) if last else None,
    }


def db_name(mode, run_no):
    return f"{mode}_{run_no}"


def bench_run(args, mode, run_no):
    label = f"{mode} #{run_no}" if args.repeat > 1 else mode
    if args.launchers > 1:
        label += f" x{args.launchers} launchers"
    if mode == "postgres":
        db = bench_postgres.fresh_pg_db(args.workdir, db_name(mode, run_no), APP, EXECUTABLE, host=HOST)
        server = PostgresServer(db)
    else:
        db = init_db(args.workdir, db_name(mode, run_no))
        server = Server(db) if mode == "dbserver" else None
    srv_cpu = found = None
    try:
        if server:
            server.start()
        t0 = time.perf_counter()
        add_jobs(db, args.jobs, args.packing)
        log(f"  {args.jobs:,} jobs added in {time.perf_counter() - t0:.1f} s")
        spawn_rate = raw_spawn_rate(args.spawns)
        log(f"  raw spawn rate: {spawn_rate:,.0f} /s ({args.spawns:,} x {EXECUTABLE}, {SPAWN_INFLIGHT} in flight)")
        cpu0 = server.cpu_seconds() if server else None
        start, wall, cpu, summary = run_launcher(db, args.max_ranks_per_node, args.timeout, args.launchers)
        cpu1 = server.cpu_seconds() if server else None
        if cpu0 is not None and cpu1 is not None:
            srv_cpu = cpu1 - cpu0
        if mode == "postgres":
            found = check_db(db)  # while its server runs
    finally:
        if server:
            server.stop()
    found = found or check_db(db)
    log(f"  launcher: {wall:.2f} s; {summary}")
    return make_row(args, label, start, wall, cpu, srv_cpu, spawn_rate, found, summary)


def make_row(args, label, start, wall, cpu, srv_cpu, spawn_rate, found, summary):
    n = args.jobs
    last = found["last_finished"]
    span = last - start if last else None
    rate = found["finished"] / span if span and span > 0 else 0.0
    share = rate / spawn_rate if spawn_rate else 0.0
    all_finished = found["finished"] == n
    events_ok = found["events_ok"] == n and found["total_events"] == n * len(JOB_EVENTS)
    passed = rate >= TARGET_RATE and share >= TARGET_SHARE
    notes = [f"{label}: {summary}"]
    if not all_finished:
        notes.append(f"{label}: states {found['states']}")
    if found["total_events"] != n * len(JOB_EVENTS):
        notes.append(f"{label}: {found['total_events']:,} events in the DB, expected {n * len(JOB_EVENTS):,}")
    row = {
        "mode": label,
        "jobs": f"{n:,}",
        "launcher wall s": f"{wall:.2f}",
        "jobs/s": f"{rate:,.0f}",
        "raw spawn/s": f"{spawn_rate:,.0f}",
        "% of raw": f"{share:.0%}",
        "all finished?": f"{'yes' if all_finished else 'NO'} ({found['finished']:,}/{n:,})",
        "events ok?": f"{'yes' if events_ok else 'NO'} ({found['events_ok']:,}/{n:,})",
        "1st event s": f"{found['first'] - start:.2f}" if found["first"] else "-",
        "last event s": f"{span:.2f}" if span else "-",
        "cpu s": f"{cpu:.2f}",
        "srv cpu s": f"{srv_cpu:.2f}" if srv_cpu is not None else "-",
        "target": f">= {TARGET_RATE} jobs/s, >= {TARGET_SHARE:.0%} of raw",
        "ok?": mark(passed and all_finished and events_ok),
    }
    return row, notes


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def git_revision():
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def print_header(args, modes):
    import django

    import balsam

    print("Balsam launcher throughput benchmark")
    print(f"date:    {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"python:  {platform.python_version()} ({sys.executable})")
    print(f"sqlite:  {sqlite3.sqlite_version}; django {django.__version__}")
    print(f"balsam:  {balsam.__version__} ({BALSAM}, git {git_revision()})")
    print(f"host:    {platform.platform()}, {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"runs:    {args.jobs:,} x {EXECUTABLE} jobs, node_packing_count {args.packing}, "
          f"--max-ranks-per-node {args.max_ranks_per_node}, serial mode; modes {', '.join(modes)}; repeat {args.repeat}")
    print(f"raw:     {args.spawns:,} spawns of {EXECUTABLE}, {SPAWN_INFLIGHT} in flight, before each launcher run")
    print()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=5000, help="jobs per run (default 5,000)")
    p.add_argument("--repeat", type=int, default=1, help="runs per mode, each on a fresh DB (default 1)")
    p.add_argument("--max-ranks-per-node", type=int, default=8, help="launcher --max-ranks-per-node (default 8)")
    p.add_argument("--packing", type=int, default=8, help="node_packing_count of every job (default 8)")
    p.add_argument("--dbserver", action="store_true", help="also run with a dbserver (mode dbserver)")
    p.add_argument("--db-type", choices=("sqlite3", "postgres"), default="sqlite3",
                   help="postgres: also run on a PostgreSQL DB (mode postgres), beside SQLite's direct mode")
    p.add_argument("--launchers", type=int, default=1, help="launchers run at once on each DB (default 1)")
    p.add_argument("--spawns", type=int, default=3000, help="spawns for the raw spawn rate (default 3,000)")
    p.add_argument("--timeout", type=float, default=900, help="seconds before a launcher run is stopped (default 900)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"scratch directory (default {DEFAULT_WORKDIR})")
    p.add_argument("--keep", action="store_true", help="keep the scratch DBs")
    args = p.parse_args(argv)
    if min(args.jobs, args.repeat, args.max_ranks_per_node, args.packing, args.spawns, args.launchers) < 1 or args.timeout <= 0:
        p.error("--jobs, --repeat, --max-ranks-per-node, --packing, --spawns and --timeout must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    prepare(args)
    modes = ["direct", "dbserver"] if args.dbserver else ["direct"]
    if args.db_type == "postgres":
        modes.append("postgres")
    print_header(args, modes)
    sys.stdout.flush()
    rows, notes = [], []
    runs = [(r, m) for r in range(1, args.repeat + 1) for m in modes]
    try:
        for n, (run_no, mode) in enumerate(runs, 1):
            log(f"[{n}/{len(runs)}] {mode}, run {run_no}: {args.jobs:,} jobs ...")
            row, run_notes = bench_run(args, mode, run_no)
            log(f"  {row['jobs/s']} jobs/s = {row['% of raw']} of raw; finished {row['all finished?']}, events {row['events ok?']}")
            rows.append(row)
            notes.extend(run_notes)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if not args.keep:
            for run_no, mode in runs:
                shutil.rmtree(Path(args.workdir) / db_name(mode, run_no), ignore_errors=True)
    print_table(rows)
    for text in notes:
        print(f"  note: {text}")
    missed = [r["mode"] for r in rows if r["ok?"].startswith("MISS")]
    rates = {}  # mode -> jobs/s of each run, in run order
    for row in rows:
        rates.setdefault(row["mode"].split()[0], []).append(float(row["jobs/s"].replace(",", "")))
    for mode, target, label in (("dbserver", TARGET_DBSERVER_RATIO, "dbserver / direct"),
                                ("postgres", TARGET_PG_RATIO, "postgres / sqlite (direct)")):
        if mode not in rates or "direct" not in rates:
            continue
        ratio, each = median_ratio(rates[mode], rates["direct"])
        each = ", ".join(f"{r:.2f}" for r in each)
        ok = ratio >= target
        print(f"  {label} jobs/s, medians: {ratio:.2f}x (each run: {each}; target >= {target:g}x): {mark(ok)}")
        if not ok:
            missed.append(f"{mode} >= {target:g}x direct")
    print_verdict(missed, "run(s) missed the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
