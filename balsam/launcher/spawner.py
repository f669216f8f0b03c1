"""The launcher's spawner: a small helper process that starts and reaps every
process the launcher runs (applications, pre/post scripts, transfers).

Why a process of its own: starting a process costs a directory lookup, an
output file, a fork and an exec -- kernel work that, in the launcher, would
hold its interpreter lock (Python 3.11 keeps it across ``vfork``) and stall
its bookkeeping and DB writes. Here it runs on another core, and the launcher
only sends requests and reads results.

Protocol (pickled lists, each framed by a 4-byte big-endian length), in order:

* launcher -> spawner: ``("start", key, argv, cwd, env_extra, output_path, header, after, hand_back_after)``,
  with absolute ``cwd`` and ``output_path`` (the spawner ``chdir``s for every
  start, so a relative path would be read from the previous job's directory).
  ``after``: None to start now, or the key of a process whose place this
  one takes: a running one, or one itself still waiting (a queue per slot,
  so the spawner refills a slot many times without the launcher). It starts
  the moment that one is reaped (at once if that one is already gone), with
  no round trip through the launcher -- this is how a freed slot is refilled
  within the spawner's wakeup for SIGCHLD. ``hand_back_after``: seconds
  (or None): if the running process it waits behind has run that long, this
  start and every one queued behind it are handed back (``failed`` with
  ``HANDED_BACK``): short runs do not wait behind one that turned out long,
  and the launcher starts them elsewhere. So is a start that asks to wait
  behind one handed back. ``("cancel", key)``: forget a
  start still waiting; the one that waited for it waits for its ``after``.
* spawner -> launcher: ``("started", key, pid, monotonic start time)``,
  ``("failed", key, message)``, ``("ended", key, exit_code, elapsed_seconds)``;
  the ``ended`` of a process comes before the ``started`` of the one that
  waited for it. (``time.monotonic`` is the system's CLOCK_MONOTONIC, the
  same in both processes: a run's wall-time limit counts from its real start.)

A process runs in ``cwd`` (made if missing; for the start next in line behind
a running process, made -- and its output file opened -- while that one
runs), in a session of its own (so a
kill reaches everything it started), with stdin from /dev/null and stdout and
stderr appended to ``output_path``, its environment the spawner's own (the
launcher's base environment) plus ``env_extra``. Exit codes follow
``subprocess``: negative for a signal.

The spawner lives exactly as long as the launcher: it ignores SIGINT and
SIGTERM (those are the launcher's to act on), and when the launcher's end of
the request pipe closes -- a clean exit or a SIGKILL -- it kills what is still
running, reaps it and exits, so no run outlives its launcher to race the
launcher that later recovers its jobs.
"""

import os
import pickle
import queue
import select
import signal
import struct
import sys
import threading
import time

_LENGTH = struct.Struct(">I")
HANDED_BACK = "handed back: the run it was queued behind went on too long"
HANDED_BACK_KEPT = 100_000  # keys of handed-back starts remembered (bounded: a launcher may run for days)
# Ignored signals stay ignored across exec: give children the defaults back
# (SIGPIPE and SIGXFSZ are ignored by every Python process, as subprocess knows).
_DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ)


def frame(items):
    """One message: ``items`` pickled, after their length."""
    data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def write_message(fd, items):
    view = memoryview(frame(items))
    while view:
        view = view[os.write(fd, view):]


class MessageReader:
    """Reassembles framed messages from a non-blocking pipe."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()
        self.closed = False

    def read(self):
        """The items of every complete message available now."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self.closed = True
                break
            self.buffer += chunk
        items = []
        while len(self.buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self.buffer)
            end = _LENGTH.size + length
            if len(self.buffer) < end:
                break
            items += pickle.loads(self.buffer[_LENGTH.size:end])
            del self.buffer[:end]
        return items


