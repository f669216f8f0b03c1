"""The write-path contract: the same behaviour through the direct client and
through a live dbserver (every test runs once with each), and on PostgreSQL."""

import uuid

import pytest

from balsam import api
from balsam.core import actor, states, write_client
from balsam.core.models import ApplicationDefinition, BalsamJob, JobDependency, JobEvent
from balsam.exceptions import (
    DependencyError,
    InvalidStateTransition,
    NotFound,
    ValidationError,
)

pytestmark = pytest.mark.both_backends


def test_apps_create_update_delete(writer, make_app):
    app = make_app("sim", "echo", description="d", environ_vars={"A": "1"})
    assert ApplicationDefinition.objects.get(pk=app.pk).environ_vars == {"A": "1"}
    api.modify_app("sim", "description", "new")
    assert ApplicationDefinition.objects.get(pk=app.pk).description == "new"
    with pytest.raises(ValidationError, match="an application named 'sim' already exists"):
        make_app("sim", "echo")
    app.delete()
    assert not ApplicationDefinition.objects.exists()


def test_job_save_and_changed_fields(writer, make_job):
    job = make_job(name="a", args="x", data={"k": [1, 2]})
    stored = BalsamJob.objects.get(pk=job.pk)
    assert (stored.args, stored.data, stored.workdir) == ("x", {"k": [1, 2]}, f"wf/a_{job.job_id.hex[:8]}")
    stale = BalsamJob.objects.get(pk=job.pk)
    job.args = "y"
    job.save()
    stale.num_nodes = 3
    stale.save()
    stored = BalsamJob.objects.get(pk=job.pk)
    assert (stored.args, stored.num_nodes) == ("y", 3)


def test_bulk_create_update_delete(writer, make_app):
    make_app()
    BalsamJob.objects.bulk_create([BalsamJob(name=f"j{i}", workflow="w", application="hello") for i in range(50)])
    assert BalsamJob.objects.count() == 50
    assert BalsamJob.objects.filter(name__startswith="j1").update(num_nodes=2) == 11
    assert BalsamJob.objects.filter(num_nodes=2).count() == 11
    count, _ = BalsamJob.objects.filter(num_nodes=2).delete()
    assert count == 11 and BalsamJob.objects.count() == 39


def test_bulk_insert_of_many_jobs(writer):
    ids = api.make_dummies(25_000)
    assert len(set(ids)) == 25_000 == BalsamJob.objects.count()


def test_transitions_and_events(writer, make_job):
    job = make_job()
    job.update_state("READY", "ok")
    with pytest.raises(InvalidStateTransition, match="cannot move from READY to RUN_DONE"):
        job.update_state("RUN_DONE")
    assert list(JobEvent.objects.values_list("to_state", "message")) == [("READY", "ok")]


def test_dependencies_cycles_and_kills(writer, make_job):
    a, b, c = (make_job(name=n) for n in ("pa", "pb", "pc"))
    api.add_dependency(a, b)
    b.parents.add(c)
    with pytest.raises(DependencyError, match="would create a cycle"):
        api.add_dependency(b, a)
    with pytest.raises(DependencyError, match="already depends on"):
        api.add_dependency(a, b)
    assert JobDependency.objects.count() == 2
    result = api.kill(c, recursive=False)
    assert result["settled"] == [str(b.pk)]
    assert BalsamJob.objects.get(pk=b.pk).state == "PARENT_KILLED"


def test_errors_keep_their_class_and_message(writer, make_app):
    make_app()
    with pytest.raises(ValidationError, match="num_nodes must be at least 1, not 0"):
        api.add_job(name="x", application="hello", num_nodes=0)
    with pytest.raises(ValidationError, match="application 'nope' does not exist"):
        api.add_job(name="x", application="nope")
    with pytest.raises(NotFound, match="no job with id"):
        write_client.get().transition([str(uuid.uuid4())], "READY")
    assert not BalsamJob.objects.exists()


def test_add_job_settles_id_and_directory_clashes_and_keeps_its_note(writer, make_app):
    # On PostgreSQL these take the one-round-trip insert first, which the server
    # refuses whole; the usual operation then raises or settles the clash.
    make_app()
    first = api.add_job(name="a", workflow="wf", application="hello")
    with pytest.raises(ValidationError, match=f"a job with id {first.job_id} already exists"):
        api.add_job(name="b", workflow="wf", application="hello", job_id=str(first.job_id))
    twin_id = uuid.UUID(first.job_id.hex[:8] + uuid.uuid4().hex[8:])  # the same first 8 digits
    twin = api.add_job(name="a", workflow="wf", application="hello", job_id=str(twin_id), creation_note="made by a test")
    assert twin.workdir == f"wf/a_{twin_id.hex[:9]}" != first.workdir
    assert BalsamJob.objects.get(pk=twin_id).workdir == twin.workdir
    noted = api.add_job(name="c", workflow="wf", application="hello", creation_note="made by c")
    assert sorted(JobEvent.objects.values_list("job__job_id", "from_state", "to_state", "message", "user"), key=str) == sorted(
        [(twin_id, "", "CREATED", "made by a test", actor.current()),
         (noted.job_id, "", "CREATED", "made by c", actor.current())], key=str)
    assert BalsamJob.objects.count() == 3


