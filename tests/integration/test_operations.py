"""The launcher's and the service's write operations -- apply_batch,
update_jobs_each, leases, tie_jobs, end_launch -- judged by the rows they store. Every
test runs once with the direct client and once through a live dbserver."""

import time
import uuid

import pytest

from balsam.core.models import BalsamJob, JobEvent, QueuedLaunch
from balsam.exceptions import InvalidStateTransition, NotFound, ValidationError

pytestmark = pytest.mark.both_backends

OWNER = "launcher-1"
FINISH = ("READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")


@pytest.fixture
def client(writer):
    from balsam.core import write_client

    return write_client.get()


@pytest.fixture
def new_jobs(make_job):
    """Jobs made one request each (so ``created_at`` orders them); their ids as text."""

    def make(*names, **fields):
        return [str(make_job(name=name, **fields).pk) for name in names]

    return make


@pytest.fixture
def new_launch(client):
    def make():
        launch = QueuedLaunch(scheduler="local", queue="q", nodes=1, wall_minutes=10)
        launch.save()
        return launch.pk

    return make


def job(pk):
    return BalsamJob.objects.get(pk=pk)


def events(pk):
    return list(JobEvent.objects.filter(job__job_id=pk).order_by("id").values_list("from_state", "to_state", "message"))


def tied_to(launch_id):
    return {str(pk) for pk in BalsamJob.objects.filter(queued_launch_id=launch_id).values_list("pk", flat=True)}


def advance(client, pk, *path):
    for state in path:
        client.transition([pk], state)


# -- resolve_dependencies ------------------------------------------------------
def test_resolve_dependencies_moves_each_waiting_job_as_its_parents_allow(client, new_jobs, make_job):
    """Parentless jobs go in one UPDATE whose own condition is "CREATED and no
    parents"; the rest are judged on their parents. One call, every kind."""
    lone, parent, done_parent, running = new_jobs("lone", "parent", "done-parent", "running")
    waits = str(make_job(name="waits", parents=[parent]).pk)
    eager = str(make_job(name="eager", parents=[parent], wait_for_parents=False).pk)
    freed = str(make_job(name="freed", parents=[done_parent]).pk)
    client.resolve_dependencies([freed])  # AWAITING_PARENTS while its parent is unfinished
    advance(client, done_parent, "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED",
            "JOB_FINISHED")
    advance(client, running, "READY")
    ready_before = events(running)

    moved = client.resolve_dependencies([lone, waits, eager, freed, running, parent])

    assert sorted(moved["ready"]) == sorted([lone, eager, freed, parent])
    assert moved["awaiting"] == [waits]
    assert {pk: job(pk).state for pk in (lone, waits, eager, freed, running, parent)} == {
        lone: "READY", waits: "AWAITING_PARENTS", eager: "READY", freed: "READY", running: "READY", parent: "READY"}
    assert events(lone)[-1] == ("CREATED", "READY", "no parents")
    assert events(eager)[-1] == ("CREATED", "READY", "does not wait for its parents")
    assert events(freed)[-1] == ("AWAITING_PARENTS", "READY", "parents finished")
    assert events(running) == ready_before  # no longer waiting: left alone
    assert [e for e in events(waits) if e[1] == "READY"] == []


# -- apply_batch ---------------------------------------------------------------
def test_job_states_are_keyed_by_the_callers_own_ids(db, make_job):
    """A batch looks each job up a dozen times: keyed by the very objects it
    was given (not equal copies made from the rows), each look-up skips
    ``UUID.__eq__``, which is Python code. Missing ids still raise."""
    from balsam.core.operations.transitions import job_states

    ids = [uuid.UUID(str(make_job(name=n).pk)) for n in "ab"]  # objects of this test's own
    found = job_states(ids + [ids[0]])
    assert found == {ids[0]: ("CREATED", "a"), ids[1]: ("CREATED", "b")}
    assert all(any(key is given for given in ids) for key in found)
    with pytest.raises(NotFound, match="no job with id"):
        job_states([ids[0], uuid.uuid4()])


