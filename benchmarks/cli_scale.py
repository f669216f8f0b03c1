"""Scale benchmark for the ``balsam`` command line.

What is measured
----------------
Every number is the wall time of a whole ``balsam`` process (interpreter start,
imports, Django setup, the query and the printing), run with ``subprocess.run``
and timed with ``time.perf_counter``.  The executable is the ``balsam`` script
next to ``sys.executable``; each call gets ``BALSAM_DB_PATH`` pointing to a
scratch DB created with ``balsam init``.  stdout and stderr go to pipes that
``subprocess.run`` drains, so printing cost is included but no terminal is.

1. ``balsam make_dummies COUNT`` on a fresh, empty DB (a new DB per repeat).
   Reported: median and best wall time, throughput in jobs/s (from the median).
   Target: >= 20,000 jobs/s.

2. Read-only commands against a large DB (default 1,000,000 jobs):
   ``balsam ls --by-states``, ``balsam ls --state RUN_ERROR`` (target < 1 s each),
   and, without a target, ``balsam which`` and
   ``balsam ls --wf dummy --state RUN_ERROR``; ``balsam db stats`` (target < 2 s),
   ``balsam db check`` (< 10 s; it exits 1 there: the jobs never ran, so their
   directories are missing) and ``balsam db backup --to FILE`` (< 10 s, the copy
   and its integrity check).  Last, ``balsam db compact --events-older-than 0m``
   once on a copy of the DB (no time target): the events of the finished jobs
   go except each one's newest, then ``VACUUM`` rewrites the file; the row is
   ``ok`` when the file shrank and every unfinished job's row and events are
   unchanged (a digest before and after), with the gain in its name.  Each command runs once untimed
   (warm page cache), then ``--repeat`` timed runs; median and best reported.

   The large DB is built with a few ``balsam make_dummies`` calls, then a spread
   of states is applied with one direct sqlite3 UPDATE on ``balsam_job.state``
   (1% RUN_ERROR, 60% JOB_FINISHED, ...; benchmark setup only, it bypasses the
   state machine), and a history that agrees with it: a creation event per job
   and one event to its state for the others (1.75 M events).  The DB is cached in ``--workdir`` keyed by job count, so
   reruns skip the build; ``--rebuild`` forces a new one.

How to run
----------
    .venv/bin/python benchmarks/cli_scale.py                 # or: make bench
    .venv/bin/python benchmarks/cli_scale.py --jobs-large 200000 --dummies 20000 --repeat 5
    .venv/bin/python benchmarks/cli_scale.py --rebuild

The script always exits 0 (it is a report); missed targets are marked MISS.
"""

import argparse
import datetime
import hashlib
import importlib
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import BALSAM, env_for, log, print_table, print_verdict, schema_updated
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "_work"
MIGRATION_0008 = importlib.import_module("balsam.core.migrations.0008_launchers_and_aggregates")
BUILD_CHUNK = 250_000  # jobs per make_dummies call while building the large DB
DUMMIES_TARGET_RATE = 20_000  # jobs/s
LS_TARGET_SECONDS = 1.0

# Share of jobs (in percent of rowid % 100) per state; the rest stay CREATED.
STATE_SPREAD = [
    ("RUN_ERROR", 0, 0),  # 1%
    ("JOB_FINISHED", 1, 60),  # 60%
    ("RUNNING", 61, 62),  # 2%
    ("PREPROCESSED", 63, 67),  # 5%
    ("AWAITING_PARENTS", 68, 72),  # 5%
    ("FAILED", 73, 73),  # 1%
    ("USER_KILLED", 74, 74),  # 1%
]
SPREAD_VERSION = 4  # bump when STATE_SPREAD, the events or the schema change (3: events for db check, migration 0008; 4: events under job seq, migration 0014), invalidates cached DBs
DB_STATS_TARGET_SECONDS = 2.0
DB_CHECK_TARGET_SECONDS = 10.0
DB_BACKUP_TARGET_SECONDS = 10.0


