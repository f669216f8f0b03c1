"""Deep queues in the spawner (issue 16, second round): with every slot busy,
the launcher queues several runnable jobs behind each run, and the spawner
starts them in turn as runs end. A queued job that is killed, or whose lease
the launcher loses, must never start, while the ones queued behind it still
do; one that cannot start gives its place to the next; a stopping launcher
starts none of them.

The launcher runs in a thread of the test (real spawner, real processes,
direct writes to a real DB), with queues at least 3 deep, so the test can
see what waits in them."""

import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.test_launcher import gone, history, sleeper_pid, state

from balsam import api
from balsam.core import states, write_client
from balsam.core.outputs import run_output_name
from balsam.core.models import BalsamJob, JobEvent
from balsam.launcher import launcher as launcher_module
from balsam.launcher.launcher import make_launcher
from balsam.launcher.nodes import Node

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
DEPTH = 3


class LauncherThread:
    """A launcher on one node (one slot unless told), running in a thread until ``stop``."""

    def __init__(self, db, cores=1, **options):
        self.launcher = make_launcher(db, [Node("localhost", cores)], lease_expiry_sec=60, **options)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        from django.db import connection

        try:
            self.launcher.run()
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            connection.close()

    def queued(self):
        """Job ids waiting in the slot's queue, first to start first (copied at once: the loop changes them)."""
        runs = list(self.launcher.processes.runs.items())
        return [pk for pk, (process, _) in runs if process.waiting]

    def stop(self):
        self.launcher.request_stop("the test is over")
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the launcher did not stop"
        assert self.error is None, repr(self.error)


def busy_slot_with_a_queue(db, monkeypatch, apps=("sleeper", "sleeper", "sleeper")):
    """A launcher whose one slot runs job "first" (a 30 s sleeper) with three
    jobs (of ``apps``) queued behind it: ``(launcher thread, first, first's
    pid, queued jobs in their queue's order)``."""
    monkeypatch.setattr(launcher_module, "MIN_QUEUE_DEPTH", DEPTH)
    # Queue behind a run of unknown length (the launcher does not, by itself: a
    # queue behind a long run would hold its jobs however long it takes).
    monkeypatch.setattr(launcher_module, "UNKNOWN_RUNS_DEPTH", DEPTH)
    api.add_app("sleeper", f"{sys.executable} {APPS / 'sleeper.py'}", check_paths=False)
    api.add_app("missing", "/nonexistent/balsam-test-command", check_paths=False)
    first = api.add_job(name="first", workflow="w", application="sleeper", args="30")
    running = LauncherThread(db)
    try:
        first_pid = sleeper_pid(first)
        for i, app in enumerate(apps):
            api.add_job(name=f"q{i}", workflow="w", application=app, args="0.2")
        wait_until(lambda: len(running.queued()) == DEPTH, 30, "three jobs queued behind the first run")
    except BaseException:
        running.stop()
        raise
    return running, first, first_pid, [BalsamJob.objects.get(pk=pk) for pk in running.queued()]


@pytest.fixture
def one_slot(db, monkeypatch):
    running = busy_slot_with_a_queue(db, monkeypatch)
    yield running
    if running[0].thread.is_alive():
        running[0].stop()


def pid_file(job):
    return Path(job.working_directory) / "sleeper.pid"


def started_at(job):
    return JobEvent.objects.get(job__job_id=job.pk, to_state=states.RUNNING).timestamp


def test_a_job_killed_deep_in_the_queue_never_starts_and_the_one_behind_it_does(one_slot):
    running, first, first_pid, (front, middle, back) = one_slot
    api.kill(middle)
    wait_until(lambda: middle.pk not in running.queued(), 10, "the killed job to leave the queue")
    assert running.queued() == [front.pk, back.pk]
    api.kill(first)
    wait_until(lambda: gone(first_pid), 10, "the first run to be stopped")
    for job in (front, back):
        wait_until(lambda: state(job) == states.JOB_FINISHED, 30, f"job {job.name} to finish")
    running.stop()
    assert state(middle) == states.USER_KILLED and "RUNNING" not in history(middle)
    assert not pid_file(middle).exists()
    assert started_at(front) <= started_at(back)
    assert history(back) == ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE",
                             "POSTPROCESSED", "JOB_FINISHED"]


