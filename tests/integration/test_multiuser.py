"""A DB shared by real UNIX users (issue #15, items 4, 5 and 7), on both
backends: SQLite (collaborators write through the owner's dbserver with a
CURVE key of their own) and PostgreSQL (a login role of their own each).

Made here with useradd as root (required under CI=true) and removed after:
an owner and a collaborator in one group, and an outsider in none. Everything
Balsam does runs as one of them through ``runuser``, so file permissions are
the kernel's, not root's.
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import unix_users
from tests.fixtures.postgres import BACKENDS, unavailable as pg_unavailable
from tests.helpers import db_rows

GROUP = unix_users.named("balsam-mu-grp")
OWNER = unix_users.named("balsam-mu-owner")
COLLAB = unix_users.named("balsam-mu-collab")
OUTSIDER = unix_users.named("balsam-mu-other")


@pytest.fixture(scope="module")
def people():
    """{name: run(*balsam args, env=...)}; the users and the group are removed afterwards."""
    unix_users.require_root()
    unix_users.make_group(GROUP)
    homes = {OWNER: unix_users.make_user(OWNER, [GROUP]), COLLAB: unix_users.make_user(COLLAB, [GROUP]),
             OUTSIDER: unix_users.make_user(OUTSIDER)}
    try:
        python = unix_users.python_for(OWNER)
        path = unix_users.pythonpath()

        def runner(user):
            def run(*args, db=None, timeout=120):
                env = {"PYTHONPATH": path, "HOME": str(homes[user])}
                if db is not None:
                    env["BALSAM_DB_PATH"] = str(db)
                return unix_users.run_as(user, [python, "-m", "balsam.cli.main", *map(str, args)], env=env,
                                         timeout=timeout)
            return run

        yield {name: runner(name) for name in homes}
    finally:
        for name in homes:
            unix_users.remove_user(name)
        unix_users.remove_group(GROUP)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_db(people, request):
    """The owner's DB of each backend, shared with the group, served by the
    owner's dbserver, with an app `touch`."""
    db_type = request.param
    if db_type == "postgres":
        from balsam.exceptions import ConfigError
        from balsam.postgres.cluster import find_binaries

        try:
            find_binaries()
        except ConfigError as exc:
            pg_unavailable(f"PostgreSQL ({exc})")
    top = Path(tempfile.mkdtemp(prefix="balsam-mu-", dir="/tmp"))
    top.chmod(0o755)
    db = top / "db"
    owner = people[OWNER]
    os.chown(top, _uid(OWNER), -1)
    try:
        made = owner("init", db, "--group", GROUP, "--db-type", db_type)
        assert made.returncode == 0, made.stderr
        started = owner("dbserver", "--path", db, "--host", "127.0.0.1")
        assert started.returncode == 0, started.stderr
        app = owner("app", "--name", "touch", "--executable", "touch made-by-job", db=db)
        assert app.returncode == 0, app.stderr
        yield db
    finally:
        if db.exists():
            owner("dbserver", "--path", db, "--stop")
        shutil.rmtree(top, ignore_errors=True)


def _uid(name):
    import pwd

    return pwd.getpwnam(name).pw_uid


def _one_error_line(result):
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    return result.stderr


def _authorize(people, db):
    added = people[OWNER]("dbserver", "--path", db, "--add-user", COLLAB)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    login = people[COLLAB]("login", db, token)
    assert login.returncode == 0, login.stderr
    return token


def _add_job(people, user, db, name):
    return people[user]("job", "--name", name, "--workflow", "mu", "--application", "touch", "--yes", db=db)


def _on_postgres(db):
    return (db / "balsamdb").is_dir()


def test_the_shared_layout_keeps_secrets_owner_only(shared_db):
    db = shared_db
    for path in [db / "credentials", *(db / "credentials").iterdir(), db / "secret_key"]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))
    if _on_postgres(db):
        assert stat.S_IMODE((db / "balsamdb").stat().st_mode) == 0o700  # PostgreSQL's own files: the owner's alone
        assert stat.S_IMODE((db / "credentials" / "postgres").stat().st_mode) == 0o600
    else:
        assert stat.S_IMODE((db / "db.sqlite3").stat().st_mode) == 0o640  # collaborators write through the server
    assert stat.S_IMODE(db.stat().st_mode) == 0o2750
    for name in ("data", "log"):
        assert stat.S_IMODE((db / name).stat().st_mode) == 0o2770
    assert json.loads((db / "settings.json").read_text())["umask"] == "0007"


