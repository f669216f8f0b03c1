"""The DB's write credentials: CurveZMQ key pairs.

``<DB>/credentials/`` (0700, the owner's) holds the server's key pair and
the owner's client key pair. ``<DB>/authorized_users.json`` (0640: public
keys are no secret, but only the owner may change the list) holds the public
keys of the collaborators the owner authorized (``balsam dbserver
--add-user``). The server accepts only those keys and the owner's, so whoever holds one of the secrets may write
through it and nobody else can (the DB file's own permissions still govern
reading). A collaborator's secret lives only in their own home:
``~/.balsam/logins/<server key fingerprint>.json`` (0600), saved by
``balsam login`` from the one-time token the owner was shown. On a PostgreSQL
DB the token and the saved login also hold the collaborator's own role and
password (``"postgres"``), which ``postgres.credentials.pg_credentials`` reads.
"""

import base64
import binascii
import datetime
import hashlib
import json
import os
from pathlib import Path

import zmq

from balsam.config import owner_name
from balsam.exceptions import AccessDenied, ConfigError
from balsam.files import write_json_atomically
from balsam.wire.serverinfo import ServerInfo

DIR_NAME = "credentials"
SERVER_FILE = "server.json"
CLIENT_FILE = "client.json"
USERS_FILE = "authorized_users.json"
USERS_MODE = 0o640
TOKEN_PREFIX = "balsam1."
# What a saved login keeps of its token: the CURVE key pair and, on a
# PostgreSQL DB, the collaborator's role and password ("postgres").
SAVED_FIELDS = ("user", "public", "secret", "server_public", "postgres")


def credentials_dir(db_path):
    return Path(db_path) / DIR_NAME


