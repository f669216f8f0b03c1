"""The DB directory's ``dbwriter_address`` file: where the write server is.

Clients read it to find the server; ``balsam init`` and the dbserver write it.
Writes happen under a file lock and by atomic rename, so a reader never sees a
half-written file and two writers never lose each other's keys.
"""

import json
import os
import socket
from pathlib import Path

import psutil
from filelock import FileLock

from balsam.config import PG_DIR_NAME, SERVER_INFO_NAME, SQLITE_NAME
from balsam.exceptions import AccessDenied, DBNotFound
from balsam.files import write_json_atomically

LOCK_SUFFIX = ".lock"
# Set in the address file of a copied PostgreSQL DB until `balsam dbserver`
# renews its identity, which needs the copy's own server running.
IDENTITY_PENDING = "identity_pending"


def is_local_host(host):
    return host in ("127.0.0.1", "localhost", "::1", socket.gethostname(), socket.getfqdn())


def is_running(pid, started=None):
    """Is ``pid`` a live (non-zombie) process -- and, when ``started`` (epoch
    seconds) is known, the one that started then rather than a reused pid?"""
    if not pid:
        return False
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or process.create_time() <= started + 1
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return False


def server_alive(info):
    """Is the server or watchdog named in ``info`` running on this host?"""
    return is_running(info.get("server_pid"), info.get("started")) or is_running(
        info.get("watchdog_pid"), info.get("watchdog_started")
    )


def db_file_inode(db_path):
    """The inode of the DB's SQLite file, or of its PostgreSQL cluster
    directory (None without either). A copy of a DB directory has a new one;
    a moved DB keeps it. (Compared by inode alone: over NFS the device number
    differs from host to host, the inode does not.)"""
    for name in (SQLITE_NAME, PG_DIR_NAME):
        try:
            return os.stat(Path(db_path) / name).st_ino
        except FileNotFoundError:
            continue
    return None


def served_elsewhere(db_path, info):
    """The DB the posted server serves, when that is not this one (this is a
    copy of the served DB's directory), else None."""
    posted = info.get("db_inode")
    if not info.get("address") or posted is None or posted == db_file_inode(db_path):
        return None
    return info.get("db_path") or "another DB"


def elsewhere_message(db_path, served):
    return (f"this DB's address file ({Path(db_path) / SERVER_INFO_NAME}) points at the server of another DB "
            f"({served}), probably because the directory was copied; run: balsam dbserver --reset --path {db_path}")


class ServerInfo:
    def __init__(self, db_path):
        self.db_path = Path(db_path)
        self.path = self.db_path / SERVER_INFO_NAME
        self._lock = FileLock(str(self.path) + LOCK_SUFFIX, timeout=30)

    def read(self):
        repair = f"repair it with: balsam dbserver --reset --path {self.db_path}"
        try:
            text = self.path.read_bytes().decode()
        except FileNotFoundError:
            if (self.db_path / SQLITE_NAME).is_file():
                raise DBNotFound(f"{self.path} is missing; {repair}") from None
            raise DBNotFound(f"{self.db_path} is not a Balsam DB (no {SERVER_INFO_NAME})") from None
        except UnicodeDecodeError:
            raise DBNotFound(f"{self.path} is damaged (not text); {repair}") from None
        except PermissionError:
            raise AccessDenied(f"you may not read {self.path}; the DB's owner can share it with your group") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise DBNotFound(f"{self.path} is damaged (not JSON); {repair}") from None
        if not isinstance(data, dict):
            raise DBNotFound(f"{self.path} must hold a JSON object")
        return data

    def clear_server(self):
        """Forget the posted server (rewriting a damaged file if need be)."""
        with self._lock:
            try:
                data = self.read()
            except DBNotFound:
                data = {"db_type": "sqlite3"}
            data.update(address=None, local_address=None, server_pid=None, watchdog_pid=None, db_inode=None,
                        db_path=None)
            write_json_atomically(self.path, data, mode=0o644)
            return data

    def update(self, **changes):
        """Merge ``changes`` into the file atomically; return the new contents."""
        with self._lock:
            data = self.read() if self.path.exists() else {}
            data.update(changes)
            write_json_atomically(self.path, data, mode=0o644)
            return data


