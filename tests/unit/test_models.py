"""Model helpers that only read (the model writes are in
tests/integration/test_model_writes.py, run with both write clients)."""

from pathlib import Path

import pytest


# Kept here: the job is only set-up; the asserts are on read-only helpers.
def test_compat_helpers(db, make_job):
    job = make_job(name="h", num_nodes=2, ranks_per_node=4)
    assert job.num_ranks == 8
    assert job.cute_id == f"[h | {job.job_id.hex[:8]}]"
    assert job.get_application().name == "hello"
    Path(job.create_working_path(), "out.txt").write_text("42")
    assert job.read_file_in_workdir("out.txt") == "42"


@pytest.mark.both_backends
def test_job_rows_read_what_the_model_reads(db, make_job, tmp_path):
    """A launcher works from ``JobRow``s: each attribute it reads must mean
    what the model's does, on either backend's driver types."""
    from balsam.core import queries
    from balsam.core.models import BalsamJob
    from balsam.core.models.job_rows import JOB_ROW_FIELDS

    plain = make_job(name="plain")
    rich = make_job(name="rich", environ_vars={"A": "1", "B": "x y"}, post_error_handler=True,
                    auto_timeout_retry=False, user_workdir=str(tmp_path / "mine"), args="--n 3",
                    wall_time_minutes=1.5, node_packing_count=4)
    assert [row.pk for row in queries.job_rows([rich.pk, str(plain.pk)])] == [rich.pk, plain.pk]  # in the order asked
    rows = {row.pk: row for row in queries.job_rows([plain.pk, str(rich.pk)])}
    assert list(rows) == [plain.pk, rich.pk]
    for job in (plain, rich):
        model, row = BalsamJob.objects.get(pk=job.pk), rows[job.pk]
        for name in JOB_ROW_FIELDS:
            assert getattr(row, name) == getattr(model, name), name
            assert type(getattr(row, name)) is type(getattr(model, name)), name
        assert row.working_directory == model.working_directory
        assert row.cute_id == model.cute_id
    assert rows[rich.pk].environ_vars == {"A": "1", "B": "x y"}
    child = make_job(name="child", parents=[plain.pk])
    assert [row.has_parents for row in queries.job_rows([plain.pk, child.pk])] == [False, True]
    assert rows[rich.pk].working_directory == str((tmp_path / "mine").resolve())


def test_working_directory_joins_plain_workdirs_as_path_would(db):
    """The launcher's shortcut for the directories Balsam names must give
    what ``Path`` gives, and odd stored values must still go through ``Path``."""
    from django.conf import settings

    from balsam.core.models.jobs import working_directory

    root = Path(settings.BALSAM_DB_PATH) / "data"
    for workdir in ("wf/job_1a2b3c4d", "job_1a2b3c4d", "w-f.x+y/n.a.me_12", "a//b", "a/./b", "./a", "a/", "a/../b",
                    ".hidden/x", "/abs/olute"):
        assert working_directory(workdir, "") == str(root / workdir), workdir
    assert working_directory("", "") == ""


def test_a_new_model_object_is_what_djangos_own_init_makes(db):
    """``BalsamJob(field=value, ...)`` fills its defaults from a per-class
    plan (Django's per-field ``__init__`` was a third of the cost of
    submitting jobs with ``bulk_create``): the object must be the one
    Django's ``__init__`` makes, and anything but plain field keywords must
    still get Django's handling."""
    from django.db import models

    from balsam.core.models import ApplicationDefinition, BalsamJob, QueuedLaunch

    def djangos(cls, **fields):
        obj = cls.__new__(cls)
        models.Model.__init__(obj, **fields)
        return obj

    def fields(obj):
        return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}

    for cls, given in [(BalsamJob, dict(name="a", workflow="w", application="app", num_nodes=3, args="--x",
                                        environ_vars={"A": "1"}, wait_for_parents=False, queued_launch_id=None)),
                       (BalsamJob, {}),
                       (ApplicationDefinition, dict(name="app", executable="/bin/true"))]:
        fast, slow = cls(**given), djangos(cls, **given)
        mine, theirs = fields(fast), fields(slow)
        for name in ("job_id", "created_at", "state_changed_at", "id"):  # made per object
            if name in mine:
                assert type(mine.pop(name)) is type(theirs.pop(name)), name
        assert mine == theirs
        assert fast._state.adding and fast._state.db is None
    # Defaults made per object are not shared between objects.
    one, two = BalsamJob(name="one"), BalsamJob(name="two")
    assert one.job_id != two.job_id and one.data is not two.data
    # A related object, a property and an unknown name take Django's path.
    launch = QueuedLaunch(id=7)
    assert BalsamJob(name="x", queued_launch=launch).queued_launch_id == 7
    with pytest.raises(TypeError, match="unexpected keyword"):
        BalsamJob(name="x", no_such_field=1)


def test_id_text_is_the_canonical_text_of_a_stored_id():
    """A claim answers with ids as text made from the stored form (no UUID per job)."""
    import uuid

    from balsam.core.json_values import id_text

    for pk in (uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1)):
        assert id_text(pk.hex) == str(pk)  # SQLite's 32 hex digits
        assert id_text(pk) == str(pk)  # PostgreSQL's driver returns UUIDs
