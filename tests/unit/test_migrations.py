"""Schema migrations that carry data over: a DB made before a migration keeps
what it meant after it."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.helpers import one_line_error

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


def _sqlite_names(kind, table=None):
    query = "SELECT name FROM sqlite_master WHERE type = %s" + (" AND tbl_name = %s" if table else "")
    with connection.cursor() as cursor:
        cursor.execute(query, [kind, table] if table else [kind])
        return {name for (name,) in cursor.fetchall()}


def test_0008_fills_the_aggregates_from_existing_jobs_and_events_and_keeps_them(db):
    import datetime

    old = _migrate(("balsam", "0007_db_identity"))
    assert not _sqlite_names("trigger") and "balsam_job_state_d5cb8193" in _sqlite_names("index", "balsam_job")
    Job, Event = old.get_model("balsam", "BalsamJob"), old.get_model("balsam", "JobEvent")
    a, b, c = (Job.objects.create(job_id=uuid.uuid4(), name=n, workdir=n, workflow=w, state=s)
               for n, w, s in (("a", "w1", "JOB_FINISHED"), ("b", "w1", "RUNNING"), ("c", "w2", "CREATED")))
    t0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
    for job, seconds, from_state, to_state in ((a, 10.5, "PREPROCESSED", "RUNNING"), (b, 20.25, "PREPROCESSED", "RUNNING"),
                                               (a, 70, "RUNNING", "RUN_DONE"), (a, 75, "POSTPROCESSED", "JOB_FINISHED")):
        Event.objects.create(job=job, timestamp=t0 + datetime.timedelta(seconds=seconds), from_state=from_state,
                             to_state=to_state)

    new = _migrate(AFTER_AGGREGATES)

    counts = {(w, s): n for w, s, n in new.get_model("balsam", "JobCount").objects.values_list("workflow", "state", "count")}
    assert counts == {("w1", "JOB_FINISHED"): 1, ("w1", "RUNNING"): 1, ("w2", "CREATED"): 1}
    minute = int(t0.timestamp()) // 60
    rows = set(new.get_model("balsam", "StateMinute").objects.values_list(
        "state", "minute", "workflow", "entered", "exited", "entered_rest", "exited_rest"))
    assert rows == {("PREPROCESSED", minute, "w1", 0, 2, 0, (60 - 10.5) + (60 - 20.25)),
                    ("RUNNING", minute, "w1", 2, 0, (60 - 10.5) + (60 - 20.25), 0),
                    ("RUNNING", minute + 1, "w1", 0, 1, 0, 50.0), ("RUN_DONE", minute + 1, "w1", 1, 0, 50.0, 0),
                    ("POSTPROCESSED", minute + 1, "w1", 0, 1, 0, 45.0),
                    ("JOB_FINISHED", minute + 1, "w1", 1, 0, 45.0, 0)}
    assert _sqlite_names("trigger") == {"balsam_job_count_insert", "balsam_job_count_delete",
                                        "balsam_job_workflow_change"}
    assert "WITHOUT ROWID" in _table_sql("balsam_state_minute")
    indexes = _sqlite_names("index", "balsam_job")
    assert "balsam_job_state_time" in indexes and "balsam_job_state_d5cb8193" not in indexes
    # From now on the triggers keep them (state changes: the write operations).
    new.get_model("balsam", "BalsamJob").objects.filter(pk=b.pk).update(workflow="w3")
    assert dict(new.get_model("balsam", "JobCount").objects.filter(state="RUNNING").values_list("workflow", "count")) == {
        "w1": 0, "w3": 1}

    # And back: the triggers go, the old index returns.
    _migrate(("balsam", "0007_db_identity"))
    assert not _sqlite_names("trigger") and "balsam_job_state_d5cb8193" in _sqlite_names("index", "balsam_job")
    _migrate(AFTER_AGGREGATES)
    assert len(_sqlite_names("trigger")) == 3


AFTER_AGGREGATES = ("balsam", "0008_launchers_and_aggregates")


def _table_sql(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [name])
        return cursor.fetchone()[0]


def _latest_migration():
    from django.db.migrations.loader import MigrationLoader

    return max(name for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
               if app == "balsam")


def test_a_db_older_than_the_code_is_refused_with_its_repair_until_balsam_init(db, balsam_cmd):
    """A launcher on a DB that lacks the latest schema update ran without the
    index its claims rely on (5 jobs/s): every command that works on the DB
    refuses it in one line naming the fix; the ones that copy or inspect it
    still work, and ``balsam init`` updates it."""
    _migrate(("balsam", "0011_pg_event_user"))  # the real schema before 0012
    for words in (["ls"], ["launcher", "--consume-all", "--until-idle"], ["job", "--name", "x", "--workflow", "w", "--application", "hello"]):
        result = balsam_cmd(*words)
        assert result.returncode != 0, words
        line = one_line_error(result)
        assert "older than this Balsam" in line and _latest_migration() in line, line
        assert f"balsam init {db}" in line, line
    assert balsam_cmd("which").returncode == 0
    assert balsam_cmd("db", "backup").returncode == 0
    doctor = balsam_cmd("doctor")
    assert "older than this Balsam" in doctor.stdout and f"balsam init {db}" in doctor.stdout
    assert balsam_cmd("init", str(db)).returncode == 0
    assert balsam_cmd("ls").returncode == 0


SEQ_BEFORE, SEQ_AFTER = ("balsam", "0013_pg_no_like_indexes"), ("balsam", "0014_event_job_seq")


@pytest.mark.both_backends
def test_0014_numbers_jobs_in_creation_order_and_files_their_events_under_the_numbers_and_back(db, make_job):
    import datetime

    from balsam.core.models import BalsamJob, JobEvent

    try:
        old = _migrate(SEQ_BEFORE)
        Job, Event = old.get_model("balsam", "BalsamJob"), old.get_model("balsam", "JobEvent")
        t0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
        a, b, c = (Job.objects.create(job_id=uuid.uuid4(), name=n, workdir=n, created_at=t0 + datetime.timedelta(seconds=i))
                   for i, n in enumerate("abc"))
        for job, to_state in ((a, "READY"), (c, "READY"), (a, "STAGED_IN"), (b, "READY")):
            Event.objects.create(job=job, from_state="", to_state=to_state)
        Event.objects.filter(job=b).delete()  # the newest event id (4) is gone: the next one is still 5
        assert sorted(Event.objects.values_list("id", "job__name", "to_state")) == [
            (1, "a", "READY"), (2, "c", "READY"), (3, "a", "STAGED_IN")]

        new = _migrate(SEQ_AFTER)

        Job, Event = new.get_model("balsam", "BalsamJob"), new.get_model("balsam", "JobEvent")
        assert dict(Job.objects.values_list("name", "seq")) == {"a": 1, "b": 2, "c": 3}
        assert sorted(Event.objects.values_list("id", "job__name", "job_id", "to_state")) == [
            (1, "a", 1, "READY"), (2, "c", 3, "READY"), (3, "a", 1, "STAGED_IN")]
        # Jobs added from now on (the code's own write path) number on, and their events file under it.
        d = make_job(name="d")
        BalsamJob.objects.get(pk=d.pk).update_state("READY", "after 0014")
        assert BalsamJob.objects.get(pk=d.pk).seq == 4
        assert list(JobEvent.objects.filter(job__job_id=d.pk).values_list("id", "job_id", "to_state")) == [
            (5, 4, "READY")]

        back = _migrate(SEQ_BEFORE)  # and back: events under the job ids again

        Event = back.get_model("balsam", "JobEvent")
        assert sorted(Event.objects.values_list("id", "job__name", "to_state")) == [
            (1, "a", "READY"), (2, "c", "READY"), (3, "a", "STAGED_IN"), (5, "d", "READY")]
        assert "seq" not in {f.name for f in connection.introspection.get_table_description(
            connection.cursor(), "balsam_job")}
    finally:
        _migrate(("balsam", _latest_migration()))  # the DB (on PostgreSQL, the session's) as the code expects it