# ---------------------------------------------------------------------------
# running balsam
# ---------------------------------------------------------------------------
def run_balsam(db_path, *args, timeout=3600, ok_codes=(0,)):
    """Run one ``balsam`` process against ``db_path``; return (seconds, CompletedProcess)."""
    start = time.perf_counter()
    proc = subprocess.run([BALSAM, *args], env=env_for(db_path), capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"balsam {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return elapsed, proc


def init_db(db_path):
    """Create an empty Balsam DB at ``db_path`` (removing any previous one)."""
    shutil.rmtree(db_path, ignore_errors=True)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    run_balsam(db_path, "init", str(db_path))


def sql(db_path, statement):
    """Run one SQL statement directly on the DB file (setup and checks only); return its rows."""
    conn = sqlite3.connect(db_path / "db.sqlite3")
    try:
        with conn:  # commits
            return conn.execute(statement).fetchall()
    finally:
        conn.close()


def count_jobs(db_path):
    return sql(db_path, "SELECT count(*) FROM balsam_job")[0][0]


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
def result_row(operation, jobs, times, rate_of=None, target=None, passed=None):
    """One table row; ``rate_of`` = items processed per run (rate from the median)."""
    median = statistics.median(times)
    rate = f"{rate_of / median:,.0f} jobs/s" if rate_of else "-"
    ok = "-" if passed is None else ("ok" if passed else "MISS <<<")
    return {
        "operation": operation,
        "jobs in DB": jobs,
        "median s": f"{median:.3f}",
        "best s": f"{min(times):.3f}",
        "rate": rate,
        "target": target or "-",
        "ok?": ok,
    }


def print_header(args):
    print("Balsam CLI scale benchmark")
    print(f"date:    {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"python:  {platform.python_version()} ({sys.executable})")
    print(f"sqlite:  {sqlite3.sqlite_version}")
    print(f"host:    {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"balsam:  {BALSAM}")
    print(f"repeat:  {args.repeat} timed runs per row (median, best)")
    print()


# ---------------------------------------------------------------------------
# 1. make_dummies on a fresh DB
# ---------------------------------------------------------------------------
def bench_make_dummies(workdir, count, repeat):
    db = workdir / "fresh_dummies_db"
    times = []
    for i in range(repeat):
        init_db(db)
        elapsed, _ = run_balsam(db, "make_dummies", str(count))
        found = count_jobs(db)
        if found != count:
            raise RuntimeError(f"make_dummies {count} left {found} jobs in the DB")
        log(f"  make_dummies {count:,} run {i + 1}/{repeat}: {elapsed:.2f} s ({count / elapsed:,.0f} jobs/s)")
        times.append(elapsed)
    shutil.rmtree(db, ignore_errors=True)
    rate = count / statistics.median(times)
    return result_row(
        f"make_dummies {count}",
        f"0 -> {count:,}",
        times,
        rate_of=count,
        target=f">= {DUMMIES_TARGET_RATE:,} jobs/s",
        passed=rate >= DUMMIES_TARGET_RATE,
    )


# ---------------------------------------------------------------------------
# 2. the large DB (cached)
# ---------------------------------------------------------------------------
def spread_states_sql():
    cases = " ".join(f"WHEN rowid % 100 BETWEEN {lo} AND {hi} THEN '{state}'" for state, lo, hi in STATE_SPREAD)
    return f"UPDATE balsam_job SET state = CASE {cases} ELSE state END"


def apply_state_spread(db_path):
    sql(db_path, spread_states_sql())
    # A history that agrees with the states (what `db check` reads): a creation
    # event for every job and one event to its state for the others.
    sql(db_path, "INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "
                 "SELECT seq, created_at, '', 'CREATED', 'created' FROM balsam_job ORDER BY rowid")
    sql(db_path, "INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "
                 "SELECT seq, state_changed_at, 'CREATED', state, 'benchmark spread' FROM balsam_job "
                 "WHERE state <> 'CREATED' ORDER BY rowid")
    # The UPDATE bypasses the write path, which keeps the job counts the
    # analytics read: count again with migration 0008's own SQL.
    sql(db_path, "DELETE FROM balsam_job_count")
    sql(db_path, MIGRATION_0008.BACKFILL[0])


def build_marker(jobs):
    return {"jobs": jobs, "spread_version": SPREAD_VERSION}


def build_jobs(db, jobs):
    """A new DB at ``db`` holding ``jobs`` dummy jobs (CREATED, workflow
    ``dummy``), added by ``balsam make_dummies`` calls of BUILD_CHUNK jobs."""
    start = time.perf_counter()
    init_db(db)
    done = 0
    while done < jobs:
        n = min(BUILD_CHUNK, jobs - done)
        elapsed, _ = run_balsam(db, "make_dummies", str(n))
        done += n
        log(f"  {done:>10,} / {jobs:,} jobs  (+{n:,} in {elapsed:.1f} s, {time.perf_counter() - start:.0f} s total)")


def large_db(workdir, jobs, rebuild):
    """Return the path of a DB with ``jobs`` jobs and a spread of states, building it if needed."""
    db = workdir / f"db_{jobs}_jobs"
    marker = db / "benchmark_build.json"
    if not rebuild and marker.exists() and json.loads(marker.read_text()) == build_marker(jobs):
        log(f"Using cached {jobs:,}-job DB at {db} (--rebuild to rebuild)")
        return schema_updated(db)
    log(f"Building {jobs:,}-job DB at {db} ...")
    start = time.perf_counter()
    build_jobs(db, jobs)
    t0 = time.perf_counter()
    apply_state_spread(db)
    log(f"  state spread applied in {time.perf_counter() - t0:.1f} s; build took {time.perf_counter() - start:.0f} s")
    marker.write_text(json.dumps(build_marker(jobs)))
    return db


def state_counts(db_path):
    return dict(sql(db_path, "SELECT state, count(*) FROM balsam_job GROUP BY state"))


def bench_read(db_path, jobs, args, repeat, target_s=None, ok_codes=(0,)):
    """Time ``balsam *args`` on the large DB: one untimed warm-up, then ``repeat`` runs."""
    _, proc = run_balsam(db_path, *args, ok_codes=ok_codes)
    times = [run_balsam(db_path, *args, ok_codes=ok_codes)[0] for _ in range(repeat)]
    log(f"  balsam {' '.join(args)}: median {statistics.median(times):.3f} s, {len(proc.stdout.splitlines()):,} output lines")
    return result_row(
        "balsam " + " ".join(args),
        f"{jobs:,}",
        times,
        target=f"< {target_s:g} s" if target_s else None,
        passed=None if target_s is None else statistics.median(times) < target_s,
    )


def bench_backup(db_path, jobs, workdir, repeat):
    """Time ``balsam db backup --to FILE`` (copy + integrity_check of the copy) on the large DB."""
    target = workdir / "backup_bench.sqlite3"
    times = []
    for _ in range(repeat + 1):  # the first run warms the page cache, untimed
        target.unlink(missing_ok=True)
        elapsed, _ = run_balsam(db_path, "db", "backup", "--to", str(target))
        times.append(elapsed)
    size = target.stat().st_size
    target.unlink(missing_ok=True)
    times = times[1:]
    log(f"  balsam db backup: median {statistics.median(times):.3f} s for {size / 2**20:,.0f} MiB")
    return result_row("balsam db backup --to FILE", f"{jobs:,}", times, target=f"< {DB_BACKUP_TARGET_SECONDS:g} s",
                      passed=statistics.median(times) < DB_BACKUP_TARGET_SECONDS)


END_STATES_SQL = "('JOB_FINISHED', 'FAILED', 'USER_KILLED', 'PARENT_KILLED')"
GAIN_LINE = re.compile(r"^(\d+) -> (\d+) bytes \(gain=(\d+\.\d\d)x\)$", re.M)


def unfinished_digest(db_path):
    """A digest of every unfinished job's row and events: compact must not change it."""
    digest = hashlib.sha256()
    conn = sqlite3.connect(db_path / "db.sqlite3")
    try:
        for query in (f"SELECT * FROM balsam_job WHERE state NOT IN {END_STATES_SQL} ORDER BY rowid",
                      f"SELECT e.* FROM balsam_job_event e JOIN balsam_job j ON j.seq = e.job_seq "
                      f"WHERE j.state NOT IN {END_STATES_SQL} ORDER BY e.id"):
            for row in conn.execute(query):
                digest.update(repr(row).encode())
    finally:
        conn.close()
    return digest.hexdigest()


def bench_compact(db_path, jobs, workdir):
    """``balsam db compact --events-older-than 0m`` once, on a copy of the large
    DB (it changes the DB): the events of its finished jobs go except each
    one's newest; then the file is rewritten (nothing else uses the copy).
    Checks that the file shrank and that no unfinished job or event changed."""
    copy = workdir / "compact_bench_db"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(db_path, copy)
    before_digest = unfinished_digest(copy)
    events_before = sql(copy, "SELECT COUNT(*) FROM balsam_job_event")[0][0]
    elapsed, proc = run_balsam(copy, "db", "compact", "--events-older-than", "0m")
    found = GAIN_LINE.search(proc.stdout)
    if not found:
        raise RuntimeError(f"balsam db compact printed no gain line:\n{proc.stdout}")
    size_before, size_after = int(found.group(1)), int(found.group(2))
    events_after = sql(copy, "SELECT COUNT(*) FROM balsam_job_event")[0][0]
    unchanged = unfinished_digest(copy) == before_digest
    shutil.rmtree(copy, ignore_errors=True)
    log(f"  balsam db compact: {elapsed:.1f} s; events {events_before:,} -> {events_after:,}; "
        f"{found.group(0)}; unfinished jobs and their events unchanged: {unchanged}")
    return result_row(f"balsam db compact --events-older-than 0m (gain={found.group(3)}x)", f"{jobs:,}", [elapsed],
                      target="shrinks; unfinished unchanged", passed=size_after < size_before and unchanged)


def bench_large(workdir, jobs, repeat, rebuild):
    db = large_db(workdir, jobs, rebuild)
    counts = state_counts(db)
    log("  states: " + ", ".join(f"{s} {n:,}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])))
    total = sum(counts.values())
    return [
        bench_read(db, total, ["ls", "--by-states"], repeat, LS_TARGET_SECONDS),
        bench_read(db, total, ["ls", "--state", "RUN_ERROR"], repeat, LS_TARGET_SECONDS),
        bench_read(db, total, ["which"], repeat),
        bench_read(db, total, ["ls", "--wf", "dummy", "--state", "RUN_ERROR"], repeat),
        bench_read(db, total, ["db", "stats"], repeat, DB_STATS_TARGET_SECONDS),
        # The benchmark's jobs never ran: `db check` reports their missing directories (exit 1).
        bench_read(db, total, ["db", "check"], repeat, DB_CHECK_TARGET_SECONDS, ok_codes=(0, 1)),
        bench_backup(db, total, workdir, repeat),
        bench_compact(db, total, workdir),
    ]


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs-large", type=int, default=1_000_000, help="jobs in the large DB (default 1,000,000)")
    p.add_argument("--dummies", type=int, default=100_000, help="jobs per timed make_dummies call (default 100,000)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (default 3)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"scratch/cache directory (default {DEFAULT_WORKDIR})")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached large DB")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.dummies < 1 or args.jobs_large < 1:
        p.error("--repeat, --dummies and --jobs-large must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print_header(args)
    sys.stdout.flush()

    log(f"[1/2] make_dummies {args.dummies:,} on a fresh DB, {args.repeat} runs")
    rows = [bench_make_dummies(args.workdir, args.dummies, args.repeat)]
    log(f"[2/2] read commands on a {args.jobs_large:,}-job DB, {args.repeat} runs each")
    rows += bench_large(args.workdir, args.jobs_large, args.repeat, args.rebuild)

    print_table(rows)
    print_verdict([r["operation"] for r in rows if r["ok?"].startswith("MISS")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
