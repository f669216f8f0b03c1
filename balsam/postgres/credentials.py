"""Who connects to a PostgreSQL DB, and with which password.

The owner's role and its generated password live in
``<DB>/credentials/postgres`` (mode 600, in the 700 ``credentials/``
directory the CURVE keys share). ``pg_credentials`` is the ONE lookup of
"this user's PostgreSQL credentials for this DB": per-collaborator secrets
(issue #15, item 4) are added there, nowhere else.
"""

import getpass
import json
import os
import pwd
import secrets
from pathlib import Path

from balsam.exceptions import AccessDenied, ConfigError
from balsam.files import write_json_atomically

DIR_NAME = "credentials"  # shared with balsam.wire.credentials
FILE_NAME = "postgres"
DATABASE = "balsam"


def credentials_file(db_path):
    return Path(db_path) / DIR_NAME / FILE_NAME


def owner_role():
    """The role name of the DB's owner: their Unix user name."""
    return pwd.getpwuid(os.geteuid()).pw_name


def write_owner_credentials(db_path, role):
    """A new random password for ``role``, stored owner-only; returns it."""
    directory = Path(db_path) / DIR_NAME
    directory.mkdir(mode=0o700, exist_ok=True)
    password = secrets.token_urlsafe(32)
    path = credentials_file(db_path)
    write_json_atomically(path, {"user": role, "password": password, "database": DATABASE})
    return password


def pg_credentials(db_path):
    """``{"user", "password", "database"}`` this process connects with."""
    path = credentials_file(db_path)
    try:
        data = json.loads(path.read_text())
    except PermissionError:
        raise AccessDenied(
            f"cannot read the PostgreSQL credentials of {db_path} ({path}) as {getpass.getuser()}: "
            "only the DB's owner may connect to it") from None
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: this PostgreSQL DB has no credentials; "
                          f"recreate them with: balsam init {db_path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the PostgreSQL credentials {path}: {exc}") from None
    if not isinstance(data, dict) or not data.get("user") or not data.get("password"):
        raise ConfigError(f"{path} is damaged (no user or password); recreate it with: balsam init {db_path}")
    data.setdefault("database", DATABASE)
    return data
