"""Reading a log file from its end, and following it as it grows, rotates or
is truncated (what ``tail -n N -F`` does), in bounded memory and without Django.

Everything is bytes: a log line is printed as it was written, whatever its
encoding. ``balsam log`` (cli/log.py) chooses the file; this module only reads it.
"""

import os
import time

BLOCK = 64 * 1024
POLL_SEC = 0.25  # how long to wait when nothing new was written (no inotify: NFS does not deliver it)
NEWER_CHECK_SEC = 1.0  # how often to ask whether a newer file should be followed instead
GONE_NOTICE_SEC = 2.0  # a rotation leaves the name missing for an instant: say nothing about that


def start_of_last_lines(f, count, block=BLOCK):
    """The offset in binary file ``f`` where its last ``count`` lines begin
    (``None``: all of them). It reads backwards a block at a time and counts
    newlines, so it reads at most the bytes of those lines plus one block,
    and keeps one block in memory however large the file or ``count``."""
    end = f.seek(0, os.SEEK_END)
    if count is None or end == 0:
        return 0
    if count == 0:
        return end
    position = end
    newlines = 0
    last_byte = True  # a newline ending the file ends the last line; it does not start another
    while position > 0:
        size = min(block, position)
        position -= size
        f.seek(position)
        chunk = f.read(size)
        if last_byte:
            last_byte = False
            if chunk.endswith(b"\n"):
                chunk = chunk[:-1]
        index = len(chunk)
        while True:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            newlines += 1
            if newlines == count:
                return position + index + 1
    return 0


def copy(f, offset, write, block=BLOCK):
    """Write the bytes of ``f`` from ``offset`` to its current end, a block at
    a time; returns the offset reached."""
    f.seek(offset)
    while True:
        chunk = f.read(block)
        if not chunk:
            return f.tell()
        write(chunk)


class Follower:
    """Prints a file's last lines, then (``follow``) what is appended to it.

    Like ``tail -F``: when the name comes to point at a new file (the writer's
    ``RotatingFileHandler`` renamed the old one to ``.1`` and started a new
    one) it first reads the old file to its end, then the new one from its
    start; when the file shrinks (truncated) it reads it again from the start;
    when the name is gone it waits for it to come back. ``newer`` (optional)
    is asked every ``NEWER_CHECK_SEC`` for another path to follow instead,
    as ``(path, notice)`` or ``None`` (``balsam log`` uses it to move to a
    launcher started later).

    ``write(bytes)`` receives the file's bytes; ``notice(text)`` one line
    about what happened (a rotation, a truncation, a switch).
    """

    def __init__(self, path, write, notice, newer=None, poll_sec=POLL_SEC):
        self.path = os.fspath(path)
        self.write_out = write
        self.notice = notice
        self.newer = newer
        self.poll_sec = poll_sec
        self.file = None
        self.at_line_start = True
        self.gone_since = None  # when the name was first seen missing
        self.gone_said = False

    def open(self):
        """Open the file (``OSError`` if it cannot be read); ``show`` opens it if not yet open."""
        if self.file is None:
            self.file = open(self.path, "rb", buffering=0)

    def show(self, lines):
        """Print the last ``lines`` lines (``None``: the whole file); the file is
        then read from where this stopped."""
        self.open()
        offset = start_of_last_lines(self.file, lines)
        copy(self.file, offset, self._write)

    def follow(self):
        """Print what is written from now on, until interrupted (KeyboardInterrupt)."""
        next_newer_check = time.monotonic() + NEWER_CHECK_SEC
        while True:
            got = self.poll()
            if self.newer and time.monotonic() >= next_newer_check:
                next_newer_check = time.monotonic() + NEWER_CHECK_SEC
                found = self.newer()
                if found:
                    self.switch(*found)
                    continue
            if not got:
                time.sleep(self.poll_sec)

    def poll(self):
        """Print what is new; returns whether anything was. Checks for a
        rotation or truncation when the open file has nothing more."""
        if self._drain():
            return True
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            now = time.monotonic()
            if self.gone_since is None:
                self.gone_since, self.gone_said = now, False
            elif not self.gone_said and now - self.gone_since >= GONE_NOTICE_SEC:
                self.gone_said = True
                self.notice(f"{self.path} is gone; waiting for it to come back")
            return False
        self.gone_since = None
        opened = os.fstat(self.file.fileno())
        if (named.st_ino, named.st_dev) != (opened.st_ino, opened.st_dev):
            self.switch(self.path, f"{self.path} was rotated; following the new file")
            return True
        if named.st_size < self.file.tell():
            self._end_line()
            self.notice(f"{self.path} was truncated; reading it from its start")
            self.file.seek(0)
            return True
        return False

    def switch(self, path, message):
        """Finish the open file, then read ``path`` from its start."""
        try:
            new = open(path, "rb", buffering=0)
        except FileNotFoundError:
            return  # renamed again before we got there: the next poll looks again
        self._drain()
        self._end_line()
        self.file.close()
        self.file, self.path = new, os.fspath(path)
        self.gone_since = None
        self.notice(message)

    def close(self):
        if self.file:
            self.file.close()
            self.file = None

    def _drain(self):
        chunk = self.file.read(BLOCK)
        if not chunk:
            return False
        while chunk:
            self._write(chunk)
            chunk = self.file.read(BLOCK)
        return True

    def _write(self, chunk):
        self.write_out(chunk)
        self.at_line_start = chunk.endswith(b"\n")

    def _end_line(self):
        """A file that ended mid-line must not glue its last words to the next file's first line."""
        if not self.at_line_start:
            self._write(b"\n")
