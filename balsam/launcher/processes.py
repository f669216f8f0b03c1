"""Child processes the launcher supervises: application runs, pre/post
scripts and file transfers. The spawner (``spawner.py``) starts and reaps
them; here the launcher holds a handle on each. Each runs in its own session
(process group), so a kill or timeout stops everything it started."""

import fcntl
import os
import select
import signal
import subprocess
import sys
import time
from balsam.core.outputs import tail_lines
from balsam.exceptions import BalsamError
from balsam.launcher.spawner import HANDED_BACK, MessageReader, frame

KILL_GRACE_SEC = 1.0  # SIGTERM first, SIGKILL if still running after this
PIPE_BYTES = 1 << 20


class SpawnerDied(BalsamError):
    pass


class Spawner:
    """The launcher's end of the spawner: ``start`` queues, ``send`` hands
    what is queued over in one message, ``collect`` applies what came back
    to the handles. ``on_handed_back(handle)`` is called for each start the
    spawner hands back, as its answer is read: in the order the spawner
    answered, so before the end of the run it was queued behind."""

    def __init__(self, env, on_handed_back=None):
        requests_r, self._requests = os.pipe()
        self._replies, replies_w = os.pipe()
        for fd in (self._requests, self._replies):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except (AttributeError, OSError):
                pass  # the default size works, in more round trips
        # Started in "/": ``-m`` puts the working directory first on sys.path,
        # and a launcher started beside another Balsam source tree (a user's
        # checkout of another version) would otherwise run that tree's spawner.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "balsam.launcher.spawner", str(requests_r), str(replies_w)],
            pass_fds=(requests_r, replies_w), env=env, stdin=subprocess.DEVNULL, cwd="/",
        )
        os.close(requests_r)
        os.close(replies_w)
        os.set_blocking(self._requests, False)
        os.set_blocking(self._replies, False)
        self._reader = MessageReader(self._replies)
        self._queued = []
        self._handles = {}  # key -> ManagedProcess not yet ended
        self._keys = 0
        self.started_ahead = []  # handles requested ahead that have started since the launcher last looked
        self.on_handed_back = on_handed_back

    def start(self, handle, argv, cwd, env_extra, output_path, header, after=None, hand_back_after=None):
        """Queue a start; ``after``: a handle whose place this one takes when
        it ends, ``hand_back_after``: unless that one has run this long (see
        the protocol in spawner.py). Returns the handle's key."""
        self._keys += 1
        self._handles[self._keys] = handle
        self._queued.append(("start", self._keys, list(argv), str(cwd), env_extra, output_path, header,
                             after.key if after is not None else None, hand_back_after))
        return self._keys

    def cancel(self, handle):
        """Forget a start that waits for another process to end (if it still waits)."""
        self._queued.append(("cancel", handle.key))

    def send(self):
        if not self._queued:
            return
        items, self._queued = self._queued, []
        data = memoryview(frame(items))
        while data:
            try:
                data = data[os.write(self._requests, data):]
            except BlockingIOError:
                # The spawner may itself be waiting for us to read: keep reading.
                readable, _, _ = select.select([self._replies], [self._requests], [])
                if readable:
                    self.collect()
            except BrokenPipeError:
                raise SpawnerDied("the launcher's process spawner has died") from None

    def collect(self):
        """Apply every result available now to its handle."""
        items = self._reader.read()
        for kind, key, *details in items:
            handle = self._handles.get(key)
            if handle is None:
                continue
            if kind == "started":
                handle._started(*details)
                if handle.ahead:
                    self.started_ahead.append(handle)
            else:
                del self._handles[key]
                if kind == "failed":
                    handle._failed(details[0])
                    if handle.handed_back and self.on_handed_back is not None:
                        self.on_handed_back(handle)
                else:
                    handle._ended(*details)
        if self._reader.closed and self._handles:
            raise SpawnerDied("the launcher's process spawner has died")

    def wait(self, timeout):
        """Until a result comes back or ``timeout`` seconds pass; True if one came."""
        if self._handles:
            return bool(select.select([self._replies], [], [], timeout)[0])
        time.sleep(timeout)
        return False

    def close(self):
        """Stop the spawner (it kills anything still running first)."""
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ManagedProcess:
    """A process started through the spawner. ``poll`` is the exit code once
    it has ended (None until then); ``start_error`` says why it never started.
    With ``after`` (another handle) it starts when that one ends: ``waiting``
    until the spawner says it started, and its timeout counts from then."""

    def __init__(self, spawner, kind, job_id, argv, cwd, env_extra, output_path, timeout_sec=None, header=None,
                 after=None, hand_back_after=None):
        self.spawner = spawner
        self.kind = kind  # "run", "stage_in", "preprocess", "postprocess", "stage_out"
        self.job_id = job_id
        self.output_path = str(output_path)
        self.started = time.monotonic()
        self.timeout_sec = timeout_sec
        self.deadline = self.started + timeout_sec if timeout_sec and after is None else None
        self.ahead = after is not None  # requested ahead, to start when ``after`` ends
        self.pid = None
        self.code = None
        self.runtime = None
        self.start_error = None
        self.killed_at = None
        self.timed_out = False
        self._signal_when_started = None
        self._cancelled = False
        self.key = spawner.start(self, argv, cwd, env_extra, self.output_path, header, after, hand_back_after)

    # Results, from Spawner.collect
    def _started(self, pid, began):
        self.pid = pid
        if self.ahead:  # its limit counts from its real start (the spawner's clock is this one)
            self.started = began
            self.deadline = self.started + self.timeout_sec if self.timeout_sec else None
        if self._signal_when_started:
            self._signal(self._signal_when_started)

    def _failed(self, message):
        self.start_error = message
        self.code = -1

    def _ended(self, code, runtime):
        self.code, self.runtime = code, runtime

    @property
    def handed_back(self):
        """The spawner gave it back unstarted (the run before it went on too long): its job may start elsewhere."""
        return self.start_error == HANDED_BACK

    @property
    def waiting(self):
        """Requested ahead and not started yet (as far as the launcher knows)."""
        return self.ahead and self.pid is None and self.code is None

    @property
    def elapsed(self):
        return self.runtime if self.runtime is not None else time.monotonic() - self.started

    def poll(self):
        """The exit code once finished (timeouts enforced here), else None."""
        if self.code is not None:
            return self.code
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

    def kill_now(self, timeout=5):
        """SIGKILL, and wait (up to ``timeout``) until the spawner has reaped it."""
        self._signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        try:
            while self.code is None and time.monotonic() < deadline:
                self.spawner.send()
                self.spawner.wait(0.05)
                self.spawner.collect()
        except SpawnerDied:
            pass  # no one is left to reap it; the SIGKILL has reached it all the same

    def kill_group(self):
        """SIGKILL to its process group, without waiting (the spawner is gone)."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig):
        if self.code is not None:
            return
        if self.pid is None:
            self._signal_when_started = sig
            if self.ahead and not self._cancelled:  # most likely it never starts now
                self._cancelled = True
                self.spawner.cancel(self)
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, lines=10):
        return "\n".join(tail_lines(self.output_path, lines)).strip()
