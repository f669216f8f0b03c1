"""Create and refresh Balsam DB directories (``balsam init``)."""

import os
import secrets
import sqlite3
from pathlib import Path

from balsam.config import SQLITE_NAME, absolute_path, is_balsam_db, require_write_access
from balsam.wire.credentials import ensure_credentials
from balsam.wire.serverinfo import IDENTITY_PENDING, ServerInfo, served_elsewhere
from balsam.django_config.settings import SECRET_KEY_NAME
from balsam.exceptions import ConfigError, DBNotFound, InitError

DB_TYPES = ("sqlite3", "postgres")


def _visible_entries(path):
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def check_init_target(path):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InitError(f"{path} is a file, not a directory; choose another path for the Balsam DB")
    if path.is_dir() and not is_balsam_db(path) and _visible_entries(path):
        raise InitError(
            f"{path} is a non-empty directory that is not a Balsam DB; choose an empty or new directory"
        )


def init_db(path, db_type=None, on_backup=None, on_migrate=None):
    """Create (or refresh the schema of) the Balsam DB at ``path``; keeps every row.
    An existing DB that lacks migrations is backed up first (``backups/``);
    ``on_backup(path, bytes)`` is told of the copy, then ``on_migrate(names)``
    of the migrations about to run (some rewrite a table: minutes on millions of jobs).

    Returns ``(path, created)``.
    """
    from django.core.management import call_command

    from balsam.django_config import activate, unapplied_migrations

    path = absolute_path(path)
    if db_type is None:  # not chosen: the existing DB's type, else SQLite
        from balsam.postgres.cluster import is_postgres_dir

        db_type = "postgres" if is_postgres_dir(path) else "sqlite3"
    if db_type not in DB_TYPES:
        raise InitError(f"unsupported --db-type {db_type!r}; supported: {', '.join(DB_TYPES)}")
    check_init_target(path)
    created = not is_balsam_db(path)
    if not created:
        require_write_access(path, "refresh its schema")
    if db_type == "postgres":
        from balsam.postgres import cluster

        cluster.refuse_root("make or refresh a PostgreSQL Balsam DB")
        cluster.find_binaries()  # before anything is made: one line naming what is missing
    try:
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "log"):
            (path / sub).mkdir(exist_ok=True)
    except OSError as exc:
        raise InitError(f"cannot create the Balsam DB at {path}: {exc.strerror}") from None
    info = ServerInfo(path)
    copy_of = None
    if created:
        info.update(db_type=db_type, address=None)
    else:
        try:
            current = info.read()
        except DBNotFound:  # the address file is missing or damaged: nobody can reach a server through it
            current = info.clear_server()
        copy_of = served_elsewhere(path, current)
        if copy_of:  # a copied directory: forget the original's server (and take an identity of its own below)
            info.clear_server()
            if db_type == "postgres":  # renewed by `balsam dbserver` once the copy's own server runs
                info.update(**{IDENTITY_PENDING: True})
        existing = current.get("db_type", "sqlite3")
        if existing != db_type:
            raise InitError(f"{path} is a {existing} Balsam DB; it cannot be re-initialised as {db_type}")
    ensure_secret_key(path)
    ensure_credentials(path)
    if db_type == "postgres":
        from balsam.dbdir_postgres import migrate_postgres

        migrate_postgres(path, created, on_migrate)
        return path, created
    if created:
        new_sqlite_file(path / SQLITE_NAME)
    activate(path, admin=True)
    if not created:
        from balsam.core.sql import check_sound

        check_sound(INIT_CHECK_SEC)  # a damaged file is refused before the migration touches it
        missing = unapplied_migrations()
        if missing:
            from balsam import backups

            copy, size = backups.take(path)
            if on_backup:
                on_backup(copy, size)
            if on_migrate:
                on_migrate(missing)
    call_command("migrate", interactive=False, verbosity=0)
    if copy_of:
        from balsam.core import write_client

        write_client.get().request("renew_db_identity", {})
    return path, created


def new_sqlite_file(file):
    """An empty SQLite file whose ``auto_vacuum`` is incremental, set before
    any table exists (afterwards only a full ``VACUUM`` can change it): then
    ``db compact`` gives freed pages back in small steps while the DB is in
    use (``PRAGMA incremental_vacuum``). A non-empty file is left as it is."""
    if file.exists() and file.stat().st_size:
        return
    conn = sqlite3.connect(file)
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")  # writes the header, which keeps the setting
    finally:
        conn.close()


INIT_CHECK_SEC = 30  # `balsam init` reads the whole file once; a DB too big for this is checked in part


def ensure_secret_key(path):
    """The DB's Django secret key (it signs the web pages' session cookies):
    made if missing or empty, and made owner-only (0600) if a DB from an
    earlier Balsam left it readable by others."""
    key_file = Path(path) / SECRET_KEY_NAME
    try:
        info = key_file.stat()
        if info.st_size:
            if info.st_mode & 0o077:
                key_file.chmod(0o600)
            return key_file
        key_file.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot make {key_file} readable by its owner only: {exc.strerror}") from None
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return key_file
    except OSError as exc:
        raise ConfigError(f"cannot write {key_file}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(50) + "\n")
    return key_file
