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
    """Every statement SQLite runs in the block, its values filled in, on
    every connection Django has or opens meanwhile, on any thread (a launcher
    writes its batches from a thread of its own). The write path runs its own
    SQL on the driver's connection, past Django's query capture."""
    from django.db.backends.signals import connection_created

    seen, traced = [], [connection]

    def trace(sender, connection, **kwargs):  # (the signal names its argument ``connection``)
        connection.connection.set_trace_callback(seen.append)
        traced.append(connection)

    connection.ensure_connection()
    connection.connection.set_trace_callback(seen.append)
    connection_created.connect(trace)
    try:
        yield seen
    finally:
        connection_created.disconnect(trace)
        for conn in traced:
            if conn.connection is not None:
                conn.connection.set_trace_callback(None)


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


def test_a_launcher_finds_the_jobs_it_names_by_id_in_every_statement(db):
    """Every statement of a whole launcher run that names jobs by id -- a
    list of them or one, in raw SQL or the ORM's (claims, dependency passes,
    batches of moves, run times and releases) -- finds them through the id's index: one that took a state's index instead
    read every job in that state -- a million CREATED jobs of another
    workflow, on every pass (the dependency pass's ``UPDATE`` did, until the
    seventh #16 session)."""
    import re

    from balsam import api
    from balsam.launcher.launcher import make_launcher
    from balsam.launcher.nodes import Node

    api.add_app("true", "/bin/true", check_paths=False)
    api.add_jobs([{"name": f"t{i}", "workflow": "w", "application": "true"} for i in range(60)])
    root = api.add_job(name="root", workflow="dag", application="true")
    for i in range(12):
        api.add_job(name=f"kid{i}", workflow="dag", application="true", parents=[root.pk])
    launcher = make_launcher(db, [Node("localhost", 4)], until_idle=True, lease_expiry_sec=60)
    with statements() as seen:
        assert launcher.run() == "idle: nothing left to run or process"
    assert api.state_counts() == {"JOB_FINISHED": 73}
    # Statements naming jobs by id: a list (raw SQL or the ORM's quoted column) or one id.
    by_ids = [text for text in seen if re.search(r"job_id\"? (IN \(|= )'", text)]
    assert sum(text.startswith("UPDATE") for text in by_ids) > 10  # the run's moves and releases were seen
    assert job_reads_not_by_id(by_ids) == []
