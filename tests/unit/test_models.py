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
