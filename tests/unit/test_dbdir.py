import json
import sqlite3
import stat

import pytest

from balsam import api, config
from balsam.dbdir import init_db
from balsam.wire.serverinfo import ServerInfo
from balsam.exceptions import InitError


def test_init_creates_the_directory(db):
    assert (db / "db.sqlite3").is_file()
    assert (db / "data").is_dir() and (db / "log").is_dir()
    info = json.loads((db / "dbwriter_address").read_text())
    assert info["db_type"] == "sqlite3" and info["address"] is None
    assert stat.S_IMODE((db / "secret_key").stat().st_mode) == 0o600
    con = sqlite3.connect(db / "db.sqlite3")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"balsam_job", "balsam_app", "balsam_job_event", "balsam_job_dependency", "django_migrations"} <= tables


def test_init_twice_keeps_every_row(db, make_job):
    job = make_job(name="keep me")
    job.update_state("READY", "checked")
    path, created = init_db(db)
    assert not created
    from balsam.core.models import BalsamJob

    again = BalsamJob.objects.get(pk=job.pk)
    assert again.state == "READY"
    assert [e.to_state for e in again.events.all()] == ["READY"]


def test_init_refuses_a_file(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(InitError, match="is a file"):
        init_db(target)
    assert target.read_text() == "x"


def test_init_refuses_a_foreign_nonempty_directory(tmp_path):
    (tmp_path / "results.csv").write_text("1,2")
    with pytest.raises(InitError, match="non-empty directory that is not a Balsam DB"):
        init_db(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_repo_default_db_is_initialised_on_first_use(db, tmp_path, monkeypatch):
    default = tmp_path / "default_balsamdb"
    default.mkdir()
    (default / ".gitignore").write_text("*\n")
    monkeypatch.setattr(config, "repo_default_db", lambda: default)
    monkeypatch.delenv("BALSAM_DB_PATH")
    monkeypatch.setattr(config, "load_settings", lambda environ=None: config.Settings())
    selection = api.attach()
    assert selection.path == default
    assert config.is_balsam_db(default)
    from balsam.core.models import BalsamJob

    assert BalsamJob.objects.count() == 0


def test_server_info_updates_merge_atomically(tmp_path):
    info = ServerInfo(tmp_path)
    info.update(db_type="sqlite3", address=None)
    info.update(address="tcp://127.0.0.1:5000", pid=42)
    assert info.read() == {"db_type": "sqlite3", "address": "tcp://127.0.0.1:5000", "pid": 42}
    assert not list(tmp_path.glob("*.tmp"))