def test_apply_batch_applies_its_moves_in_order(client, new_jobs):
    (a,) = new_jobs("a")
    advance(client, a, "READY")
    result = client.apply_batch(
        [([a], "STAGED_IN", "in"), ([a], "PREPROCESSED", "pre"), ([a], "RUNNING", "run")], [], None, [])
    assert result == {"refused": {}}
    assert job(a).state == "RUNNING"
    assert events(a)[1:] == [("READY", "STAGED_IN", "in"), ("STAGED_IN", "PREPROCESSED", "pre"),
                             ("PREPROCESSED", "RUNNING", "run")]


def test_apply_batch_stores_field_updates_with_the_moves(client, new_jobs):
    a, b = new_jobs("a", "b")
    advance(client, a, "READY")
    client.apply_batch([([a], "STAGED_IN", "")], [(a, {"runtime_seconds": 1.5, "data": {"k": [1, 2]}}),
                                                 (b, {"data": {"other": True}})], None, [])
    stored_a, stored_b = job(a), job(b)
    assert (stored_a.state, stored_a.runtime_seconds, stored_a.data) == ("STAGED_IN", 1.5, {"k": [1, 2]})
    assert (stored_b.state, stored_b.runtime_seconds, stored_b.data) == ("CREATED", None, {"other": True})


def test_apply_batch_refuses_a_killed_job_and_releases_its_lease(client, new_jobs):
    killed, alive, held = new_jobs("killed", "alive", "held")
    for pk in (killed, alive, held):
        advance(client, pk, "READY")
    assert len(client.claim(OWNER, ["READY"], 10, 60)) == 3
    client.kill([killed])
    result = client.apply_batch([([killed, alive], "STAGED_IN", "go")], [], OWNER, [])
    assert result == {"refused": {killed: "USER_KILLED"}}
    assert job(killed).state == "USER_KILLED" and events(killed)[-1][1] == "USER_KILLED"
    assert job(alive).state == "STAGED_IN" and events(alive)[-1] == ("READY", "STAGED_IN", "go")
    assert {pk: job(pk).lease_owner for pk in (killed, alive, held)} == {killed: "", alive: OWNER, held: OWNER}


def test_apply_batch_releases_only_the_given_leases_of_its_owner(client, new_jobs):
    mine = new_jobs("m0", "m1", "m2")
    (theirs,) = new_jobs("theirs")
    assert len(client.claim(OWNER, ["CREATED"], 3, 60)) == 3
    assert client.claim("launcher-2", ["CREATED"], 10, 60) == [theirs]
    client.apply_batch([], [], OWNER, [mine[0], theirs])
    assert [job(pk).lease_owner for pk in mine + [theirs]] == ["", OWNER, OWNER, "launcher-2"]
    assert job(mine[0]).lease_heartbeat is None and job(mine[1]).lease_heartbeat is not None


def test_apply_batch_stores_run_times_and_releases_with_the_last_moves(client, new_jobs):
    done, failed, kept, theirs, killed = new_jobs("done", "failed", "kept", "theirs", "killed")
    for pk in (done, failed, kept, theirs, killed):
        advance(client, pk, "READY")
    assert client.claim("launcher-2", ["READY"], 1, 60) == [done]  # the oldest first
    client.apply_batch([], [], "launcher-2", [done])
    assert sorted(client.claim(OWNER, ["READY"], 10, 60)) == sorted([done, failed, kept, theirs, killed])
    client.apply_batch([], [], OWNER, [theirs])
    assert client.claim("launcher-2", ["READY"], 10, 60) == [theirs]
    running = [done, failed, kept, theirs, killed]
    client.apply_batch([(running, "STAGED_IN", ""), (running, "PREPROCESSED", ""), (running, "RUNNING", "")], [],
                       None, [])
    client.kill([killed])
    result = client.apply_batch(
        [([done, kept, theirs, killed], "RUN_DONE", "exit code 0"), ([failed], "RUN_ERROR", "exit code 1"),
         ([done], "POSTPROCESSED", ""), ([done], "JOB_FINISHED", ""), ([failed], "FAILED", "")],
        [(done, {"runtime_seconds": 2.5}), (kept, {"runtime_seconds": 0.25}), (theirs, {"runtime_seconds": 1}),
         (killed, {"runtime_seconds": 4.0})],
        OWNER, [done, failed, theirs, killed])
    assert result == {"refused": {killed: "USER_KILLED"}}
    stored = {pk: job(pk) for pk in (done, failed, kept, theirs, killed)}
    assert {pk: (j.state, j.runtime_seconds, j.lease_owner) for pk, j in stored.items()} == {
        done: ("JOB_FINISHED", 2.5, ""), failed: ("FAILED", None, ""), kept: ("RUN_DONE", 0.25, OWNER),
        theirs: ("RUN_DONE", 1.0, "launcher-2"), killed: ("USER_KILLED", 4.0, "")}
    assert all(stored[pk].lease_heartbeat is None and stored[pk].lease_expires_at is None
               for pk in (done, failed, killed))
    assert stored[kept].lease_expires_at is not None and stored[theirs].lease_expires_at is not None
    assert [to for _, to, _ in events(done)][-3:] == ["RUN_DONE", "POSTPROCESSED", "JOB_FINISHED"]
    assert events(failed)[-2:] == [("RUNNING", "RUN_ERROR", "exit code 1"), ("RUN_ERROR", "FAILED", "")]


