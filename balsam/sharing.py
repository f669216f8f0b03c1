"""Sharing a Balsam DB with a UNIX group, and its collaborators' keys.

What protects what (docs/multi-user.md has the user's view):

* the group may read everything but ``credentials/`` and ``secret_key`` and
  write in ``data/``, ``log/``, ``qsubmit/`` and ``job-templates/`` (setgid
  directories, so what anyone makes there stays the group's);
* ``db.sqlite3`` (and its ``-wal``/``-shm``) is group-readable, never
  group-writable: a collaborator writes only through the owner's dbserver,
  with a key of their own, so removing their key cuts them off at once (a
  group-writable file would let them write around the server);
* the DB directory itself is not group-writable, so nobody but the owner can
  replace the DB file or the address file;
* nothing is readable by users outside the group;
* on a PostgreSQL DB, ``balsamdb/`` (the cluster) stays 700 and each
  collaborator connects with a role of their own (``sharing_postgres``),
  whose password only their saved login holds.

Only the DB's owner shares it and manages its users. Adding a user also runs
the backend's own authorization step (``_BACKEND_STEPS``; SQLite has none:
its dbserver reads the key list itself; PostgreSQL makes the user's role).
"""

import grp
import os
import pwd
import stat
from pathlib import Path

from balsam import dbsettings, sharing_postgres
from balsam.config import SERVER_INFO_NAME, SQLITE_NAME, owner_name
from balsam.exceptions import AccessDenied, ConfigError, NotFound
from balsam.postgres.cluster import PG_DIR
from balsam.wire import credentials
from balsam.wire.serverinfo import ServerInfo

# Directories collaborators write in (made if missing), each setgid and group-writable.
GROUP_WRITABLE = ("data", "log", "qsubmit", "job-templates")
# balsamdb/ (a PostgreSQL cluster) stays 700: PostgreSQL refuses a data directory others may enter.
OWNER_ONLY = (credentials.DIR_NAME, "secret_key", PG_DIR)
# Backend-specific "authorize / revoke this user" steps, by db_type:
# {db_type: (authorize(db_path, user) -> extra token fields, revoke(db_path, user))}.
_BACKEND_STEPS = {"postgres": (sharing_postgres.authorize, sharing_postgres.revoke)}


def _me():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def require_owner(db_path, what):
    """``AccessDenied`` unless this process runs as the DB directory's owner."""
    if os.stat(db_path).st_uid != os.geteuid():
        raise AccessDenied(f"only the owner of {db_path} ({owner_name(db_path)}) may {what}; you are {_me()}")


