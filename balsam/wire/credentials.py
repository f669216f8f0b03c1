"""The DB's write credential: CurveZMQ key pairs kept in ``<DB>/credentials/``.

The server holds its key pair and accepts only clients presenting the DB's
client key; both files are readable by the owner only, so whoever can read
them may write, and nobody else can (the DB file's own permissions still
govern reading).
"""

import json
import os
from pathlib import Path

import zmq

from balsam.exceptions import ConfigError

DIR_NAME = "credentials"
SERVER_FILE = "server.json"
CLIENT_FILE = "client.json"


def credentials_dir(db_path):
    return Path(db_path) / DIR_NAME


def _write_private_json(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


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
    """``{"public", "secret", "server_public"}`` as bytes, for clients."""
    return _load(db_path, CLIENT_FILE)
