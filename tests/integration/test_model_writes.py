"""Model writes (save, update, delete, transitions, edges), run once with the
direct client and once through a live dbserver (the `writer` fixture)."""

import uuid
from pathlib import Path

import pytest

from balsam.core.models import BalsamJob, JobDependency, JobEvent
from balsam.exceptions import BalsamError, InvalidStateTransition, ValidationError


def test_working_directory_is_under_data_workflow(db, writer, make_job):
    job = make_job(name="my sim", workflow="prod")
    assert job.workdir == f"prod/my_sim_{job.job_id.hex[:8]}"
    assert job.working_directory == str(db / "data" / "prod" / f"my_sim_{job.job_id.hex[:8]}")
    assert Path(job.working_directory).is_absolute()


def test_unsafe_names_cannot_escape_the_data_directory(db, writer, make_job):
    job = make_job(name="../../etc", workflow="../x")
    assert ".." not in job.workdir.split("/")
    assert Path(job.working_directory).resolve().is_relative_to(db / "data")


def test_user_workdir_wins(writer, make_job, tmp_path):
    job = make_job(user_workdir=str(tmp_path / "mine"))
    assert job.working_directory == str(tmp_path / "mine")


def test_clashing_directory_names_get_more_id_characters(writer, make_job):
    first = make_job(name="same", job_id=uuid.UUID("abcdef01" + "0" * 24))
    second = make_job(name="same", job_id=uuid.UUID("abcdef01" + "1" * 24))
    third = make_job(name="same", job_id=uuid.UUID("abcdef01" + "12" + "0" * 22))
    assert first.workdir == "wf/same_abcdef01"
    assert second.workdir == "wf/same_abcdef011"
    assert third.workdir == "wf/same_abcdef0112"


def test_clash_inside_one_bulk_insert(writer, make_app):
    make_app()
    jobs = [BalsamJob(name="n", workflow="w", application="hello", job_id=uuid.UUID("12345678" + c * 24)) for c in "ab"]
    BalsamJob.objects.bulk_create(jobs)
    assert sorted(BalsamJob.objects.values_list("workdir", flat=True)) == ["w/n_12345678", "w/n_12345678b"]


def test_save_sends_only_changed_fields(writer, make_job):
    job = make_job(args="a")
    stale = BalsamJob.objects.get(pk=job.pk)
    job.args = "b"
    job.save()
    stale.num_nodes = 4
    stale.save()  # must not put args back to "a"
    fresh = BalsamJob.objects.get(pk=job.pk)
    assert (fresh.args, fresh.num_nodes) == ("b", 4)


def test_update_state_records_an_event(writer, make_job):
    job = make_job()
    job.update_state("READY", "no parents")
    assert job.state == "READY"
    event = JobEvent.objects.get(job=job)
    assert (event.from_state, event.to_state, event.message) == ("CREATED", "READY", "no parents")
    assert event.timestamp.utcoffset().total_seconds() == 0
    assert [h[2] for h in BalsamJob.objects.get(pk=job.pk).history()] == ["CREATED", "READY"]


def test_illegal_transition_raises_and_records_nothing(writer, make_job):
    job = make_job()
    with pytest.raises(InvalidStateTransition, match="cannot move from CREATED to RUN_DONE"):
        job.update_state("RUN_DONE")
    assert BalsamJob.objects.get(pk=job.pk).state == "CREATED"
    assert not JobEvent.objects.exists()


def test_transition_is_checked_against_the_stored_state(writer, make_job):
    job = make_job()
    stale = BalsamJob.objects.get(pk=job.pk)
    job.update_state("USER_KILLED")
    with pytest.raises(InvalidStateTransition, match="USER_KILLED is final"):
        stale.update_state("FAILED")
    assert BalsamJob.objects.get(pk=job.pk).state == "USER_KILLED"


def test_state_changed_by_save_goes_through_the_state_machine(writer, make_job):
    job = make_job()
    job.state = "READY"
    job.save()
    assert JobEvent.objects.get(job=job).to_state == "READY"
    job.state = "JOB_FINISHED"
    with pytest.raises(InvalidStateTransition):
        job.save()
    assert BalsamJob.objects.get(pk=job.pk).state == "READY"


def test_update_state_on_an_unsaved_job_saves_it_first(writer, make_app):
    make_app()
    job = BalsamJob(name="new", application="hello")
    job.update_state("READY")
    assert BalsamJob.objects.get(pk=job.pk).state == "READY"


def test_queryset_update_is_validated(writer, make_job):
    make_job(name="a")
    make_job(name="b")
    with pytest.raises(ValidationError, match="num_nodes must be at least 1"):
        BalsamJob.objects.all().update(num_nodes=0)
    assert set(BalsamJob.objects.values_list("num_nodes", flat=True)) == {1}
    assert BalsamJob.objects.filter(name="a").update(num_nodes=3, environ_vars={"X": 1}) == 1
    job = BalsamJob.objects.get(name="a")
    assert (job.num_nodes, job.environ_vars) == (3, {"X": "1"})


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"application": "nope"}, "application 'nope' does not exist"),
        ({"num_nodes": -2}, "num_nodes must be at least 1"),
        ({"wall_time_minutes": -1}, "wall_time_minutes must not be negative"),
        ({"environ_vars": "A=1:B=2"}, "environ_vars must be an object"),
        ({"auto_timeout_retry": "maybe"}, "auto_timeout_retry must be true or false"),
        ({"name": 5}, "name must be text"),
        ({"name": "x" * 300}, "name is longer than 255"),
    ],
)
def test_invalid_fields_are_refused(writer, make_app, fields, message):
    make_app()
    row = {"name": "j", "application": "hello", **fields}
    with pytest.raises(ValidationError, match=message):
        BalsamJob(**row).save()
    assert not BalsamJob.objects.exists()


def test_queryset_delete_removes_events_and_edges(writer, make_job):
    parent, child = make_job(name="p"), make_job(name="c")
    child.parents.add(parent)
    parent.update_state("READY")
    count, _ = BalsamJob.objects.filter(name="p").delete()
    assert count == 1
    assert not JobEvent.objects.exists() and not JobDependency.objects.exists()
    assert list(BalsamJob.objects.values_list("name", flat=True)) == ["c"]


def test_bulk_create_goes_through_the_write_path(writer, make_app):
    make_app()
    jobs = BalsamJob.objects.bulk_create([BalsamJob(name=f"j{i}", application="hello") for i in range(3)])
    assert all(j.workdir for j in jobs)
    assert BalsamJob.objects.count() == 3


def test_related_manager_add_checks_cycles(writer, make_job):
    a, b = make_job(name="a"), make_job(name="b")
    b.parents.add(a)
    assert list(a.children.all()) == [b]
    with pytest.raises(BalsamError, match="would create a cycle"):
        a.parents.add(b)
    assert JobDependency.objects.count() == 1
    b.parents.remove(a)
    assert not JobDependency.objects.exists()


def test_events_are_append_only(writer, make_job):
    job = make_job()
    job.update_state("READY")
    with pytest.raises(BalsamError, match="append-only"):
        JobEvent.objects.all().update(message="rewritten")
    with pytest.raises(BalsamError, match="append-only"):
        JobEvent.objects.all().delete()
    with pytest.raises(BalsamError):
        JobEvent(job=job, from_state="READY", to_state="FAILED").save()
    assert JobEvent.objects.get().message == ""


def test_application_rename_keeps_jobs_pointing_at_it(writer, make_job):
    from balsam import api

    job = make_job(application="sim")
    api.modify_app("sim", "name", "sim2")
    assert BalsamJob.objects.get(pk=job.pk).application == "sim2"
