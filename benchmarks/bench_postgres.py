"""PostgreSQL DBs for the benchmarks' ``--db-type postgres`` (run as scripts: this sits beside them).

PostgreSQL refuses to run as root: when the benchmark runs as root, the DB is
made and served as the user ``balsam-pg`` (made with ``useradd`` if missing)
through ``runuser``, with this checkout on PYTHONPATH and an interpreter that
user may run; the benchmark's own processes (root) then connect with the
owner's stored credentials, as any Balsam process does.
"""

import json
import os
import pwd
import shutil
import site
import subprocess
import sys
from pathlib import Path

from bench_common import run_balsam

PG_USER = "balsam-pg"
REPO = Path(__file__).resolve().parents[1]


def _owner_argv():
    if os.geteuid() != 0:
        return [sys.executable]
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)
    path = os.pathsep.join([str(REPO), *site.getsitepackages()])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix = ["runuser", "-u", PG_USER, "--", "env", f"PYTHONPATH={path}", "HOME=/tmp"]
    for python in (os.path.realpath(sys.executable), f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(python) and subprocess.run(prefix + [python, "-c", "import balsam, psycopg"],
                                                     capture_output=True).returncode == 0:
            return prefix + [python]
    raise RuntimeError(f"no Python {version} that {PG_USER} may run with this checkout's packages")


def owner_balsam(db, *args, timeout=300):
    """``balsam ARGS`` as the DB's owner; its stdout, or RuntimeError with its stderr."""
    proc = subprocess.run(_owner_argv() + ["-m", "balsam.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"balsam {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def fresh_pg_db(workdir, name, app, executable, host="127.0.0.1"):
    """A new PostgreSQL DB at ``workdir/name``, served, with one application registered."""
    db = Path(workdir) / name
    if db.exists():
        stop_pg(db)
        shutil.rmtree(db, ignore_errors=True)
    db.mkdir(parents=True)
    _owner_argv()  # makes the user when missing
    if os.geteuid() == 0:
        shutil.chown(db, PG_USER, PG_USER)
    owner_balsam(db, "init", db, "--db-type", "postgres")
    owner_balsam(db, "dbserver", "--path", db, "--host", host)
    run_balsam(db, "app", "--name", app, "--executable", executable)
    return db


def stop_pg(db):
    try:
        owner_balsam(db, "dbserver", "--stop", "--path", db, timeout=120)
    except RuntimeError:
        pass


def query(db, sql):
    """Rows of ``sql`` on the DB at ``db`` (psycopg, the owner's credentials)."""
    from balsam.postgres.cluster import connect
    from balsam.postgres.credentials import pg_credentials

    info = json.loads((Path(db) / "dbwriter_address").read_text())
    with connect(info["host"], info["port"], pg_credentials(db)) as conn:
        return conn.execute(sql).fetchall()


def server_cpu_seconds(db):
    """CPU seconds of the PostgreSQL server and all its backends so far (psutil)."""
    import psutil

    pid = json.loads((Path(db) / "dbwriter_address").read_text())["server_pid"]
    server = psutil.Process(int(pid))
    total = 0.0
    ended = server.cpu_times()
    total = ended.children_user + ended.children_system  # backends that have exited
    for process in [server, *server.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total
