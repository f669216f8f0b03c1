"""Settings = defaults <- user_settings.py <- environment, and DB-path selection.

Nothing here imports Django, so the CLI can answer ``--help`` and ``init``
without configuring a database.
"""

import getpass
import importlib
import os
import pwd
from dataclasses import dataclass, fields
from pathlib import Path

from balsam.exceptions import AccessDenied, ConfigError, DBNotFound

SERVER_INFO_NAME = "dbwriter_address"
MAX_DBSERVER_DEADLINE_SEC = 3000  # below the dbserver's applied-id retention (protocol.APPLIED_ID_RETENTION_SEC)
SQLITE_NAME = "db.sqlite3"
PG_DIR_NAME = "balsamdb"  # a PostgreSQL DB's cluster (balsam.postgres.cluster)

# The repository holds user_settings.py next to default_balsamdb/.
REPO_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    default_db_path: str | None = None
    sqlite_busy_timeout_sec: float = 30
    log_level: str = "INFO"
    log_max_mib: float = 100
    log_backup_count: int = 5
    dbserver_deadline_sec: float = 60
    dbserver_ping_timeout_sec: float = 3
    launcher_lease_expiry_sec: float = 180
    launcher_script_timeout_sec: float = 300
    launcher_max_timeout_retries: int = 5
    scheduler: str = "local"
    backup_interval_minutes: float = 0
    backup_keep: int = 7


MAX_BACKUP_INTERVAL_MINUTES = 366 * 24 * 60
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _coerce(name, value, kind, default):
    """``value`` converted to the setting's declared type (``kind``)."""
    kind = str if kind not in (int, float) else kind
    if value is None or value == "":
        return default
    try:
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}={value!r} is not a valid {kind.__name__}") from None


def _user_settings_values():
    try:
        module = importlib.import_module("user_settings")
    except ModuleNotFoundError:
        return {}
    known = {f.name for f in fields(Settings)}
    values = {}
    for name, value in vars(module).items():
        if name.startswith("_") or callable(value) or type(value).__name__ == "module":
            continue
        if name not in known:
            raise ConfigError(
                f"unknown setting {name!r} in {module.__file__}; known settings: "
                + ", ".join(sorted(known))
            )
        values[name] = value
    return values


def load_settings(environ=None):
    """Build the settings for this process."""
    environ = os.environ if environ is None else environ
    values = _user_settings_values()
    result = {}
    for f in fields(Settings):
        value = values.get(f.name, f.default)
        env_name = "BALSAM_" + f.name.upper()
        if env_name in environ:
            value = environ[env_name]
        result[f.name] = _coerce(f.name, value, f.type, f.default)
    settings = Settings(**result)
    if settings.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, not {settings.log_level!r}")
    for name in ("sqlite_busy_timeout_sec", "dbserver_deadline_sec", "dbserver_ping_timeout_sec",
                 "launcher_lease_expiry_sec", "launcher_script_timeout_sec"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be positive")
    if not (0 <= settings.backup_interval_minutes <= MAX_BACKUP_INTERVAL_MINUTES):
        raise ConfigError(f"backup_interval_minutes must be from 0 (no scheduled backups) to {MAX_BACKUP_INTERVAL_MINUTES}")
    if settings.backup_keep < 1:
        raise ConfigError("backup_keep must be 1 or more")
    if settings.launcher_max_timeout_retries < 0:
        raise ConfigError("launcher_max_timeout_retries must be 0 or more")
    if settings.dbserver_deadline_sec > MAX_DBSERVER_DEADLINE_SEC:
        raise ConfigError(
            f"dbserver_deadline_sec must be at most {MAX_DBSERVER_DEADLINE_SEC} s "
            "(the dbserver forgets applied request ids after an hour)"
        )
    return settings


def repo_default_db():
    return REPO_DIR / "default_balsamdb"


def is_balsam_db(path):
    """A directory with an address file or a SQLite DB file (an address file
    lost or damaged is repaired by ``balsam init`` or ``dbserver --reset``)."""
    path = Path(path)
    return path.is_dir() and ((path / SERVER_INFO_NAME).is_file() or (path / SQLITE_NAME).is_file())


@dataclass(frozen=True)
class DBSelection:
    path: Path
    source: str  # what chose it, for messages and `balsam which`

    @property
    def is_repo_default(self):
        return self.source == "the repository default"


def select_db(cli_path=None, environ=None, settings=None):
    """Which DB directory this process uses, highest priority first:
    ``--db``, ``BALSAM_DB_PATH``, ``default_db_path`` in user_settings.py,
    the repository's ``default_balsamdb/``."""
    environ = os.environ if environ is None else environ
    if cli_path:
        return DBSelection(absolute_path(cli_path), "--db")
    if "BALSAM_DB_PATH" in environ and not environ["BALSAM_DB_PATH"].strip():
        raise ConfigError("BALSAM_DB_PATH is set but empty; name a DB directory in it, or unset it "
                          "to use default_db_path or the repository default")
    if environ.get("BALSAM_DB_PATH"):
        return DBSelection(absolute_path(environ["BALSAM_DB_PATH"]), "BALSAM_DB_PATH")
    settings = settings or load_settings(environ)
    if settings.default_db_path:
        source = "BALSAM_DEFAULT_DB_PATH" if environ.get("BALSAM_DEFAULT_DB_PATH") else "default_db_path in user_settings.py"
        return DBSelection(absolute_path(settings.default_db_path), source)
    return DBSelection(repo_default_db(), "the repository default")


def require_db(selection):
    """Raise ``DBNotFound`` (one line, with the fix) unless the selection is a Balsam DB
    (``AccessDenied`` when it is a directory this user may not enter)."""
    if selection.path.is_dir() and not os.access(selection.path, os.R_OK | os.X_OK):
        raise AccessDenied(f"you ({getpass.getuser()}) may not read {selection.path} (selected by {selection.source}); "
                           f"it belongs to {owner_name(selection.path)}, who can share it with your group")
    if is_balsam_db(selection.path):
        return selection.path
    where = f"{selection.path} (selected by {selection.source})"
    if not selection.path.exists():
        raise DBNotFound(f"{where} does not exist; create it with: balsam init {selection.path}")
    if selection.path.is_dir() and not any(p for p in selection.path.iterdir() if not p.name.startswith(".")):
        raise DBNotFound(f"{where} is empty; make it a Balsam DB with: balsam init {selection.path}")
    raise DBNotFound(
        f"{where} is not a Balsam DB (no {SERVER_INFO_NAME}); select a Balsam DB directory, "
        "or create a new one with: balsam init NEW_PATH"
    )


def absolute_path(path):
    """``path`` with ~ and $VARS expanded, made absolute."""
    return Path(os.path.expandvars(os.path.expanduser(str(path)))).resolve()


def can_write(db_path):
    """Whether this user may change the DB: its file, and its directory (where
    SQLite keeps the -wal and -shm files and Balsam its address file)."""
    db_path = Path(db_path)
    return os.access(db_path, os.W_OK) and (
        os.access(db_path / SQLITE_NAME, os.W_OK) or not (db_path / SQLITE_NAME).exists()
    )


def owner_name(path):
    uid = os.stat(path).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def require_write_access(db_path, what):
    """``AccessDenied`` naming the DB's owner unless this user may change it."""
    if not can_write(db_path):
        raise AccessDenied(
            f"cannot {what}: {db_path} belongs to {owner_name(db_path)}, and you ({getpass.getuser()}) "
            "may only read it; ask its owner"
        )
