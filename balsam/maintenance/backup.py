"""``balsam db backup`` and ``balsam db restore``: the checks around
``balsam.backups`` that need the attached DB (who is using it)."""

import logging
from pathlib import Path

from django.db import connections
from django.utils import timezone
from filelock import FileLock, Timeout

from balsam import backups
from balsam.core import health
from balsam.dbserver.control import watchdog_running
from balsam.exceptions import BalsamError
from balsam.maintenance import pg
from balsam.postgres import dump

logger = logging.getLogger(__name__)

PG_SUFFIX = ".pgdump"
SERVICE_LOCK = "service.lock"  # balsam.service.service.LOCK_NAME (the service sits above this layer)


def backup(db_path, target=None):
    """A verified online copy of the DB; returns ``(path, bytes)``. On
    PostgreSQL a ``pg_dump`` (``postgres.dump``), named ``*.pgdump``."""
    if pg.is_postgres():
        path = backups.new_target(db_path, target, suffix=PG_SUFFIX)
        size = dump.dump(pg.server(), path)
    else:
        path, size = backups.take(db_path, target)
    logger.info("backed up %s to %s (%d bytes)", db_path, path, size)
    return path, size


def users(db_path):
    """What is using the DB now, in words: a dbserver (on PostgreSQL, which
    needs its server running: other sessions), a service, launchers holding live leases."""
    found = []
    if pg.is_postgres():
        found.extend(pg.other_sessions())
    elif watchdog_running(db_path):
        found.append("a dbserver (stop it with: balsam dbserver --stop)")
    lock = FileLock(str(Path(db_path) / SERVICE_LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        found.append("a balsam service (stop it with SIGTERM)")
    else:
        lock.release()
    for owner, held in sorted(health.live_lease_owners(timezone.now()).items()):
        found.append(f"launcher {owner} (holds {held} job(s); stop it, or wait until its lease lapses)")
    return found


def restore(db_path, source):
    """Put the backup ``source`` in place of the DB file, refusing while
    anything uses the DB; returns the path the current file was kept at."""
    if pg.is_postgres():
        dump.verify(source)  # a file that cannot be restored is said first, whoever is connected
    active = users(db_path)
    if active:
        raise BalsamError(f"the DB at {db_path} is in use by {'; '.join(active)}; nothing was restored")
    if pg.is_postgres():
        return _restore_postgres(db_path, source)
    connections.close_all()  # this process's own connection must not hold the file
    kept = backups.restore(db_path, source)
    logger.info("restored %s from %s; the previous file is %s", db_path, source, kept)
    return kept


def _restore_postgres(db_path, source):
    """The current database dumped first (``backups/before-restore-<UTC time>.pgdump``), then
    replaced (``source`` was verified by ``restore``)."""
    kept = backups.new_target(db_path, backups.default_target(db_path, suffix=PG_SUFFIX, prefix="before-restore-"))
    server = pg.server()
    dump.dump(server, kept)
    connections.close_all()  # no session of ours may hold a lock on a table being replaced
    dump.restore(server, source)
    logger.info("restored %s from %s; the previous DB is %s", db_path, source, kept)
    return kept
