"""Runs requested ahead (issue 16): with every slot busy, the launcher queues
the next runnable job in the spawner to start the moment a run ends. Such a
job must not start before its slot frees, must record RUNNING only once it
really started, and a kill while it waits must mean it never starts."""

from pathlib import Path

from tests.helpers import wait_until
from tests.integration.test_launcher import gone, history, py_app, sleeper_pid, start_launcher, state, stop

from balsam import api
from balsam.core.models import BalsamJob

ONE_SLOT = ("--consume-all", "--max-ranks-per-node", "1")


def pid_file(job):
    return Path(job.working_directory) / "sleeper.pid"


def lease_owner(job):
    return BalsamJob.objects.filter(pk=job.pk).values_list("lease_owner", flat=True).first()


def one_busy_slot(db, waiting_name):
    """A launcher with one slot, its run of job "first" going, and a second job runnable
    behind it: ``(launcher, first, first_pid, waiting)``."""
    py_app("sleeper", "sleeper.py")
    first = api.add_job(name="first", workflow="w", application="sleeper", args="30")
    launcher = start_launcher(db, *ONE_SLOT)
    try:
        first_pid = sleeper_pid(first)
        waiting = api.add_job(name=waiting_name, workflow="w", application="sleeper", args="30")
        # Claimed: the same pass of the launcher queues it in the spawner behind the first run.
        wait_until(lambda: state(waiting) == "PREPROCESSED" and lease_owner(waiting), 30,
                   f"job {waiting_name} to be runnable and claimed")
    except BaseException:
        stop(launcher)
        raise
    return launcher, first, first_pid, waiting


def test_a_job_waiting_for_the_slot_starts_when_the_run_before_it_ends(db):
    launcher, first, first_pid, second = one_busy_slot(db, "second")
    try:
        assert not pid_file(second).exists() and state(second) == "PREPROCESSED"
        api.kill(first)
        wait_until(lambda: gone(first_pid), 5, "the first run to be stopped")
        second_pid = sleeper_pid(second)
        wait_until(lambda: state(second) == "RUNNING", 10, "the second job to be RUNNING")
        # The slot went to the second run: a third job waits for it.
        third = api.add_job(name="third", workflow="w", application="sleeper", args="30")
        wait_until(lambda: state(third) == "PREPROCESSED" and lease_owner(third), 30, "the third job to be claimed")
        assert not pid_file(third).exists()
        api.kill(second)
        wait_until(lambda: gone(second_pid), 5, "the second run to be stopped")
        sleeper_pid(third)
        api.kill(third)
    finally:
        code, err = stop(launcher)
    assert code == 0, err
    assert history(second)[:5] == ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING"]
    assert state(second) == "USER_KILLED"


def test_a_job_killed_while_it_waits_for_the_slot_never_starts(db):
    launcher, first, first_pid, waiting = one_busy_slot(db, "waiting")
    try:
        api.kill(waiting)
        wait_until(lambda: state(waiting) == "USER_KILLED", 10, "the kill")
        # The launcher releases a killed job's lease once it has dropped it (and cancelled its queued start).
        wait_until(lambda: lease_owner(waiting) == "", 10, "the launcher to let the killed job go")
        api.kill(first)
        wait_until(lambda: gone(first_pid), 5, "the first run to be stopped")
        after = api.add_job(name="after", workflow="w", application="sleeper", args="30")
        after_pid = sleeper_pid(after)  # the slot is free again: the next job runs
        api.kill(after)
        wait_until(lambda: gone(after_pid), 5, "the last run to be stopped")
    finally:
        code, err = stop(launcher)
    assert code == 0, err
    assert not pid_file(waiting).exists()
    assert "RUNNING" not in history(waiting)


def test_stopping_the_launcher_leaves_a_waiting_job_unstarted_for_the_next(db):
    launcher, first, _, waiting = one_busy_slot(db, "waiting")
    code, err = stop(launcher)  # SIGTERM: the first run ends, which must not start the waiting one
    assert code == 0, err
    assert state(first) == "RUN_TIMEOUT"
    assert state(waiting) == "PREPROCESSED" and not pid_file(waiting).exists()
    assert BalsamJob.objects.get(pk=waiting.pk).lease_owner == ""  # released for the next launcher

