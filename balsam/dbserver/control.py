"""Start, stop, inspect and reset a DB's dbserver (behind ``balsam dbserver``)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from filelock import Timeout

from balsam.config import require_write_access

from balsam.wire.credentials import ensure_credentials
from balsam.wire.serverinfo import (IDENTITY_PENDING, ServerInfo, elsewhere_message, is_local_host, is_running,
                                    served_elsewhere, server_alive)
from balsam.dbserver.watchdog import last_line, server_lock
from balsam.postgres.cluster import check_permissions, is_postgres_dir, require_owner
from balsam.exceptions import BalsamError

START_TIMEOUT_SEC = 30
STOP_TIMEOUT_SEC = 20


def default_host():
    return socket.gethostname()


def watchdog_running(db_path):
    """Is some watchdog holding this DB's server lock?"""
    lock = server_lock(db_path)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def start(db_path, host=None, group_commit=True):
    """Start the watchdog (detached) and wait until its server is posted; returns the info."""
    db_path = Path(db_path)
    require_write_access(db_path, "start its dbserver")
    require_pg_owner(db_path, "start")
    host = host or default_host()
    ensure_credentials(db_path)
    info = ServerInfo(db_path)
    current = info.read()
    if served_elsewhere(db_path, current):  # a copied directory names the original's server: this DB is its own
        info.clear_server()
        _renew_identity_or_mark(db_path, info)
        current = info.read()
    if watchdog_running(db_path) or _answers_elsewhere(db_path, current):
        raise BalsamError(
            f"{db_path} is already served by dbserver pid {current.get('server_pid')} "
            f"(watchdog pid {current.get('watchdog_pid')}) at {current.get('address')}"
        )
    module = "balsam.dbserver.pgserver" if is_postgres_dir(db_path) else "balsam.dbserver.watchdog"
    command = [sys.executable, "-m", module, "--path", str(db_path), "--host", host]
    if not group_commit:
        command.append("--no-group-commit")
    with open(db_path / "log" / "watchdog.out", "ab") as log:
        watchdog = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        current = info.read()
        if current.get("watchdog_pid") == watchdog.pid and current.get("address") and is_running(current.get("server_pid")):
            if current.get(IDENTITY_PENDING):  # a copied PostgreSQL DB: now that its own server runs
                renew_identity(db_path)
                current = info.update(**{IDENTITY_PENDING: None})
            return current
        if watchdog.poll() is not None:
            raise BalsamError(f"the dbserver did not start: {last_line(db_path / 'log' / 'watchdog.out')}")
        time.sleep(0.05)
    raise BalsamError(f"the dbserver did not post its address within {START_TIMEOUT_SEC} s; see {db_path}/log/")


def _answers_elsewhere(db_path, info):
    """A server posted from another host that still answers a ping."""
    from balsam.dbclient.zmq_client import ZmqClient

    if not info.get("address") or not info.get("host") or is_local_host(info["host"]):
        return False
    if is_postgres_dir(db_path):
        from balsam.dbserver.pgserver import answers

        return answers(db_path, info)
    client = ZmqClient(db_path, 1, 1)
    try:
        client.request("ping", {})
        return True
    except BalsamError:
        return False
    finally:
        client.close()


def require_pg_owner(db_path, action):
    """A PostgreSQL DB's server is started and stopped by its owner only (the
    cluster's files are theirs; PostgreSQL refuses root)."""
    if is_postgres_dir(db_path):
        require_owner(db_path, f"{action} the PostgreSQL server of {db_path}")
        if action == "start":
            check_permissions(db_path)


def _refuse_other_dbs_server(db_path, info, consequence):
    served = served_elsewhere(db_path, info)
    if served:
        raise BalsamError(f"{elsewhere_message(db_path, served)} ({consequence})")


def _renew_identity_or_mark(db_path, info):
    if is_postgres_dir(db_path):
        info.update(**{IDENTITY_PENDING: True})
    else:
        renew_identity(db_path)


