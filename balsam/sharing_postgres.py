"""The PostgreSQL step of ``balsam dbserver --add-user/--remove-user``
(``sharing._BACKEND_STEPS``): a collaborator's own login role.

The owner's connection goes to the DB's running server when one is posted,
else to a server of its own for the length of the change (as ``balsam init``
migrates): adding or removing a user never needs the server to be running,
and never leaves one running that was not.
"""

import contextlib

from balsam.postgres import cluster, roles
from balsam.postgres.credentials import DATABASE, pg_credentials
from balsam.wire.serverinfo import ServerInfo, is_local_host, server_alive


@contextlib.contextmanager
def owner_connection(db_path):
    credentials = pg_credentials(db_path)
    info = ServerInfo(db_path).read()
    posted = info.get("address") and info.get("host") and info.get("port")
    if posted and (server_alive(info) or not is_local_host(info["host"])):
        with cluster.connect(info["host"], info["port"], credentials) as conn:
            yield conn
        return
    with cluster.temporary_server(db_path, credentials) as (host, port):
        with cluster.connect(host, port, credentials) as conn:
            yield conn


def authorize(db_path, user):
    """A login role for ``user`` with a new password; returns what their token carries."""
    with owner_connection(db_path) as conn:
        owner = pg_credentials(db_path)["user"]
        password = roles.add_role(conn, user, owner, DATABASE)
    return {"postgres": {"user": user, "password": password, "database": DATABASE}}


def revoke(db_path, user):
    """Drop ``user``'s role and end their open sessions."""
    with owner_connection(db_path) as conn:
        roles.drop_role(conn, user)


def role_names(db_path):
    with owner_connection(db_path) as conn:
        return roles.collaborator_roles(conn)
