"""Child processes the launcher supervises: application runs, pre/post
scripts and file transfers. Each runs in its own session (process group) so
a kill or timeout stops everything it started."""

import os
import signal
import subprocess
import time
from collections import deque

KILL_GRACE_SEC = 1.0  # SIGTERM first, SIGKILL if still running after this


class ManagedProcess:
    def __init__(self, kind, job_id, argv, cwd, env, output_path, timeout_sec=None, header=None):
        self.kind = kind  # "run", "stage_in", "preprocess", "postprocess", "stage_out"
        self.job_id = job_id
        self.output_path = str(output_path)
        self.started = time.monotonic()
        self.deadline = self.started + timeout_sec if timeout_sec else None
        self.killed_at = None
        self.timed_out = False
        if os.path.islink(self.output_path):  # never append through a link into another job's file
            os.unlink(self.output_path)
        with open(self.output_path, "ab") as out:
            if header:
                out.write(header.encode() + b"\n")
                out.flush()
            self.popen = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def elapsed(self):
        return time.monotonic() - self.started

    def poll(self):
        """The exit code once finished (timeouts enforced here), else None."""
        code = self.popen.poll()
        if code is not None:
            return code
        now = time.monotonic()
        if self.deadline and now > self.deadline and not self.timed_out:
            self.timed_out = True
            self.kill()
        elif self.killed_at and now - self.killed_at > KILL_GRACE_SEC:
            self._signal(signal.SIGKILL)
        return None

    def kill(self):
        if self.killed_at is None:
            self.killed_at = time.monotonic()
            self._signal(signal.SIGTERM)

    def kill_now(self):
        self._signal(signal.SIGKILL)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _signal(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, lines=10):
        try:
            with open(self.output_path, errors="replace") as f:
                return "".join(deque(f, maxlen=lines)).strip()
        except OSError:
            return ""