def test_apply_batch_stamps_each_event_with_its_own_time(client, new_jobs):
    a, b = new_jobs("a", "b")
    for pk in (a, b):
        advance(client, pk, "READY")
    t = time.time() - 30
    client.apply_batch([([a, b], "STAGED_IN", "", [t, t + 1]), ([a, b], "PREPROCESSED", "", [t + 2, t + 3]),
                        ([a], "RUNNING", "on vm", [t + 4])], [], None, [])
    stamps = {pk: [e.timestamp() for e in JobEvent.objects.filter(job__job_id=pk).order_by("id").values_list(
        "timestamp", flat=True)][1:] for pk in (a, b)}
    assert stamps[a] == pytest.approx([t, t + 2, t + 4], abs=1e-3)
    assert stamps[b] == pytest.approx([t + 1, t + 3], abs=1e-3)
    assert (job(a).state, job(b).state) == ("RUNNING", "PREPROCESSED")
    assert job(b).state_changed_at.timestamp() == pytest.approx(t + 3, abs=1e-3)
    from balsam.core.models import JobCount

    counts = {state: n for workflow, state, n in JobCount.objects.totals() if workflow == "wf"}
    assert counts == {"RUNNING": 1, "PREPROCESSED": 1}


def test_event_stamps_are_what_django_stores(client):
    import datetime

    from balsam.core.operations.transitions import event_stamp, event_stamps

    times = [datetime.datetime(2026, 11, 30, 5, 6, 7, 89, tzinfo=datetime.timezone.utc),
             datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-6)))]
    epochs = [t.timestamp() for t in times] + [1764479167.9999996, 1764479167.0000004, 1764479167.5, 1e9 + 0.25]
    epochs += [1764479167 + i / 997 for i in range(2000)]  # many fractions, two seconds shared by many
    expected = [event_stamp(datetime.datetime.fromtimestamp(at, datetime.timezone.utc)) for at in epochs]
    assert event_stamps(epochs) == expected
    assert event_stamps(epochs) == expected  # again, from the remembered seconds


def test_apply_batch_checks_each_jobs_moves_in_turn_from_its_stored_state(client, new_jobs):
    killed, alive = new_jobs("killed", "alive")
    for pk in (killed, alive):
        advance(client, pk, "READY")
    client.kill([killed])
    result = client.apply_batch([([killed, alive], "STAGED_IN", ""), ([killed, alive], "PREPROCESSED", ""),
                                 ([alive], "FAILED", "gave up")], [], None, [])
    assert result == {"refused": {killed: "USER_KILLED"}}
    assert [to for _, to, _ in events(killed)][-1] == "USER_KILLED"
    assert [to for _, to, _ in events(alive)][-3:] == ["STAGED_IN", "PREPROCESSED", "FAILED"]


def test_a_failed_move_in_a_batch_settles_the_waiting_children(client, new_jobs, make_job):
    (parent,) = new_jobs("parent")
    child = make_job(name="child", parents=[parent])
    advance(client, parent, "READY")
    client.apply_batch([([parent], "STAGED_IN", ""), ([parent], "FAILED", "broken")], [], None, [])
    assert job(parent).state == "FAILED"
    assert job(child.pk).state == "PARENT_KILLED"