def test_a_queued_job_whose_lease_is_lost_never_starts(one_slot):
    running, first, first_pid, (front, middle, back) = one_slot
    # Its lease lapses and another launcher claims it (as recovery would let it).
    # This launcher claims nothing more meanwhile: woken by the release's
    # commit, it would take the job back before the other launcher does.
    running.launcher.source.claim = lambda *args, **kwargs: []
    wait_until(lambda: state(middle) == states.PREPROCESSED, 10, "the queued job's state to be written")
    client = write_client.get()
    client.release(running.launcher.source.owner, [str(middle.pk)])
    assert client.claim("other-launcher", [states.PREPROCESSED], 1, 60, {"job_ids": [str(middle.pk)]}) == [
        str(middle.pk)]
    wait_until(lambda: middle.pk not in running.queued(), 10, "the job to leave the queue")
    api.kill(first)
    wait_until(lambda: gone(first_pid), 10, "the first run to be stopped")
    for job in (front, back):
        wait_until(lambda: state(job) == states.JOB_FINISHED, 30, f"job {job.name} to finish")
    running.stop()
    assert not pid_file(middle).exists()
    stored = BalsamJob.objects.get(pk=middle.pk)
    assert (stored.state, stored.lease_owner) == (states.PREPROCESSED, "other-launcher")


def test_a_queued_job_that_cannot_start_gives_its_place_to_the_next(db, monkeypatch):
    running, first, first_pid, queued = busy_slot_with_a_queue(db, monkeypatch, ("sleeper", "missing", "sleeper"))
    try:
        broken = next(job for job in queued if job.application == "missing")
        assert queued.index(broken) < 2, "the job that cannot start must have one queued behind it"
        api.kill(first)
        wait_until(lambda: gone(first_pid), 10, "the first run to be stopped")
        others = [job for job in queued if job is not broken]
        for job in others:
            wait_until(lambda: state(job) == states.JOB_FINISHED, 30, f"job {job.name} to finish")
    finally:
        running.stop()
    stored = BalsamJob.objects.get(pk=broken.pk)
    assert stored.state == states.FAILED and "RUNNING" not in history(broken)
    assert "cannot start the run" in stored.history()[-1][3]
    assert started_at(others[0]) <= started_at(others[1])


def test_stopping_with_a_deep_queue_starts_none_of_it(one_slot):
    running, first, first_pid, queued = one_slot
    running.stop()  # the first run ends (SIGTERM), which must start nothing queued
    assert gone(first_pid)
    assert state(first) == states.RUN_TIMEOUT
    for job in queued:
        stored = BalsamJob.objects.get(pk=job.pk)
        assert (stored.state, stored.lease_owner) == (states.PREPROCESSED, "")
        assert not pid_file(job).exists()


def test_one_slot_never_runs_two_jobs_at_once_when_runs_end_faster_than_the_loop_looks(db, monkeypatch, tmp_path):
    """Runs of 10 ms end several to one tick of the loop: a run and the one
    that took its place often end between two looks. Each hands its slot on
    or back exactly once; a slot given back twice let the launcher start more
    jobs than it has slots (seen as 277 jobs/s of 10 ms tasks on 2 slots)."""
    monkeypatch.setattr(launcher_module, "MIN_QUEUE_DEPTH", DEPTH)
    lock, overlap = tmp_path / "running", tmp_path / "OVERLAP"
    script = tmp_path / "one_at_a_time.sh"
    script.write_text(f"mkdir {lock} 2>/dev/null || touch {overlap}\nsleep 0.01\nrmdir {lock} 2>/dev/null\n")
    api.add_app("short", f"/bin/sh {script}", check_paths=False)
    jobs = [api.add_job(name=f"s{i}", workflow="w", application="short") for i in range(80)]
    running = LauncherThread(db)
    try:
        wait_until(lambda: all(state(job) == states.JOB_FINISHED for job in jobs), 120, "every job to finish")
    finally:
        running.stop()
    assert not overlap.exists(), "two jobs ran at once in the launcher's one slot"


def test_the_directory_of_the_run_queued_next_is_made_while_the_run_before_it_runs(one_slot):
    """A new job directory and its output file each cost a fifth of a spawn;
    the spawner makes the next ones while the slot is busy, so they are off
    the path between one run's end and the next one's start."""
    running, first, first_pid, (front, middle, back) = one_slot
    output = Path(front.working_directory) / run_output_name(front.name)
    wait_until(output.is_file, 10, "the next run's directory and output file to be made")
    assert not gone(first_pid), "the run before it must still be running"
    assert not pid_file(front).exists()
    running.stop()


def test_an_idle_launcher_starts_jobs_added_while_it_waits_without_waiting_for_its_period(db, monkeypatch):
    """Between its periodic looks for new jobs, an idle launcher watches the DB
    for commits (SQLite's data_version) and looks at once: a job added to a
    waiting launcher starts within milliseconds. (With a period of an hour,
    the second job would wait an hour.)"""
    from balsam.launcher import job_source

    monkeypatch.setattr(job_source, "DEPENDENCY_PERIOD_SEC", 3600)
    monkeypatch.setattr(job_source, "DEPENDENCY_MIN_PERIOD_SEC", 3600)
    api.add_app("true", "/bin/true", check_paths=False)
    first = api.add_job(name="first", workflow="w", application="true")
    running = LauncherThread(db)
    try:
        wait_until(lambda: state(first) == states.JOB_FINISHED, 30, "the first job to finish")
        second = api.add_job(name="second", workflow="w", application="true")
        wait_until(lambda: state(second) == states.JOB_FINISHED, 30, "the job added to the idle launcher to finish")
    finally:
        running.stop()