_COMPARED = [f.attname for f in BalsamJob._meta.concrete_fields
             if f.name not in ("job_id", "seq", "name", "workdir", "created_at", "state_changed_at")]


def _stored(name):
    return BalsamJob.objects.filter(name=name).values(*_COMPARED, "workdir", "created_at", "state_changed_at").get()


def test_a_lone_add_job_stores_what_the_usual_operation_stores(writer, make_app):
    # On PostgreSQL a lone add_job outside a transaction is one prepared
    # statement (jobs._create_one_job_prepared); inside the caller's
    # transaction it is the usual create_jobs. Same row, same event.
    from django.db import connection, transaction

    make_app()
    fields = dict(workflow="wf", application="hello", args="--x 1", num_nodes=2, wall_time_minutes=1.5,
                  environ_vars={"A": "1"}, data={"k": [1, "two", None]}, post_error_handler=True, input_files="*.dat")
    quick = api.add_job(name="quick", creation_note="noted", **fields)
    with transaction.atomic():
        usual = api.add_job(name="usual", creation_note="noted", **fields)
    plain = api.add_job(name="plain")  # no application (nothing to check), no note
    listed = api.add_job(name="listed", data=[1, "x", {"y": 2.5}], environ_vars={"N": 3})  # JSON a list, a number made text
    assert BalsamJob.objects.filter(pk=listed.pk).values_list("data", "environ_vars").get() == (
        [1, "x", {"y": 2.5}], {"N": "3"})
    stored_quick, stored_usual = _stored("quick"), _stored("usual")
    assert {k: stored_quick[k] for k in _COMPARED} == {k: stored_usual[k] for k in _COMPARED}
    # Each job is numbered in creation order (the one field the two rows must not share).
    assert BalsamJob.objects.get(pk=quick.pk).seq < BalsamJob.objects.get(pk=usual.pk).seq
    assert stored_quick["workdir"] == quick.workdir == f"wf/quick_{quick.job_id.hex[:8]}"
    assert stored_quick["created_at"] == stored_quick["state_changed_at"] == quick.created_at
    assert _stored("plain")["application"] == "" and plain.workdir == f"plain_{plain.job_id.hex[:8]}"
    events = sorted(JobEvent.objects.values_list("job__job_id", "from_state", "to_state", "message", "user"), key=str)
    assert events == sorted([(quick.job_id, "", "CREATED", "noted", actor.current()),
                             (usual.job_id, "", "CREATED", "noted", actor.current())], key=str)
    if writer == "postgres":  # the quick path was taken: its statement is prepared on this connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [text for (text,) in cursor.fetchall()]
        assert any(text.startswith("WITH job AS (INSERT INTO") for text in prepared), prepared
        assert any(text.startswith("INSERT INTO") and "EXISTS" not in text for text in prepared), prepared


def _creation_notes():
    """{job id: [(from, to, message), ...]} of every event, in event order."""
    found = {}
    for pk, from_state, to_state, message in JobEvent.objects.order_by("id").values_list(
            "job__job_id", "from_state", "to_state", "message"):
        found.setdefault(pk, []).append((from_state, to_state, message))
    return found


def _noted(name, note):
    job = BalsamJob(name=name, workflow="w")
    job._creation_note = note  # as ``dag.spawn_child`` leaves it: the first line of the job's history
    return job


def test_jobs_are_numbered_in_the_order_they_are_made_whichever_way_they_are_made(writer):
    """Many jobs at once (PostgreSQL: ``COPY``), a few (one round trip), one
    (a prepared statement), each with and without a creation note."""
    from balsam.launcher import dag

    many = BalsamJob.objects.bulk_create([_noted(f"many{i}", f"note {i}") if i % 3 == 0 else
                                          BalsamJob(name=f"many{i}", workflow="w") for i in range(40)])
    few = BalsamJob.objects.bulk_create([_noted("few0", "few note"), BalsamJob(name="few1", workflow="w")])
    one = dag.add_job(name="one", workflow="w")
    noted = BalsamJob.insert({"name": "noted", "workflow": "w"}, note="spawned by hand")

    made = [j.pk for j in many + few] + [one.pk, noted.pk]
    numbers = dict(BalsamJob.objects.values_list("job_id", "seq"))
    assert sorted(made, key=numbers.get) == made and len(set(numbers.values())) == len(made)
    notes = {j.pk: [("", states.CREATED, f"note {i}")] for i, j in enumerate(many) if i % 3 == 0}
    notes.update({few[0].pk: [("", states.CREATED, "few note")], noted.pk: [("", states.CREATED, "spawned by hand")]})
    assert _creation_notes() == notes
    assert noted.history()[0][3] == "spawned by hand" and one.history()[0][3] == "created"


