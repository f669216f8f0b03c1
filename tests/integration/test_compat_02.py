"""What Balsam 0.2's own tests and tutorials expect (issue #17): the defects
they exposed, and the compatibility of the CLI and of job histories."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import BALSAM
from tests.helpers import db_rows
from tests.integration.test_launcher import run_launcher, state

from balsam import api


def test_a_virtualenv_python_given_as_an_app_keeps_its_packages(db, tmp_path, balsam_cmd):
    venv_python = Path(sys.executable).with_name("python")
    assert venv_python.is_symlink()  # a venv's interpreter links to the base one, which lacks the venv's packages
    script = tmp_path / "uses_balsam.py"
    script.write_text("import balsam\nprint('balsam from', balsam.__file__)\n")
    added = balsam_cmd("app", "--name", "venv-py", "--executable", f"{venv_python} {script}")
    assert added.returncode == 0, added.stderr
    stored = db_rows(db, "SELECT executable FROM balsam_app WHERE name = 'venv-py'")
    assert stored == [(f"{venv_python} {script}",)]  # as typed, not the symlink's target
    assert f"{venv_python} {script}" in balsam_cmd("ls", "apps").stdout
    job = api.add_job(name="imports", workflow="w", application="venv-py")
    run_launcher(db, "--consume-all")
    assert state(job) == "JOB_FINISHED", (Path(job.working_directory) / "imports.out").read_text()
    assert "balsam from" in (Path(job.working_directory) / "imports.out").read_text()


def test_a_relative_path_to_a_symlinked_program_becomes_absolute_but_stays_the_link(tmp_path, monkeypatch):
    target = tmp_path / "real-prog"
    target.write_text("#!/bin/sh\n")
    (tmp_path / "link-prog").symlink_to(target)
    monkeypatch.chdir(tmp_path)
    assert api.resolve_command("./link-prog -x") == f"{tmp_path / 'link-prog'} -x"