class _Children:
    def __init__(self):
        self.base_env = dict(os.environ)
        self.running = {}  # pid -> key
        self.running_keys = {}  # key of a running process -> its start time
        self.hand_back = {}  # key of a waiting start -> hand it back once what it waits behind has run this long
        # Keys of starts handed back, oldest first: a start asking to wait behind
        # one is handed back too. Only the latest HANDED_BACK_KEPT are kept: the
        # launcher queues behind a start only until it reads that start's answer.
        self.handed_back = {}
        self.waiting = {}  # key of a running or waiting process -> the start request that takes its place
        self.waiting_keys = set()  # keys of the requests in ``waiting``
        self.executables = {}  # (name, PATH) -> full path
        self.prepared = _Preparer()  # directories and output files of the starts next in line

    def request(self, key, argv, cwd, env_extra, output_path, header, after=None, hand_back_after=None):
        if after is not None and after in self.handed_back:
            self._remember_handed_back(key)
            return [("failed", key, HANDED_BACK)]
        if after is not None and (after in self.running_keys or after in self.waiting_keys):
            self.waiting[after] = (key, argv, cwd, env_extra, output_path, header)
            self.waiting_keys.add(key)
            if hand_back_after is not None:
                self.hand_back[key] = hand_back_after
            return []
        return self._start_in_place(key, (key, argv, cwd, env_extra, output_path, header))

    def cancel(self, key):
        if key not in self.waiting_keys:
            return []  # started already: the launcher signals it by its pid
        self.waiting_keys.discard(key)
        self.hand_back.pop(key, None)
        _close(self.prepared.take(key))
        for after, waiting in list(self.waiting.items()):
            if waiting[0] == key:
                del self.waiting[after]
                successor = self.waiting.pop(key, None)
                if successor is not None:  # the one queued behind it moves up
                    self.waiting[after] = successor
                break
        return [("failed", key, "cancelled before it started")]

    def _start_in_place(self, key, request):
        """Start ``request`` (which took the place of ``key``); if it cannot
        start, the one queued behind it takes the place in turn."""
        replies = []
        while request is not None:
            self.waiting_keys.discard(request[0])
            self.hand_back.pop(request[0], None)
            reply = self.start(*request, out=self.prepared.take(request[0]))
            replies.append(reply)
            if reply[0] == "started":
                break
            request = self.waiting.pop(request[0], None)
        return replies

    def start(self, key, argv, cwd, env_extra, output_path, header, out=None):
        try:
            pid = self._spawn(argv, cwd, {**self.base_env, **env_extra}, output_path, header, out)
        except OSError as exc:
            return ("failed", key, str(exc))
        began = time.monotonic()
        self.running[pid] = key
        self.running_keys[key] = began
        return ("started", key, pid, began)

    def hand_back_overdue(self, now):
        """Hand back every queue behind a running process that has run longer
        than its first start allows: ``failed`` replies, first to start first."""
        replies = []
        for key in [k for k in self.running_keys if (due := self._hand_back_due(k)) is not None and due <= now]:
            request = self.waiting.pop(key)
            while request is not None:
                queued = request[0]
                self.waiting_keys.discard(queued)
                self.hand_back.pop(queued, None)
                _close(self.prepared.take(queued))
                self._remember_handed_back(queued)
                replies.append(("failed", queued, HANDED_BACK))
                request = self.waiting.pop(queued, None)
        return replies

    def _remember_handed_back(self, key):
        self.handed_back[key] = None
        if len(self.handed_back) > HANDED_BACK_KEPT:
            del self.handed_back[next(iter(self.handed_back))]

    def next_hand_back(self):
        """When the next queue is due to be handed back (``time.monotonic``), or None."""
        # Over the running processes (the slots), not the far more starts queued behind them.
        return min((due for due in map(self._hand_back_due, self.running_keys) if due is not None), default=None)

    def _hand_back_due(self, key):
        """When the queue behind running process ``key`` is to be handed back, or None."""
        request = self.waiting.get(key)
        limit = self.hand_back.get(request[0]) if request is not None else None
        return None if limit is None else self.running_keys[key] + limit

    def prepare_next(self):
        """Have the directory made and the output file opened of each start
        next in line behind a running process, while that process runs (see
        ``_Preparer``)."""
        for key in self.running_keys:
            request = self.waiting.get(key)
            if request is not None:
                next_key, _, cwd, _, output_path, header = request
                self.prepared.ask(next_key, cwd, output_path, header)

    def _spawn(self, argv, cwd, env, output_path, header, out=None):
        """Start ``argv``; ``out``: its output file, opened ahead (closed here either way)."""
        try:
            try:
                os.chdir(cwd)
            except FileNotFoundError:
                _make_directory(cwd)
                os.chdir(cwd)
            if out is None:
                out = _open_output(output_path)
            if header:
                os.write(out, header.encode() + b"\n")
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)]
            options = dict(file_actions=actions, setsid=True, setsigdef=_DEFAULT_SIGNALS)
            try:
                return os.posix_spawn(self._resolve(argv[0], env), argv, env, **options)
            except FileNotFoundError:
                if self.executables.pop((argv[0], env.get("PATH")), None) is None:
                    raise
                return os.posix_spawn(self._resolve(argv[0], env), argv, env, **options)
        finally:
            _close(out)

    def _resolve(self, name, env):
        """``name`` as ``execvp`` would find it on the job's own PATH (the
        spawner's PATH is not the job's); remembered, and looked up again if
        the remembered file is gone."""
        if os.sep in name:
            return name
        key = (name, env.get("PATH"))
        path = self.executables.get(key)
        if path is None:
            for folder in os.get_exec_path(env):
                candidate = os.path.join(folder, name)
                if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                    path = self.executables[key] = candidate
                    break
            else:
                raise FileNotFoundError(2, "No such file or directory", name)
        return path

    def reap(self):
        ended = []
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            key = self.running.pop(pid, None)
            if key is not None:
                began = self.running_keys.pop(key)
                ended.append(("ended", key, os.waitstatus_to_exitcode(status), time.monotonic() - began))
                successor = self.waiting.pop(key, None)
                if successor is not None:  # its slot is free: fill it now
                    ended += self._start_in_place(key, successor)
        return ended

    def kill_all(self):
        self.waiting.clear()
        self.waiting_keys.clear()
        self.hand_back.clear()
        self.prepared.close_all()
        for pid in list(self.running):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        while self.running:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.running.pop(pid, None)