@pytest.mark.parametrize("times, error", [
    ([1.0, 2.0], "one time per job id"),
    ([time.time() + 3600], "not in the future"),
    (["now"], "seconds since the epoch"),
])
def test_a_move_with_bad_times_fails_the_whole_batch(client, new_jobs, snapshot, times, error):
    (a,) = new_jobs("a")
    advance(client, a, "READY")
    before = snapshot()
    with pytest.raises(ValidationError, match=error):
        client.request("apply_batch", {"moves": [[[a], "STAGED_IN", "ok", times]], "fields": [],
                                       "release_owner": None, "release_ids": []})
    assert snapshot() == before


def test_a_malformed_move_fails_the_whole_batch(client, new_jobs, snapshot):
    (a,) = new_jobs("a")
    advance(client, a, "READY")
    client.claim(OWNER, ["READY"], 1, 60)
    before = snapshot()
    with pytest.raises(ValidationError, match=r"moves must be a list of \[job ids, state, message\]"):
        client.request("apply_batch", {"moves": [[[a], "STAGED_IN", "ok"], [[a], "PREPROCESSED"]],
                                       "fields": [[a, {"data": {"x": 1}}]], "release_owner": OWNER,
                                       "release_ids": [a]})
    assert snapshot() == before


# -- update_jobs_each ----------------------------------------------------------
def test_update_jobs_each_sets_different_values_per_job(client, new_jobs):
    a, b, c = new_jobs("a", "b", "c")
    client.request("update_jobs_each", {"items": [[a, {"num_nodes": 2, "args": "x"}], [b, {"num_nodes": 3, "args": "y"}],
                                                  [c, {"data": {"k": 1}}]]})
    assert [(job(pk).num_nodes, job(pk).args, job(pk).data) for pk in (a, b, c)] == [
        (2, "x", {}), (3, "y", {}), (1, "", {"k": 1})]


def test_update_jobs_each_gives_a_job_named_twice_its_last_values(client, new_jobs):
    a, b = new_jobs("a", "b")
    client.request("update_jobs_each", {"items": [[a, {"args": "first"}], [b, {"args": "b"}], [a, {"args": "last"}]]})
    assert (job(a).args, job(b).args) == ("last", "b")


def test_update_jobs_each_moves_state_through_the_state_machine(client, new_jobs):
    a, b = new_jobs("a", "b")
    client.request("update_jobs_each", {"items": [[a, {"state": "READY", "args": "z"}], [b, {"args": "w"}]]})
    assert (job(a).state, job(a).args, job(b).state, job(b).args) == ("READY", "z", "CREATED", "w")
    assert events(a) == [("CREATED", "READY", "state set by a field update")] and events(b) == []


@pytest.mark.parametrize("bad_item, error, message", [
    ("state", InvalidStateTransition, "cannot move from CREATED to RUN_DONE"),
    ("unknown field", ValidationError, "unknown or read-only job field 'bogus'"),
    ("read-only field", ValidationError, "unknown or read-only job field 'lease_owner'"),
    ("unknown id", NotFound, "no job with id"),
    ("not a pair", ValidationError, r"items must be a list of \[job id, fields\] pairs"),
])
def test_update_jobs_each_errors_store_nothing(client, new_jobs, snapshot, bad_item, error, message):
    a, b = new_jobs("a", "b")
    item = {"state": [b, {"state": "RUN_DONE"}], "unknown field": [b, {"bogus": 1}],
            "read-only field": [b, {"lease_owner": "me"}], "unknown id": [str(uuid.uuid4()), {"args": "q"}],
            "not a pair": [b]}[bad_item]
    before = snapshot()
    with pytest.raises(error, match=message):
        client.request("update_jobs_each", {"items": [[a, {"state": "READY"}], [a, {"args": "changed"}], item]})
    assert snapshot() == before


# -- tie_jobs ------------------------------------------------------------------
def test_tie_jobs_takes_the_oldest_untied_unfinished_jobs(client, new_jobs, new_launch):
    jobs = new_jobs("j0", "j1", "j2", "j3")
    failed, killed, finished = new_jobs("failed", "killed", "finished")
    advance(client, failed, "FAILED")
    advance(client, killed, "USER_KILLED")
    advance(client, finished, *FINISH)
    first, second, third = new_launch(), new_launch(), new_launch()
    assert client.tie_jobs(first, 2) == 2
    assert tied_to(first) == set(jobs[:2])
    assert client.tie_jobs(second, 10) == 2
    assert tied_to(second) == set(jobs[2:]) and tied_to(first) == set(jobs[:2])
    assert client.tie_jobs(third, 10) == 0
    assert {job(pk).queued_launch_id for pk in (failed, killed, finished)} == {None}


