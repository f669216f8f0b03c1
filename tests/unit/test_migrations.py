"""Schema migrations that carry data over: a DB made before a migration keeps
what it meant after it."""

import uuid

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("balsam", "0004_queued_launches")
AFTER = ("balsam", "0005_timeout_retries")


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state(target).apps


def test_timeout_retries_are_counted_from_the_events_earlier_launchers_wrote(db):
    old = _migrate(BEFORE)
    Job, Event = old.get_model("balsam", "BalsamJob"), old.get_model("balsam", "JobEvent")
    overran, stopped, fresh = (Job.objects.create(job_id=uuid.uuid4(), name=n, workdir=n) for n in "abc")
    for n in (1, 2):
        Event.objects.create(job=overran, from_state="RUN_TIMEOUT", to_state="RESTART_READY",
                             message=f"timed out; retry {n} of 5")
    # A launcher stopping is not counted, nor are other reruns.
    Event.objects.create(job=stopped, from_state="RUN_TIMEOUT", to_state="RESTART_READY", message="timed out; retrying")
    Event.objects.create(job=stopped, from_state="FAILED", to_state="RESTART_READY", message="retried by a user")

    new = _migrate(AFTER)

    counts = dict(new.get_model("balsam", "BalsamJob").objects.values_list("name", "timeout_retries"))
    assert counts == {"a": 2, "b": 0, "c": 0}
