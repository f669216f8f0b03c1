"""The API's lookups and value parsing (its writes are in
tests/integration/test_api_writes.py, run with both write clients)."""

import uuid

import pytest

from balsam import api
from balsam.core.models import BalsamJob
from balsam.exceptions import AmbiguousId, NotFound, ValidationError


# Kept here: the jobs are only set-up; the asserts are on id/name resolution (reads).
def test_get_job_by_prefix_with_or_without_dashes(db, make_job):
    job = make_job(name="x", job_id=uuid.UUID("1234abcd-0000-4000-8000-000000000000"))
    make_job(name="y", job_id=uuid.UUID("1234abce-0000-4000-8000-000000000000"))
    assert api.get_job("1234abcd") == job
    assert api.get_job("1234ABCD-0000") == job
    assert api.get_job(str(job.pk)) == job
    assert api.get_job("x") == job
    with pytest.raises(AmbiguousId, match=r"job id or name '1234' is ambiguous: it matches \[x \| 1234abcd-0000-4000-8000-000000000000\], \[y"):
        api.get_job("1234")
    with pytest.raises(NotFound, match="no job with id or name 'zzz'"):
        api.get_job("zzz")


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value", "1ABC=x", "A B=x"])
def test_parse_env_refuses_malformed_pairs(bad):
    with pytest.raises(ValidationError, match="--env expects VARIABLE=value"):
        api.parse_env([bad])


def test_parse_env_keeps_equals_and_colons_in_values():
    assert api.parse_env(["PATHS=/a:/b", "EXPR=x=y"]) == {"PATHS": "/a:/b", "EXPR": "x=y"}


@pytest.mark.parametrize(
    "attr, text, expected",
    [
        ("auto_timeout_retry", "False", False),
        ("auto_timeout_retry", "yes", True),
        ("num_nodes", "4", 4),
        ("environ_vars", '{"A": "1"}', {"A": "1"}),
        ("args", "False", "False"),
    ],
)
def test_parse_value_by_field_type(db, attr, text, expected):
    assert api.parse_value(BalsamJob, attr, text) == expected


def test_resolve_command_runs_python_scripts_with_this_python(tmp_path):
    import sys

    script = tmp_path / "app.py"
    script.write_text("print(1)")
    assert api.resolve_command(f"{script} --n 3") == f"{sys.executable} {script} --n 3"
    with pytest.raises(ValidationError, match="is not on PATH"):
        api.resolve_command("no-such-program-xyz")


def test_relative_executables_become_absolute(tmp_path, monkeypatch):
    program = tmp_path / "prog"
    program.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    assert api.resolve_command("./prog -x") == f"{program} -x"