class CountingClient:
    """The write client, counting the claims that reach it."""

    def __init__(self, inner):
        self.inner, self.claims = inner, 0

    def claim(self, *args, **kwargs):
        self.claims += 1
        return self.inner.claim(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_an_idle_launcher_does_not_ask_the_writer_for_jobs_at_every_commit_of_others(db):
    """An idle launcher passes whenever the DB changes; with nothing it may
    claim, a read says so first, and the claim (a write) is not made."""
    api.add_app("true", "/bin/true", check_paths=False)
    client = CountingClient(write_client.get())
    running = LauncherThread(db, client=client, workflow="mine")
    try:
        for i in range(100):  # commits by someone else, in a workflow the launcher does not take
            api.add_job(name=f"other{i}", workflow="other", application="true")
        job = api.add_job(name="mine", workflow="mine", application="true")
        wait_until(lambda: state(job) == states.JOB_FINISHED, 30, "the launcher's own job to finish")
    finally:
        running.stop()
    assert client.claims <= 3, f"{client.claims} claims for one job"


def test_jobs_of_a_second_or_more_never_wait_in_a_queue_behind_a_long_run(db):
    """A queue behind a run holds its jobs until that run ends. Nothing is
    queued behind a run whose length is not known yet, nor when runs last a
    second or more (the loop refills a slot at once): the quick jobs all run
    on the other slot while the long one goes on. (Queued one deep at the
    start, one quick job waited the whole minute behind the long one.)"""
    api.add_app("sleeper", f"{sys.executable} {APPS / 'sleeper.py'}", check_paths=False)
    long_job = api.add_job(name="long", workflow="w", application="sleeper", args="60", node_packing_count=2)
    quick = [api.add_job(name=f"quick{i}", workflow="w", application="sleeper", args="1.2", node_packing_count=2)
             for i in range(4)]
    running = LauncherThread(db, cores=2)
    try:
        wait_until(lambda: all(state(job) == states.JOB_FINISHED for job in quick), 40,
                   "every quick job to finish")
        assert state(long_job) == states.RUNNING
    finally:
        running.stop()


def test_the_first_jobs_of_a_large_submission_run_before_the_launcher_has_moved_them_all(db):
    """Moving a thousand new jobs on to READY is one write of ~60 ms; a
    launcher moves what it holds when full first, claims and starts those,
    and moves the rest while they run. (Before, the first run began only
    after every job of the submission was READY.)"""
    api.add_app("true", "/bin/true", check_paths=False)
    running = LauncherThread(db)
    try:
        BalsamJob.objects.bulk_create([BalsamJob(name=f"j{i}", workflow="big", application="true")
                                       for i in range(600)])
        wait_until(lambda: BalsamJob.objects.filter(workflow="big", state=states.JOB_FINISHED).count() == 600, 120,
                   "every job of the submission to finish")
    finally:
        running.stop()
    events = JobEvent.objects.filter(job__workflow="big")
    first_run = min(events.filter(to_state=states.RUNNING).values_list("timestamp", flat=True))
    last_ready = max(events.filter(to_state=states.READY).values_list("timestamp", flat=True))
    assert first_run < last_ready


def test_quick_jobs_queued_behind_a_run_that_turns_out_long_run_on_the_other_slot(db):
    """Runs are short (0.2 s), so the launcher queues jobs behind each run,
    the long one's included: it is not known to be long when they are queued.
    Once it has gone on four times the mean, the spawner hands its queue back
    and those jobs run on the other slot. (Before, they waited the whole
    minute behind it.)"""
    api.add_app("sleeper", f"{sys.executable} {APPS / 'sleeper.py'}", check_paths=False)
    quick = dict(workflow="w", application="sleeper", args="0.2", node_packing_count=2)
    warm = [api.add_job(name=f"warm{i}", **quick) for i in range(4)]
    running = LauncherThread(db, cores=2)
    try:
        wait_until(lambda: all(state(job) == states.JOB_FINISHED for job in warm), 60, "runs known to be short")
        long_job = api.add_job(name="long", workflow="w", application="sleeper", args="60", node_packing_count=2)
        # Queued at once behind both runs (the long one's and a quick one's).
        BalsamJob.objects.bulk_create([BalsamJob(name=f"quick{i}", **quick) for i in range(8)])
        wait_until(lambda: BalsamJob.objects.filter(name__startswith="quick", state=states.JOB_FINISHED).count() == 8,
                   30, "every quick job to finish while the long one runs")
        assert state(long_job) == states.RUNNING
        runs = JobEvent.objects.filter(job__name__startswith="quick", to_state=states.RUNNING).count()
        assert runs == 8  # each ran once
    finally:
        running.stop()