@pytest.mark.parametrize("scope, expected", [
    ({"workflow": "a"}, {"serial", "ranks", "nodes", "big", "long"}),
    ({"serial_only": True}, {"serial", "long", "other"}),
    ({"mpi_only": True}, {"ranks", "nodes", "big"}),
    ({"max_num_nodes": 2}, {"serial", "ranks", "nodes", "long", "other"}),
    ({"max_wall_time_minutes": 30}, {"serial", "ranks", "nodes", "big", "other"}),
    ({"workflow": "a", "serial_only": True, "max_wall_time_minutes": 30}, {"serial"}),
])
def test_tie_jobs_respects_its_scope(client, make_job, new_launch, scope, expected):
    shapes = {"serial": {}, "ranks": {"ranks_per_node": 4}, "nodes": {"num_nodes": 2}, "big": {"num_nodes": 8},
              "long": {"wall_time_minutes": 60}}
    for name, fields in shapes.items():
        make_job(name=name, workflow="a", **{"wall_time_minutes": 10, **fields})
    make_job(name="other", workflow="b", wall_time_minutes=10)
    launch = new_launch()
    assert client.tie_jobs(launch, 100, scope) == len(expected)
    assert set(BalsamJob.objects.filter(queued_launch_id=launch).values_list("name", flat=True)) == expected


def test_tie_jobs_refuses_an_unknown_launch_or_scope(client, new_jobs, new_launch, snapshot):
    new_jobs("a")
    launch = new_launch()
    before = snapshot()
    with pytest.raises(NotFound, match=f"no launch with id {launch + 1}"):
        client.tie_jobs(launch + 1, 10)
    with pytest.raises(ValidationError, match="bad job scope"):
        client.tie_jobs(launch, 10, {"bogus": 1})
    assert snapshot() == before


# -- end_launch ----------------------------------------------------------------
def test_end_launch_unties_only_its_unfinished_jobs(client, new_jobs, new_launch):
    open_a, open_b, done = new_jobs("open_a", "open_b", "done")
    (elsewhere,) = new_jobs("elsewhere")
    launch, other = new_launch(), new_launch()
    assert client.tie_jobs(launch, 3) == 3 and client.tie_jobs(other, 10) == 1
    advance(client, done, "FAILED")
    assert client.end_launch(launch, QueuedLaunch.FINISHED) == 2
    stored = QueuedLaunch.objects.get(pk=launch)
    assert stored.state == QueuedLaunch.FINISHED and stored.end_time is not None
    assert stored.end_time >= stored.created_at
    assert tied_to(launch) == {done} and tied_to(other) == {elsewhere}
    assert QueuedLaunch.objects.get(pk=other).state == QueuedLaunch.PENDING


def test_end_launch_refuses_a_bad_state_or_unknown_launch(client, new_jobs, new_launch, snapshot):
    new_jobs("a")
    launch = new_launch()
    client.tie_jobs(launch, 1)
    before = snapshot()
    for state in (QueuedLaunch.RUNNING, "done"):
        with pytest.raises(ValidationError, match="a launch ends finished, failed or cancelled"):
            client.end_launch(launch, state)
    with pytest.raises(NotFound, match=f"no launch with id {launch + 1}"):
        client.end_launch(launch + 1, QueuedLaunch.CANCELLED)
    assert snapshot() == before


# -- leases ----------------------------------------------------------------------
def test_a_lease_lapses_by_its_holders_expiry_not_by_the_claimers(client, new_jobs):
    held, lapsing = new_jobs("held", "lapsing")
    advance(client, held, "READY")
    advance(client, lapsing, "READY")
    assert client.claim("steady", ["READY"], 1, 180) == [held]
    assert client.claim("brief", ["READY"], 1, 0.5) == [lapsing]
    advance(client, held, "STAGED_IN", "PREPROCESSED", "RUNNING")
    time.sleep(1.0)  # both heartbeats are now older than 0.5 s; only "brief" chose so short a lease

    assert client.recover_expired(0.5) == []  # "steady"'s RUNNING job is not taken from it
    assert (job(held).state, job(held).lease_owner) == ("RUNNING", "steady")
    assert job(lapsing).lease_owner == ""  # "brief"'s lapsed lease was cleared
    assert client.claim("other", ["READY", "RUNNING"], 5, 0.5) == [lapsing]
    assert job(held).lease_owner == "steady"


