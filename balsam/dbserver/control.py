"""Start, stop, inspect and reset a DB's dbserver (behind ``balsam dbserver``)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from filelock import Timeout

from balsam.dbserver.credentials import ensure_credentials
from balsam.dbserver.serverinfo import ServerInfo
from balsam.dbserver.watchdog import server_lock
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
    from balsam.dbclient.zmq_client import _running

    db_path = Path(db_path)
    host = host or default_host()
    ensure_credentials(db_path)
    info = ServerInfo(db_path)
    if watchdog_running(db_path):
        current = info.read()
        raise BalsamError(
            f"{db_path} is already served by dbserver pid {current.get('server_pid')} "
            f"(watchdog pid {current.get('watchdog_pid')}) at {current.get('address')}"
        )
    command = [sys.executable, "-m", "balsam.dbserver.watchdog", "--path", str(db_path), "--host", host]
    if not group_commit:
        command.append("--no-group-commit")
    with open(db_path / "log" / "watchdog.out", "ab") as log:
        watchdog = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        current = info.read()
        if current.get("watchdog_pid") == watchdog.pid and current.get("address") and _running(current.get("server_pid")):
            return current
        if watchdog.poll() is not None:
            raise BalsamError(f"the dbserver did not start: {_last_line(db_path / 'log' / 'watchdog.out')}")
        time.sleep(0.05)
    raise BalsamError(f"the dbserver did not post its address within {START_TIMEOUT_SEC} s; see {db_path}/log/")


def _last_line(path):
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def stop(db_path):
    """Stop this DB's watchdog and server; returns a one-line report."""
    from balsam.dbclient.zmq_client import _running

    info = ServerInfo(db_path)
    current = info.read()
    watchdog_pid, server_pid = current.get("watchdog_pid"), current.get("server_pid")
    if _running(watchdog_pid):
        os.kill(watchdog_pid, signal.SIGTERM)
    elif _running(server_pid):
        os.kill(server_pid, signal.SIGTERM)
    else:
        info.update(address=None, server_pid=None, watchdog_pid=None)
        return f"no dbserver was running for {db_path} (address cleared)"
    deadline = time.monotonic() + STOP_TIMEOUT_SEC
    while time.monotonic() < deadline:
        if not _running(watchdog_pid) and not _running(server_pid):
            info.update(address=None, server_pid=None, watchdog_pid=None)
            return f"stopped the dbserver of {db_path} (watchdog pid {watchdog_pid}, server pid {server_pid})"
        time.sleep(0.05)
    raise BalsamError(f"the dbserver of {db_path} did not stop within {STOP_TIMEOUT_SEC} s (watchdog pid {watchdog_pid})")


def reset(db_path):
    """Clear a stale address left by a crash; refuses while a server still runs."""
    from balsam.dbclient.zmq_client import _running

    info = ServerInfo(db_path)
    current = info.read()
    if watchdog_running(db_path) or _running(current.get("server_pid")):
        raise BalsamError(
            f"the dbserver of {db_path} is running (server pid {current.get('server_pid')}); "
            f"stop it with: balsam dbserver --stop --path {db_path}"
        )
    info.update(address=None, server_pid=None, watchdog_pid=None)
    return f"reset {db_path}/dbwriter_address (was {current.get('address')})"


def status(db_path):
    """The running server's figures (raises if none answers)."""
    from balsam.config import load_settings
    from balsam.dbclient.zmq_client import ZmqClient

    current = ServerInfo(db_path).read()
    if not current.get("address"):
        raise BalsamError(f"no dbserver is running for {db_path}; start one with: balsam dbserver --path {db_path}")
    client = ZmqClient(db_path, load_settings().dbserver_ping_timeout_sec, load_settings().dbserver_ping_timeout_sec)
    client.check_reachable()
    figures = client.request("status", {})
    figures.update(address=current.get("address"), host=current.get("host"),
                   watchdog_pid=current.get("watchdog_pid"), restarts=current.get("restarts", 0))
    return figures