def test_a_collaborator_adds_jobs_and_runs_a_launcher_whose_directories_the_owner_can_write(people, shared_db):
    db = shared_db
    _authorize(people, db)
    key_dir = Path(f"/tmp/home-{COLLAB}/.balsam/logins")
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in key_dir.iterdir())
    added = _add_job(people, COLLAB, db, "by-collab")
    assert added.returncode == 0, added.stderr
    run = people[COLLAB]("launcher", "--consume-all", "--until-idle", db=db, timeout=300)
    assert run.returncode == 0, run.stderr
    assert db_rows(db, "SELECT state FROM balsam_job WHERE name = 'by-collab'") == [("JOB_FINISHED",)]
    workdir = db / "data" / db_rows(db, "SELECT workdir FROM balsam_job WHERE name = 'by-collab'")[0][0]
    assert (workdir / "made-by-job").exists()
    wrote = unix_users.run_as(OWNER, ["touch", str(workdir / "owner-was-here"), str(workdir / "made-by-job")])
    assert wrote.returncode == 0, wrote.stderr
    users = {u for (u,) in db_rows(db, 'SELECT DISTINCT e."user" FROM balsam_job_event e JOIN balsam_job j '
                                       "ON j.seq = e.job_seq WHERE j.name = 'by-collab'")}
    assert users == {COLLAB}
    history = people[OWNER]("ls", "--history", "--name", "by-collab", db=db)
    assert history.returncode == 0 and COLLAB in history.stdout, history.stdout + history.stderr


def test_a_removed_collaborator_is_refused_at_once(people, shared_db):
    db = shared_db
    token = _authorize(people, db)
    assert _add_job(people, COLLAB, db, "before-removal").returncode == 0
    if _on_postgres(db):
        assert (COLLAB,) in _roles(db)
    removed = people[OWNER]("dbserver", "--path", db, "--remove-user", COLLAB)
    assert removed.returncode == 0, removed.stderr
    before = db_rows(db, "SELECT count(*) FROM balsam_job")
    message = _one_error_line(_add_job(people, COLLAB, db, "after-removal"))
    assert "not (or no longer) authorized" in message or "refused your key" in message, message
    assert db_rows(db, "SELECT count(*) FROM balsam_job") == before
    again = _one_error_line(people[COLLAB]("login", db, token))
    assert "revoked" in again
    listed = people[OWNER]("dbserver", "--path", db, "--list-users")
    assert listed.returncode == 0 and COLLAB not in listed.stdout
    if _on_postgres(db):
        assert (COLLAB,) not in _roles(db)  # the role is dropped, not only its login forgotten


LIVE_CLIENT = """
import os, sys, time
from balsam import api
from balsam.exceptions import BalsamError
api.attach(None)
api.add_job(name="live-1", workflow="mu", application="touch")
print("first ok", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
for attempt in (1, 2):  # PostgreSQL: the ended session fails the first statement, the new login the next
    try:
        api.add_job(name=f"live-{attempt + 1}", workflow="mu", application="touch")
        print("ok", flush=True)
    except BalsamError as exc:
        print(type(exc).__name__, exc, flush=True)
        break
    except Exception as exc:  # the server ended this session (pg_terminate_backend)
        print("ended", type(exc).__name__, flush=True)
"""


