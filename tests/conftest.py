"""Layered fixtures.

- ``template_db`` (session): one DB directory made by the real ``init_db`` and
  migrated once.
- ``db`` (per test): a copy of the template; the process is switched to it and
  ``BALSAM_DB_PATH`` points at it.
- ``cli``: invoke the click CLI in-process; ``balsam_cmd``: run the real
  console script in a subprocess.
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

BALSAM = str(Path(sys.executable).with_name("balsam"))

pytest_plugins = ["tests.fixtures.slurm", "tests.fixtures.postgres"]


_TEMPLATE = {}


def pytest_configure(config):
    """Make the migrated template DB before collection, so test modules can
    import the models (Django is configured once per process, with the admin)."""
    from balsam.dbdir import init_db

    os.environ.pop("BALSAM_DB_PATH", None)
    _TEMPLATE["dir"] = tempfile.mkdtemp(prefix="balsam-template-")
    path = Path(_TEMPLATE["dir"]) / "balsamdb"
    init_db(path)
    from django.db import connections

    connections.close_all()
    _TEMPLATE["path"] = path


def pytest_unconfigure(config):
    if "dir" in _TEMPLATE:
        shutil.rmtree(_TEMPLATE["dir"], ignore_errors=True)


@pytest.fixture(scope="session")
def template_db():
    return _TEMPLATE["path"]


def pytest_generate_tests(metafunc):
    """Tests marked ``both_backends`` run on SQLite and on PostgreSQL
    (``db_backend``); the ``writer`` tests run through the direct client and
    a dbserver on SQLite, and through PostgreSQL's client when marked."""
    both = metafunc.definition.get_closest_marker("both_backends") is not None
    if "writer" in metafunc.fixturenames:
        combos = [("sqlite3", "direct"), ("sqlite3", "dbserver")] + ([("postgres", "postgres")] if both else [])
        metafunc.parametrize(("db_backend", "writer"), combos, indirect=True, ids=[w for _, w in combos])
    elif both and "db" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", ["sqlite3", "postgres"], indirect=True)


@pytest.fixture
def db_backend(request):
    return getattr(request, "param", "sqlite3")


@pytest.fixture
def db(db_backend, template_db, tmp_path, monkeypatch, request):
    from balsam.django_config import activate

    if db_backend == "postgres":
        path = request.getfixturevalue("pg_db")
    else:
        path = tmp_path / "balsamdb"
        shutil.copytree(template_db, path)
    monkeypatch.setenv("BALSAM_DB_PATH", str(path))
    monkeypatch.delenv("BALSAM_JOB_ID", raising=False)
    activate(path, admin=True)
    yield path
    from django.db import connections

    connections.close_all()


@pytest.fixture
def cli(db):
    """Run ``balsam ARGS`` in-process; returns click's Result (stdout, stderr, exit_code)."""
    from balsam.cli.main import cli as balsam_cli

    runner = CliRunner()

    def invoke(*args, input=None, env=None):
        return runner.invoke(balsam_cli, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def balsam_cmd(db):
    """Run the installed ``balsam`` console script against the test DB."""

    def run(*args, env=None, input=None, check=False):
        full_env = {**os.environ, "BALSAM_DB_PATH": str(db), **(env or {})}
        return subprocess.run(
            [BALSAM, *map(str, args)], capture_output=True, text=True, env=full_env, input=input, check=check, timeout=120
        )

    return run


SNAPSHOT_TABLES = ("balsam_app", "balsam_job", "balsam_job_dependency", "balsam_job_event", "balsam_launch")


def db_snapshot(path):
    """Every row of Balsam's tables, for 'nothing changed' assertions."""
    if (Path(path) / "balsamdb").is_dir():
        from tests.fixtures.postgres import pg_snapshot

        return pg_snapshot(path, SNAPSHOT_TABLES)
    con = sqlite3.connect(Path(path) / "db.sqlite3")
    try:
        return {
            table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in SNAPSHOT_TABLES
        }
    finally:
        con.close()


@pytest.fixture
def snapshot(db):
    return lambda: db_snapshot(db)


@pytest.fixture
def make_app(db):
    from balsam import api

    def make(name="hello", executable="echo", **kwargs):
        return api.add_app(name, executable, **kwargs)

    return make


@pytest.fixture
def make_job(db, make_app):
    from balsam import api
    from balsam.core.models import ApplicationDefinition

    def make(name="job", workflow="wf", application="hello", **fields):
        if application and not ApplicationDefinition.objects.filter(name=application).exists():
            make_app(application)
        return api.add_job(name=name, workflow=workflow, application=application, **fields)

    return make


def _kill_leftovers(pids):
    import psutil

    for pid in pids:
        if not pid or pid == os.getpid():  # psutil.Process(None) is this very process
            continue
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def dbserver(db):
    """A live dbserver (watchdog + server processes) for the test DB, on 127.0.0.1."""
    from balsam.dbserver import control
    from balsam.wire.serverinfo import ServerInfo

    info = control.start(db, host="127.0.0.1")
    yield info
    current = ServerInfo(db).read()
    try:
        control.stop(db)
    finally:
        _kill_leftovers([info["watchdog_pid"], info["server_pid"], current.get("watchdog_pid"), current.get("server_pid")])


@pytest.fixture
def writer(request, db):
    """Run the test once with direct writes and once through a live dbserver
    (and, marked ``both_backends``, once on PostgreSQL: see pytest_generate_tests)."""
    if request.param == "dbserver":
        request.getfixturevalue("dbserver")
    from balsam.core import write_client

    assert write_client.get().mode == request.param
    return request.param


WEB_PASSWORD = "correct-horse-42"


@pytest.fixture
def web_client(db):
    """Django's test client, logged in to the web pages as 'alice' (password WEB_PASSWORD)."""
    from django.test import Client

    from balsam.web import accounts

    accounts.add_user("alice", WEB_PASSWORD)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="alice", password=WEB_PASSWORD)
    return client
