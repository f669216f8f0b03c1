"""Scale benchmark for the analytics behind ``balsam report`` and the dashboard.

What is measured
----------------
On a DB of 1,000,000 jobs and about 7,000,000 job events (issue #13, item 7):

1. Each ``balsam.analytics`` call, in this process (``api.attach`` first, not
   timed): ``state_counts``, ``workflows``, ``workflow_progress``,
   ``throughput`` and ``utilization`` over the last hour, day and all history
   (about 3 days), ``failures`` (all, and one workflow), ``launchers``,
   ``launches``.  One untimed call, then ``--repeat`` timed calls; median
   and best.  Series are asked with ``now`` = the end of the built history.
   Target: < 0.2 s each (a share of the dashboard's budget).

2. A dashboard refresh as the analytics see it: state_counts + workflow_progress
   + throughput(1 d) + utilization(1 d) + failures + launchers + launches,
   in sequence.  ``first`` is the first such set after attaching (connection
   opened, SQLite's page cache empty; the OS cache is warm), then the median
   of ``--repeat`` more.  Target: < 1 s (the whole dashboard, server-side).

3. ``balsam report throughput`` (all history) as a whole process: interpreter,
   imports, Django, the query and the printing.  One untimed run, then
   ``--repeat`` timed; median, best.  Target: < 2 s.  ``report states``,
   ``report utilization`` and ``report failures`` are timed the same way,
   without a target.

4. ``migration 0008 backfill``: the seconds its backfill SQL took on this DB
   while it was built (what upgrading a DB of this size costs once).

The dashboard pages themselves (first load, refresh, the admin's job list
with a state filter) are measured by ``measure_web(db_path, repeat)``, after
the analytics rows: ``web_scale_web.py`` in a subprocess (Django's test
client, server-side times; see that script for what each row covers).

The DB
------
Built once and cached in ``--workdir`` (``--rebuild`` forces a new one): the
jobs by ``cli_scale.build_jobs`` (``balsam make_dummies``), then, as
benchmark setup with direct sqlite3 statements, 4 workflows and a life per
job chosen by ``rowid % 100`` -- 52% finished, 28% finished after one
timeout rerun, 2% FAILED after a RUN_ERROR, 1% left in RUN_ERROR, 2%
RUNNING, 5% PREPROCESSED, 2% AWAITING_PARENTS, 1% USER_KILLED, 7% CREATED --
with its events spread over 3 days (runs of 20 to 620 s), 36 launcher
records of 1,024 run slots (two overlap at any time, the last one alive),
50 batch launches with 1,000 jobs tied to each of 5 of them, and an output
file for the 100 latest failed jobs.  The aggregates' triggers are dropped
during these writes, the aggregates are filled afterwards by migration
0008's own backfill SQL, then its triggers are made again.

How to run
----------
    .venv/bin/python benchmarks/web_scale.py                  # 1,000,000 jobs (first run builds for ~10 min)
    .venv/bin/python benchmarks/web_scale.py --jobs 100000 --repeat 3
    .venv/bin/python benchmarks/web_scale.py --rebuild

The script always exits 0 (it is a report); missed targets are marked MISS.
"""

import argparse
import datetime
import importlib
import json
import shutil
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import BALSAM, env_for, log, mark, print_table, print_verdict, schema_updated
from cli_scale import build_jobs

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "_work" / "web_scale"
BUILD_VERSION = 3  # bump when the build or the schema changes: invalidates cached DBs (3: events under job seq)
SPAN = datetime.timedelta(days=3)
WORKFLOWS = 4
LAUNCHERS, LAUNCHER_SLOTS = 36, 1024
CALL_TARGET_S, REFRESH_TARGET_S, REPORT_TARGET_S = 0.2, 1.0, 2.0
MIGRATION = importlib.import_module("balsam.core.migrations.0008_launchers_and_aggregates")


def backfill_statements():
    """Migration 0008's backfill, its join of events to jobs as the schema has it
    since migration 0014 (events name their job by its number, ``seq``)."""
    old, new = "j.job_id = e.job_id", "j.seq = e.job_seq"
    assert any(old in statement for statement in MIGRATION.BACKFILL), "migration 0008's backfill changed"
    return [statement.replace(old, new) for statement in MIGRATION.BACKFILL]


