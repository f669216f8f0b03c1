"""``balsam db compact`` on a DB with thousands of finished jobs' events and a
few unfinished jobs: what goes, what stays untouched, the size, the gain line;
directly and through a live dbserver."""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.helpers import WRITER, acked, db_rows, wait_until

FINISH = ("READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
FINISHED = 3000


@pytest.fixture
def history(db, make_job):
    """3,000 JOB_FINISHED jobs (7 events each) in workflow "done", a finished and a
    running job in workflow "live"."""
    from balsam import api
    from balsam.core import write_client

    client = write_client.get()
    ids = [str(i) for i in api.make_dummies(FINISHED)]
    client.update("jobs", ids, {"workflow": "done"})
    for state in FINISH:
        client.transition(ids, state)
    ended = make_job(name="ended", workflow="live")
    running = make_job(name="running", workflow="live")
    for state in FINISH:
        client.transition([str(ended.pk)], state)
    for state in FINISH[:4]:
        client.transition([str(running.pk)], state)
    return {"done": ids, "ended": ended, "running": running}


def live_rows(db):
    return (db_rows(db, "SELECT * FROM balsam_job WHERE workflow = 'live' ORDER BY name"),
            db_rows(db, "SELECT e.* FROM balsam_job_event e JOIN balsam_job j ON j.seq = e.job_seq "
                        "WHERE j.name = 'running' ORDER BY e.id"))


def gain_line(out):
    found = re.search(r"^(\d+) -> (\d+) bytes \(gain=(\d+\.\d\d)x\)$", out, flags=re.M)
    assert found, out
    return int(found.group(1)), int(found.group(2)), float(found.group(3))


@pytest.mark.both_backends
def test_dry_run_says_what_would_go_and_changes_nothing(db, history, balsam_cmd, snapshot):
    before = snapshot()
    result = balsam_cmd("db", "compact", "--events-older-than", "0m", "--finished-workflows", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Would remove: {6 * (FINISHED + 1):,} events older than ")
    assert lines[0].endswith(f"1 finished workflow(s) ({FINISHED:,} jobs), 0 applied-request ids")
    assert lines[1] == f"  workflow done: {FINISHED:,} jobs"
    assert snapshot() == before


def on_postgres(db):
    return (db / "balsamdb").exists()


def size_now(db):
    if on_postgres(db):
        return db_rows(db, "SELECT pg_database_size(current_database())")[0][0]
    return (db / "db.sqlite3").stat().st_size + ((db / "db.sqlite3-wal").stat().st_size
                                                 if (db / "db.sqlite3-wal").exists() else 0)


@pytest.mark.both_backends
def test_old_events_of_finished_jobs_go_and_the_file_shrinks(db, history, balsam_cmd):
    from django.db import connections

    connections.close_all()  # nobody else connected: PostgreSQL's compact may then rewrite the tables (VACUUM FULL)
    live_before = live_rows(db)
    result = balsam_cmd("db", "compact", "--events-older-than", "0m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Removed: {6 * (FINISHED + 1):,} events, 0 jobs of 0 finished workflow(s)")
    assert "PostgreSQL VACUUM while" not in result.stdout and "Not shrunk" not in result.stdout
    before, after, gain = gain_line(result.stdout)
    assert after < before and gain == round(before / after, 2) > 1.0
    if on_postgres(db):  # PostgreSQL adds its maps (free space, visibility) to tables as they are next read
        assert size_now(db) < before
    else:
        assert after == size_now(db)
    # Each finished job keeps its newest event; the unfinished job keeps all of its.
    assert db_rows(db, "SELECT COUNT(*), COUNT(DISTINCT job_seq) FROM balsam_job_event") == [(FINISHED + 1 + 4,
                                                                                              FINISHED + 2)]
    assert live_rows(db)[0] == live_before[0] and live_rows(db)[1] == live_before[1]
    report = json.loads(balsam_cmd("db", "check", "--json").stdout)  # (the dummies never ran: no directories)
    assert {p["kind"] for p in report["problems"]} == {"directory"}


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_postgres_compact_while_others_are_connected_vacuums_without_locking_them_out(db, history, balsam_cmd):
    from balsam.core.models import BalsamJob

    assert BalsamJob.objects.filter(name="running").exists()  # this test's own session stays open
    live_before = live_rows(db)
    result = balsam_cmd("db", "compact", "--events-older-than", "0m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Removed: {6 * (FINISHED + 1):,} events")
    assert "PostgreSQL VACUUM while the DB is in use by 1 session(s) of " in result.stdout
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_job_event") == [(FINISHED + 1 + 4,)]
    assert live_rows(db) == live_before
    gain_line(result.stdout)


@pytest.mark.both_backends
def test_finished_workflows_go_with_their_rows_but_not_their_files(db, history, balsam_cmd):
    folder = db / "data" / "done" / "kept"
    folder.mkdir(parents=True)
    live_before = live_rows(db)
    result = balsam_cmd("db", "compact", "--finished-workflows")
    assert result.returncode == 0, result.stderr
    assert f"{FINISHED:,} jobs of 1 finished workflow(s)" in result.stdout
    assert db_rows(db, "SELECT workflow, COUNT(*) FROM balsam_job GROUP BY workflow") == [("live", 2)]
    assert live_rows(db) == live_before and folder.is_dir()


def auto_vacuum(db):
    return db_rows(db, "PRAGMA auto_vacuum")[0][0]  # 0: none, 2: incremental


def test_a_new_db_gives_pages_back_in_steps(db):
    assert auto_vacuum(db) == 2


def test_compact_through_a_dbserver_shrinks_the_file_while_a_writer_runs(db, history, dbserver, balsam_cmd, tmp_path):
    from balsam.dbserver.control import status

    live_before = live_rows(db)
    commits = status(db)["commits"]
    stop, log = tmp_path / "stop", tmp_path / "writer.log"
    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, "w", str(log), str(stop)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(acked([log])) >= 3, 60, "the writer's first inserts")
        started = time.time()
        result = balsam_cmd("db", "compact", "--events-older-than", "0m")
        ended = time.time()
        count = len(acked([log]))
        wait_until(lambda: len(acked([log])) >= count + 3, 60, "inserts after the compact")
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert [name for name, start, end in acked([log]) if started <= end <= ended], "no insert overlapped the compact"
    assert writer.returncode == 0 and not err, err[-2000:]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Removed: {6 * (FINISHED + 1):,} events")
    freed = re.search(r"^Gave back ([\d,]+) free page\(s\) in ([\d,]+) step\(s\) while the DB is in use", result.stdout,
                      flags=re.M)
    assert freed and int(freed.group(1).replace(",", "")) > 100, result.stdout
    before, after, gain = gain_line(result.stdout)
    assert after < before and gain > 1.0
    assert status(db)["commits"] > commits  # the prunes and the steps went through the server
    # Every acknowledged insert is there; nothing unfinished was touched.
    names = {row[0] for row in db_rows(db, "SELECT name FROM balsam_job WHERE workflow = 'load'")}
    assert {name for name, _, _ in acked([log])} <= names
    assert live_rows(db) == live_before
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_job_event e JOIN balsam_job j ON j.seq = e.job_seq "
                       "WHERE j.workflow = 'done'") == [(FINISHED,)]
    assert db_rows(db, "PRAGMA freelist_count")[0][0] < 100


