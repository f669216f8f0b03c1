"""Configure Django for one Balsam DB directory.

``activate(db_path)`` is the single entry: entry points (CLI, dbserver,
launcher, ``dag``) call it once. Nothing happens at import time.
"""

import gc
import logging
import threading
from pathlib import Path

from balsam.dbsettings import apply_umask
from balsam.django_config.settings import build_settings

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_active = {"path": None, "admin": False, "write_mode": None}


def activate(db_path, admin=False, write_mode=None):
    """Attach this process to the DB directory ``db_path``.

    ``admin`` adds Django's admin, auth and session apps (web pages, migrations);
    plain commands leave them out because importing them costs start-up time.
    Calling again with another path switches the process's connection (used by
    the test fixtures, which give every test its own DB directory).
    ``write_mode="direct"`` makes this process write the file itself even when
    a dbserver is posted (the dbserver uses it).
    """
    import django
    from django.conf import settings

    db_path = Path(db_path).resolve()
    # A shared DB's umask: what this process makes (job directories, logs) stays
    # writable by the group, whichever user's launcher, service or dbserver it is.
    apply_umask(db_path)
    with _lock:
        if not settings.configured:
            settings.configure(**build_settings(db_path, admin=admin))
            django.setup()
            _active.update(path=db_path, admin=admin, write_mode=write_mode)
            _install_write_client()
            # Django's modules, models and settings live as long as the process:
            # out of the collector's sight. Else the first full collection after
            # set-up walks all of them (55-60 ms, at a user's first bulk_create
            # of a thousand jobs) and every later one walks them again.
            gc.freeze()
            return db_path
        if admin and not _active["admin"]:
            raise RuntimeError("activate(admin=True) must come before any other activate()")
        if _active["path"] != db_path or _active["write_mode"] != write_mode:
            _active["write_mode"] = write_mode
            _switch_database(db_path)
            _active["path"] = db_path
    return db_path


def _install_write_client(db_path=None):
    from balsam import dbclient

    dbclient.reset_client(db_path or _active["path"], forced_mode=_active["write_mode"])


def _switch_database(db_path):
    from django.db import connections

    new = build_settings(db_path, admin=_active["admin"])["DATABASES"]["default"]
    connections.close_all()
    old = connections["default"].settings_dict
    # A switch between backends (SQLite <-> PostgreSQL) needs a new connection
    # object of the other backend's class, and none of the other's keys.
    engine_changed = old.get("ENGINE") != new["ENGINE"]
    for key in ("BALSAM_DB_PATH", "HOST", "PORT", "USER", "PASSWORD"):
        old.pop(key, None)
    old.update(HOST="", PORT="", USER="", PASSWORD="")
    old.update(new)
    from django.conf import settings

    settings.DATABASES["default"] = old
    if engine_changed:
        connections.settings["default"] = old
        del connections["default"]
    settings.BALSAM_DB_PATH = str(db_path)
    _install_write_client(db_path)


def unapplied_migrations():
    """The migrations the attached DB lacks (``app.name``), sorted."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    loader = MigrationExecutor(connection).loader
    return sorted(f"{app}.{name}" for app, name in loader.graph.nodes if (app, name) not in loader.applied_migrations)


def missing_schema_updates():
    """Balsam's own migrations the attached DB has not applied (names,
    sorted): the files in ``balsam/core/migrations`` against the rows of
    Django's migration table. A listing and one query, no migration loader:
    every command that attaches checks it (``api.attach``)."""
    from django.db import DatabaseError, connection

    folder = Path(__file__).resolve().parent.parent / "core" / "migrations"
    shipped = {p.stem for p in folder.glob("[0-9][0-9][0-9][0-9]_*.py")}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM django_migrations WHERE app = %s", ["balsam"])
            applied = {name for (name,) in cursor.fetchall()}
    except DatabaseError:
        applied = set()  # no migration table at all: nothing applied
    return sorted(shipped - applied)
