"""How many times a launcher's batch writes each job's row: a run's end (its
run time, its last moves, the release of its lease) is one row write per
job, on SQLite and on PostgreSQL (where each is a new row version and an
entry in every index of the table)."""

import time

import pytest
from django.db import connection, transaction

pytestmark = pytest.mark.both_backends

OWNER = "launcher-1"


def _row_writes():
    """Row updates of the job table so far in this transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_stat_get_xact_tuples_updated('balsam_job'::regclass)")
        else:
            cursor.execute("SELECT count(*) FROM temp.job_row_writes")
        return cursor.fetchone()[0]


def _count_row_writes():
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE job_row_writes (n INTEGER)")
            cursor.execute("CREATE TEMP TRIGGER job_row_writes AFTER UPDATE ON main.balsam_job "
                           "BEGIN INSERT INTO job_row_writes VALUES (1); END")


def test_a_runs_end_writes_each_jobs_row_once(db, make_job):
    from balsam.core import write_client
    from balsam.core.models import BalsamJob
    from balsam.core.operations.leases import apply_batch

    client = write_client.get()
    jobs = [str(make_job(name=f"j{i}").pk) for i in range(20)]
    client.transition(jobs, "READY")
    assert len(client.claim(OWNER, ["READY"], 20, 60)) == 20
    client.apply_batch([(jobs, "STAGED_IN", ""), (jobs, "PREPROCESSED", ""), (jobs, "RUNNING", "")], [], None, [])
    _count_row_writes()
    now = time.time()
    with transaction.atomic():  # the operation itself, on this connection (the client would use its own)
        before = _row_writes()
        apply_batch(moves=[[jobs, "RUN_DONE", "exit code 0", [now] * 20], [jobs, "POSTPROCESSED", ""],
                           [jobs, "JOB_FINISHED", ""]],
                    fields=[[pk, {"runtime_seconds": 0.5}] for pk in jobs], release_owner=OWNER, release_ids=jobs)
        writes = _row_writes() - before
    assert writes == 20  # three per job before: the run time, the state, the release
    stored = list(BalsamJob.objects.filter(pk__in=jobs).values_list("state", "runtime_seconds", "lease_owner"))
    assert stored == [("JOB_FINISHED", 0.5, "")] * 20
