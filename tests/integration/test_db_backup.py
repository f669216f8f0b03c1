"""``balsam db backup`` / ``restore`` and the dbserver's scheduled backups,
with real writer processes, a real dbserver and a real launcher."""

import os
import sqlite3
import statistics
import subprocess
import sys
import time

import pytest

from balsam import backups
from tests.helpers import WRITER, acked, db_rows, wait_until

WRITERS = 16
def p99(values):
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else max(values)


@pytest.fixture
def prefilled(db):
    """30,000 finished-for-good jobs, so the copy takes a while; written before the dbserver starts."""
    from balsam import api
    from balsam.core import write_client

    ids = api.make_dummies(30_000)
    write_client.get().kill([str(i) for i in ids], recursive=False)
    api.add_app("hello", "echo")
    return len(ids)


def test_online_backup_under_16_writers_is_complete_and_restores(db, prefilled, dbserver, balsam_cmd, tmp_path):
    stop = tmp_path / "stop"
    logs = [tmp_path / f"writer{i}.log" for i in range(WRITERS)]
    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{i}", str(logs[i]), str(stop)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(WRITERS)]
    try:
        wait_until(lambda: all(len(acked([p])) >= 3 for p in logs), 120, "every writer to insert 3 jobs")
        before = acked(logs)
        copy = tmp_path / "copy.sqlite3"
        started = time.time()
        result = balsam_cmd("db", "backup", "--to", copy)
        ended = time.time()
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Backed up to {copy}  (") and "integrity ok" in result.stdout
        count_at_end = len(acked(logs))
        wait_until(lambda: len(acked(logs)) >= count_at_end + WRITERS, 60, "writes after the backup")
    finally:
        stop.touch()
        outcomes = [w.communicate(timeout=60) for w in writers]
    assert [w.returncode for w in writers] == [0] * WRITERS, [err[-500:] for _, err in outcomes if err]
    assert all(not err for _, err in outcomes), [err[-500:] for _, err in outcomes if err]

    writes = acked(logs)
    during = [end - start for _, start, end in writes if end >= started and start <= ended]
    latencies = [end - start for _, start, end in writes]
    print(f"\nbackup took {ended - started:.2f} s (whole balsam process); {len(writes)} inserts by {WRITERS} writers; "
          f"{len(during)} during the backup, p99 {p99(during) * 1000:.0f} ms; p99 overall {p99(latencies) * 1000:.0f} ms")
    assert during, "no insert overlapped the backup"
    assert p99(during) < 0.5

    assert backups.integrity_problems(copy) == []
    con = sqlite3.connect(copy)
    names = {row[0] for row in con.execute("SELECT name FROM balsam_job WHERE workflow = 'load'")}
    con.close()
    assert {name for name, _, _ in before} <= names
    assert len(names) < len(writes)  # the copy is of one moment: later inserts are not in it

    from balsam.dbserver import control

    control.stop(db)
    restored = balsam_cmd("db", "restore", copy)
    assert restored.returncode == 0, restored.stderr
    kept = [p for p in db.iterdir() if p.name.startswith("db.sqlite3.before-restore-")]
    assert len(kept) == 1 and restored.stdout.splitlines()[1] == f"The previous DB is kept as {kept[0]}"
    con = sqlite3.connect(kept[0])
    assert con.execute("SELECT COUNT(*) FROM balsam_job WHERE workflow = 'load'").fetchall() == [(len(writes),)]
    con.close()
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_job WHERE workflow = 'load'") == [(len(names),)]

    run = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "balsam")), "launcher", "--consume-all",
                          "--until-idle"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert db_rows(db, "SELECT state, COUNT(*) FROM balsam_job GROUP BY state") == [
        ("JOB_FINISHED", len(names)), ("USER_KILLED", prefilled)]
    assert balsam_cmd("db", "check").returncode == 0