class _Preparer:
    """Makes the directory and opens the output file of a start next in line,
    on a thread of its own. Each new inode costs ext4 0.13-0.15 ms of CPU
    and, with the disk busy, up to a millisecond or more of waiting: made on
    the spawner's own thread they kept it from noticing the end of a run
    (and starting the next) for that long. Best effort: what cannot be made
    ahead is made, or fails with its message, at the start. (A start
    cancelled after this leaves its empty directory and file; the job runs
    there later anyway.) Paths are absolute, so the spawner's ``chdir`` for
    each start does not move them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ready = {}  # key -> its open output file (None: a start with a header opens its own)
        self._pending = set()  # handed to the thread and not done
        self._dropped = set()  # taken while pending: the thread closes what it opens
        self._requests = queue.SimpleQueue()
        threading.Thread(target=self._work, name="prepare-next", daemon=True).start()

    def ask(self, key, cwd, output_path, header):
        with self._lock:
            if key in self._ready or key in self._pending:
                return
            self._pending.add(key)
        self._requests.put((key, cwd, output_path, header))

    def take(self, key):
        """The output file opened ahead for ``key``, or None: not (yet) made,
        and the start makes its own (making a directory twice is harmless)."""
        with self._lock:
            if key in self._pending:
                self._dropped.add(key)
                return None
            return self._ready.pop(key, None)

    def close_all(self):
        with self._lock:
            for out in self._ready.values():
                _close(out)
            self._ready.clear()
            self._dropped |= self._pending

    def _work(self):
        while True:
            key, cwd, output_path, header = self._requests.get()
            out = None
            try:
                _make_directory(cwd)
                if not header:  # (a cancelled start must leave no header behind)
                    out = _open_output(output_path)
            except OSError:
                pass
            with self._lock:
                self._pending.discard(key)
                if key in self._dropped:
                    self._dropped.discard(key)
                    _close(out)
                else:
                    self._ready[key] = out


def _make_directory(path):
    try:
        os.mkdir(path)  # a new job's directory, in its workflow's: one call, not makedirs' walk
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        pass


def _close(fd):
    if fd is not None:
        os.close(fd)


def _open_output(path):
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except OSError:
        if not os.path.islink(path):
            raise
        os.unlink(path)  # never append through a link into another job's file
        return os.open(path, flags, 0o644)


def serve(requests_fd, replies_fd):
    for fd in (requests_fd, replies_fd):
        os.set_inheritable(fd, False)  # jobs must not hold the launcher's pipes open
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd needs a handler installed
    os.set_blocking(requests_fd, False)
    reader = MessageReader(requests_fd)
    children = _Children()
    while True:
        due = children.next_hand_back()
        select.select([requests_fd, wake_r], [], [], None if due is None else max(0.0, due - time.monotonic()))
        replies = []
        for op, key, *args in reader.read():
            if op == "start":
                replies += children.request(key, *args)
            elif op == "cancel":
                replies += children.cancel(key)
        try:
            while os.read(wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        replies += children.reap()
        replies += children.hand_back_overdue(time.monotonic())
        if reader.closed:
            children.kill_all()
            return
        if replies:
            try:
                write_message(replies_fd, replies)
            except BrokenPipeError:
                children.kill_all()
                return
        children.prepare_next()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
