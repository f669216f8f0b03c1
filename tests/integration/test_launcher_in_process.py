"""The launcher loop run in this process (``run(until_idle=True)``) with real
spawned processes, through both write clients: a burst of jobs with a DAG,
and the dependency-resolution race (a parent added between the launcher's
check of a child's parents and the child's move to READY)."""

import sys
from pathlib import Path

import pytest

from balsam import api
from balsam.core import states, write_client
from balsam.core.models import BalsamJob, JobEvent
from balsam.dbclient.base import WriteClient
from balsam.launcher.launcher import make_launcher
from balsam.launcher.nodes import Node

pytestmark = pytest.mark.both_backends

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
FULL_LIFE = [states.READY, states.STAGED_IN, states.PREPROCESSED, states.RUNNING, states.RUN_DONE,
             states.POSTPROCESSED, states.JOB_FINISHED]


def run_until_idle(db, client=None, slots=4):
    launcher = make_launcher(db, [Node("localhost", slots)], client=client, until_idle=True, lease_expiry_sec=60)
    return launcher.run()


def event_times(job, to_state):
    return list(JobEvent.objects.filter(job__job_id=job.pk, to_state=to_state).values_list("timestamp", flat=True))


def test_burst_of_jobs_with_a_dag(writer, db):
    api.add_app("true", "/bin/true", check_paths=False)
    api.add_app("echo", "echo", check_paths=False)
    singles = api.add_jobs([{"name": f"t{i}", "workflow": "burst", "application": "true"} for i in range(150)])
    root = api.add_job(name="root", workflow="dag", application="echo", args="root")
    middle = [api.add_job(name=f"mid{i}", workflow="dag", application="echo", parents=[root.pk]) for i in range(3)]
    leaf = api.add_job(name="leaf", workflow="dag", application="echo", parents=[m.pk for m in middle])

    assert run_until_idle(db) == "idle: nothing left to run or process"

    assert api.state_counts() == {states.JOB_FINISHED: len(singles) + 5}
    for job_id in singles[:10]:
        assert list(JobEvent.objects.filter(job__job_id=job_id).order_by("id").values_list("to_state", flat=True)) == FULL_LIFE
    assert (Path(BalsamJob.objects.get(pk=root.pk).working_directory) / "root.out").read_text() == "root\n"
    # Children start only after every parent finished.
    finished = max(t for m in middle for t in event_times(m, states.JOB_FINISHED))
    assert event_times(leaf, states.RUNNING)[0] >= finished
    assert BalsamJob.objects.filter(lease_owner="").count() == len(singles) + 5


class AddsParentFirst(WriteClient):
    """Passes every request on; just before the first write that would move
    ``child`` out of waiting, makes ``parent`` its parent, as user code calling
    ``dag.add_dependency`` at that moment would."""

    def __init__(self, inner, parent, child):
        self.inner, self.parent, self.child = inner, str(parent), str(child)
        self.interleaved = False

    @property
    def mode(self):
        return self.inner.mode

    def request(self, op, payload):
        if not self.interleaved and op in ("transition_jobs", "resolve_dependencies") and self.child in payload["ids"]:
            self.interleaved = True
            self.inner.add_dependency(self.parent, self.child)
        return self.inner.request(op, payload)


def test_parent_added_between_check_and_move_is_waited_for(writer, db):
    api.add_app("sleeper", f"{sys.executable} {APPS / 'sleeper.py'}", check_paths=False)
    api.add_app("echo", "echo", check_paths=False)
    parent = api.add_job(name="parent", workflow="race", application="sleeper", args="1")
    child = api.add_job(name="child", workflow="race", application="echo")
    client = AddsParentFirst(write_client.get(), parent.pk, child.pk)

    run_until_idle(db, client)

    assert client.interleaved
    assert list(BalsamJob.objects.get(pk=child.pk).parents.values_list("pk", flat=True)) == [parent.pk]
    assert {j.state for j in BalsamJob.objects.all()} == {states.JOB_FINISHED}
    assert event_times(child, states.AWAITING_PARENTS), "the child never waited for its new parent"
    assert event_times(child, states.RUNNING)[0] >= event_times(parent, states.JOB_FINISHED)[0]


def test_an_error_handler_finds_its_job_in_run_error_however_late_the_batch_writes(db, monkeypatch):
    """The launcher writes its moves in batches spaced MIN_WRITE_INTERVAL_SEC
    apart while busy; a handler it starts reads and moves its job itself, so
    the run's moves (RUNNING, RUN_ERROR) must land before the handler starts.
    Spaced a minute apart here, a handler started without that would always
    find the job PREPROCESSED and have its move refused."""
    from balsam.launcher import batch

    monkeypatch.setattr(batch, "MIN_WRITE_INTERVAL_SEC", 60)
    api.add_app("fail", f"{sys.executable} {APPS / 'fail.py'}", check_paths=False,
                postprocess=f"{sys.executable} {APPS / 'handler.py'}")
    handled = api.add_job(name="handled", workflow="w", application="fail", post_error_handler=True)

    run_until_idle(db, slots=1)

    assert BalsamJob.objects.get(pk=handled.pk).state == states.JOB_FINISHED
    assert list(JobEvent.objects.filter(job__job_id=handled.pk).order_by("id").values_list("to_state", flat=True))[-2:] \
        == [states.RUN_ERROR, states.JOB_FINISHED]
