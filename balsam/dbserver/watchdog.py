"""The watchdog: keeps one DB's dbserver running.

Holds ``<DB>/dbserver.lock`` for its whole life (one server per DB), starts
the server, and restarts it at once whenever it exits unexpectedly (kill -9
included). The old address stays posted until the new server posts its own,
so waiting clients resend to it with the same request ids. SIGTERM/SIGINT
stop the server, clear the address and release the lock.

Run by ``balsam dbserver`` as a detached process.
"""

import logging
import os
import signal
import subprocess
import sys
import syslog
import time
from pathlib import Path

from filelock import FileLock, Timeout

from balsam.dbserver import parse_process_args
from balsam.exceptions import BalsamError
from balsam.wire.serverinfo import ServerInfo

logger = logging.getLogger("balsam.dbserver.watchdog")  # not __name__: this runs as __main__

LOCK_NAME = "dbserver.lock"
MAX_START_FAILURES = 5  # servers in a row that die before posting an address
STOP_GRACE_SEC = 10.0
# Below this much free space a server that could not start is waited for, not
# counted as failing: it restarts once space returns.
MIN_FREE_BYTES = 8 * 2**20
SPACE_POLL_SEC = 0.5


def server_lock(db_path):
    return FileLock(str(Path(db_path) / LOCK_NAME), timeout=0)


class Watchdog:
    def __init__(self, db_path, host, group_commit=True):
        self.db_path = Path(db_path)
        self.host = host
        self.group_commit = group_commit
        self.info = ServerInfo(db_path)
        self.stopping = False
        self.restarts = 0
        self.server = None

    def _spawn(self):
        command = [sys.executable, "-m", "balsam.dbserver.server", "--path", str(self.db_path), "--host", self.host]
        if not self.group_commit:
            command.append("--no-group-commit")
        log = open(self.db_path / "log" / "dbserver.out", "ab")
        try:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()

    def _post(self, **changes):
        """Update the address file. An I/O error (a full disk) must not end the
        watchdog: the changes are kept and posted with the next update."""
        self._unposted.update(changes)
        try:
            self.info.update(**self._unposted)
        except OSError as exc:
            _report(f"cannot update {self.info.path} ({exc}); keeping the server running and trying again")
            return
        self._unposted = {}

    def _served(self):
        """Did the last server post its address (so it started)?"""
        try:
            return self.info.read().get("server_pid") == self.server.pid
        except (OSError, BalsamError):
            return False

    def _wait_for_space(self):
        _report(f"the disk of {self.db_path} is full; the server will be restarted once space is freed")
        while not self.stopping and free_bytes(self.db_path) < MIN_FREE_BYTES:
            time.sleep(SPACE_POLL_SEC)
        if not self.stopping:
            logger.info("space freed on the disk of %s; restarting the server", self.db_path)

    def run(self):
        self._unposted = {}
        self._post(watchdog_pid=os.getpid(), watchdog_started=time.time(), restarts=0, host=self.host)
        start_failures = 0
        while not self.stopping:
            self.server = self._spawn()
            started = time.monotonic()
            logger.info("started server pid %d", self.server.pid)
            while self.server.poll() is None and not self.stopping:
                try:
                    self.server.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
            if self.stopping:
                break
            lived = time.monotonic() - started
            # A server that never posted its address cannot start (bad DB, no port):
            # retrying forever would only hide that. One that served and died crashed.
            served = self._served()
            if not served and free_bytes(self.db_path) < MIN_FREE_BYTES:
                self._wait_for_space()  # not the server's fault: wait, and do not count it
            start_failures = 0 if served else start_failures + 1
            if start_failures >= MAX_START_FAILURES:
                cause = last_line(self.db_path / "log" / "dbserver.out")
                logger.error("the server failed to start %d times in a row; giving up: %s", start_failures, cause)
                print(f"the server failed to start {start_failures} times: {cause}", file=sys.stderr, flush=True)
                break
            self.restarts += 1
            logger.warning("server pid %d exited with code %s after %.1f s; restarting (restart %d)",
                           self.server.pid, self.server.returncode, lived, self.restarts)
            self._post(restarts=self.restarts)
        self._stop_server()
        try:
            self.info.clear_server()
        except OSError as exc:
            _report(f"cannot clear the address in {self.info.path} ({exc}); clear it with: "
                    f"balsam dbserver --reset --path {self.db_path}")
            return
        logger.info("watchdog stopped; address cleared")

    def _stop_server(self):
        if self.server is None or self.server.poll() is not None:
            return
        self.server.terminate()
        try:
            self.server.wait(timeout=STOP_GRACE_SEC)
        except subprocess.TimeoutExpired:
            logger.warning("server pid %d did not stop within %.0f s; killing it", self.server.pid, STOP_GRACE_SEC)
            self.server.kill()
            self.server.wait()


def free_bytes(path):
    try:
        stat = os.statvfs(path)
    except OSError:
        return MIN_FREE_BYTES  # unknown: assume enough
    return stat.f_bavail * stat.f_frsize


def _report(message):
    """Log ``message``, and say it on stderr too: the log file may be on the full disk."""
    logger.error("%s", message)
    try:
        print(f"watchdog: {message}", file=sys.__stderr__, flush=True)
    except OSError:
        pass
    syslog.syslog(syslog.LOG_ERR, f"balsam dbserver watchdog: {message}")  # a no-op where there is no syslog


def last_line(path):
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def _sqlite_watchdog(args):
    return Watchdog(args.path, args.host, group_commit=not args.no_group_commit)


def main(argv=None, make=None):
    """``make(args)``: the watchdog to run (``pgserver`` passes its own)."""
    args = parse_process_args("Balsam dbserver watchdog (started by `balsam dbserver`)", argv)

    from balsam import logs

    logs.configure(args.path, "watchdog")
    lock = server_lock(args.path)
    try:
        lock.acquire()
    except Timeout:
        pid = ServerInfo(args.path).read().get("watchdog_pid")
        print(f"{args.path} is already served by the dbserver watchdog pid {pid}", file=sys.stderr)
        return 1
    watchdog = (make or _sqlite_watchdog)(args)

    def stop(signum, frame):
        watchdog.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        watchdog.run()
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
