"""Django settings built from a DB directory (no module-level settings file).

The one home of Django's settings, for plain commands and, with ``admin``,
for ``balsam web`` (the admin, the dashboard, accounts, sessions, static files).
"""

import hashlib
import secrets
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

from balsam.config import SQLITE_NAME, can_write, load_settings
from balsam.exceptions import ConfigError

SECRET_KEY_NAME = "secret_key"

CORE_APPS = ["balsam.core"]
ADMIN_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Last: its ready() undoes what auth's ready() connects (see balsam/web/apps.py).
    "balsam.web",
]
MIN_PASSWORD_LENGTH = 8


def _read_only_name(db_file):
    """The file as a read-only URI. A reader that cannot create the -shm file
    (another user's directory) reads it as shared by the owner's processes when
    it exists; when it does not, no connection is open and every commit is in
    the main file, which the reader then opens as immutable (only a checkpoint
    rewrites that file, so a brief read is consistent)."""
    uri = f"file:{quote(str(db_file))}?mode=ro"
    if not Path(f"{db_file}-shm").exists():
        uri += "&immutable=1"
    return uri


# The write path's SQL needs RETURNING (SQLite 3.35).
# Python uses the SQLite library it was built with, which on some clusters'
# system Pythons is older.
SQLITE_MIN_VERSION = (3, 35, 0)


def check_sqlite_library():
    """One line (``ConfigError``) when this Python's SQLite is too old for Balsam."""
    if tuple(sqlite3.sqlite_version_info) < SQLITE_MIN_VERSION:
        wanted = ".".join(map(str, SQLITE_MIN_VERSION))
        raise ConfigError(
            f"this Python ({sys.executable}) has SQLite {sqlite3.sqlite_version}, and Balsam needs {wanted} or "
            "newer: use a Python built with a newer SQLite (conda's, pyenv's and python.org's have one), or a "
            "PostgreSQL DB (balsam init PATH --db-type postgres)")


def sqlite_database(db_path):
    check_sqlite_library()
    user = load_settings()
    db_file = Path(db_path) / SQLITE_NAME
    if not can_write(db_path) and db_file.exists():
        # Read-only access (a collaborator's view of the owner's DB): no
        # journal-mode pragma, which would need to write.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _read_only_name(db_file),
            "OPTIONS": {"timeout": user.sqlite_busy_timeout_sec, "init_command": "PRAGMA cache_size=-65536;"},
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(db_file),
        "OPTIONS": {
            "timeout": user.sqlite_busy_timeout_sec,
            # Only the write path begins transactions IMMEDIATE (see
            # core.sql.write_transaction); Django's own atomic blocks in
            # client processes must not take the write lock from the dbserver.
            # WAL lets readers run beside the one writer; NORMAL sync in WAL
            # mode loses nothing when a process is killed. A 64 MiB page cache
            # keeps index updates of million-job tables in memory.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
        },
    }


def postgres_database(db_path):
    """Django's settings for a PostgreSQL DB directory: the server and the
    credentials are looked up at connect time (``pgbackend``)."""
    return {
        "ENGINE": "balsam.django_config.pgbackend",
        "NAME": "balsam",
        "BALSAM_DB_PATH": str(db_path),
        "OPTIONS": {},
    }


def database(db_path):
    """The ``default`` database of the DB directory ``db_path``, by its type."""
    from balsam.postgres.cluster import is_postgres_dir

    return postgres_database(db_path) if is_postgres_dir(db_path) else sqlite_database(db_path)


def _secret_key(db_path):
    path = Path(db_path) / SECRET_KEY_NAME
    try:
        return path.read_text().strip()
    except OSError:
        # Only the web pages need a stable key; `balsam init` writes one.
        return secrets.token_urlsafe(50)


def build_settings(db_path, admin=False):
    db_path = Path(db_path)
    apps = CORE_APPS + (ADMIN_APPS if admin else [])
    settings = {
        "BALSAM_DB_PATH": str(db_path),
        "DATABASES": {"default": database(db_path)},
        "INSTALLED_APPS": apps,
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "SECRET_KEY": _secret_key(db_path),
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "LOGGING_CONFIG": None,
    }
    if admin:
        settings.update(_web_settings(db_path))
    return settings


def _web_settings(db_path):
    """The admin's and the dashboard's settings (see docs/development/decisions.md, "balsam web")."""
    # Browsers keep cookies per host name, not per port: two `balsam web` on
    # one machine (two DBs) would log each other out with Django's cookie names.
    tag = hashlib.sha256(str(Path(db_path).resolve()).encode()).hexdigest()[:8]
    return dict(
        ROOT_URLCONF="balsam.web.urls",
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            # Static files (the admin's and the dashboard's) straight from the
            # installed packages: no collectstatic, nothing written at start.
            "whitenoise.middleware.WhiteNoiseMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        WHITENOISE_USE_FINDERS=True,
        WHITENOISE_AUTOREFRESH=False,
        # Sessions live in a signed cookie, so a page view writes nothing to the DB.
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        SESSION_COOKIE_NAME=f"balsam_session_{tag}",
        CSRF_COOKIE_NAME=f"balsam_csrf_{tag}",
        SESSION_COOKIE_AGE=7 * 24 * 3600,
        X_FRAME_OPTIONS="DENY",
        LOGIN_URL="/admin/login/",
        # Checks passwords without rewriting their hashes (a login writes nothing).
        AUTHENTICATION_BACKENDS=["balsam.web.accounts.ReadOnlyModelBackend"],
        AUTH_PASSWORD_VALIDATORS=[
            {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
             "OPTIONS": {"min_length": MIN_PASSWORD_LENGTH}},
            {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
            {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
        ],
    )
