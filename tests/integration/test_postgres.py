"""The PostgreSQL DB directory and its server (issue #15, items 1, 2 and 7):
what `balsam init --db-type postgres` makes, `balsam dbserver` on it, and
the faults that must be one line (server down or unreachable, no server,
wrong permissions, a port in use, a non-owner or root). The session's real
cluster (tests/fixtures/postgres.py); the behaviour shared with SQLite is
in the tests marked ``both_backends``."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import one_line_error, wait_until
from tests.fixtures.postgres import USER as PG_USER

from balsam.postgres.roles import SCRAM_ROUNDS

BALSAM = str(Path(sys.executable).with_name("balsam"))
on_postgres = pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)  # the `db` fixture's backend


def balsam(*args, env=None, timeout=60):
    return subprocess.run([BALSAM, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def address(path):
    return json.loads((Path(path) / "dbwriter_address").read_text())


def test_init_makes_a_cluster_that_asks_everyone_for_a_password(pg_cluster):
    path = pg_cluster.path
    cluster = path / "balsamdb"
    assert stat.S_IMODE(cluster.stat().st_mode) == 0o700
    assert (cluster / "PG_VERSION").is_file() and (cluster / "log").is_dir()
    assert "Written by `balsam init --db-type postgres`" in (cluster / "postgresql.conf").read_text()
    rules = [line.split() for line in (cluster / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)
    assert "trust" not in (cluster / "pg_hba.conf").read_text().replace("No trust", "")
    secret = path / "credentials" / "postgres"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert address(path)["db_type"] == "postgres"
    with pg_cluster.connect() as conn:
        methods = {row[0] for row in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user").fetchone()[0]
    assert methods == {"scram-sha-256"}
    # Balsam's own verifier (this connection logged in with it): a random 256-bit
    # password needs no 4096 PBKDF2 rounds, which every connection would pay.
    assert verifier.startswith(f"SCRAM-SHA-256${SCRAM_ROUNDS}:")


def test_a_wrong_password_is_refused(pg_cluster):
    from balsam.exceptions import DBServerUnavailable
    from balsam.postgres.cluster import connect

    host, port = pg_cluster.server()
    with pytest.raises(DBServerUnavailable, match="password authentication failed"):
        connect(host, port, dict(pg_cluster.credentials(), password="not-the-password"))


@on_postgres
def test_reinit_refreshes_the_schema_and_keeps_the_rows(pg_cluster, db):
    from balsam import api
    from balsam.core.models import BalsamJob

    ids = api.make_dummies(3)
    from django.db import connections

    connections.close_all()
    again = pg_cluster.owner.balsam("init", pg_cluster.path)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert sorted(str(pk) for pk in BalsamJob.objects.values_list("pk", flat=True)) == sorted(ids)


@on_postgres
def test_the_job_table_has_no_index_no_query_uses(db):
    """Django adds a ``varchar_pattern_ops`` index beside each indexed text
    column (for ``LIKE 'prefix%'``, which Balsam never asks); migration 0013
    drops them: every write of a job updated them for nothing."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'balsam_job'")
        names = sorted(name for (name,) in cursor.fetchall())
    assert not [name for name in names if name.endswith("_like")], names
    assert "balsam_job_workdir_key" in names and any(name.startswith("balsam_job_name_") for name in names)


def test_status_shows_connections_and_size(pg_cluster):
    result = pg_cluster.owner.balsam("dbserver", "--status", "--path", pg_cluster.path)
    assert result.returncode == 0, result.stderr
    assert "connections:" in result.stdout and "DB size:" in result.stdout and "PostgreSQL 1" in result.stdout


@on_postgres
def test_a_killed_server_is_restarted_by_the_watchdog(pg_cluster, db):
    from balsam import api

    api.make_dummies(1)  # a connection open before the kill

    before = address(pg_cluster.path)
    os.kill(before["server_pid"], signal.SIGKILL)
    after = wait_until(lambda: (lambda a: a if a["server_pid"] != before["server_pid"] and a["address"] else None)(
        address(pg_cluster.path)), 60, "the watchdog to post a new server")
    assert after["restarts"] == before.get("restarts", 0) + 1
    assert after["port"] == before["port"]  # the same port while it is free: clients find it again
    from django.db import Error

    with pytest.raises(Error):  # this process's connection died with the old server ...
        api.make_dummies(2)
    assert len(api.make_dummies(2)) == 2  # ... and the next use connects to the new one


def test_a_port_in_use_at_start_is_left_for_another(pg_cluster):
    owner, path = pg_cluster.owner, pg_cluster.path
    old = address(path)
    stopped = owner.balsam("dbserver", "--stop", "--path", path)
    assert stopped.returncode == 0, stopped.stderr
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the old server's TIME_WAIT
        squatter.bind(("127.0.0.1", old["port"]))
        squatter.listen()
        started = owner.balsam("dbserver", "--path", path, "--host", "127.0.0.1")
        assert started.returncode == 0, started.stderr
    assert address(path)["port"] != old["port"]
    assert pg_cluster.owner.balsam("dbserver", "--status", "--path", path).returncode == 0


@on_postgres
def test_an_unreachable_server_is_one_line_naming_host_and_port(db):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    info = address(db)
    info["port"] = port
    (db / "dbwriter_address").write_text(json.dumps(info))
    line = one_line_error(balsam("ls", env={"BALSAM_DB_PATH": str(db)}, timeout=30), f"127.0.0.1:{port}")
    assert "cannot reach the PostgreSQL server" in line


@on_postgres
def test_no_posted_server_is_one_line_saying_how_to_start_it(db):
    info = address(db)
    info.update(address=None)
    (db / "dbwriter_address").write_text(json.dumps(info))
    one_line_error(balsam("ls", env={"BALSAM_DB_PATH": str(db)}), "no PostgreSQL server is running",
                   "balsam dbserver --path")


def test_wrong_permissions_on_balsamdb_are_one_line_and_change_nothing(pg_cluster):
    cluster = pg_cluster.path / "balsamdb"
    before = address(pg_cluster.path)
    cluster.chmod(0o750)
    try:
        result = pg_cluster.owner.balsam("dbserver", "--path", pg_cluster.path, "--host", "127.0.0.1")
    finally:
        cluster.chmod(0o700)
    one_line_error(result, "mode 750", "chmod 700")
    assert address(pg_cluster.path) == before


def test_a_non_owner_may_not_stop_or_start_the_server(pg_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs a second user: the cluster's owner is this user")
    before = address(pg_cluster.path)
    for args in (["--stop"], []):
        line = one_line_error(balsam("dbserver", *args, "--path", pg_cluster.path))
        assert f"only its owner {PG_USER} may" in line
    assert address(pg_cluster.path) == before
    assert pg_cluster.owner.balsam("dbserver", "--status", "--path", pg_cluster.path).returncode == 0


def test_root_may_not_make_a_postgres_db(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("runs as root only")
    target = tmp_path / "pg"
    one_line_error(balsam("init", target, "--db-type", "postgres"), "PostgreSQL refuses to run as root")
    assert not target.exists()


def test_missing_postgresql_is_one_line_naming_what_was_looked_for(tmp_path):
    from balsam.postgres.cluster import find_binaries
    from balsam.exceptions import ConfigError

    os.environ["BALSAM_PG_BIN"] = str(tmp_path / "nowhere")
    try:
        with pytest.raises(ConfigError) as raised:
            find_binaries()
    finally:
        del os.environ["BALSAM_PG_BIN"]
    message = str(raised.value)
    assert "initdb and postgres" in message and "apt-get install postgresql" in message
    assert "\n" not in message