# rowid % 100 -> the states a job went through after CREATED
PATHS = {
    "finished": ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"],
    "rerun": ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_TIMEOUT", "RESTART_READY", "RUNNING", "RUN_DONE",
              "POSTPROCESSED", "JOB_FINISHED"],
    "failed": ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_ERROR", "FAILED"],
    "run_error": ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_ERROR"],
    "running": ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING"],
    "preprocessed": ["READY", "STAGED_IN", "PREPROCESSED"],
    "awaiting": ["AWAITING_PARENTS"],
    "killed": ["READY", "USER_KILLED"],
    "created": [],
}
LIFE = (["finished"] * 52 + ["rerun"] * 28 + ["failed"] * 2 + ["run_error"] + ["running"] * 2
        + ["preprocessed"] * 5 + ["awaiting"] * 2 + ["killed"] + ["created"] * 7)
MESSAGES = {"RUNNING": "on nid00012", "RUN_DONE": "exit code 0", "RUN_ERROR": "exit code 1: ValueError: bad input",
            "FAILED": "RUN_ERROR and no error handler", "RUN_TIMEOUT": "killed after its wall time of 10 min",
            "RESTART_READY": "timed out; retry 1 of 5", "USER_KILLED": "killed by user"}
assert len(LIFE) == 100


# ---------------------------------------------------------------------------
# building the DB (cached)
# ---------------------------------------------------------------------------
def _stamp(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _life(rowid, jobs, begin, end):
    """(workflow, [(time, from, to, message)], last state, its time) of the job at ``rowid``."""
    path = PATHS[LIFE[rowid % 100]]
    start = begin + (rowid / jobs) * (end - begin - 3600)
    if LIFE[rowid % 100] == "running":
        start = end - 900 + rowid % 600  # still running at the end of the history
    run = 20 + (rowid * 2654435761) % 600
    events, t, previous = [], start, "CREATED"
    for state in path:
        t += run if previous == "RUNNING" else 1 + rowid % 3
        events.append((t, previous, state, MESSAGES.get(state, "")))
        previous = state
    return f"sim-{rowid % WORKFLOWS}", events, previous, (t if events else None)


def _add_history(conn, jobs, begin, end):
    """Events, states and workflows for every job (triggers dropped meanwhile)."""
    cursor = conn.execute("SELECT rowid, seq FROM balsam_job ORDER BY rowid")
    total = 0
    while True:
        rows = cursor.fetchmany(100_000)
        if not rows:
            break
        events, updates = [], []
        for rowid, seq in rows:  # events are filed under the job's number (migration 0014)
            workflow, history, state, changed = _life(rowid, jobs, begin, end)
            events += [(seq, _stamp(t), a, b, m) for t, a, b, m in history]
            updates.append((workflow, state, _stamp(changed) if changed else None, rowid))
        conn.executemany("INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "
                         "VALUES (?, ?, ?, ?, ?)", events)
        conn.executemany("UPDATE balsam_job SET workflow = ?, state = ?, "
                         "state_changed_at = COALESCE(?, state_changed_at) WHERE rowid = ?", updates)
        conn.commit()  # a transaction per chunk keeps the WAL file small
        total += len(events)
        log(f"  events for jobs up to rowid {rows[-1][0]:,}: {total:,}")
    return total


def _add_launchers_and_launches(conn, begin, end):
    step = (end - begin) / LAUNCHERS
    rows = []
    for k in range(LAUNCHERS):
        started = begin + k * step
        last = min(end, started + 2 * step)
        stopped = None if k == LAUNCHERS - 1 else _stamp(last)
        rows.append((f"nid{k:05d}:{1000 + k}:{k:06x}", f"nid{k:05d}", 1000 + k, "serial", 16, LAUNCHER_SLOTS, "",
                     None, 180.0, _stamp(started), _stamp(last), stopped))
    conn.executemany("INSERT INTO balsam_launcher (owner, host, pid, job_mode, num_nodes, capacity, wf_filter, "
                     "queued_launch_id, lease_expiry_sec, started_at, last_seen_at, stopped_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    # The last launcher holds the running jobs.
    conn.execute("UPDATE balsam_job SET lease_owner = ? WHERE state = 'RUNNING'", (rows[-1][0],))
    for k in range(50):
        conn.execute("INSERT INTO balsam_launch (scheduler, scheduler_id, project, queue, nodes, wall_minutes, "
                     "job_mode, wf_filter, state, submit_time, end_time, script_path, created_at) "
                     "VALUES ('slurm', ?, '', 'debug', 16, 60, 'serial', '', ?, ?, NULL, '', ?)",
                     (str(9000 + k), "finished" if k < 45 else "queued", _stamp(begin + k * 3600),
                      _stamp(begin + k * 3600)))
    launch_ids = [r[0] for r in conn.execute("SELECT id FROM balsam_launch ORDER BY id DESC LIMIT 5")]
    for i, launch in enumerate(launch_ids):
        conn.execute("UPDATE balsam_job SET queued_launch_id = ? WHERE rowid IN "
                     "(SELECT rowid FROM balsam_job WHERE state = 'CREATED' LIMIT 1000 OFFSET ?)", (launch, i * 1000))


def _write_outputs(db, conn):
    from balsam.core.outputs import run_output_name

    rows = conn.execute("SELECT workdir, name FROM balsam_job WHERE state = 'FAILED' "
                        "ORDER BY state_changed_at DESC LIMIT 100").fetchall()
    for workdir, name in rows:
        path = db / "data" / workdir / run_output_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"step {i}: computing\n" for i in range(2000)) + "ValueError: bad input\n")


