"""The write parts of the API (add_job, dependencies, kills, spawn_child,
make_dummies), run once with the direct client and once through a live
dbserver (the `writer` fixture)."""

import pytest

from balsam import api
from balsam.core.models import BalsamJob, JobDependency
from balsam.exceptions import DependencyError, InvalidStateTransition, ValidationError

pytestmark = pytest.mark.both_backends


def states_of(*jobs):
    return [BalsamJob.objects.get(pk=j.pk).state for j in jobs]


def advance(job, *path):
    for state in path:
        job.update_state(state)


def test_add_job_refuses_unknown_fields_and_stores_nothing(writer, make_app):
    make_app()
    with pytest.raises(ValidationError, match="unknown job field 'walltime_minutes'; job fields: .*wall_time_minutes"):
        api.add_job(name="x", application="hello", walltime_minutes=5)
    assert not BalsamJob.objects.exists()


def test_add_job_with_save_false_is_not_stored(writer, make_app):
    make_app()
    job = api.add_job(save=False, name="x", application="hello")
    assert not BalsamJob.objects.exists()
    job.save()
    assert BalsamJob.objects.get().name == "x"


def test_add_job_with_parents(writer, make_job):
    p1, p2 = make_job(name="p1"), make_job(name="p2")
    child = make_job(name="c", parents=[p1, str(p2.pk)])
    assert set(child.parents.all()) == {p1, p2}


def test_dependency_refusals_change_nothing(writer, make_job):
    a, b, c = make_job(name="a"), make_job(name="b"), make_job(name="c")
    api.add_dependency(a, b)
    api.add_dependency(b, c)
    edges = set(JobDependency.objects.values_list("parent_id", "child_id"))
    with pytest.raises(DependencyError, match="already depends on"):
        api.add_dependency(a, b)
    with pytest.raises(DependencyError, match="would create a cycle"):
        api.add_dependency(c, a)
    with pytest.raises(DependencyError, match="cannot depend on itself"):
        api.add_dependency(a, a)
    assert set(JobDependency.objects.values_list("parent_id", "child_id")) == edges


def test_parents_only_for_jobs_that_have_not_started(writer, make_job):
    a, b = make_job(name="a"), make_job(name="b")
    b.update_state("READY")
    with pytest.raises(DependencyError, match="is READY; parents can only be added"):
        api.add_dependency(a, b)


def test_recursive_kill_spares_other_branches_and_finished_jobs(writer, make_job):
    # A -> B -> C, A -> F (finished); D -> E untouched
    a, b, c, d, e, f = (make_job(name=n) for n in "abcdef")
    for parent, child in ((a, b), (b, c), (d, e), (a, f)):
        api.add_dependency(parent, child)
    advance(f, "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
    result = api.kill(a, recursive=True)
    assert sorted(result["killed"]) == sorted(str(j.pk) for j in (a, b, c))
    assert states_of(a, b, c, d, e, f) == ["USER_KILLED"] * 3 + ["CREATED", "CREATED", "JOB_FINISHED"]


def test_kill_without_recursion_settles_waiting_children(writer, make_job):
    a, b, c = make_job(name="a"), make_job(name="b"), make_job(name="c")
    api.add_dependency(a, b)
    api.add_dependency(b, c)
    api.kill(a, recursive=False)
    assert states_of(a, b, c) == ["USER_KILLED", "PARENT_KILLED", "PARENT_KILLED"]
    event = BalsamJob.objects.get(pk=b.pk).events.get()
    assert event.message == f"parent {a.cute_id} cannot finish"


def test_failed_parent_settles_its_waiting_children(writer, make_job):
    parent, child, other = make_job(name="p"), make_job(name="c"), make_job(name="o")
    api.add_dependency(parent, child)
    child.update_state("AWAITING_PARENTS")
    advance(parent, "READY", "STAGED_IN", "FAILED")
    assert states_of(parent, child, other) == ["FAILED", "PARENT_KILLED", "CREATED"]


def test_child_added_to_a_failed_parent_is_settled_at_once(writer, make_job):
    parent = make_job(name="p")
    advance(parent, "READY", "FAILED")
    child = make_job(name="c")
    api.add_dependency(parent, child)
    assert states_of(child) == ["PARENT_KILLED"]


def test_user_may_retry_a_failed_job_but_killed_is_final(writer, make_job):
    job = make_job()
    advance(job, "READY", "FAILED", "RESTART_READY")
    assert states_of(job) == ["RESTART_READY"]
    api.kill(job)
    with pytest.raises(InvalidStateTransition, match="is final"):
        job.update_state("RESTART_READY")


def test_spawn_child_clone_copies_fields_and_links_parents(writer, make_job):
    grand = make_job(name="g")
    parent = make_job(name="p", args="--x 1", num_nodes=2, environ_vars={"A": "1"}, parents=[grand])
    child = api.spawn_child(parent, clone=True, name="c")
    assert (child.args, child.num_nodes, child.environ_vars, child.workflow) == ("--x 1", 2, {"A": "1"}, "wf")
    assert set(child.parents.all()) == {grand, parent}
    assert child.workdir != parent.workdir
    plain = api.spawn_child(parent, name="d", application="hello")
    assert (plain.args, plain.workflow) == ("", "wf")


def test_make_dummies(writer):
    ids = api.make_dummies(25)
    assert len(ids) == BalsamJob.objects.filter(workflow="dummy").count() == 25
    assert api.state_counts() == {"CREATED": 25}


def test_children_that_do_not_wait_are_not_settled(writer, make_job):
    parent = make_job(name="p")
    eager = make_job(name="eager", parents=[parent], wait_for_parents=False)
    waiting = make_job(name="waiting", parents=[parent])
    api.kill(parent, recursive=False)
    assert states_of(eager, waiting) == ["CREATED", "PARENT_KILLED"]


@pytest.mark.parametrize("depth", [500, 100_000])
def test_too_deeply_nested_data_is_refused_and_nothing_is_stored(writer, make_app, snapshot, depth):
    # A call that raises must not have written: a caller retrying it would add the job twice.
    make_app()
    deep = []
    for _ in range(depth):
        deep = [deep]
    before = snapshot()
    with pytest.raises(ValidationError, match="nests"):
        api.add_job(name="deep", workflow="wf", application="hello", data=deep)
    assert snapshot() == before
