"""A DB directory moved or copied with ``mv`` / ``cp -a`` keeps working at its
new path (issue #15, item 6): nothing stores the old absolute path, and a stale
or foreign address file is cleared by the next ``balsam dbserver``."""

import os
import shutil
import signal
import subprocess

from tests.conftest import BALSAM
from tests.helpers import db_rows, wait_until
from balsam.wire.serverinfo import ServerInfo, is_running


def _balsam(db, *args):
    return subprocess.run([BALSAM, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BALSAM_DB_PATH": str(db)})


def _ok(result):
    assert result.returncode == 0, result.stderr
    return result


def _add_and_run(db, name):
    _ok(_balsam(db, "job", "--name", name, "--workflow", "mv", "--application", "touch", "--yes"))
    _ok(_balsam(db, "launcher", "--consume-all", "--until-idle"))
    assert db_rows(db, f"SELECT state FROM balsam_job WHERE name = '{name}'") == [("JOB_FINISHED",)]
    workdir = db_rows(db, f"SELECT workdir FROM balsam_job WHERE name = '{name}'")[0][0]
    assert (db / "data" / workdir / "made-by-job").exists()  # under the new path, not the old one


def _make_db(template_db, path):
    shutil.copytree(template_db, path)
    _ok(_balsam(path, "app", "--name", "touch", "--executable", "touch made-by-job"))
    return path


def test_a_moved_db_works_at_its_new_path_after_its_server_crashed(template_db, tmp_path):
    old = _make_db(template_db, tmp_path / "old")
    _ok(_balsam(old, "dbserver", "--path", old, "--host", "127.0.0.1"))
    _add_and_run(old, "before-move")
    info = ServerInfo(old).read()
    for pid in (info["watchdog_pid"], info["server_pid"]):  # a crash: the address stays posted
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not is_running(info["server_pid"]) and not is_running(info["watchdog_pid"]), 10, "the kill")
    new = tmp_path / "moved"
    subprocess.run(["mv", str(old), str(new)], check=True)
    try:
        _ok(_balsam(new, "dbserver", "--path", new, "--host", "127.0.0.1"))  # the stale address is replaced
        assert ServerInfo(new).read()["db_path"] == str(new)
        _add_and_run(new, "after-move")
        assert "before-move" in _ok(_balsam(new, "ls")).stdout
    finally:
        _balsam(new, "dbserver", "--stop", "--path", new)


def test_a_copy_made_while_the_server_runs_gets_a_server_of_its_own(template_db, tmp_path):
    original = _make_db(template_db, tmp_path / "original")
    copy = tmp_path / "copy"
    _ok(_balsam(original, "dbserver", "--path", original, "--host", "127.0.0.1"))
    try:
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        started = _ok(_balsam(copy, "dbserver", "--path", copy, "--host", "127.0.0.1"))
        assert "serving at" in started.stdout
        try:
            _add_and_run(copy, "in-copy")
            assert db_rows(original, "SELECT count(*) FROM balsam_job WHERE name = 'in-copy'") == [(0,)]
            assert _ok(_balsam(original, "dbserver", "--status", "--path", original)).stdout
            assert ServerInfo(copy).read()["server_pid"] != ServerInfo(original).read()["server_pid"]
            identity = "SELECT db_id FROM balsam_db_identity"
            assert db_rows(copy, identity) != db_rows(original, identity)  # a DB of its own, not a twin
        finally:
            _balsam(copy, "dbserver", "--stop", "--path", copy)
    finally:
        _balsam(original, "dbserver", "--stop", "--path", original)


def test_a_moved_stopped_db_works_without_a_server(template_db, tmp_path):
    old = _make_db(template_db, tmp_path / "old")
    _add_and_run(old, "before-move")
    new = tmp_path / "elsewhere" / "db"
    new.parent.mkdir()
    subprocess.run(["mv", str(old), str(new)], check=True)
    _add_and_run(new, "after-move")