def test_restore_is_refused_while_the_db_is_in_use(db, make_job, dbserver, balsam_cmd, tmp_path, snapshot):
    make_job(name="a")
    copy = tmp_path / "copy.sqlite3"
    assert balsam_cmd("db", "backup", "--to", copy).returncode == 0
    before = snapshot()
    refused = balsam_cmd("db", "restore", copy)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"Error: the DB at {db} is in use by a dbserver (stop it with: balsam dbserver "
                                     "--stop); nothing was restored")
    assert len(refused.stderr.splitlines()) == 1
    assert snapshot() == before and not list(db.glob("db.sqlite3.before-restore-*"))


def test_restore_is_refused_while_a_launcher_holds_leases(db, make_job, balsam_cmd, tmp_path):
    job = make_job(name="a")
    copy = tmp_path / "copy.sqlite3"
    assert balsam_cmd("db", "backup", "--to", copy).returncode == 0
    from balsam.core import write_client

    write_client.get().claim("nid001:77", ["CREATED"], 1, 600)
    refused = balsam_cmd("db", "restore", copy)
    assert refused.returncode == 1 and "launcher nid001:77 (holds 1 job(s)" in refused.stderr
    assert job.pk.hex in {row[0] for row in db_rows(db, "SELECT job_id FROM balsam_job")}


def test_backup_refusals_are_one_line(db, make_job, balsam_cmd, tmp_path):
    make_job(name="a")
    taken = balsam_cmd("db", "backup")
    assert taken.returncode == 0
    path = taken.stdout.split()[3]
    assert path.startswith(str(db / "backups")) and path.endswith(".sqlite3")
    assert backups.integrity_problems(path) == []
    again = balsam_cmd("db", "backup", "--to", path)
    assert (again.returncode, again.stderr) == (1, f"Error: {path} exists; choose another file (a backup never "
                                                   "overwrites one)\n")
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database" * 100)
    bad = balsam_cmd("db", "restore", tmp_path / "junk.sqlite3")
    assert bad.returncode == 1 and bad.stderr.startswith(f"Error: {tmp_path / 'junk.sqlite3'} is not a sound SQLite")
    missing = balsam_cmd("db", "restore", tmp_path / "none.sqlite3")
    assert missing.stderr == f"Error: no backup file at {tmp_path / 'none.sqlite3'}\n"


def test_the_dbserver_keeps_backup_keep_scheduled_backups(db, make_job, monkeypatch):
    from balsam.dbserver import control

    make_job(name="a")
    monkeypatch.setenv("BALSAM_BACKUP_INTERVAL_MINUTES", str(1 / 60))  # every second
    monkeypatch.setenv("BALSAM_BACKUP_KEEP", "2")
    mine = db / "backups" / "mine.sqlite3"
    mine.parent.mkdir()
    mine.write_bytes(b"a user's own file")
    control.start(db, host="127.0.0.1")
    try:
        seen = set()

        def taken():
            seen.update(p.name for p in backups.scheduled_backups(db))
            return len(seen) >= 4

        wait_until(taken, 60, "four scheduled backups")
        kept = wait_until(lambda: (lambda found: found if len(found) == 2 else None)(backups.scheduled_backups(db)),
                          10, "the older backups to be pruned")
    finally:
        control.stop(db)
    assert len(backups.scheduled_backups(db)) == 2
    for path in kept:
        assert backups.integrity_problems(path) == []
        con = sqlite3.connect(path)
        assert con.execute("SELECT name FROM balsam_job").fetchall() == [("a",)]
        con.close()
    assert mine.read_bytes() == b"a user's own file"
    assert not list((db / "backups").glob("*.partial"))


def test_init_backs_up_a_db_before_migrating_it(db, balsam_cmd, make_job):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    make_job(name="a")
    executor = MigrationExecutor(connection)
    executor.migrate([("balsam", "0006_lease_expires_at")])
    result = balsam_cmd("init", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Backed up the DB before migrating it: ")
    assert result.stdout.splitlines()[1].startswith("Updating the schema (8 update(s): 0007_db_identity, ")
    copy = result.stdout.split()[7]
    applied = {row[0] for row in db_rows(db, "SELECT name FROM django_migrations WHERE app = 'balsam'")}
    assert "0007_db_identity" in applied
    con = sqlite3.connect(copy)
    in_copy = {row[0] for row in con.execute("SELECT name FROM django_migrations WHERE app = 'balsam'")}
    jobs = con.execute("SELECT COUNT(*) FROM balsam_job").fetchone()[0]
    con.close()
    assert "0007_db_identity" not in in_copy and jobs == 1
    again = balsam_cmd("init", db)
    assert "Backed up" not in again.stdout  # nothing to migrate: no copy


on_postgres = pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)  # the `db` fixture's backend


