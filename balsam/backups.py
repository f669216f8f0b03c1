"""Consistent copies of a Balsam DB file, taken while it is in use, and
putting one back. Plain ``sqlite3``, no Django: ``balsam db backup``,
``balsam db restore``, ``balsam init`` (before a migration) and the dbserver's
scheduled backups all come here.

A copy is made with SQLite's online backup API in **one step**, i.e. inside
one read transaction: in WAL mode a reader never blocks the writer (nor the
writer the reader), so launchers and the dbserver keep committing while the
pages are copied, and the copy is the DB as of the moment the read began. (A
copy in many small steps from a connection that does not write would restart
each time another connection commits, and might never finish on a busy DB.)
The copy is written under a temporary name, checked with SQLite's
``quick_check`` (every page and record read back; ``integrity_check``, which
also compares each index with its table, costs ~8 times more and finds
nothing a page copy can have changed) and only then renamed to its final name.
"""

import datetime
import os
import re
import sqlite3
from pathlib import Path

from balsam.config import SQLITE_NAME
from balsam.exceptions import BalsamError, DBDamaged

BACKUP_DIR = "backups"
SUFFIX = ".sqlite3"
# Backups the dbserver takes on schedule are named by their time alone; they
# are the ones it prunes (a backup named by the user is never removed).
_STAMP = "%Y%m%d-%H%M%S"
_SCHEDULED = re.compile(r"^\d{8}-\d{6}(-\d+)?\.sqlite3$")


class BackupError(BalsamError):
    exit_code = 1


def db_file(db_path):
    return Path(db_path) / SQLITE_NAME


def default_target(db_path, now=None, suffix=SUFFIX, prefix=""):
    """``<DB>/backups/<prefix><UTC time><suffix>``, a new name (``-2``, ``-3`` ... within one second)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    folder = Path(db_path) / BACKUP_DIR
    base = prefix + now.strftime(_STAMP)
    target, n = folder / f"{base}{suffix}", 1
    while target.exists() or target.with_name(target.name + ".partial").exists():
        n += 1
        target = folder / f"{base}-{n}{suffix}"
    return target


def new_target(db_path, target=None, suffix=SUFFIX):
    """The path a new backup goes to (``default_target`` unless given), its
    folder made; refuses an existing file or a path that cannot be a file."""
    target = Path(target) if target else default_target(db_path, suffix=suffix)
    if target.exists():
        raise BackupError(f"{target} exists; choose another file (a backup never overwrites one)")
    if target.is_dir() or (target.parent.exists() and not target.parent.is_dir()):
        raise BackupError(f"cannot write a backup to {target}: not a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot write a backup to {target}: {exc}") from None
    return target


def _connect(path, timeout=30):
    return sqlite3.connect(str(path), timeout=timeout, isolation_level=None)


def integrity_problems(path, most=10, full=False):
    """SQLite's ``quick_check`` (``full``: ``integrity_check``) of the file at ``path``: [] when sound."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute(f"PRAGMA {pragma}({int(most)})").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    problems = [row[0] for row in rows]
    return [] if problems == ["ok"] else problems


def copy_db(source, target):
    """Copy the SQLite file ``source`` to ``target`` (a new file) as of one
    moment, while others keep writing it. Returns the copy's size in bytes."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = _connect(source)
    try:
        dst = _connect(partial)
        try:
            src.backup(dst, pages=-1)  # one step: one read transaction (see the module's notes)
            # A file on its own: no WAL beside it to lose when it is copied or moved.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    return partial


def take(db_path, target=None):
    """Back up the DB at ``db_path`` to ``target`` (default: ``default_target``),
    verified; returns ``(path, bytes)``. Refuses an existing ``target``."""
    target = new_target(db_path, target)
    try:
        partial = copy_db(db_file(db_path), target)
    except (OSError, sqlite3.Error) as exc:
        Path(str(target) + ".partial").unlink(missing_ok=True)
        raise BackupError(f"cannot write a backup to {target}: {exc}") from None
    problems = integrity_problems(partial)
    if problems:
        partial.unlink(missing_ok=True)
        raise DBDamaged.of(db_file(db_path), "; ".join(problems[:3]))
    os.replace(partial, target)
    return target, target.stat().st_size


def scheduled_backups(db_path):
    """The time-named backups in ``<DB>/backups``, oldest first."""
    folder = Path(db_path) / BACKUP_DIR
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _SCHEDULED.match(p.name)), key=lambda p: (p.stat().st_mtime, p.name))


def prune(db_path, keep):
    """Remove all but the newest ``keep`` time-named backups; returns the removed paths."""
    found = scheduled_backups(db_path)
    removed = found[: max(0, len(found) - keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def restore(db_path, source, now=None):
    """Put the backup ``source`` in place of the DB file, keeping the current
    one as ``db.sqlite3.before-restore-<UTC time>``. The caller makes sure
    nothing is using the DB. Returns the kept file's path."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    problems = integrity_problems(source)
    if problems:
        raise BackupError(f"{source} is not a sound SQLite file ({'; '.join(problems[:3])}); nothing was changed")
    live = db_file(db_path)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    kept = live.with_name(f"{live.name}.before-restore-{now.strftime(_STAMP)}")
    if kept.exists():
        raise BackupError(f"{kept} exists; wait a second and retry")
    try:
        copy_db(live, kept).rename(kept)
        # Through SQLite, not a file copy: the live file's WAL and shared memory stay consistent.
        src, dst = _connect(source), _connect(live)
        try:
            src.backup(dst, pages=-1)
        finally:
            src.close()
            dst.close()
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"cannot restore {source} into {live}: {exc}") from None
    return kept
