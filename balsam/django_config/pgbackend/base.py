"""Django's PostgreSQL backend for a Balsam DB directory.

Where the server is comes from the DB directory at every new connection
(the address file that ``balsam dbserver`` posts; a restarted server may be
on another port), and the role and password from
``postgres.credentials.pg_credentials``. A server that is not running or
does not answer is one line (``DBServerUnavailable``) naming host and port,
within the connect timeout, instead of psycopg's multi-line error. A
connection the server dropped is replaced at its next use outside a
transaction (the statement that found it dropped fails once).
"""

from django.db.backends.postgresql import base

from balsam.exceptions import AccessDenied, DBServerUnavailable
from balsam.postgres.cluster import CONNECT_TIMEOUT_SEC
from balsam.postgres.credentials import pg_credentials
from balsam.wire.serverinfo import ServerInfo, elsewhere_message, served_elsewhere

# Set by `balsam init` while it migrates through a server of its own (nothing posted).
SERVER_KEY = "BALSAM_PG_SERVER"


def posted_server(db_path):
    """``(host, port)`` of the DB's running server; one line when none is posted."""
    info = ServerInfo(db_path).read()
    if not info.get("address") or not info.get("port"):
        raise DBServerUnavailable(f"no PostgreSQL server is running for {db_path}; "
                                  f"start it with: balsam dbserver --path {db_path}")
    served = served_elsewhere(db_path, info)
    if served:  # a copy's address file names the original's server: never write there
        raise DBServerUnavailable(elsewhere_message(db_path, served))
    return info["host"], info["port"]


class DatabaseWrapper(base.DatabaseWrapper):
    def ensure_connection(self):
        # A connection the server dropped (a restart by the watchdog) is
        # replaced by the next use outside a transaction, instead of failing
        # every query of a long-running process (a launcher) from then on.
        conn = self.connection
        if conn is not None and not self.in_atomic_block and (conn.closed or conn.broken):
            self.close()
        super().ensure_connection()

    def get_connection_params(self):
        params = super().get_connection_params()
        db_path = self.settings_dict["BALSAM_DB_PATH"]
        host, port = self.settings_dict.get(SERVER_KEY) or posted_server(db_path)
        credentials = pg_credentials(db_path)
        params.update(host=host, port=port, user=credentials["user"], password=credentials["password"],
                      dbname=credentials["database"], connect_timeout=CONNECT_TIMEOUT_SEC)
        # psycopg's prepared statements stay off, as Django leaves them: its
        # cursors bind on the client and never prepare, and the one statement
        # Balsam prepares goes through libpq itself (``postgres.prepared``).
        return params

    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except self.Database.OperationalError as exc:
            detail = " ".join(str(exc).split())
            if "password authentication failed" in detail:  # a removed collaborator (their role is gone)
                raise AccessDenied(
                    f"the PostgreSQL server of {self.settings_dict['BALSAM_DB_PATH']} refused role "
                    f"{conn_params.get('user')}: not (or no longer) authorized by the DB's owner, or a wrong password; "
                    "ask them to run: balsam dbserver --add-user NAME, then run: balsam login PATH TOKEN") from None
            raise DBServerUnavailable(
                f"cannot reach the PostgreSQL server of {self.settings_dict['BALSAM_DB_PATH']} at "
                f"{conn_params.get('host')}:{conn_params.get('port')}: {detail}") from None
