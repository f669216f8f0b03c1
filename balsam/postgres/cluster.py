"""The PostgreSQL cluster of a DB directory: ``<DB>/balsamdb/``.

Made by ``initdb`` (``balsam init --db-type postgres``) with a Balsam-written
``postgresql.conf`` and a ``pg_hba.conf`` that asks every client for a
password (scram-sha-256; no ``trust``, no ``peer``). The server listens on
TCP only (no Unix socket: ``balsamdb/`` is mode 700, so a socket there would
serve the owner alone, and socket paths are limited to ~100 characters).
The dbserver's watchdog runs ``postgres`` in the foreground
(``server_command``) on a free port; ``balsam init`` runs a short-lived one
(``temporary_server``) when none is posted, to migrate.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from balsam.config import PG_DIR_NAME
from balsam.exceptions import AccessDenied, ConfigError, DBServerUnavailable, InitError
from balsam.postgres import roles

PG_DIR = PG_DIR_NAME
LOG_DIR = "log"  # inside balsamdb/, the server's own logs (logging_collector)
BINARIES = ("initdb", "postgres")
SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin")
INSTALL_HINT = "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; RHEL: dnf install postgresql-server)"
CONNECT_TIMEOUT_SEC = 5
READY_TIMEOUT_SEC = 30

# Written by `balsam init` (and rewritten by each `balsam init`). Sized for
# many launchers on one DB: every Balsam process holds one connection.
POSTGRESQL_CONF = """\
# Written by `balsam init --db-type postgres`; rewritten by every `balsam init`.
# The port and listen address are given by `balsam dbserver` when it starts the server.
listen_addresses = ''
unix_socket_directories = ''          # TCP only: every client gives a password
max_connections = 500
superuser_reserved_connections = 3
password_encryption = scram-sha-256
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 128MB
effective_cache_size = 1GB
max_wal_size = 2GB
min_wal_size = 256MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = on
# Every commit waits for its WAL flush (the default, stated): an acknowledged
# write survives a kill -9 of any process, the server's included, as on the
# SQLite DB. (Off, a killed server loses the commits still in its WAL buffers.)
# commit_delay lets commits that arrive together share one flush.
synchronous_commit = on
commit_delay = 200
commit_siblings = 4
idle_in_transaction_session_timeout = 10min
tcp_keepalives_idle = 60
dynamic_shared_memory_type = posix
timezone = 'UTC'
log_timezone = 'UTC'
datestyle = 'iso, mdy'
lc_messages = 'C'
default_text_search_config = 'pg_catalog.english'
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql-%a.log'
log_truncate_on_rotation = on
log_rotation_age = 1d
log_rotation_size = 0
log_line_prefix = '%m [%p] %u@%d %h '
log_connections = off
log_min_duration_statement = 2000
# Your own settings (never written by Balsam; later lines win):
include_if_exists = 'local.conf'
"""

PG_HBA_CONF = """\
# Written by `balsam init --db-type postgres`: every client gives its role's
# password (scram-sha-256). No trust, no peer. The server has no Unix socket;
# the local line only keeps that rule if one is ever added.
# TYPE  DATABASE  USER  ADDRESS      METHOD
local   all       all                scram-sha-256
host    all       all   0.0.0.0/0    scram-sha-256
host    all       all   ::/0         scram-sha-256
"""


def pg_dir(db_path):
    return Path(db_path) / PG_DIR


def is_postgres_dir(db_path):
    return pg_dir(db_path).is_dir()


def find_binaries():
    """``{name: path}`` of the PostgreSQL server programs; one-line error if missing."""
    found = {}
    chosen = os.environ.get("BALSAM_PG_BIN")
    if chosen:  # the user's choice of installation, alone
        candidates, where = [chosen], f"in {chosen} (BALSAM_PG_BIN)"
    else:
        candidates = sorted((d for pattern in SEARCH for d in glob.glob(pattern)), key=_version_key, reverse=True)
        where = f"on PATH and in {', '.join(SEARCH)}"
    for name in BINARIES:
        path = None if chosen else shutil.which(name)
        for directory in candidates:
            if path:
                break
            if directory and os.access(Path(directory) / name, os.X_OK):
                path = str(Path(directory) / name)
        if path:
            found[name] = path
    missing = [name for name in BINARIES if name not in found]
    if missing:
        raise ConfigError(
            f"PostgreSQL not found: looked for {' and '.join(missing)} {where}; {INSTALL_HINT} "
            "(or set BALSAM_PG_BIN to the directory of its programs)")
    # Both from one installation: the one initdb was found in when they differ.
    postgres_beside = Path(found["initdb"]).with_name("postgres")
    if os.access(postgres_beside, os.X_OK):
        found["postgres"] = str(postgres_beside)
    return found


def _version_key(directory):
    digits = "".join(c if c.isdigit() else " " for c in directory).split()
    return [int(d) for d in digits]


def refuse_root(what):
    if os.geteuid() == 0:
        raise ConfigError(f"cannot {what} as root: PostgreSQL refuses to run as root; "
                          "run it as the (non-root) user who owns the DB")


def require_owner(db_path, what):
    """Only the owner of ``balsamdb/`` (not root either: PostgreSQL refuses it)."""
    import pwd

    directory = pg_dir(db_path)
    try:
        uid = directory.stat().st_uid
    except OSError as exc:
        raise AccessDenied(f"cannot {what}: {directory}: {exc.strerror}") from None
    if uid != os.geteuid():
        try:
            owner = pwd.getpwuid(uid).pw_name
        except KeyError:
            owner = f"uid {uid}"
        me = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() != 0 else "root"
        raise AccessDenied(f"cannot {what}: only its owner {owner} may, not {me}")


def check_permissions(db_path):
    """PostgreSQL refuses a data directory others may enter; say so in one line first."""
    directory = pg_dir(db_path)
    try:
        info = directory.stat()
    except OSError as exc:
        raise ConfigError(f"cannot use {directory}: {exc.strerror}") from None
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{directory} belongs to another user (uid {info.st_uid}); only its owner may run its server")
    if info.st_mode & 0o077:
        raise ConfigError(f"{directory} has mode {info.st_mode & 0o777:o}; PostgreSQL needs 700 "
                          f"(fix: chmod 700 {directory})")


def write_config(db_path):
    directory = pg_dir(db_path)
    (directory / "postgresql.conf").write_text(POSTGRESQL_CONF)
    (directory / "pg_hba.conf").write_text(PG_HBA_CONF)
    (directory / LOG_DIR).mkdir(mode=0o700, exist_ok=True)


def initdb(db_path, role, password):
    """Make the cluster: ``role`` is its superuser (the DB's owner)."""
    binaries = find_binaries()
    directory = pg_dir(db_path)
    with tempfile.NamedTemporaryFile("w", prefix="balsam-pw-", delete=True) as pwfile:
        os.chmod(pwfile.name, 0o600)
        pwfile.write(password + "\n")
        pwfile.flush()
        command = [binaries["initdb"], "-D", str(directory), "-U", role, "-A", "scram-sha-256",
                   f"--pwfile={pwfile.name}", "-E", "UTF8", "--locale=C", "--no-instructions"]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise InitError(f"initdb failed: {lines[-1] if lines else f'exit code {result.returncode}'}")
    directory.chmod(0o700)
    write_config(db_path)


def free_port(host, preferred=None):
    """A TCP port free on ``host`` (``preferred`` when it still is)."""
    address = socket.gethostbyname(host)
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As PostgreSQL binds: a port left in TIME_WAIT by the last server is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise ConfigError(f"no free TCP port on {host}")


def clear_foreign_lock(db_path):
    """Remove a ``postmaster.pid`` that locks ANOTHER cluster: one copied along
    with the directory (``cp -a`` while its server ran) names the original's
    data directory and its still-running postmaster, and PostgreSQL would
    refuse to start the copy. Our own lock (a server running here, or a dead
    one's, which PostgreSQL clears itself) is left alone."""
    directory = pg_dir(db_path)
    lock = directory / "postmaster.pid"
    try:
        locked = Path(lock.read_text().splitlines()[1])
        ours = os.stat(directory)
    except (OSError, IndexError, UnicodeError):
        return False
    try:
        theirs = os.stat(locked)
    except OSError:
        return False  # that path is gone (this is it, moved): PostgreSQL decides by the pid
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        return False
    lock.unlink()
    return True


def server_command(db_path, host, port):
    binaries = find_binaries()
    return [binaries["postgres"], "-D", str(pg_dir(db_path)), "-p", str(port), "-c", f"listen_addresses={host}"]


def connect(host, port, credentials, timeout=CONNECT_TIMEOUT_SEC, dbname=None):
    """A psycopg connection (autocommit); ``DBServerUnavailable`` naming host
    and port when the server does not answer."""
    import psycopg

    try:
        return psycopg.connect(host=host, port=port, user=credentials["user"], password=credentials["password"],
                               dbname=dbname or credentials["database"], connect_timeout=timeout, autocommit=True)
    except psycopg.OperationalError as exc:
        detail = " ".join(str(exc).split())
        raise DBServerUnavailable(f"cannot reach the PostgreSQL server at {host}:{port}: {detail}") from None


def wait_ready(host, port, credentials, process=None, timeout=READY_TIMEOUT_SEC):
    """Wait until the server answers a password login (or ``process`` exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect(host, port, credentials, timeout=2, dbname="postgres").close()
            return True
        except DBServerUnavailable:
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def ensure_database(host, port, credentials):
    """The owner's database, made if missing; the owner's password stored
    again as Balsam's verifier (``initdb`` wrote PostgreSQL's default, 4096
    PBKDF2 rounds, which every connection of the owner's processes pays)."""
    with connect(host, port, credentials, dbname="postgres") as conn:
        roles.set_password(conn, credentials["user"], credentials["password"])
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [credentials["database"]]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{credentials["database"]}" OWNER "{credentials["user"]}"')


@contextlib.contextmanager
def temporary_server(db_path, credentials, host="127.0.0.1"):
    """A server for the length of the block (``balsam init`` when none runs);
    yields ``(host, port)``."""
    check_permissions(db_path)
    clear_foreign_lock(db_path)
    port = free_port(host)
    log = open(Path(db_path) / "log" / "postgres-init.out", "ab")
    process = subprocess.Popen(server_command(db_path, host, port), stdin=subprocess.DEVNULL, stdout=log,
                               stderr=log, start_new_session=True)
    log.close()
    try:
        if not wait_ready(host, port, credentials, process):
            raise InitError(f"the PostgreSQL server of {db_path} did not start; see {Path(db_path) / 'log'}/ "
                            f"and {pg_dir(db_path) / LOG_DIR}/")
        yield host, port
    finally:
        process.send_signal(signal.SIGINT)  # "fast" shutdown: SIGTERM would wait for clients to leave
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def figures(host, port, credentials):
    """The ``--status`` figures: connections and DB size."""
    with connect(host, port, credentials) as conn:
        connections = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").fetchone()[0]
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        limit = conn.execute("SHOW max_connections").fetchone()[0]
        version = conn.execute("SHOW server_version").fetchone()[0]
    return {"connections": connections, "max_connections": int(limit), "db_bytes": size, "version": version}
