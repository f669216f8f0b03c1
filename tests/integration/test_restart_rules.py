"""The restart rules (``core.states.RESTART_RULES``): a DB seeded with a job
in every state, each without a lease, with a live lease and with a lapsed one,
then a real dbserver start (or a first launcher without one). Every job must
end where the table says, with its event."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from balsam.core import states
from tests.helpers import db_rows, db_write, wait_until

PATHS = {  # how each state is reached through the write path
    states.CREATED: [],
    states.AWAITING_PARENTS: ["AWAITING_PARENTS"],
    states.READY: ["READY"],
    states.STAGED_IN: ["READY", "STAGED_IN"],
    states.PREPROCESSED: ["READY", "STAGED_IN", "PREPROCESSED"],
    states.RUNNING: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING"],
    states.RUN_DONE: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE"],
    states.POSTPROCESSED: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED"],
    states.JOB_FINISHED: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"],
    states.RUN_TIMEOUT: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_TIMEOUT"],
    states.RUN_ERROR: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_ERROR"],
    states.RESTART_READY: ["READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_ERROR", "RESTART_READY"],
    states.FAILED: ["FAILED"],
    states.USER_KILLED: ["USER_KILLED"],
    states.PARENT_KILLED: ["AWAITING_PARENTS", "PARENT_KILLED"],
}
LEASES = {
    "none": ("", None, None),
    "live": ("live-host:1", "2026-11-29 00:00:00", "2999-01-01 00:00:00"),
    "lapsed": ("dead-host:2", "2000-01-01 00:00:00", "2000-01-01 00:03:00"),
}


def events(db, pk):
    return db_rows(db, f"SELECT from_state, to_state, message FROM balsam_job_event "
                   f"WHERE job_seq = (SELECT seq FROM balsam_job WHERE job_id = '{pk.hex}') ORDER BY id")


def seed(db, make_job, kinds=tuple(LEASES)):
    """{(state, lease kind): job} plus the special cases, with their histories before the start."""
    from balsam.core import write_client

    assert set(PATHS) == set(states.ALL_STATES)
    jobs = {}
    for state, path in PATHS.items():
        for kind in kinds:
            owner, heartbeat, expires = LEASES[kind]
            job = make_job(name=f"{state}-{kind}")
            for step in path:
                write_client.get().transition([str(job.pk)], step)
            db_write(db, "UPDATE balsam_job SET lease_owner = ?, lease_heartbeat = ?, lease_expires_at = ? WHERE job_id = ?",
                [owner, heartbeat, expires, job.pk.hex])
            jobs[(state, kind)] = job
    # RUNNING, held by nobody since long ago; children still waiting on a FAILED parent.
    unheld = make_job(name="running-unheld")
    for step in PATHS[states.RUNNING]:
        write_client.get().transition([str(unheld.pk)], step)
    db_write(db, "UPDATE balsam_job SET state_changed_at = '2000-01-01 00:00:00' WHERE job_id = ?", [unheld.pk.hex])
    jobs["unheld"] = unheld
    parent = make_job(name="dead-parent")
    from balsam import api

    for waiting in (states.CREATED, states.AWAITING_PARENTS):
        child = make_job(name=f"orphan-{waiting}")
        api.add_dependency(parent, child)
        for step in PATHS[waiting]:
            write_client.get().transition([str(child.pk)], step)
        jobs[("orphan", waiting)] = child
    db_write(db, "UPDATE balsam_job SET state = 'FAILED' WHERE job_id = ?", [parent.pk.hex])
    db_write(db, "INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "
            "VALUES ((SELECT seq FROM balsam_job WHERE job_id = ?), '2026-01-01 00:00:00', 'CREATED', 'FAILED', "
            "'by hand')", [parent.pk.hex])
    return jobs, {key: events(db, job.pk) for key, job in jobs.items()}


def stored(db, pk):
    return db_rows(db, f"SELECT state, lease_owner FROM balsam_job WHERE job_id = '{pk.hex}'")[0]


def assert_rules_applied(db, jobs, before, kinds=tuple(LEASES)):
    for state in states.ALL_STATES:
        rule = states.RESTART_RULES[state]
        for kind in kinds:
            owner = LEASES[kind][0]
            job = jobs[(state, kind)]
            after = events(db, job.pk)
            if kind == "lapsed" and rule == states.RECOVER_LAPSED:
                assert stored(db, job.pk) == (states.RESTART_READY, ""), (state, kind)
                assert after[:-1] == before[(state, kind)]
                assert after[-1] == (state, states.RESTART_READY, "restart: launcher dead-host:2 stopped heartbeating")
            elif kind == "lapsed":
                assert rule in (states.RELEASE_LAPSED, states.SETTLE_IF_PARENT_DEAD)
                assert stored(db, job.pk) == (state, ""), (state, kind)
                assert after == before[(state, kind)]
            else:  # no lease, or a live one: untouched
                assert stored(db, job.pk) == (state, owner), (state, kind)
                assert after == before[(state, kind)]
    unheld = jobs["unheld"]
    assert stored(db, unheld.pk) == (states.RESTART_READY, "")
    assert events(db, unheld.pk)[-1] == (states.RUNNING, states.RESTART_READY,
                                         "restart: launcher (none) stopped heartbeating")
    for waiting in (states.CREATED, states.AWAITING_PARENTS):
        child = jobs[("orphan", waiting)]
        assert states.RESTART_RULES[waiting] == states.SETTLE_IF_PARENT_DEAD
        assert stored(db, child.pk) == (states.PARENT_KILLED, "")
        last = events(db, child.pk)[-1]
        assert last[:2] == (waiting, states.PARENT_KILLED) and "cannot finish" in last[2]


def test_a_dbserver_start_applies_the_restart_rules_state_by_state(db, make_job):
    from balsam.dbserver import control

    jobs, before = seed(db, make_job)
    control.start(db, host="127.0.0.1")
    try:
        log = db / "log" / "dbserver.log"
        wait_until(lambda: log.exists() and "restart rules:" in log.read_text(), 30, "the restart rules in the log")
    finally:
        control.stop(db)
    assert_rules_applied(db, jobs, before)
    line = next(line for line in log.read_text().splitlines() if "restart rules:" in line)
    assert f"RUNNING {3 + 1}" in line and "recovered 2, released" in line and "settled 2" in line


def test_the_first_launcher_without_a_dbserver_applies_them(db, make_job):
    kinds = ("none", "lapsed")  # a live lease would be another launcher's: this one would not be the first
    jobs, before = seed(db, make_job, kinds)
    # A launcher for one workflow nothing is in: it applies the rules, finds no work and leaves.
    result = subprocess.run([str(Path(sys.executable).with_name("balsam")), "launcher", "--wf-filter",
                             "nothing-here", "--until-idle"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "BALSAM_DB_PATH": str(db)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert_rules_applied(db, jobs, before, kinds)


def test_the_rules_table_is_the_one_in_the_docs():
    text = (Path(__file__).resolve().parents[2] / "docs" / "states.md").read_text()
    assert states.restart_rules_table() in text


@pytest.mark.parametrize("state", states.ALL_STATES)
def test_every_state_has_one_documented_action(state):
    assert states.RESTART_ACTIONS[states.RESTART_RULES[state]]
    assert state in states.restart_states(states.RESTART_RULES[state])