def build_marker(jobs):
    return {"jobs": jobs, "build_version": BUILD_VERSION}


def big_db(workdir, jobs, rebuild):
    """(path, info) of the cached DB of ``jobs`` jobs with their history, built if needed."""
    db = workdir / f"db_{jobs}_jobs"
    marker = db / "benchmark_build.json"
    if not rebuild and marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in build_marker(jobs)} == build_marker(jobs):
            log(f"Using cached {jobs:,}-job DB at {db} (--rebuild to rebuild)")
            return schema_updated(db), info
    log(f"Building {jobs:,}-job DB with its history at {db} ...")
    started = time.perf_counter()
    shutil.rmtree(db, ignore_errors=True)  # an outdated cached DB is replaced, never built upon
    build_jobs(db, jobs)
    end = float(int(time.time()) // 60 * 60)
    begin = end - SPAN.total_seconds()
    conn = sqlite3.connect(db / "db.sqlite3")
    conn.execute("PRAGMA synchronous = OFF")
    for name in MIGRATION.TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    conn.commit()
    events = _add_history(conn, jobs, begin, end)
    _add_launchers_and_launches(conn, begin, end)
    conn.commit()
    log(f"  history written in {time.perf_counter() - started:.0f} s; filling the aggregates ...")
    t0 = time.perf_counter()
    conn.execute("DELETE FROM balsam_job_count")
    conn.execute("DELETE FROM balsam_state_minute")
    for statement in backfill_statements():  # the migration's own SQL
        conn.execute(statement)
    for statement in MIGRATION.TRIGGERS.values():
        conn.execute(statement)
    conn.commit()
    backfill = time.perf_counter() - t0
    _write_outputs(db, conn)
    conn.close()
    info = {**build_marker(jobs), "events": events, "history_end": end, "backfill_s": round(backfill, 1)}
    marker.write_text(json.dumps(info))
    log(f"  backfill {backfill:.1f} s; build took {time.perf_counter() - started:.0f} s")
    return db, info


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------
def row(what, times, target=None):
    median = statistics.median(times)
    return {"measurement": what, "median s": f"{median:.3f}", "best s": f"{min(times):.3f}",
            "target": f"< {target:g} s" if target else "-", "ok?": mark(median < target) if target else "-"}


def timed(call, repeat):
    call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def measure_analytics(db, info, repeat):
    from balsam import api

    api.attach(str(db))
    from balsam import analytics  # its models need Django set up

    now = datetime.datetime.fromtimestamp(info["history_end"], datetime.timezone.utc)
    hour, day = datetime.timedelta(hours=1), datetime.timedelta(days=1)

    def refresh():
        analytics.state_counts()
        analytics.workflow_progress()
        analytics.throughput(since=day, now=now)
        analytics.utilization(since=day, now=now)
        analytics.failures()
        analytics.launchers()
        analytics.launches()

    t0 = time.perf_counter()
    refresh()
    first = time.perf_counter() - t0
    rows = [row("dashboard analytics, first set after attach", [first], REFRESH_TARGET_S),
            row("dashboard analytics, refresh", timed(refresh, repeat), REFRESH_TARGET_S)]
    calls = [
        ("state_counts()", analytics.state_counts),
        ("workflows()", analytics.workflows),
        ("workflow_progress()", analytics.workflow_progress),
        ("throughput(since=1h)", lambda: analytics.throughput(since=hour, now=now)),
        ("throughput(since=1d)", lambda: analytics.throughput(since=day, now=now)),
        ("throughput(all)", lambda: analytics.throughput(now=now)),
        ("throughput('sim-1', all)", lambda: analytics.throughput("sim-1", now=now)),
        ("utilization(since=1h)", lambda: analytics.utilization(since=hour, now=now)),
        ("utilization(since=1d)", lambda: analytics.utilization(since=day, now=now)),
        ("utilization(all)", lambda: analytics.utilization(now=now)),
        ("utilization('sim-1', all)", lambda: analytics.utilization("sim-1", now=now)),
        ("failures()", analytics.failures),
        ("failures('sim-2')", lambda: analytics.failures("sim-2")),
        ("launchers()", analytics.launchers),
        ("launches()", analytics.launches),
    ]
    for name, call in calls:
        rows.append(row(f"analytics.{name}", timed(call, repeat), CALL_TARGET_S))
    sample = analytics.utilization(since=day, now=now)
    log(f"  utilization(1d): {len(sample.values)} points of {sample.bucket_seconds} s, mean "
        f"{statistics.mean(sample.values):.0f} running of {statistics.mean(c for c in sample.capacity if c):.0f} slots")
    return rows


def measure_web(db_path, repeat):
    """The dashboard's first load and refresh and the admin's job list with a
    state filter, server-side, on ``db_path`` (``web_scale_web.measure_web``)."""
    import web_scale_web

    return [{"measurement": name, "median s": f"{seconds:.3f}", "best s": "-",
             "target": f"< {target:g} s" if target else "-", "ok?": mark(seconds < target) if target else "-"}
            for name, seconds, target in web_scale_web.measure_web(db_path, repeat)]


def measure_reports(db, repeat):
    rows = []
    for args, target in ((["report", "throughput"], REPORT_TARGET_S), (["report", "utilization"], None),
                         (["report", "states"], None), (["report", "failures"], None)):
        def run():
            proc = subprocess.run([BALSAM, *args], env=env_for(db), capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"balsam {' '.join(args)} failed: {proc.stderr.strip()}")
        rows.append(row(f"balsam {' '.join(args)} (whole process)", timed(run, repeat), target))
    return rows


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the DB (default 1,000,000)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (default 5)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"scratch/cache directory (default {DEFAULT_WORKDIR})")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached DB")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.jobs < 1000:
        p.error("--repeat must be positive and --jobs at least 1000")
    return args


def main(argv=None):
    args = parse_args(argv)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db, info = big_db(args.workdir, args.jobs, args.rebuild)
    print("Balsam analytics (web) scale benchmark")
    print(f"date:    {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"python:  {platform.python_version()}; sqlite {sqlite3.sqlite_version}")
    print(f"host:    {platform.platform()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"DB:      {db}: {args.jobs:,} jobs, {info['events']:,} events over {SPAN.days} days, "
          f"{WORKFLOWS} workflows, {LAUNCHERS} launchers")
    print(f"repeat:  {args.repeat} timed runs per row after one untimed (median, best)")
    print()
    sys.stdout.flush()
    log("[1/3] analytics calls in this process")
    rows = measure_analytics(db, info, args.repeat)
    log("[2/3] dashboard and admin pages (measure_web)")
    rows += measure_web(db, args.repeat)
    log("[3/3] balsam report as whole processes")
    rows += measure_reports(db, args.repeat)
    rows.append({"measurement": "migration 0008 backfill (once, at upgrade)", "median s": f"{info['backfill_s']:.1f}",
                 "best s": "-", "target": "-", "ok?": "-"})
    print_table(rows)
    print_verdict([r["measurement"] for r in rows if r["ok?"].startswith("MISS")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
