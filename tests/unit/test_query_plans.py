"""Queries of jobs by id use the id's index, whatever else they filter on.

Without statistics (Balsam does not ANALYZE), SQLite may prefer an index on a
state term to the id's, and then reads every job in that state: with a
million-job backlog of CREATED jobs in another workflow, resolving a few
waiting jobs' dependencies took 1.5 s inside the write lock on every pass of a
launcher. The plans here are checked as SQLite makes them (the same on a
small DB as on a large one: the choice uses no statistics, only the terms; a
long id list is what tips it).
"""

import contextlib
import uuid

import pytest
from django.db import connection

from balsam.core import queries, write_client

pytestmark = pytest.mark.usefixtures("db")

# Ids of no job, to make the id lists as long as a launcher's.
ABSENT = [str(uuid.uuid4()) for _ in range(500)]


@contextlib.contextmanager
def statements():
    """Every statement SQLite runs in the block, its values filled in: the
    write path runs its own SQL on the driver's connection, past Django's
    query capture."""
    connection.ensure_connection()
    seen = []
    connection.connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.connection.set_trace_callback(None)


def job_reads_not_by_id(captured):
    """Plans of the captured statements that read balsam_job through anything but its id's index
    (reads, and the rows an ``UPDATE`` or ``DELETE`` finds to change)."""
    bad = []
    with connection.cursor() as cursor:
        for text in captured:
            if "balsam_job" not in text or not text.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
                continue
            cursor.execute("EXPLAIN QUERY PLAN " + text)
            for row in cursor.fetchall():
                detail = row[-1]
                if ("balsam_job " in detail or detail.endswith("balsam_job")) and "job_event" not in detail \
                        and "dependency" not in detail and "(job_id=?)" not in detail:
                    bad.append((text[:200], detail))
    return bad


def test_waiting_jobs_by_id_reads_them_by_id(make_job):
    jobs = [make_job(name=f"j{n}") for n in range(5)]
    with statements() as captured:
        found = queries.waiting_jobs(ids=[j.pk for j in jobs] + ABSENT)
    assert sorted(pk for pk, _, _ in found) == sorted(j.pk for j in jobs)
    assert job_reads_not_by_id(captured) == []


def test_resolving_and_settling_dependencies_read_jobs_by_id(make_job):
    from balsam import api

    parent, child, other = make_job(name="parent"), make_job(name="child"), make_job(name="other")
    api.add_dependency(parent, child)
    for n in range(300):  # a parent of many children: the kill settles them all in one read
        api.add_dependency(parent, make_job(name=f"kid{n}"))
    client = write_client.get()
    with statements() as captured:
        moved = client.resolve_dependencies([str(child.pk), str(other.pk)] + ABSENT)
    assert moved == {"ready": [str(other.pk)], "awaiting": [str(child.pk)]}
    assert job_reads_not_by_id(captured) == []
    with statements() as captured:
        client.kill([str(parent.pk)], recursive=False)
    child.refresh_from_db()
    assert child.state == "PARENT_KILLED"
    assert job_reads_not_by_id(captured) == []


def sorts(captured, table="balsam_job"):
    """The captured reads of ``table`` whose plan sorts every row found (a temporary B-tree for ORDER BY)."""
    found = []
    with connection.cursor() as cursor:
        for text in captured:
            if f'FROM "{table}"' not in text or "ORDER BY" not in text:
                continue
            cursor.execute("EXPLAIN QUERY PLAN " + text)
            if any("TEMP B-TREE" in row[-1] for row in cursor.fetchall()):
                found.append(text[:300])
    return found


@pytest.mark.parametrize("scope", [None, {"workflow": "w"}, {"workflow": "w", "max_num_nodes": 1}])
def test_claims_and_dependency_passes_read_jobs_in_index_order(make_job, scope):
    """A claim (and a launcher's look at waiting jobs) takes the first few jobs
    in the order of an index and stops: with a million candidates a sort of
    all of them cost 0.6-0.9 s per claim."""
    jobs = [make_job(name=f"j{n}", workflow="w") for n in range(3)]
    client = write_client.get()
    with statements() as captured:
        waiting = queries.waiting_jobs(scope, limit=2)
        claimed = client.claim("host:1", ["CREATED"], 2, 60, scope=scope)
    assert len(waiting) == 2 and len(claimed) == 2
    assert set(claimed) <= {str(j.pk) for j in jobs}
    assert sorts(captured) == []
