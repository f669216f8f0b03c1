"""``balsam init --db-type postgres``: the cluster, the owner's role and
database, and the schema from the same Django migrations as SQLite.

The DB's type is told by its directory: a ``balsamdb/`` cluster directory
makes it a PostgreSQL DB (``postgres.cluster.is_postgres_dir``, read by the
settings and the write client); ``dbwriter_address`` also says
``"db_type": "postgres"`` for people and ``balsam which``.
"""

from balsam.postgres import cluster
from balsam.postgres.credentials import owner_role, pg_credentials, write_owner_credentials
from balsam.wire.serverinfo import ServerInfo, server_alive


def make_cluster(path):
    """``initdb`` with the owner's role and a new password (stored owner-only)."""
    role = owner_role()
    password = write_owner_credentials(path, role)
    cluster.initdb(path, role, password)


def migrate_postgres(path, created, on_migrate=None):
    """Make the cluster if it is new, then create the database if missing and
    migrate it: through the running server when one is posted, else through
    a server of its own for the length of the migration. ``on_migrate(names)``:
    told of the migrations about to run on an existing DB."""
    from django.db import connections

    from balsam.django_config import activate
    from balsam.django_config.pgbackend.base import SERVER_KEY

    if created or not cluster.pg_dir(path).is_dir():
        make_cluster(path)
    else:
        cluster.check_permissions(path)
        cluster.write_config(path)  # Balsam's postgresql.conf and pg_hba.conf, as this version writes them
    credentials = pg_credentials(path)
    info = ServerInfo(path).read()
    activate(path, admin=True)
    if info.get("address") and server_alive(info):
        cluster.ensure_database(info["host"], info["port"], credentials)
        _migrate(None if created else on_migrate)
        return
    with cluster.temporary_server(path, credentials) as (host, port):
        cluster.ensure_database(host, port, credentials)
        settings = connections["default"].settings_dict
        connections["default"].close()
        settings[SERVER_KEY] = (host, port)
        try:
            _migrate(None if created else on_migrate)
        finally:
            connections["default"].close()
            settings.pop(SERVER_KEY, None)


def _migrate(on_migrate):
    """Apply the missing migrations, first telling ``on_migrate`` (if any) their names."""
    from django.core.management import call_command

    from balsam.django_config import unapplied_migrations

    missing = unapplied_migrations() if on_migrate else None
    if missing:
        on_migrate(missing)
    call_command("migrate", interactive=False, verbosity=0)