def renew_identity(db_path):
    """A new random identity for the DB at ``db_path`` (the process must be
    attached to it; no server may be serving it)."""
    from balsam.core import write_client
    from balsam.django_config import activate

    activate(db_path)
    return write_client.get().request("renew_db_identity", {})


def _require_local(db_path, info, action):
    host = info.get("host")
    if info.get("address") and host and not is_local_host(host):
        raise BalsamError(f"the dbserver of {db_path} was started on host {host}; run `balsam dbserver --{action}` there")


def stop(db_path):
    """Stop this DB's watchdog and server; returns a one-line report."""
    require_write_access(db_path, "stop its dbserver")
    require_pg_owner(db_path, "stop")
    info = ServerInfo(db_path)
    current = info.read()
    _refuse_other_dbs_server(db_path, current, "nothing was stopped")
    _require_local(db_path, current, "stop")
    watchdog_pid, server_pid = current.get("watchdog_pid"), current.get("server_pid")
    watchdog_up = is_running(watchdog_pid, current.get("watchdog_started"))
    server_up = is_running(server_pid, current.get("started"))
    if watchdog_up:
        os.kill(watchdog_pid, signal.SIGTERM)
    elif server_up:
        os.kill(server_pid, signal.SIGTERM)
    else:
        info.clear_server()
        return f"no dbserver was running for {db_path} (address cleared)"
    deadline = time.monotonic() + STOP_TIMEOUT_SEC
    while time.monotonic() < deadline:
        if not is_running(watchdog_pid) and not is_running(server_pid):
            info.clear_server()
            return f"stopped the dbserver of {db_path} (watchdog pid {watchdog_pid}, server pid {server_pid})"
        time.sleep(0.05)
    raise BalsamError(f"the dbserver of {db_path} did not stop within {STOP_TIMEOUT_SEC} s (watchdog pid {watchdog_pid})")


def reset(db_path):
    """Clear a stale address left by a crash; refuses while a server still runs."""
    from balsam.exceptions import DBNotFound

    require_write_access(db_path, "reset its dbserver address")
    info = ServerInfo(db_path)
    try:
        current = info.read()
    except DBNotFound:  # damaged: rewrite it
        info.clear_server()
        return f"rewrote the damaged {info.path}"
    served = served_elsewhere(db_path, current)
    if served:  # a copy of another DB's directory: forget that server, and become a DB of its own
        info.clear_server()
        _renew_identity_or_mark(db_path, info)
        when = "when its server starts" if is_postgres_dir(db_path) else "now"
        return f"cleared the address of the server of {served} from {info.path}; this DB takes an identity of its own {when}"
    _require_local(db_path, current, "reset")
    if watchdog_running(db_path) or server_alive(current):
        raise BalsamError(
            f"the dbserver of {db_path} is running (server pid {current.get('server_pid')}); "
            f"stop it with: balsam dbserver --stop --path {db_path}"
        )
    info.clear_server()
    if not current.get("address"):
        return f"nothing was posted in {info.path}; it is clear"
    return f"cleared the stale address {current.get('address')} from {info.path}"


def status(db_path):
    """The running server's figures (raises if none answers)."""
    from balsam.config import load_settings
    from balsam.dbclient.zmq_client import ZmqClient

    current = ServerInfo(db_path).read()
    _refuse_other_dbs_server(db_path, current, "its figures are not this DB's")
    if not current.get("address"):
        raise BalsamError(f"no dbserver is running for {db_path}; start one with: balsam dbserver --path {db_path}")
    if is_postgres_dir(db_path):
        from balsam.dbserver.pgserver import status as postgres_status

        return postgres_status(db_path, current)
    client = ZmqClient(db_path, load_settings().dbserver_ping_timeout_sec, load_settings().dbserver_ping_timeout_sec)
    try:
        client.check_reachable()
        figures = client.request("status", {})
    finally:
        client.close()
    figures.update(address=current.get("address"), local_address=current.get("local_address"), host=current.get("host"),
                   watchdog_pid=current.get("watchdog_pid"), restarts=current.get("restarts", 0))
    return figures