def test_a_lone_add_job_naming_a_missing_application_writes_nothing(writer, make_app):
    make_app()
    for note in (None, "with a note"):
        with pytest.raises(ValidationError, match="^application 'nope' does not exist"):
            api.add_job(name="x", workflow="wf", application="nope", creation_note=note)
    assert not BalsamJob.objects.exists()
    assert not JobEvent.objects.exists()
    assert api.add_job(name="y", workflow="wf", application="hello").application == "hello"  # the connection still works


def test_spawn_child_with_parents_in_one_request(writer, make_job):
    parent = make_job(name="parent")
    child = api.spawn_child(parent, name="child", application="hello")
    assert list(BalsamJob.objects.get(pk=child.pk).parents.all()) == [parent]


def test_claims_are_exclusive_and_leases_expire(writer, make_app):
    make_app()
    client = write_client.get()
    jobs = [api.add_job(name=f"j{i}", application="hello") for i in range(5)]
    ready = [str(j.pk) for j in jobs]
    client.transition(ready, "READY")
    first = client.claim("launcher-1", ["READY"], limit=3, lease_expiry_sec=60)
    second = client.claim("launcher-2", ["READY"], limit=10, lease_expiry_sec=60)
    assert len(first) == 3 and len(second) == 2 and not set(first) & set(second)
    assert client.claim("launcher-3", ["READY"], limit=10, lease_expiry_sec=60) == []
    assert set(BalsamJob.objects.filter(lease_owner="launcher-1").values_list("pk", flat=True)) == {uuid.UUID(i) for i in first}
    assert client.heartbeat("launcher-1") == 3
    assert client.release("launcher-2", second[:1]) == 1
    assert client.claim("launcher-3", ["READY"], limit=10, lease_expiry_sec=60) == second[:1]
    # launcher-1's last heartbeat renews its leases for a tiny expiry, then it stops:
    # its jobs can be taken over (by a launcher with any expiry of its own)
    import time

    assert client.heartbeat("launcher-1", lease_expiry_sec=0.01) == 3
    time.sleep(0.05)
    taken = client.claim("launcher-4", ["READY"], limit=10, lease_expiry_sec=60)
    assert set(first) <= set(taken)


def test_claim_rejects_bad_arguments(writer):
    client = write_client.get()
    with pytest.raises(ValidationError, match="lease owner must be a non-empty name"):
        client.claim("", ["READY"], 1, 60)
    with pytest.raises(Exception, match="unknown state 'DONE'"):
        client.claim("me", ["DONE"], 1, 60)
    with pytest.raises(ValidationError, match="lease_expiry_sec must be a positive number"):
        client.claim("me", ["READY"], 1, -5)


@pytest.mark.parametrize("expiry", [float("inf"), float("nan"), 1e12])
def test_lease_arguments_are_finite_and_bounded(writer, expiry):
    # inf overflowed the date arithmetic ("internal error ... OverflowError"); nan compared as valid
    client = write_client.get()
    with pytest.raises(ValidationError, match="lease_expiry_sec must be a positive number up to"):
        client.claim("me", ["READY"], 1, expiry)
    with pytest.raises(ValidationError, match="lease_expiry_sec must be a positive number up to"):
        client.recover_expired(expiry)


def test_protocol_whitelist_matches_the_operations():
    from balsam.core.operations import OPERATIONS
    from balsam.wire.protocol import WRITE_OPS

    assert WRITE_OPS == set(OPERATIONS)


def test_recovery_of_expired_and_orphaned_running_jobs(writer, make_app):
    import time

    make_app()
    client = write_client.get()
    held, orphan, waiting = (api.add_job(name=n, application="hello") for n in ("held", "orphan", "waiting"))
    for job in (held, orphan):
        client.transition([str(job.pk)], "READY")
        client.transition([str(job.pk)], "STAGED_IN")
        client.transition([str(job.pk)], "PREPROCESSED")
    client.claim("dead-launcher", ["PREPROCESSED"], 1, 60, {"job_ids": [str(held.pk)]})
    client.transition([str(held.pk), str(orphan.pk)], "RUNNING")
    assert client.recover_expired(60) == []
    assert client.heartbeat("dead-launcher", lease_expiry_sec=0.01) == 1  # its last heartbeat, then it dies
    time.sleep(0.05)
    assert sorted(client.recover_expired(0.01)) == sorted([str(held.pk), str(orphan.pk)])
    assert {j.state for j in BalsamJob.objects.filter(pk__in=[held.pk, orphan.pk])} == {"RESTART_READY"}
    assert BalsamJob.objects.get(pk=waiting.pk).state == "CREATED"
    assert not BalsamJob.objects.exclude(lease_owner="").exists()