def _write_private_json(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(path, mode)  # whatever the umask


def ensure_credentials(db_path):
    """Create the key pairs if the DB has none yet (idempotent)."""
    directory = credentials_dir(db_path)
    directory.mkdir(mode=0o700, exist_ok=True)
    if (directory / SERVER_FILE).exists() and (directory / CLIENT_FILE).exists():
        return
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    for name in (SERVER_FILE, CLIENT_FILE):
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass
    _write_private_json(
        directory / SERVER_FILE,
        {"public": server_public.decode(), "secret": server_secret.decode(), "client_public": client_public.decode()},
    )
    _write_private_json(
        directory / CLIENT_FILE,
        {"public": client_public.decode(), "secret": client_secret.decode(), "server_public": server_public.decode()},
    )


def _load(db_path, name):
    path = credentials_dir(db_path) / name
    try:
        data = json.loads(path.read_text())
    except PermissionError:
        raise ConfigError(f"cannot read the DB's write credential {path}: ask the DB's owner for access") from None
    except (FileNotFoundError, ValueError):
        raise ConfigError(f"the DB's write credential {path} is missing or damaged; run: balsam init {db_path}") from None
    return {k: v.encode() for k, v in data.items()}


def server_keys(db_path):
    """``{"public", "secret", "client_public"}`` as bytes, for the server."""
    return _load(db_path, SERVER_FILE)


def client_keys(db_path):
    """``{"public", "secret", "server_public"}`` as bytes, for clients: the
    owner's key, else this user's saved login for the DB's server (with
    ``"collaborator": True``); one-line ``AccessDenied`` when there is neither."""
    own = credentials_dir(db_path) / CLIENT_FILE
    if os.access(own, os.R_OK) or not os.access(credentials_dir(db_path), os.F_OK):
        return _load(db_path, CLIENT_FILE)
    keys = collaborator_keys(db_path)
    if keys is None:
        raise AccessDenied(
            f"you have no key to write to {db_path} (it belongs to {owner_name(db_path)}): ask its owner to run "
            f"`balsam dbserver --add-user {_me()}`, then run: balsam login {db_path} TOKEN"
        )
    return dict(keys, collaborator=True)


def published_server_key(db_path):
    """The server's public key as the DB's address file publishes it (None before it is shared or served)."""
    return ServerInfo(db_path).read().get("server_public")


def collaborator_keys(db_path):
    """This user's saved login for the DB at ``db_path``, or None."""
    server_public = published_server_key(db_path)
    return login_keys(server_public) if server_public else None


def _me():
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


# ---------------------------------------------------------------------------
# collaborators: the owner's side
# ---------------------------------------------------------------------------
def users_file(db_path):
    return Path(db_path) / USERS_FILE


def authorized_users(db_path):
    """``{user name: {"public": z85 text, "added": ISO time}}`` (empty when none)."""
    path = users_file(db_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except PermissionError:
        raise AccessDenied(f"cannot read {path}: ask the DB's owner for group access (balsam share)") from None
    except ValueError:
        raise ConfigError(f"{path} is damaged (not JSON); remove it and add the users again") from None
    return data if isinstance(data, dict) else {}


def authorized_keys(db_path):
    """``{public key (z85 bytes): user name}``: the owner's client key (as the
    owner's name, ``owner``) and every authorized collaborator's."""
    keys = {server_keys(db_path)["client_public"]: None}
    for name, entry in authorized_users(db_path).items():
        keys[entry["public"].encode()] = name
    return keys


def authorize(db_path, user, extra=None):
    """A fresh key pair for ``user`` (replacing any earlier one); returns the
    one-time token that carries its secret (and ``extra``: a backend's own
    secret, e.g. a PostgreSQL role's password). Only the public half is kept here."""
    public, secret = zmq.curve_keypair()
    users = authorized_users(db_path)
    users[user] = {"public": public.decode(), "added": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    write_json_atomically(users_file(db_path), users, USERS_MODE)
    payload = {"user": user, "public": public.decode(), "secret": secret.decode(),
               "server_public": server_keys(db_path)["public"].decode(), **(extra or {})}
    return TOKEN_PREFIX + base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def revoke(db_path, user):
    """Forget ``user``'s key; False if they were not authorized."""
    users = authorized_users(db_path)
    if users.pop(user, None) is None:
        return False
    write_json_atomically(users_file(db_path), users, USERS_MODE)
    return True


# ---------------------------------------------------------------------------
# collaborators: their own side
# ---------------------------------------------------------------------------
def fingerprint(server_public):
    """A short name for a server key (bytes or text): the name of a login file."""
    if isinstance(server_public, str):
        server_public = server_public.encode()
    return hashlib.sha256(server_public).hexdigest()[:24]


def logins_dir():
    return Path(os.path.expanduser("~")) / ".balsam" / "logins"


def decode_token(token):
    """The token's fields; one-line ``AccessDenied`` when it is not one."""
    text = token.strip()
    try:
        if not text.startswith(TOKEN_PREFIX):
            raise ValueError
        payload = json.loads(base64.urlsafe_b64decode(text[len(TOKEN_PREFIX):].encode()))
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in
                                                    ("user", "public", "secret", "server_public")):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeError):
        raise AccessDenied("that is not a Balsam login token (it starts with "
                           f"{TOKEN_PREFIX!r}; ask the DB's owner for a new one)") from None
    return payload


def save_login(payload):
    """Store a collaborator's key for the server named in ``payload`` (0600 in a 0700 directory)."""
    directory = logins_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / f"{fingerprint(payload['server_public'])}.json"
    write_json_atomically(path, {k: v for k, v in payload.items() if k in SAVED_FIELDS})
    return path


def saved_login(db_path):
    """This user's saved login (the fields of ``SAVED_FIELDS``) for the DB at
    ``db_path``, found by the server key its address file publishes, or None."""
    server_public = published_server_key(db_path)
    return _read_login(server_public) if server_public else None


def _read_login(server_public):
    path = logins_dir() / f"{fingerprint(server_public)}.json"
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, PermissionError, ValueError, NotADirectoryError):
        return None
    return data if isinstance(data, dict) else None


def login_keys(server_public):
    """This user's saved key for that server, as ``client_keys`` returns it, or None."""
    data = _read_login(server_public)
    if data is None:
        return None
    return {"public": data["public"].encode(), "secret": data["secret"].encode(),
            "server_public": data["server_public"].encode()}