def load_jobs(db):
    return {row[0] for row in db_rows(db, "SELECT name FROM balsam_job WHERE workflow = 'load'")}


@on_postgres
def test_postgres_backup_while_writing_restores_all_or_nothing(db, balsam_cmd, tmp_path):
    """A pg_dump taken while 4 writers insert holds every insert acknowledged
    before it began; restore is refused while they are connected, then puts
    the dump back and keeps the DB it replaced (restoring that one gives every
    acknowledged insert back)."""
    from django.db import connections

    from balsam import api

    api.add_app("hello", "echo")
    api.make_dummies(2_000)
    connections.close_all()
    stop = tmp_path / "stop"
    logs = [tmp_path / f"writer{i}.log" for i in range(4)]
    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{i}", str(logs[i]), str(stop)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    copy = tmp_path / "copy.pgdump"
    try:
        wait_until(lambda: all(len(acked([p])) >= 3 for p in logs), 120, "every writer to insert 3 jobs")
        before = {name for name, _, _ in acked(logs)}
        taken = balsam_cmd("db", "backup", "--to", copy)
        assert taken.returncode == 0, taken.stderr
        assert taken.stdout.startswith(f"Backed up to {copy}  (") and copy.stat().st_size > 0
        count_at_end = len(acked(logs))
        wait_until(lambda: len(acked(logs)) >= count_at_end + 4, 60, "writes after the backup")
        refused = balsam_cmd("db", "restore", copy)
        assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith(f"Error: the DB at {db} is in use by ") and "session(s) of" in refused.stderr
        assert not list((db / "backups").glob("before-restore-*"))
    finally:
        stop.touch()
        outcomes = [w.communicate(timeout=60) for w in writers]
    assert [w.returncode for w in writers] == [0] * 4, [err[-500:] for _, err in outcomes]
    written = {name for name, _, _ in acked(logs)}
    assert load_jobs(db) == written

    restored = balsam_cmd("db", "restore", copy)
    assert restored.returncode == 0, restored.stderr
    (kept,) = (db / "backups").glob("before-restore-*.pgdump")
    assert restored.stdout.splitlines() == [f"Restored {db} from {copy}", f"The previous DB is kept as {kept}"]
    in_dump = load_jobs(db)
    assert before <= in_dump < written  # the dump is of one moment: later inserts are not in it
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_job WHERE workflow IS NULL OR workflow <> 'load'") == [(2_000,)]
    assert balsam_cmd("db", "check").returncode == 0
    assert balsam_cmd("db", "restore", kept).returncode == 0
    assert load_jobs(db) == written


@on_postgres
def test_postgres_backup_refusals_are_one_line(db, make_job, balsam_cmd, tmp_path, snapshot):
    make_job(name="a")
    taken = balsam_cmd("db", "backup")
    assert taken.returncode == 0, taken.stderr
    path = taken.stdout.split()[3]
    assert path.startswith(str(db / "backups")) and path.endswith(".pgdump")
    again = balsam_cmd("db", "backup", "--to", path)
    assert (again.returncode, again.stderr) == (1, f"Error: {path} exists; choose another file (a backup never "
                                                   "overwrites one)\n")
    before = snapshot()
    (tmp_path / "junk.pgdump").write_bytes(b"not a dump" * 100)
    bad = balsam_cmd("db", "restore", tmp_path / "junk.pgdump")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
    assert bad.stderr.startswith(f"Error: {tmp_path / 'junk.pgdump'} is not a sound PostgreSQL dump")
    missing = balsam_cmd("db", "restore", tmp_path / "none.pgdump")
    assert missing.stderr == f"Error: no backup file at {tmp_path / 'none.pgdump'}\n"
    assert snapshot() == before
