"""Logging for entry points: one rotating file per process kind under <DB>/log/."""

import logging
import logging.handlers
from pathlib import Path

from balsam.config import load_settings

FORMAT = "%(asctime)s|%(process)d|%(levelname)s|%(name)s:%(lineno)d] %(message)s"
_configured = set()


def configure(db_path, name):
    """Send ``balsam.*`` logs to ``<db_path>/log/<name>.log`` (idempotent).

    Returns the path, or None when the file cannot be opened: a user with
    read-only access to someone else's DB still lists it, just unlogged."""
    path = Path(db_path) / "log" / f"{name}.log"
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
