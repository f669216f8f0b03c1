"""The file a job's run writes (its stdout and stderr) and bounded reads of
its end. Pure Python: the launcher names the file, the analytics and the
launcher's error messages read its last lines."""

import os

TAIL_BYTES = 64 * 1024  # a tail is read from at most this much of the file's end


def run_output_name(job_name):
    """The file a job's run writes its stdout and stderr to."""
    return ("".join(c if c.isalnum() or c in "._-" else "_" for c in job_name) or "job") + ".out"


def tail_lines(path, lines, max_bytes=TAIL_BYTES):
    """The last ``lines`` lines of the file at ``path`` (without line ends),
    read from at most its last ``max_bytes`` bytes, so a huge output costs no
    more than a small one; ``[]`` when it cannot be read (missing, a
    directory, no permission)."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            # One byte more, before the start: was the first line read whole?
            f.seek(max(0, start - 1))
            data = f.read(max_bytes + 1)
    except OSError:
        return []
    cut = False
    if start:
        cut, data = data[:1] != b"\n", data[1:]
    text = data.decode("utf-8", errors="replace").splitlines()
    if cut and text:
        text = text[1:]  # the bounded read began inside this line
    return text[-lines:]