def test_repeated_claims_judge_leases_at_their_own_time_with_their_own_limit_and_scope(client, new_jobs):
    """A launcher's claims reuse one compiled SELECT: each must still see its
    own time, limit and scope."""
    ids = new_jobs("a", "b", "c", "d")
    for pk in ids:
        advance(client, pk, "READY")
    scope = {"workflow": "wf"}
    assert client.claim("first", ["READY"], 1, 0.5, scope) == ids[:1]
    assert client.claim("second", ["READY"], 2, 0.5, scope) == ids[1:3]
    assert client.claim("third", ["READY"], 5, 0.5, {"workflow": "elsewhere"}) == []
    time.sleep(0.6)  # every lease above has lapsed
    assert client.claim("third", ["READY"], 5, 0.5, scope) == ids
    assert {job(pk).lease_owner for pk in ids} == {"third"}


def test_a_heartbeat_renews_the_lease_for_the_holders_expiry(client, new_jobs):
    (pk,) = new_jobs("renewed")
    advance(client, pk, "READY")
    client.claim("holder", ["READY"], 1, 0.5)
    assert client.heartbeat("holder", lease_expiry_sec=180) == 1
    time.sleep(1.0)
    assert client.claim("other", ["READY"], 1, 0.5) == []
    assert job(pk).lease_owner == "holder"


# -- launches ----------------------------------------------------------------------
@pytest.mark.parametrize("fields, fragment", [
    ({"state": "exploded"}, "a launch's state is one of"),
    ({"scheduler": "lsf"}, "unknown scheduler 'lsf'"),
    ({"nodes": 2**40}, "nodes must be between"),
    ({"wall_minutes": float("nan")}, "wall_minutes must be a finite number"),
])
def test_launch_updates_are_validated(client, new_launch, snapshot, fields, fragment):
    launch_id = new_launch()
    before = snapshot()
    with pytest.raises(ValidationError, match=fragment):
        client.update("launches", [launch_id], fields)
    assert snapshot() == before


def test_a_launcher_learns_which_of_its_jobs_were_killed_or_taken_from_it(client, new_jobs):
    """The kill check's two reads (``queries.killed_jobs``, ``queries.not_leased_by``)."""
    from balsam.core import queries

    mine, killed, taken, gone = new_jobs("mine", "killed", "taken", "gone")
    for pk in (mine, killed, taken, gone):
        advance(client, pk, "READY")
    assert sorted(client.claim("me", ["READY"], 4, 0.5)) == sorted([mine, killed, taken, gone])
    client.kill([killed])
    time.sleep(0.6)  # every lease of "me" has lapsed: "other" may take one
    assert client.claim("other", ["READY"], 1, 180) in ([mine], [taken], [gone])
    stolen = str(BalsamJob.objects.get(lease_owner="other").pk)

    assert queries.killed_jobs("me") == [uuid.UUID(killed)]
    assert queries.killed_jobs("other") == []
    ids = [uuid.UUID(pk) for pk in (mine, killed, taken, gone)] + [uuid.uuid4()]  # an id no job has: not reported
    assert queries.not_leased_by("me", ids) == [uuid.UUID(stolen)]


def test_claimable_ids_compiled_every_time_finds_what_the_kept_plan_finds(client, new_jobs):
    """A scope JSON cannot key (ids as UUIDs) is compiled every time; the
    answer is the same as through the kept plan."""
    from django.utils import timezone

    from balsam.core import queries, sql

    a, b, c = new_jobs("a", "b", "c")
    for pk in (a, b, c):
        advance(client, pk, "READY")
    kept = queries.claimable_ids(["READY"], {"job_ids": [c, a]}, timezone.now(), 180, 5)
    compiled = queries.claimable_ids(["READY"], {"job_ids": [uuid.UUID(c), uuid.UUID(a)]}, timezone.now(), 180, 5)
    assert kept == compiled == sql.pk_params([uuid.UUID(a), uuid.UUID(c)])  # in run order, as stored
    assert queries.claimable_ids(["READY"], {"job_ids": [c, a]}, timezone.now(), 180, 1) == kept[:1]