def group_id(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise NotFound(f"no group {name!r} on this machine") from None


def share(db_path, group):
    """Give ``group`` the access described above; returns the number of entries changed."""
    db_path = Path(db_path)
    require_owner(db_path, "share it")
    gid = group_id(group)
    try:
        os.chown(db_path, -1, gid)
    except PermissionError:
        raise AccessDenied(f"cannot give {db_path} to group {group}: you ({_me()}) are not a member of it") from None
    for name in GROUP_WRITABLE:
        (db_path / name).mkdir(exist_ok=True)
    changed = 0
    for path, mode in _planned_modes(db_path):
        changed += _set(path, gid, mode)
    dbsettings.update(db_path, group=group, umask=dbsettings.SHARED_UMASK, dbserver=True)
    os.chown(dbsettings.settings_file(db_path), -1, gid)
    publish_server_key(db_path)
    return changed


def _planned_modes(db_path):
    """(path, mode) for every entry of the DB directory the owner owns."""
    yield db_path, 0o2750
    for entry in db_path.iterdir():
        if entry.name == PG_DIR:  # initdb made its contents owner-only; a running server changes them
            yield entry, 0o700
        elif entry.name in OWNER_ONLY:
            yield entry, 0o700 if entry.is_dir() else 0o600
            for inner in entry.rglob("*") if entry.is_dir() else ():
                yield inner, 0o700 if inner.is_dir() else 0o600
        elif entry.name in GROUP_WRITABLE:
            yield entry, 0o2770
            for inner in entry.rglob("*"):
                yield inner, _group_writable(inner)
        elif entry.name.startswith(SQLITE_NAME) or entry.name.startswith(SERVER_INFO_NAME):
            yield entry, 0o640 if not entry.name.endswith(".lock") else 0o600
        elif entry.is_dir():  # backups/ and anything else: group-readable
            yield entry, 0o2750
            for inner in entry.rglob("*"):
                yield inner, 0o2750 if inner.is_dir() else 0o640
        else:
            yield entry, 0o640 | (0o110 if entry.stat().st_mode & stat.S_IXUSR else 0)


def _group_writable(path):
    if path.is_dir():
        return 0o2770
    return 0o660 | (0o110 if path.stat().st_mode & stat.S_IXUSR else 0)


def _set(path, gid, mode):
    """Group and mode of one entry of ours (a collaborator's own files are theirs to keep)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
        return 0
    if path.name == SERVER_INFO_NAME:
        mode = 0o644  # rewritten 0644 by every update; the directory keeps outsiders out
    if info.st_gid == gid and stat.S_IMODE(info.st_mode) == mode:
        return 0
    os.chown(path, -1, gid, follow_symlinks=False)
    os.chmod(path, mode)
    return 1


def publish_server_key(db_path):
    """Post the server's public key in the address file: collaborators' saved logins are found by it."""
    ServerInfo(db_path).update(server_public=credentials.server_keys(db_path)["public"].decode())


# ---------------------------------------------------------------------------
# users
# ---------------------------------------------------------------------------
def _db_type(db_path):
    return ServerInfo(db_path).read().get("db_type", "sqlite3")


def add_user(db_path, user):
    """Authorize ``user``; returns the one-time token that carries their secret."""
    db_path = Path(db_path)
    require_owner(db_path, "add users")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise NotFound(f"no user {user!r} on this machine; nothing was changed") from None
    if entry.pw_uid == os.geteuid():
        raise ConfigError(f"{user} owns {db_path} and needs no key of their own")
    group = dbsettings.read(db_path).get("group")
    if not group:
        raise ConfigError(f"{db_path} is not shared with a group yet; first run: balsam share {db_path} --group GROUP")
    gid = group_id(group)
    if entry.pw_gid != gid and user not in grp.getgrgid(gid).gr_mem:
        raise ConfigError(f"{user} is not in group {group}, so they could not read {db_path}; "
                          f"add them to it first (usermod -aG {group} {user}); nothing was changed")
    publish_server_key(db_path)
    authorize, _ = _BACKEND_STEPS.get(_db_type(db_path), (None, None))
    extra = authorize(db_path, user) if authorize else None  # first: a failure leaves no key behind
    return credentials.authorize(db_path, user, extra)


def remove_user(db_path, user):
    """Revoke ``user``'s key: the dbserver refuses them from their next request on."""
    db_path = Path(db_path)
    require_owner(db_path, "remove users")
    authorized = credentials.authorized_users(db_path)
    if user not in authorized:
        raise NotFound(f"{user} is not an authorized user of {db_path}; authorized: "
                       + (", ".join(sorted(authorized)) or "nobody"))
    _, revoke = _BACKEND_STEPS.get(_db_type(db_path), (None, None))
    if revoke:
        revoke(db_path, user)  # first: their PostgreSQL role must not outlive their key
    credentials.revoke(db_path, user)


def list_users(db_path):
    """[(user, added ISO time)] of the authorized collaborators, by name."""
    require_owner(db_path, "list its users")
    return sorted((name, entry.get("added", "")) for name, entry in credentials.authorized_users(db_path).items())


def login(db_path, token):
    """Save this user's key from ``token`` (made by the owner's ``--add-user``); returns the file."""
    payload = credentials.decode_token(token)
    me = _me()
    if payload["user"] != me:
        raise AccessDenied(f"this token is for user {payload['user']}, not for you ({me}); nothing was saved")
    published = credentials.published_server_key(db_path)
    if published != payload["server_public"]:
        raise AccessDenied(f"this token is not for the DB at {db_path} (its server key differs); nothing was saved")
    entry = credentials.authorized_users(db_path).get(me)
    if not entry or entry.get("public") != payload["public"]:
        raise AccessDenied(f"this token was revoked or replaced by the owner of {db_path}; ask them for a new one "
                           "(balsam dbserver --add-user); nothing was saved")
    return credentials.save_login(payload)
