"""The DBs this user has used, kept in ``~/.balsam/used_dbs`` (one absolute path
a line, newest last): ``balsam which --list`` shows them and ``balsamactivate
NAME`` picks one by a unique part of its path."""

import os
from pathlib import Path

from balsam.config import absolute_path, is_balsam_db
from balsam.exceptions import AmbiguousId, NotFound

MAX_ENTRIES = 200


def list_file():
    return Path(os.path.expanduser("~")) / ".balsam" / "used_dbs"


def used():
    """The recorded paths, oldest first (those no longer there included)."""
    try:
        return [line for line in list_file().read_text().splitlines() if line.strip()]
    except (FileNotFoundError, PermissionError, NotADirectoryError, UnicodeDecodeError):
        return []


def record(db_path):
    """Note that this user used ``db_path`` (quietly nothing when the home is not writable)."""
    path = str(db_path)
    paths = used()
    if paths and paths[-1] == path:
        return  # the common case: the same DB as last time costs one read
    paths = [p for p in paths if p != path][-(MAX_ENTRIES - 1):] + [path]
    target = list_file()
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".used_dbs.{os.getpid()}.tmp")
        tmp.write_text("\n".join(paths) + "\n")
        os.replace(tmp, target)
    except OSError:
        pass


def find(name):
    """A DB directory given as a path, or as a unique part of a used DB's path."""
    candidate = absolute_path(name)
    if is_balsam_db(candidate):
        return candidate
    matches = list(dict.fromkeys(p for p in used() if name in p and is_balsam_db(p)))
    if len(matches) == 1:
        return Path(matches[0])
    if not matches:
        raise NotFound(f"{name} is neither a Balsam DB directory nor part of the path of a DB you have used "
                       "(see: balsam which --list)")
    exact = [p for p in matches if Path(p).name == name]
    if len(exact) == 1:
        return Path(exact[0])
    raise AmbiguousId(f"{name} matches {len(matches)} DBs you have used: {', '.join(matches[:5])}; give more of the path")
