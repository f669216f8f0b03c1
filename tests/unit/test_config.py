import sys
import types
from pathlib import Path

import pytest

from balsam import config
from balsam.exceptions import ConfigError, DBNotFound


@pytest.fixture
def user_settings(monkeypatch):
    """Replace the user_settings module with one holding the given constants."""

    def install(**values):
        module = types.ModuleType("user_settings")
        module.__file__ = "/fake/user_settings.py"
        for name, value in values.items():
            setattr(module, name, value)
        monkeypatch.setitem(sys.modules, "user_settings", module)

    install()
    return install


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("BALSAM_DB_PATH", raising=False)


def test_selection_order(user_settings, clean_env, monkeypatch, tmp_path):
    repo_default = tmp_path / "repo_default"
    monkeypatch.setattr(config, "repo_default_db", lambda: repo_default)
    assert config.select_db().path == repo_default
    assert config.select_db().is_repo_default

    user_settings(default_db_path=str(tmp_path / "from_settings"))
    sel = config.select_db()
    assert (sel.path, sel.source) == (tmp_path / "from_settings", "default_db_path in user_settings.py")

    monkeypatch.setenv("BALSAM_DB_PATH", str(tmp_path / "from_env"))
    assert config.select_db().path == tmp_path / "from_env"

    sel = config.select_db(cli_path=str(tmp_path / "from_flag"))
    assert (sel.path, sel.source) == (tmp_path / "from_flag", "--db")


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_balsam_db_path_is_an_error_not_the_default(user_settings, clean_env, monkeypatch, value):
    monkeypatch.setenv("BALSAM_DB_PATH", value)
    with pytest.raises(ConfigError, match="BALSAM_DB_PATH is set but empty"):
        config.select_db()
    assert config.select_db(cli_path="/x").path == Path("/x")  # --db still wins


def test_paths_are_expanded_and_absolute(user_settings, clean_env, monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    assert config.select_db(cli_path="~/dbs/x").path == Path("/home/someone/dbs/x")


def test_unknown_user_setting_is_refused(user_settings):
    user_settings(defualt_db_path="/typo")
    with pytest.raises(ConfigError, match="unknown setting 'defualt_db_path'"):
        config.load_settings()


def test_environment_overrides_user_settings(user_settings, monkeypatch):
    user_settings(log_level="WARNING", sqlite_busy_timeout_sec=5)
    monkeypatch.setenv("BALSAM_SQLITE_BUSY_TIMEOUT_SEC", "12.5")
    settings = config.load_settings()
    assert settings.log_level == "WARNING"
    assert settings.sqlite_busy_timeout_sec == 12.5


@pytest.mark.parametrize(
    "env, message",
    [
        ({"BALSAM_SQLITE_BUSY_TIMEOUT_SEC": "soon"}, "not a valid float"),
        ({"BALSAM_LOG_LEVEL": "LOUD"}, "log_level must be one of"),
        ({"BALSAM_SQLITE_BUSY_TIMEOUT_SEC": "-1"}, "must be positive"),
    ],
)
def test_bad_values_are_refused(user_settings, env, message):
    with pytest.raises(ConfigError, match=message):
        config.load_settings(environ=env)


def test_missing_db_names_path_source_and_fix(tmp_path):
    selection = config.DBSelection(tmp_path / "nope", "BALSAM_DB_PATH")
    with pytest.raises(DBNotFound) as info:
        config.require_db(selection)
    assert str(info.value) == (
        f"{tmp_path / 'nope'} (selected by BALSAM_DB_PATH) does not exist; "
        f"create it with: balsam init {tmp_path / 'nope'}"
    )


def test_directory_that_is_not_a_db(tmp_path):
    with pytest.raises(DBNotFound, match="is empty; make it a Balsam DB with: balsam init"):
        config.require_db(config.DBSelection(tmp_path, "--db"))
    (tmp_path / "results.csv").write_text("1")
    with pytest.raises(DBNotFound, match=r"is not a Balsam DB \(no dbwriter_address\).*balsam init NEW_PATH"):
        config.require_db(config.DBSelection(tmp_path, "--db"))


def test_dbserver_deadline_must_stay_below_the_id_retention(user_settings):
    from balsam.wire.protocol import APPLIED_ID_RETENTION_SEC

    assert config.MAX_DBSERVER_DEADLINE_SEC < APPLIED_ID_RETENTION_SEC
    with pytest.raises(ConfigError, match="dbserver_deadline_sec must be at most"):
        config.load_settings(environ={"BALSAM_DBSERVER_DEADLINE_SEC": "7200"})


def test_what_attaching_to_a_db_sets_up_is_out_of_the_collectors_sight(db):
    """Django's modules, models and settings live as long as the process; a
    full garbage collection walked all of them again (55-60 ms at a script's
    first ``bulk_create`` of a thousand jobs). After ``activate`` they are
    frozen: the collector's generations hold only what came after."""
    import os
    import subprocess

    script = ("import gc, os\nfrom balsam.django_config import activate\nbefore = gc.get_freeze_count()\n"
              "activate(os.environ['BALSAM_DB_PATH'])\nprint(before, gc.get_freeze_count(), len(gc.get_objects(2)))")
    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, BALSAM_DB_PATH=str(db)),
                         capture_output=True, text=True, check=True, cwd="/")
    before, frozen, oldest = map(int, out.stdout.split())
    assert before == 0
    assert frozen > 20_000 and oldest < 1_000, (frozen, oldest)


def test_a_python_with_too_old_an_sqlite_is_told_so_in_one_line(template_db):
    """The write path's SQL needs SQLite 3.35 (RETURNING) and 3.33 (UPDATE ...
    FROM); a Python built with an older library gets one line naming both
    versions and what to do, not a syntax error in the middle of a write."""
    import subprocess

    code = ("import sqlite3, sys; sqlite3.sqlite_version_info = (3, 26, 0); sqlite3.sqlite_version = '3.26.0'; "
            "sys.argv = ['balsam', 'ls']; from balsam.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "BALSAM_DB_PATH": str(template_db)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQLite 3.26.0" in lines[0] and "3.35.0 or newer" in lines[0], result.stderr
    assert "--db-type postgres" in lines[0]
