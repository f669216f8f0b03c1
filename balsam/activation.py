"""What ``. balsamactivate PATH-or-NAME`` does, decided in Python (the shell
script only evaluates the result and starts the server).

The DB's server is started only by the DB's owner, and only when none runs:
for a PostgreSQL DB (a directory with ``balsamdb/``) always, since nothing
works without it; for SQLite when the DB's settings ask for it
(``"dbserver": true`` in ``settings.json``, which ``balsam share`` sets:
collaborators write only through the server).
"""

import os
import shlex

from balsam import dbsettings, used_dbs
from balsam.postgres.cluster import is_postgres_dir, pg_dir


def plan(name):
    """``(db_path, start_server)`` for the DB named by a path or a unique part of a used DB's path."""
    from balsam.dbserver.control import watchdog_running

    db_path = used_dbs.find(name)
    used_dbs.record(db_path)
    postgres = is_postgres_dir(db_path)
    # A PostgreSQL server belongs to whoever owns its cluster (balsamdb/), not the directory around it.
    if os.stat(pg_dir(db_path) if postgres else db_path).st_uid != os.geteuid():
        return db_path, False
    wanted = postgres or bool(dbsettings.read(db_path).get("dbserver"))
    # Both backends' servers run under the watchdog, which holds dbserver.lock.
    return db_path, wanted and not watchdog_running(db_path)


def shell_lines(name):
    """``plan`` as shell assignments for ``eval`` in balsamactivate."""
    db_path, start = plan(name)
    return f"BALSAM_DB_PATH={shlex.quote(str(db_path))}\n_BALSAM_START_SERVER={int(start)}"