def test_an_older_db_is_shrunk_only_when_idle_and_converted_then(db, history, balsam_cmd):
    from django.db import connections

    from balsam.dbserver import control

    connections.close_all()
    con = sqlite3.connect(db / "db.sqlite3")
    con.execute("PRAGMA auto_vacuum = NONE")  # as `balsam init` made DBs before it set incremental
    con.execute("VACUUM")
    con.close()
    assert auto_vacuum(db) == 0
    control.start(db, host="127.0.0.1")
    try:
        result = balsam_cmd("db", "compact", "--events-older-than", "0m")
    finally:
        control.stop(db)
    assert result.returncode == 0, result.stderr
    assert "Not shrunk: the DB is in use by a dbserver" in result.stdout
    assert "run compact once when it is idle" in result.stdout
    before, after, _ = gain_line(result.stdout)
    assert auto_vacuum(db) == 0 and db_rows(db, "PRAGMA freelist_count")[0][0] > 100
    result = balsam_cmd("db", "compact")  # idle now: VACUUM rewrites the file and converts it
    assert result.returncode == 0, result.stderr
    before, after, gain = gain_line(result.stdout)
    assert after < before and gain > 1.0
    assert auto_vacuum(db) == 2 and db_rows(db, "PRAGMA freelist_count") == [(0,)]


@pytest.mark.parametrize("age", ["", "30", "x", "-1d", "1e9d", "30y"])
def test_bad_ages_are_one_line(db, balsam_cmd, snapshot, age):
    before = snapshot()
    result = balsam_cmd("db", "compact", "--events-older-than", age)
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: --events-older-than must be")
    assert snapshot() == before


def test_reclaim_space_takes_bounded_steps_and_refuses_bad_sizes(writer, history, db):
    from balsam.core import write_client
    from balsam.exceptions import ValidationError

    client = write_client.get()
    for bad in (0, -1, 1.5, True, "10", 10_001):
        with pytest.raises(ValidationError, match="pages must be"):
            client.reclaim_space(bad)
    first = client.prune_events("2999-01-01T00:00:00+00:00", 1_000)
    assert first["removed"] == 1_000
    rest = client.prune_events("2999-01-01T00:00:00+00:00", 20_000, after_id=first["last_id"])
    assert rest["removed"] == 6 * (FINISHED + 1) - 1_000 and rest["last_id"] > first["last_id"]
    assert client.prune_events("2999-01-01T00:00:00+00:00", 20_000, after_id=rest["last_id"]) == {
        "removed": 0, "last_id": rest["last_id"]}
    free = db_rows(db, "PRAGMA freelist_count")[0][0]
    assert free > 10
    step = client.reclaim_space(10)
    assert step == {"freed": 10, "free_pages": free - 10}
    while step["free_pages"]:
        step = client.reclaim_space(10_000)
    assert db_rows(db, "PRAGMA freelist_count") == [(0,)]
