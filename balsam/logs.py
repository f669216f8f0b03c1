"""Logging for entry points: one rotating file per process kind under <DB>/log/,
and finding those files again (``balsam log``)."""

import logging
import logging.handlers
import os
from pathlib import Path

from balsam.config import load_settings
from balsam.exceptions import AmbiguousId, BalsamError, NotFound

FORMAT = "%(asctime)s|%(process)d|%(levelname)s|%(name)s:%(lineno)d] %(message)s"
LAUNCHER_PREFIX = "launcher-"
# The single-file logs, each chosen by its own `balsam log` option.
KINDS = ("service", "dbserver", "watchdog", "cli")
_configured = set()


def log_dir(db_path):
    return Path(db_path) / "log"


def launcher_log_name(host, pid):
    """A launcher's log name: each launcher process writes its own file."""
    return f"{LAUNCHER_PREFIX}{host}-{pid}"


def configure(db_path, name):
    """Send ``balsam.*`` logs to ``<db_path>/log/<name>.log`` (idempotent).

    Returns the path, or None when the file cannot be opened: a user with
    read-only access to someone else's DB still lists it, just unlogged."""
    path = log_dir(db_path) / f"{name}.log"
    if path in _configured:
        return path
    settings = load_settings()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=int(settings.log_max_mib * 2**20), backupCount=settings.log_backup_count
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("balsam")
    for old in [h for h in logger.handlers if getattr(h, "_balsam", False)]:
        logger.removeHandler(old)
        old.close()
    handler._balsam = True
    logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
    _configured.clear()
    _configured.add(path)
    return path


# ---------------------------------------------------------------------------
# finding the logs (reads only: a user who may only read the DB can run `balsam log`)
# ---------------------------------------------------------------------------
def log_files(directory):
    """The current ``*.log`` files in ``directory`` (not their rotations
    ``*.log.1`` ...), newest first by modification time."""
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".log") and not entry.name.startswith("."):
                    try:
                        if entry.is_file():
                            found.append((entry.stat().st_mtime, entry.name))
                    except FileNotFoundError:
                        continue  # rotated or removed while we looked
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BalsamError(f"cannot read the log directory {directory}: {exc.strerror or exc}") from None
    return [Path(directory) / name for _, name in sorted(found, key=lambda f: (-f[0], f[1]))]


def launcher_logs(directory):
    """The launchers' logs in ``directory``, newest first."""
    return [p for p in log_files(directory) if p.name.startswith(LAUNCHER_PREFIX)]


def find_log(db_path, kind=None, launcher=None):
    """The log ``balsam log`` shows: the ``kind`` log (one of ``KINDS``), the
    launcher log ``launcher`` names (host, pid or host-pid; a part of one is
    enough if it names one log), or else the newest launcher log. Raises
    ``NotFound`` or ``AmbiguousId`` with the logs there are."""
    directory = log_dir(db_path)
    present = log_files(directory)
    if not present:
        raise NotFound(f"no logs in {directory} yet (the launcher, service, dbserver and CLI write them there)")
    if kind:
        path = directory / f"{kind}.log"
        if path not in present:
            raise NotFound(f"no {kind} log in {directory} (logs there: {_names(present)})")
        return path
    launchers = [p for p in present if p.name.startswith(LAUNCHER_PREFIX)]
    if launcher is None:
        if not launchers:
            raise NotFound(f"no launcher log in {directory} yet (logs there: {_names(present)}); "
                           f"choose one with --{', --'.join(KINDS)}")
        return launchers[0]
    matches = match_launcher(launchers, launcher)
    shown = launcher if len(launcher) <= 60 else launcher[:57] + "..."
    if not matches:
        raise NotFound(f"no launcher log matches {shown!r} in {directory} "
                       f"(launcher logs, newest first: {_names(launchers)})")
    if len(matches) > 1:
        raise AmbiguousId(f"launcher {shown!r} is ambiguous: it matches {_names(matches)}; "
                          "give its host-pid")
    return matches[0]


def match_launcher(launchers, text):
    """The launcher logs named by ``text``: those whose host, pid or host-pid
    is ``text`` if any, else those whose host-pid contains it (order kept)."""
    def parts(path):
        ident = path.name[len(LAUNCHER_PREFIX):-len(".log")]
        host, _, pid = ident.rpartition("-")
        return ident, host, pid

    exact = [p for p in launchers if text in parts(p)]
    return exact or [p for p in launchers if text in parts(p)[0]]


def newer_launcher_watch(db_path):
    """A check for ``logtail.Follower``'s ``newer``: a launcher log that has
    appeared since the last check (the newest, if several), with the notice
    to print; ``None`` if none has."""
    directory = log_dir(db_path)
    seen = set(launcher_logs(directory))

    def check():
        try:
            current = launcher_logs(directory)
        except BalsamError:
            return None  # the directory became unreadable: keep following what is open
        fresh = [p for p in current if p not in seen]
        seen.update(current)
        if fresh:
            return fresh[0], f"a newer launcher started: following {fresh[0]}"
        return None

    return check


def _names(paths, limit=10):
    names = [p.name for p in paths[:limit]]
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(names) + more
