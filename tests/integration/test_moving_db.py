"""A DB directory moved or copied with ``mv`` / ``cp -a`` keeps working at its
new path (issue #15, item 6), on both backends: nothing stores the old
absolute path, a stale or foreign address file is cleared by the next
``balsam dbserver``, and a copy never talks to the original's server (its
SQLite file, or its PostgreSQL cluster directory, has an inode of its own).

PostgreSQL runs as a non-root owner (``balsam-mv``, made here when the tests
run as root), in a directory under /tmp that user may enter."""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

from tests import unix_users
from tests.conftest import BALSAM
from tests.fixtures.postgres import BACKENDS, ready_owner
from tests.helpers import db_rows, wait_until
from balsam.wire.serverinfo import ServerInfo, is_running

MOVER = unix_users.named("balsam-mv")


class SqliteDBs:
    """SQLite DBs copied from the session's template, run by this process's user."""

    db_type = "sqlite3"

    def __init__(self, template_db, top):
        self.template_db, self.top = template_db, top

    def balsam(self, db, *args):
        return subprocess.run([BALSAM, *map(str, args)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "BALSAM_DB_PATH": str(db)})

    def make(self, path):
        shutil.copytree(self.template_db, path)
        _ok(self.balsam(path, "app", "--name", "touch", "--executable", "touch made-by-job"))
        return path


class PostgresDBs:
    """PostgreSQL DBs made by ``balsam init --db-type postgres``, run by a non-root owner."""

    db_type = "postgres"

    def __init__(self, owner, top):
        self.owner, self.top = owner, top

    def balsam(self, db, *args):
        return self.owner.balsam(*args, env={"BALSAM_DB_PATH": str(db)})

    def make(self, path):
        _ok(self.balsam(path, "init", path, "--db-type", "postgres"))
        _ok(self.balsam(path, "dbserver", "--path", path, "--host", "127.0.0.1"))  # the app is added through it
        try:
            _ok(self.balsam(path, "app", "--name", "touch", "--executable", "touch made-by-job"))
        finally:
            _ok(self.balsam(path, "dbserver", "--stop", "--path", path))
        return path


@pytest.fixture(scope="module")
def mover():
    """The PostgreSQL DBs' owner (removed after the module, when made here)."""
    owner = ready_owner(MOVER)
    yield owner
    owner.teardown()


@pytest.fixture(params=BACKENDS)
def dbs(request, template_db, tmp_path):
    if request.param == "sqlite3":
        yield SqliteDBs(template_db, tmp_path)
        return
    owner = request.getfixturevalue("mover")
    top = Path(tempfile.mkdtemp(prefix="balsam-mv-", dir="/tmp"))
    top.chmod(0o755)
    owner.chown(top)
    try:
        yield PostgresDBs(owner, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _ok(result):
    assert result.returncode == 0, result.stderr
    return result


def _add_and_run(dbs, db, name):
    _ok(dbs.balsam(db, "job", "--name", name, "--workflow", "mv", "--application", "touch", "--yes"))
    _ok(dbs.balsam(db, "launcher", "--consume-all", "--until-idle"))
    assert db_rows(db, f"SELECT state FROM balsam_job WHERE name = '{name}'") == [("JOB_FINISHED",)]
    workdir = db_rows(db, f"SELECT workdir FROM balsam_job WHERE name = '{name}'")[0][0]
    assert (db / "data" / workdir / "made-by-job").exists()  # under the new path, not the old one


def _move(old, new):
    subprocess.run(["mv", str(old), str(new)], check=True)


def test_a_moved_db_works_at_its_new_path_after_its_server_crashed(dbs):
    old = dbs.make(dbs.top / "old")
    _ok(dbs.balsam(old, "dbserver", "--path", old, "--host", "127.0.0.1"))
    _add_and_run(dbs, old, "before-move")
    info = ServerInfo(old).read()
    server = psutil.Process(info["server_pid"])
    doomed = [server, *server.children(recursive=True)]  # PostgreSQL's backends too
    for pid in (info["watchdog_pid"], info["server_pid"]):  # a crash: the address stays posted
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(is_running(p.pid) for p in doomed) and not is_running(info["watchdog_pid"]), 30,
               "the kill")
    new = dbs.top / "moved"
    _move(old, new)
    try:
        _ok(dbs.balsam(new, "dbserver", "--path", new, "--host", "127.0.0.1"))  # the stale address is replaced
        assert ServerInfo(new).read()["db_path"] == str(new)
        _add_and_run(dbs, new, "after-move")
        assert "before-move" in _ok(dbs.balsam(new, "ls")).stdout
    finally:
        dbs.balsam(new, "dbserver", "--stop", "--path", new)


def test_a_copy_made_while_the_server_runs_gets_a_server_of_its_own(dbs):
    original = dbs.make(dbs.top / "original")
    copy = dbs.top / "copy"
    _ok(dbs.balsam(original, "dbserver", "--path", original, "--host", "127.0.0.1"))
    try:
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        if dbs.db_type == "postgres":  # until started, the copy refuses the original's server: one line
            refused = dbs.balsam(copy, "ls")
            assert refused.returncode != 0 and "points at the server of another DB" in refused.stderr, refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
        started = _ok(dbs.balsam(copy, "dbserver", "--path", copy, "--host", "127.0.0.1"))
        assert "serving at" in started.stdout
        try:
            _add_and_run(dbs, copy, "in-copy")
            assert db_rows(original, "SELECT count(*) FROM balsam_job WHERE name = 'in-copy'") == [(0,)]
            assert _ok(dbs.balsam(original, "dbserver", "--status", "--path", original)).stdout
            assert ServerInfo(copy).read()["server_pid"] != ServerInfo(original).read()["server_pid"]
            assert ServerInfo(copy).read()["address"] != ServerInfo(original).read()["address"]
            identity = "SELECT db_id FROM balsam_db_identity"
            assert db_rows(copy, identity) != db_rows(original, identity)  # a DB of its own, not a twin
        finally:
            dbs.balsam(copy, "dbserver", "--stop", "--path", copy)
    finally:
        dbs.balsam(original, "dbserver", "--stop", "--path", original)


def test_a_moved_stopped_db_works_at_its_new_path(dbs):
    old = dbs.make(dbs.top / "old")
    if dbs.db_type == "sqlite3":
        _add_and_run(dbs, old, "before-move")
    new = dbs.top / "elsewhere" / "db"
    new.parent.mkdir()
    if dbs.db_type == "postgres":
        dbs.owner.chown(new.parent)
    _move(old, new)
    if dbs.db_type == "sqlite3":  # no server needed
        _add_and_run(dbs, new, "after-move")
        return
    _ok(dbs.balsam(new, "dbserver", "--path", new, "--host", "127.0.0.1"))  # the cluster starts at its new place
    try:
        _add_and_run(dbs, new, "after-move")
        assert str(old) not in (new / "balsamdb" / "postgresql.conf").read_text()
    finally:
        _ok(dbs.balsam(new, "dbserver", "--stop", "--path", new))