def test_removal_refuses_the_next_request_of_a_connection_already_open(people, shared_db, tmp_path):
    db = shared_db
    _authorize(people, db)
    go = Path(tempfile.mkdtemp(prefix="balsam-mu-go-", dir="/tmp")) / "go"
    go.parent.chmod(0o777)
    env = {"PYTHONPATH": unix_users.pythonpath(), "HOME": f"/tmp/home-{COLLAB}", "BALSAM_DB_PATH": str(db)}
    client = subprocess.Popen(["runuser", "-u", COLLAB, "--", "env", *(f"{k}={v}" for k, v in env.items()),
                               unix_users.python_for(COLLAB), "-c", LIVE_CLIENT, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "first ok", client.stderr.read()
        assert people[OWNER]("dbserver", "--path", db, "--remove-user", COLLAB).returncode == 0
        go.touch()
        out, err = client.communicate(timeout=60)
    finally:
        client.kill()
        shutil.rmtree(go.parent, ignore_errors=True)
    lines = out.splitlines()
    if _on_postgres(db):
        assert lines[0].startswith("ended") or lines[0].startswith("AccessDenied"), out + err
    assert lines[-1].startswith("AccessDenied") and "not (or no longer) authorized" in lines[-1], out + err
    assert "ok" not in lines
    assert db_rows(db, "SELECT name FROM balsam_job WHERE name LIKE 'live-%'") == [("live-1",)]


def test_a_collaborator_kills_the_owners_job_and_the_event_names_them(people, shared_db):
    db = shared_db
    _authorize(people, db)
    assert _add_job(people, OWNER, db, "owners-job").returncode == 0
    job_id = db_rows(db, "SELECT job_id FROM balsam_job WHERE name = 'owners-job'")[0][0]
    killed = people[COLLAB]("kill", job_id, db=db)
    assert killed.returncode == 0, killed.stderr
    assert db_rows(db, f"SELECT state FROM balsam_job WHERE job_id = '{job_id}'") == [("USER_KILLED",)]
    assert db_rows(db, 'SELECT "user" FROM balsam_job_event WHERE job_seq = '
                       f"(SELECT seq FROM balsam_job WHERE job_id = '{job_id}') ORDER BY id DESC LIMIT 1") \
        == [(COLLAB,)]


NOTED_CLIENT = """
from balsam import api
api.attach(None)
api.add_job(name="noted-by-collab", workflow="mu", application="touch", creation_note="made by a script")
"""


def test_a_collaborators_job_with_a_creation_note_is_stored_and_its_event_names_them(people, shared_db):
    # On PostgreSQL a lone add_job is one prepared statement with the note's
    # event in a CTE: the collaborator's role may run it, and the server's
    # trigger (migration 0011) names them in the event.
    db = shared_db
    _authorize(people, db)
    env = {"PYTHONPATH": unix_users.pythonpath(), "HOME": f"/tmp/home-{COLLAB}", "BALSAM_DB_PATH": str(db)}
    ran = unix_users.run_as(COLLAB, [unix_users.python_for(COLLAB), "-c", NOTED_CLIENT], env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert db_rows(db, """SELECT e.from_state, e.to_state, e.message, e."user" FROM balsam_job_event e
                          JOIN balsam_job j ON j.seq = e.job_seq WHERE j.name = 'noted-by-collab'""") == [
        ("", "CREATED", "made by a script", COLLAB)]


def test_an_outsider_reads_nothing_and_writes_nothing(people, shared_db):
    db = shared_db
    before = db_rows(db, "SELECT count(*) FROM balsam_job")
    outsider = people[OUTSIDER]
    for args in (("ls",), ("job", "--name", "x", "--workflow", "w", "--application", "touch", "--yes")):
        _one_error_line(outsider(*args, db=db))
    secrets = [db / "credentials" / "postgres", db / "balsamdb"] if _on_postgres(db) else [db / "db.sqlite3"]
    for path in [*secrets, db / "settings.json", db / "data"]:
        read = unix_users.run_as(OUTSIDER, ["ls", "-l", str(path)])
        assert read.returncode != 0, path
    read = unix_users.run_as(OUTSIDER, ["cat", str(secrets[0])])
    assert read.returncode != 0
    assert db_rows(db, "SELECT count(*) FROM balsam_job") == before


def _roles(db):
    """The PostgreSQL roles of the DB's cluster (None on SQLite)."""
    return db_rows(db, "SELECT rolname FROM pg_roles ORDER BY 1") if _on_postgres(db) else None


def test_bad_input_is_one_line_and_changes_nothing(people, shared_db):
    db = shared_db
    users_before = (db / "authorized_users.json").read_bytes() if (db / "authorized_users.json").exists() else None
    roles_before = _roles(db)
    attempts = [
        (OWNER, ("dbserver", "--path", db, "--add-user", "balsam-no-such-user"), "no user 'balsam-no-such-user'"),
        (OWNER, ("dbserver", "--path", db, "--add-user", OUTSIDER), "is not in group"),
        (COLLAB, ("dbserver", "--path", db, "--add-user", COLLAB), "only the owner"),
        (COLLAB, ("dbserver", "--path", db, "--remove-user", COLLAB), "only the owner"),
        (COLLAB, ("dbserver", "--path", db, "--stop"), "cannot stop its dbserver"),
        (COLLAB, ("dbserver", "--path", db), "cannot start its dbserver"),
        (COLLAB, ("share", db, "--group", GROUP), "only the owner"),
        (COLLAB, ("login", db, "not-a-token"), "not a Balsam login token"),
    ]
    for user, args, expected in attempts:
        assert expected in _one_error_line(people[user](*args)), (user, args)
    after = (db / "authorized_users.json").read_bytes() if (db / "authorized_users.json").exists() else None
    assert after == users_before
    assert _roles(db) == roles_before
    status = people[OWNER]("dbserver", "--path", db, "--status")
    assert status.returncode == 0, status.stderr


def test_a_token_for_someone_else_is_refused(people, shared_db):
    db = shared_db
    added = people[OWNER]("dbserver", "--path", db, "--add-user", COLLAB)
    token = added.stdout.strip()
    message = _one_error_line(people[OWNER]("login", db, token))
    assert f"this token is for user {COLLAB}" in message


ROLE_RIGHTS = """
import sys
from balsam.postgres.cluster import connect
from balsam.postgres.credentials import pg_credentials
from balsam.wire.serverinfo import ServerInfo
info = ServerInfo(sys.argv[1]).read()
with connect(info["host"], info["port"], pg_credentials(sys.argv[1])) as conn:
    print(conn.execute("SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles "
                       "WHERE rolname = current_user").fetchone(), flush=True)
    for statement in ("DROP TABLE balsam_job", "CREATE TABLE mine (x int)", "TRUNCATE balsam_job",
                      "CREATE ROLE another LOGIN", "ALTER ROLE current_user SUPERUSER"):
        try:
            conn.execute(statement)
            print("allowed:", statement, flush=True)
        except Exception as exc:
            print("refused:", type(exc).__name__, flush=True)
    conn.execute("INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message, \\"user\\") "
                 "SELECT seq, now(), 'CREATED', 'CREATED', 'forged', 'someone-else' FROM balsam_job LIMIT 1")
"""


postgres_only = pytest.mark.parametrize("shared_db", ["postgres"], indirect=True, scope="module")


@postgres_only
def test_a_postgres_collaborators_role_may_change_rows_and_nothing_else(people, shared_db):
    db = shared_db
    _authorize(people, db)
    env = {"PYTHONPATH": unix_users.pythonpath(), "HOME": f"/tmp/home-{COLLAB}"}
    run = unix_users.run_as(COLLAB, [unix_users.python_for(COLLAB), "-c", ROLE_RIGHTS, str(db)], env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == str((COLLAB, False, False, False, False))
    assert lines[1:] == ["refused: InsufficientPrivilege"] * 5, run.stdout
    assert db_rows(db, "SELECT count(*) FROM balsam_job")  # the table is still there
    # The server names the event's user by the login role, whatever the row said (migration 0011).
    assert db_rows(db, """SELECT "user" FROM balsam_job_event WHERE message = 'forged'""") == [(COLLAB,)]


@postgres_only
def test_a_wrong_postgres_password_is_one_line_and_changes_nothing(people, shared_db):
    db = shared_db
    _authorize(people, db)
    from balsam.wire.credentials import fingerprint, published_server_key

    saved = Path(f"/tmp/home-{COLLAB}/.balsam/logins") / f"{fingerprint(published_server_key(db))}.json"
    login = json.loads(saved.read_text())
    login["postgres"]["password"] = "not-the-password"
    saved.write_text(json.dumps(login))
    before = db_rows(db, "SELECT count(*) FROM balsam_job")
    message = _one_error_line(_add_job(people, COLLAB, db, "wrong-password"))
    assert f"refused role {COLLAB}" in message, message
    assert db_rows(db, "SELECT count(*) FROM balsam_job") == before


@postgres_only
def test_users_are_added_and_removed_while_the_postgres_server_is_stopped(people, shared_db):
    db = shared_db
    owner = people[OWNER]

    def offline(*args):
        """``balsam dbserver ARGS`` with the server stopped; the server is started again after."""
        assert owner("dbserver", "--path", db, "--stop").returncode == 0
        try:
            result = owner("dbserver", "--path", db, *args)  # through a server of its own, for the change
            assert result.returncode == 0, result.stderr
            assert not (db / "balsamdb" / "postmaster.pid").exists()  # and none is left running
            assert json.loads((db / "dbwriter_address").read_text())["address"] is None
            return result
        finally:
            started = owner("dbserver", "--path", db, "--host", "127.0.0.1")
            assert started.returncode == 0, started.stderr

    assert offline("--add-user", COLLAB).stdout.startswith("balsam1.")
    assert (COLLAB,) in _roles(db)
    offline("--remove-user", COLLAB)
    assert (COLLAB,) not in _roles(db)
    assert COLLAB not in owner("dbserver", "--path", db, "--list-users").stdout
