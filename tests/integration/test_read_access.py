"""Another UNIX user who may only read a DB (hardening issue, item 8).

The reader is a real second user (``balsam-reader``, made here with
``useradd``: root only; required under CI=true). It runs Balsam with an
interpreter it can reach (the test's own venv may link into root's home) and
this checkout's packages on ``PYTHONPATH``.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import unix_users
from tests.conftest import BALSAM
from tests.helpers import db_rows

READER = unix_users.named("balsam-reader")


@pytest.fixture(scope="module")
def reader():
    """Runs ``balsam ARGS`` as the second user; returns the CompletedProcess."""
    unix_users.require_root()
    home = unix_users.make_user(READER)
    python = unix_users.python_for(READER)
    path = unix_users.pythonpath()

    def run(db, *args):
        return unix_users.run_as(READER, [python, "-m", "balsam.cli.main", *map(str, args)],
                                 env={"PYTHONPATH": path, "BALSAM_DB_PATH": str(db), "HOME": str(home)})

    yield run
    unix_users.remove_user(READER)


@pytest.fixture
def owned_db(template_db):
    """A DB of root's in a directory every user may enter (pytest's own tmp dirs are root-only)."""
    top = Path(tempfile.mkdtemp(prefix="balsam-shared-", dir="/tmp"))
    top.chmod(0o755)
    path = top / "balsamdb"
    shutil.copytree(template_db, path)

    def owner(*args):
        return subprocess.run([BALSAM, *map(str, args)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "BALSAM_DB_PATH": str(path)})

    assert owner("make_dummies", 3).returncode == 0
    yield path, owner
    owner("dbserver", "--stop")
    shutil.rmtree(top, ignore_errors=True)


def _tree(path):
    return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*") if p.name != "cli.log")


def test_a_reader_lists_a_db_it_may_not_write_and_leaves_no_file_behind(reader, owned_db):
    db, _ = owned_db
    before = _tree(db)
    listing = reader(db, "ls")
    assert listing.returncode == 0, listing.stderr
    assert [line.split()[1] for line in listing.stdout.splitlines()[2:]] == ["dummy0", "dummy1", "dummy2"]
    which = reader(db, "which")
    assert which.returncode == 0, which.stderr
    assert "read only (the DB belongs to root" in which.stdout
    for args in (("ls", "--json"), ("ls", "--tree"), ("ls", "--by-states"), ("ls", "apps")):
        result = reader(db, *args)
        assert result.returncode == 0 and result.stderr == "", (args, result.stderr)
    assert _tree(db) == before


def test_a_reader_sees_what_the_owner_writes_through_a_running_dbserver(reader, owned_db):
    db, owner = owned_db
    assert owner("dbserver", "--host", "127.0.0.1").returncode == 0
    assert owner("make_dummies", 2).returncode == 0  # the -wal and -shm files are in use now
    counts = reader(db, "ls", "--by-states")
    assert counts.returncode == 0, counts.stderr
    assert "total    5" in counts.stdout


def test_a_reader_that_tries_to_write_gets_one_line_naming_the_owner_and_nothing_changes(reader, owned_db):
    db, owner = owned_db
    rows_before = db_rows(db, "SELECT job_id, state FROM balsam_job ORDER BY job_id")
    job_id = rows_before[0][0]
    attempts = [
        ("job", "--name", "x", "--workflow", "w", "--application", "dummy", "--yes"),
        ("modify", "jobs", job_id, "--attr", "num_nodes", "--value", "2"),
        ("kill", job_id),
        ("make_dummies", "1"),
        ("init", db),
        ("dbserver", "--reset"),
    ]
    for args in attempts:
        result = reader(db, *args)
        assert result.returncode != 0, args
        assert result.stderr.count("\n") == 1 and "unexpected" not in result.stderr, (args, result.stderr)
        assert f"belongs to root, and you ({READER}) may only read it" in result.stderr, (args, result.stderr)
        assert "Job [" not in result.stdout  # nothing printed as if it were about to be added
    assert db_rows(db, "SELECT job_id, state FROM balsam_job ORDER BY job_id") == rows_before

    assert owner("dbserver", "--host", "127.0.0.1").returncode == 0
    stop = reader(db, "dbserver", "--stop")
    assert stop.returncode != 0
    assert stop.stderr.strip() == (f"Error: cannot stop its dbserver: {db} belongs to root, and you ({READER}) "
                                   "may only read it; ask its owner")
    status = owner("dbserver", "--status")
    assert status.returncode == 0 and "server pid:" in status.stdout, status.stdout + status.stderr
