"""The write path: one interface (``WriteClient``), chosen per process.

``AutoClient`` follows the DB's ``dbwriter_address``: while a dbserver is
posted every write goes to it; when none is (never started, or stopped
cleanly) this process writes the file itself. The file is re-checked (one
``stat``) on every write, so a server started or stopped later is followed.
"""

import os
from pathlib import Path

from balsam.config import SERVER_INFO_NAME, load_settings
from balsam.core import write_client
from balsam.dbclient.base import ServerGone, WriteClient
from balsam.exceptions import BalsamError, ConfigError


class AutoClient(WriteClient):
    def __init__(self, db_path, forced_mode=None):
        from balsam.dbclient.direct import DirectClient

        self.db_path = Path(db_path)
        self._info_file = os.path.join(db_path, SERVER_INFO_NAME)  # stat()ed on every write: keep it a str
        self.forced_mode = forced_mode
        self._direct = DirectClient(db_path)
        self._server = None
        self._stamp = None
        self._current = self._direct

    @property
    def mode(self):
        return self._choose().mode

    def _choose(self):
        if self.forced_mode == "direct":
            return self._direct
        try:
            stamp = os.stat(self._info_file).st_mtime_ns
        except FileNotFoundError:
            return self._direct
        if stamp != self._stamp:
            from balsam.wire.serverinfo import ServerInfo, elsewhere_message, served_elsewhere

            info = ServerInfo(self.db_path).read()
            served = served_elsewhere(self.db_path, info)
            if served:
                raise ConfigError(elsewhere_message(self.db_path, served))
            if info.get("address"):
                if self._server is None:
                    server = self._new_server_client()
                    server.check_reachable()  # kept only once it passed: a stale address fails fast every time
                    self._server = server
                self._current = self._server
            else:
                self._current = self._direct
            self._stamp = stamp
        return self._current

    def _new_server_client(self):
        from balsam.dbclient.zmq_client import ZmqClient

        settings = load_settings()
        return ZmqClient(self.db_path, settings.dbserver_deadline_sec, settings.dbserver_ping_timeout_sec)

    def request(self, op, payload):
        client = self._choose()
        if client is self._direct:
            return client.request(op, payload)
        try:
            return client.request(op, payload)
        except ServerGone as gone:
            self._stamp = None
            committed = _applied_result(gone.request_id)
            if committed is not None:
                return committed
            return self._choose().request(op, payload)

    def describe(self):
        try:
            return self._choose().describe()
        except BalsamError as exc:
            return f"dbserver NOT REACHABLE: {exc}"

    def close(self):
        if self._server is not None:
            self._server.close()
        self._server, self._stamp, self._current = None, None, self._direct


def _applied_result(request_id):
    """The stored result of a request the dbserver committed, else None."""
    import json

    from balsam.core.models import AppliedRequest

    stored = AppliedRequest.objects.stored([request_id]).get(request_id)
    return None if stored is None else json.loads(stored)


def reset_client(db_path, forced_mode=None):
    """Install the write client for the DB at ``db_path`` (called by ``django_config.activate``)."""
    from balsam.postgres.cluster import is_postgres_dir

    if is_postgres_dir(db_path):
        from balsam.dbclient.direct import PostgresClient

        client = PostgresClient(db_path)
    else:
        client = AutoClient(db_path, forced_mode)
    previous = write_client.install(client)
    if previous is not None:
        previous.close()
    return client
