"""Settings that belong to one DB rather than to a user: ``<DB>/settings.json``.

Written by the owner (``balsam init --group``, ``balsam share``), read by every
process that attaches to the DB, collaborators' too (the file is group-readable
once shared). Known keys:

* ``group``: the UNIX group the DB is shared with (None: not shared);
* ``umask``: octal text (``"0007"`` once shared: files and directories made by
  any user's launcher, service or dbserver are group-writable), applied by
  ``apply_umask`` when a process attaches to the DB and by the launch scripts;
* ``dbserver``: whether ``balsamactivate`` starts the DB's dbserver when none runs.
"""

import json
import os
from pathlib import Path

from balsam.exceptions import ConfigError
from balsam.files import write_json_atomically

FILE_NAME = "settings.json"
SHARED_UMASK = "0007"
DEFAULTS = {"group": None, "umask": None, "dbserver": False}


def settings_file(db_path):
    return Path(db_path) / FILE_NAME


def read(db_path):
    """The DB's settings, defaults filled in (a missing file: all defaults)."""
    path = settings_file(db_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return dict(DEFAULTS)
    except PermissionError:
        raise ConfigError(f"cannot read {path}: ask the DB's owner for group access (balsam share)") from None
    except ValueError:
        raise ConfigError(f"{path} is damaged (not JSON); fix it or remove it to use the defaults") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))} in {path}; known: {', '.join(DEFAULTS)}")
    parse_umask(data.get("umask"), path)
    return {**DEFAULTS, **data}


def update(db_path, **changes):
    """Merge ``changes`` into the file (atomic rename; group-readable, never world-readable)."""
    data = read(db_path)
    data.update(changes)
    path = settings_file(db_path)
    write_json_atomically(path, data, mode=0o640)
    return data


def parse_umask(text, where="the umask setting"):
    """``"0007"`` -> 0o007; None stays None; one-line ``ConfigError`` otherwise."""
    if text is None:
        return None
    try:
        value = int(str(text), 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise ConfigError(f"umask {text!r} in {where} is not an octal umask such as 0007")
    return value


def apply_umask(db_path):
    """Set this process's umask to the DB's (when it has one); returns it or None."""
    try:
        value = parse_umask(read(db_path).get("umask"))
    except ConfigError:
        return None  # the commands that show settings report it; attaching must not fail on it
    if value is not None:
        os.umask(value)
    return value
