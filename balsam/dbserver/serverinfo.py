"""The DB directory's ``dbwriter_address`` file: where the write server is.

Clients read it to find the server; ``balsam init`` and the dbserver write it.
Writes happen under a file lock and by atomic rename, so a reader never sees a
half-written file and two writers never lose each other's keys.
"""

import json
import os
import tempfile
from pathlib import Path

from filelock import FileLock

from balsam.config import SERVER_INFO_NAME
from balsam.exceptions import DBNotFound

LOCK_SUFFIX = ".lock"


class ServerInfo:
    def __init__(self, db_path):
        self.db_path = Path(db_path)
        self.path = self.db_path / SERVER_INFO_NAME
        self._lock = FileLock(str(self.path) + LOCK_SUFFIX, timeout=30)

    def read(self):
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            raise DBNotFound(f"{self.db_path} is not a Balsam DB (no {SERVER_INFO_NAME})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise DBNotFound(
                f"{self.path} is not valid JSON; run: balsam dbserver --reset --path {self.db_path}"
            ) from None
        if not isinstance(data, dict):
            raise DBNotFound(f"{self.path} must hold a JSON object")
        return data

    def update(self, **changes):
        """Merge ``changes`` into the file atomically; return the new contents."""
        with self._lock:
            data = self.read() if self.path.exists() else {}
            data.update(changes)
            _atomic_write_json(self.path, data)
            return data


def _atomic_write_json(path, data):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
