"""``balsam db compact`` on a DB with thousands of finished jobs' events and a
few unfinished jobs: what goes, what stays untouched, the size, the gain line;
directly and through a live dbserver."""

import json
import re

import pytest

from tests.helpers import db_rows

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
            db_rows(db, "SELECT e.* FROM balsam_job_event e JOIN balsam_job j ON j.job_id = e.job_id "
                        "WHERE j.name = 'running' ORDER BY e.id"))


def gain_line(out):
    found = re.search(r"^(\d+) -> (\d+) bytes \(gain=(\d+\.\d\d)x\)$", out, flags=re.M)
    assert found, out
    return int(found.group(1)), int(found.group(2)), float(found.group(3))


def test_dry_run_says_what_would_go_and_changes_nothing(db, history, balsam_cmd, snapshot):
    before = snapshot()
    result = balsam_cmd("db", "compact", "--events-older-than", "0m", "--finished-workflows", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Would remove: {6 * (FINISHED + 1):,} events older than ")
    assert lines[0].endswith(f"1 finished workflow(s) ({FINISHED:,} jobs), 0 applied-request ids")
    assert lines[1] == f"  workflow done: {FINISHED:,} jobs"
    assert snapshot() == before


def test_old_events_of_finished_jobs_go_and_the_file_shrinks(db, history, balsam_cmd):
    live_before = live_rows(db)
    result = balsam_cmd("db", "compact", "--events-older-than", "0m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Removed: {6 * (FINISHED + 1):,} events, 0 jobs of 0 finished workflow(s)")
    before, after, gain = gain_line(result.stdout)
    assert after < before and gain == round(before / after, 2) > 1.0
    assert after == (db / "db.sqlite3").stat().st_size + ((db / "db.sqlite3-wal").stat().st_size
                                                          if (db / "db.sqlite3-wal").exists() else 0)
    # Each finished job keeps its newest event; the unfinished job keeps all of its.
    assert db_rows(db, "SELECT COUNT(*), COUNT(DISTINCT job_id) FROM balsam_job_event") == [(FINISHED + 1 + 4,
                                                                                              FINISHED + 2)]
    assert live_rows(db)[0] == live_before[0] and live_rows(db)[1] == live_before[1]
    report = json.loads(balsam_cmd("db", "check", "--json").stdout)  # (the dummies never ran: no directories)
    assert {p["kind"] for p in report["problems"]} == {"directory"}


def test_finished_workflows_go_with_their_rows_but_not_their_files(db, history, balsam_cmd):
    folder = db / "data" / "done" / "kept"
    folder.mkdir(parents=True)
    live_before = live_rows(db)
    result = balsam_cmd("db", "compact", "--finished-workflows")
    assert result.returncode == 0, result.stderr
    assert f"{FINISHED:,} jobs of 1 finished workflow(s)" in result.stdout
    assert db_rows(db, "SELECT workflow, COUNT(*) FROM balsam_job GROUP BY workflow") == [("live", 2)]
    assert live_rows(db) == live_before and folder.is_dir()


def test_compact_through_a_dbserver_prunes_and_leaves_the_file_size(db, history, dbserver, balsam_cmd):
    from balsam.dbserver.control import status

    commits = status(db)["commits"]
    result = balsam_cmd("db", "compact", "--events-older-than", "0m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Removed: {6 * (FINISHED + 1):,} events")
    assert "Not shrunk: the DB is in use by a dbserver" in result.stdout
    gain_line(result.stdout)
    assert status(db)["commits"] > commits  # the prunes went through the server
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_job_event") == [(FINISHED + 1 + 4,)]


@pytest.mark.parametrize("age", ["", "30", "x", "-1d", "1e9d", "30y"])
def test_bad_ages_are_one_line(db, balsam_cmd, snapshot, age):
    before = snapshot()
    result = balsam_cmd("db", "compact", "--events-older-than", age)
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: --events-older-than must be")
    assert snapshot() == before
