"""``balsamactivate`` / ``balsamdeactivate`` sourced by a real bash, and
``balsam which --list`` (issue #15, item 3)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BALSAM
from balsam.wire.serverinfo import ServerInfo, server_alive

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def bash(script, home, cwd=None):
    """Run ``script`` in bash with balsam on PATH and the scripts' directory at hand."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALSAM_")}
    env.update(HOME=str(home), PATH=f"{Path(BALSAM).parent}:{env['PATH']}", S=str(SCRIPTS))
    return subprocess.run(["bash", "--norc", "-c", "PS1='$ '; " + script], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


def _db(template_db, path, dbserver=False):
    shutil.copytree(template_db, path)
    if dbserver:
        (path / "settings.json").write_text(json.dumps({"dbserver": True}))
    return path


def test_activate_sets_the_db_marks_the_prompt_and_deactivate_undoes_it(template_db, tmp_path, home):
    db = _db(template_db, tmp_path / "alpha-db")
    out = bash('. "$S/balsamactivate" ' + str(db) + ' && echo "db=$BALSAM_DB_PATH" && echo "ps1=$PS1" '
               '&& . "$S/balsamdeactivate" && echo "after=${BALSAM_DB_PATH-unset} ps1=$PS1"', home)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == [f"db={db}", "ps1=[BalsamDB: alpha-db] $ ", "after=unset ps1=$ "]
    assert not ServerInfo(db).read().get("address")  # a SQLite DB that does not ask for a server gets none


def test_activate_starts_the_owners_server_once_when_the_db_asks_for_one(template_db, tmp_path, home):
    db = _db(template_db, tmp_path / "served-db", dbserver=True)
    try:
        first = bash(f'. "$S/balsamactivate" {db} && . "$S/balsamactivate" {db} && echo ok', home)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("serving at") == 1 and first.stdout.endswith("ok\n"), first.stdout
        assert server_alive(ServerInfo(db).read())
    finally:
        subprocess.run([BALSAM, "dbserver", "--stop", "--path", str(db)], capture_output=True, timeout=60)


def test_activate_leaves_a_postgresql_server_to_the_owner_of_its_cluster(template_db, tmp_path, home):
    """The directory is this user's, its cluster (balsamdb/) another's: no start is attempted
    (a launch script sourcing balsamactivate used to fail here with "only its owner may")."""
    if os.geteuid() != 0:
        pytest.skip("giving balsamdb/ to another user needs root")
    db = _db(template_db, tmp_path / "pg-db")
    (db / "balsamdb").mkdir(mode=0o700)
    os.chown(db / "balsamdb", 65534, 65534)
    result = bash(f'. "$S/balsamactivate" {db} && echo "db=$BALSAM_DB_PATH"', home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"db={db}\n"), result.stdout
    assert "Error" not in result.stderr


def test_a_name_picks_a_used_db_by_a_unique_part_of_its_path(template_db, tmp_path, home):
    one = _db(template_db, tmp_path / "project-one")
    two = _db(template_db, tmp_path / "project-two")
    for db in (one, two):
        assert bash(f'. "$S/balsamactivate" {db}', home).returncode == 0
    listed = bash("balsam which --list", home)
    assert listed.stdout.splitlines() == [f"  {two}", f"  {one}"]
    picked = bash('. "$S/balsamactivate" one && echo "$BALSAM_DB_PATH"', home, cwd=tmp_path / "project-two")
    assert picked.returncode == 0 and picked.stdout.strip() == str(one), picked.stderr
    ambiguous = bash('export BALSAM_DB_PATH=/kept; . "$S/balsamactivate" project; echo "rc=$? db=$BALSAM_DB_PATH"', home)
    assert ambiguous.stderr.count("\n") == 1 and ambiguous.stderr.startswith("Error: project matches 2 DBs"), ambiguous.stderr
    assert ambiguous.stdout.strip() == "rc=1 db=/kept"
    unknown = bash('. "$S/balsamactivate" nowhere-xyz; echo "rc=$?"', home)
    assert unknown.stdout.strip() == "rc=1" and unknown.stderr.startswith("Error: nowhere-xyz is neither")


def test_running_instead_of_sourcing_says_so(home):
    ran = bash('bash "$S/balsamactivate" somewhere', home)
    assert ran.returncode == 2 and ran.stderr.startswith("Error: source balsamactivate")
