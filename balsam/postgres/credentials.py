"""Who connects to a PostgreSQL DB, and with which password.

The owner's role and its generated password live in
``<DB>/credentials/postgres`` (mode 600, in the 700 ``credentials/``
directory the CURVE keys share). A collaborator has a login role of their
own (``postgres.roles``, made by the owner's ``balsam dbserver --add-user``),
whose password reaches them in the one-time token and is kept only in their
saved login (``~/.balsam/logins/``, mode 600; ``wire.credentials``).
``pg_credentials`` is the ONE lookup of "this user's PostgreSQL credentials
for this DB": the owner's file when this user may read it, else their login.
"""

import json
import os
import pwd
import secrets
from pathlib import Path

from balsam.config import owner_name
from balsam.exceptions import AccessDenied, ConfigError
from balsam.files import write_json_atomically
from balsam.wire.credentials import saved_login

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
    if not os.access(path.parent, os.X_OK) and path.parent.exists():  # not the owner: a collaborator's own role
        return collaborator_credentials(db_path)
    try:
        data = json.loads(path.read_text())
    except PermissionError:
        return collaborator_credentials(db_path)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: this PostgreSQL DB has no credentials; "
                          f"recreate them with: balsam init {db_path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the PostgreSQL credentials {path}: {exc}") from None
    if not isinstance(data, dict) or not data.get("user") or not data.get("password"):
        raise ConfigError(f"{path} is damaged (no user or password); recreate it with: balsam init {db_path}")
    data.setdefault("database", DATABASE)
    return data


def collaborator_credentials(db_path):
    """This (non-owner) user's own role and password, from their saved login."""
    login = saved_login(db_path)
    role = (login or {}).get("postgres")
    if not isinstance(role, dict) or not role.get("user") or not role.get("password"):
        me = owner_role()  # this process's user name
        raise AccessDenied(
            f"you ({me}) have no login for the PostgreSQL DB {db_path} (it belongs to {owner_name(db_path)}): "
            f"ask its owner to run `balsam dbserver --add-user {me}`, then run: balsam login {db_path} TOKEN")
    return {"user": role["user"], "password": role["password"], "database": role.get("database") or DATABASE}
