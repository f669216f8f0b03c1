"""Backups of a PostgreSQL DB with PostgreSQL's own tools: ``pg_dump`` and
``pg_restore`` of the installation that runs the cluster (a dump must be made
by a ``pg_dump`` at least as new as its server).

A backup is ``pg_dump --format=custom`` of the Balsam database: one
consistent snapshot (a ``REPEATABLE READ`` transaction), taken while the
launchers keep writing; it is written under a temporary name, read back
whole by ``pg_restore`` (every table's data decompressed and turned into SQL,
thrown away) and only then renamed. A restore runs ``pg_restore --clean
--single-transaction``: it replaces every table, or, if anything fails,
changes nothing.

The password goes to the tools in their environment (``PGPASSWORD``), which
only this user (and root) may read, never on a command line.
"""

import os
import subprocess
from pathlib import Path

from balsam.exceptions import BalsamError
from balsam.postgres.cluster import find_binaries

# A dump of a million jobs takes a minute or two on this kind of machine; a bound, not a target.
TOOL_TIMEOUT_SEC = 3600


class DumpError(BalsamError):
    exit_code = 1


def _tool(name):
    """A PostgreSQL client program of the installation whose server runs the cluster."""
    # The real file's directory: PATH may hold a symbolic link to the server alone.
    path = Path(os.path.realpath(find_binaries()["postgres"])).with_name(name)
    if not os.access(path, os.X_OK):
        raise DumpError(f"{name} is missing beside {path.parent / 'postgres'}; install PostgreSQL's client "
                        "programs (apt-get install postgresql-client)")
    return str(path)


def _run(argv, server, what):
    env = dict(os.environ, PGPASSWORD=server["password"], PGCONNECT_TIMEOUT="5")
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SEC,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DumpError(f"{what} did not finish within {TOOL_TIMEOUT_SEC} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        detail = lines[0] if lines else f"exit code {done.returncode}"
        raise DumpError(f"{what} failed: {detail.removeprefix(Path(argv[0]).name + ': ')}")
    return done


def _connection_args(server):
    return ["--host", str(server["host"]), "--port", str(server["port"]), "--username", server["user"]]


def dump(server, target):
    """A verified custom-format dump of ``server``'s database (``{"host",
    "port", "user", "password", "dbname"}``) at ``target``; returns its size."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        _run([_tool("pg_dump"), *_connection_args(server), "--format=custom", "--no-owner",
              f"--file={partial}", "--dbname", server["dbname"]], server, "pg_dump")
        verify(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target.stat().st_size


def verify(path):
    """Read the dump at ``path`` back whole (``pg_restore`` to nowhere); one line when it is not sound."""
    path = Path(path)
    if not path.is_file():
        raise DumpError(f"no backup file at {path}")
    try:
        _run([_tool("pg_restore"), "--file=/dev/null", str(path)], {"password": ""}, f"reading {path} back")
    except DumpError as exc:
        raise DumpError(f"{path} is not a sound PostgreSQL dump ({exc}); nothing was changed") from None


def restore(server, source):
    """Replace every table of ``server``'s database with the dump ``source``
    (``verify`` it first: reading a large dump back takes a while, once is
    enough), in one transaction: all of it, or nothing."""
    _run([_tool("pg_restore"), *_connection_args(server), "--clean", "--if-exists", "--single-transaction",
          "--exit-on-error", "--no-owner", "--dbname", server["dbname"], str(source)],
         server, f"pg_restore of {source}")
