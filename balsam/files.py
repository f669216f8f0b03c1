"""Writing small files that other processes read while they change.

No Balsam imports: every layer that keeps a JSON file (the address file, keys,
credentials, a DB's settings) writes it through here.
"""

import json
import os
import tempfile


def write_json_atomically(path, data, mode=0o600, indent=2):
    """Write ``data`` as JSON to ``path`` by atomic rename: a reader sees the old
    or the new contents, never half of either. The temporary file is made
    owner-only (``mkstemp``) and given ``mode`` before the rename, so a private
    file is never readable by others, even for a moment; it is flushed to disk
    first, so a crash leaves the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
