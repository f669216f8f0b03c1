"""The dbserver: the single writer of one SQLite Balsam DB.

It owns the only write connection and applies requests in **groups**: it
drains every request waiting on its socket (up to a bound), applies them in
one ``BEGIN IMMEDIATE`` transaction -- a savepoint each, so one bad request
fails alone -- records their ids, commits, and only then replies. A reply
therefore means committed, and a retried id gets the stored result back.

Run by the watchdog as ``python -m balsam.dbserver.server --path DIR --host H``.
"""

import logging
import os
import resource
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import zmq

from balsam.dbserver import parse_process_args
from balsam.dbserver.peers import PeerCap, cap_for
from balsam.dbserver.users import OWNER, REVOKED_MESSAGE, Authorized, KeyCheck
from balsam.wire import protocol
from balsam.wire.credentials import server_keys
from balsam.wire.serverinfo import ServerInfo, db_file_inode

logger = logging.getLogger("balsam.dbserver.server")  # not __name__: this runs as __main__

MAX_BATCH_REQUESTS = 1024
MAX_BATCH_BYTES = 64 * 2**20
POLL_MS = 200
# When the last group held several requests, other clients are active: wait
# up to this long for as many requests as that group held, so one commit
# serves them all (like PostgreSQL's commit_delay). A lone client never waits.
GATHER_MS = 2
_SNDMORE = int(zmq.SNDMORE)  # a plain int: enum flag arithmetic costs more than the send
PRUNE_PERIOD_SEC = 60
HANDSHAKE_MS = 5000
# Every connection costs the server a file descriptor; the usual soft limit
# (1024) is what a local flood exhausts first. Raised to the hard limit at start.
MAX_OPEN_FILES = 1 << 20


class Stats:
    def __init__(self):
        self.started = time.time()
        self.requests = 0
        self.commits = 0
        self.applied = 0
        self.errors = 0

    def as_dict(self):
        return {
            "pid": os.getpid(),
            "started": self.started,
            "uptime_sec": time.time() - self.started,
            "requests": self.requests,
            "commits": self.commits,
            "applied": self.applied,
            "errors": self.errors,
            "mean_batch": self.applied / self.commits if self.commits else 0.0,
        }


class WriteServer:
    def __init__(self, db_path, host, group_commit=True, backup_interval_sec=0, backup_keep=7):
        self.db_path = db_path
        self.host = host
        self.group_commit = group_commit
        self.stats = Stats()
        self.stopping = False
        self.backups = ScheduledBackups(db_path, backup_interval_sec, backup_keep)
        self._last_prune = 0.0
        self._parent = os.getppid()
        self._last_batch = 0
        self.peers = None

    # -- socket -----------------------------------------------------------------
    def bind(self):
        """Bind a random port first; only then publish the address (no port race)."""
        from zmq.auth.thread import ThreadAuthenticator

        keys = server_keys(self.db_path)
        self.context = zmq.Context()
        self.auth = ThreadAuthenticator(self.context, log=logging.getLogger("balsam.dbserver.auth"))
        self.auth.start()
        self.users = Authorized(self.db_path)
        self.auth.configure_curve_callback("*", credentials_provider=KeyCheck(self.users))
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.curve_server = True
        self.socket.curve_publickey = keys["public"]
        self.socket.curve_secretkey = keys["secret"]
        self.socket.setsockopt(zmq.MAXMSGSIZE, protocol.HARD_MAX_MESSAGE_BYTES)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
        # A connection that has not completed its CURVE handshake by then is dropped:
        # a flood of idle connections holds file descriptors for seconds, not half a minute.
        self.socket.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
        bind_ip = socket.gethostbyname(self.host)
        self.socket.bind(f"tcp://{bind_ip}:*")
        port = self.socket.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1]
        self.address = f"tcp://{self.host}:{port}"
        self.local_address = self._bind_local()
        self.peers = PeerCap(self.socket, cap_for(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        return self.address

    def _bind_local(self):
        """Also listen on a Unix socket for clients on this host: a round trip
        through it costs both sides less CPU than TCP loopback. Linux's abstract
        namespace leaves no file behind when the server dies; elsewhere clients
        simply use TCP."""
        if not sys.platform.startswith("linux"):
            return None
        address = f"ipc://@balsam-dbserver-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.socket.bind(address)
        except zmq.ZMQError as exc:
            logger.warning("no local socket (%s); clients on this host use TCP", exc)
            return None
        return address

    def publish(self):
        from balsam.core.queries import db_id

        ServerInfo(self.db_path).update(
            db_type="sqlite3",
            # Which DB this server writes: a copy of the directory is told apart by its file.
            db_id=db_id(),
            db_inode=db_file_inode(self.db_path),
            db_path=str(Path(self.db_path).resolve()),
            server_public=server_keys(self.db_path)["public"].decode(),  # names collaborators' saved keys
            address=self.address,
            local_address=self.local_address,
            host=self.host,
            server_pid=os.getpid(),
            started=self.stats.started,
        )
        logger.info("serving %s at %s (group commit %s)", self.db_path, self.address, self.group_commit)

    def close(self):
        self.backups.wait()
        if self.peers is not None:
            self.peers.close()
        self.socket.close(linger=1000)
        self.auth.stop()
        self.context.term()

    # -- loop -------------------------------------------------------------------
    def serve(self):
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.peers.monitor, zmq.POLLIN)
        while not self.stopping:
            ready = dict(poller.poll(POLL_MS))
            if self.peers.monitor in ready:
                self.peers.handle_events()
            if self.socket in ready:
                batch = self._drain()
                if self.group_commit and self._last_batch > 1:
                    self._gather(batch)
                self._last_batch = len(batch)
                self.handle(batch)
            if os.getppid() != self._parent:
                logger.warning("the watchdog (pid %s) is gone; exiting", self._parent)
                break
            self._maybe_prune()
            self.backups.maybe_start()

    def _gather(self, batch):
        """Add to ``batch`` until it is as large as the last one, for at most GATHER_MS."""
        want = min(MAX_BATCH_REQUESTS, self._last_batch)
        end = time.monotonic() + GATHER_MS / 1000
        while len(batch) < want:
            left = end - time.monotonic()
            if left <= 0 or not self.socket.poll(max(1, round(left * 1000))):
                return
            batch += self._drain(MAX_BATCH_REQUESTS - len(batch))

    def _drain(self, limit=None):
        batch, size = [], 0
        limit = limit or (MAX_BATCH_REQUESTS if self.group_commit else 1)
        while len(batch) < limit and size < MAX_BATCH_BYTES:
            try:
                # Frames, not bytes: the last one tells whose key sent it (its ZAP User-Id).
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            batch.append(frames)
            size += len(frames[-1])
        return batch

    def handle(self, batch):
        """Apply one drained batch and send every reply."""
        replies, requests = [], []
        self.users.refresh()  # a user removed since the last batch is refused from now on
        user_of = self.users.user_of
        for frames in batch:
            envelope, last = frames[:-1], frames[-1]
            body = last.bytes
            self.stats.requests += 1
            user = user_of(last.get("User-Id"))
            if user is None:
                self.stats.errors += 1
                replies.append((envelope, protocol.encode_reply(_request_id(body), error="AccessDenied",
                                                                message=REVOKED_MESSAGE)))
                continue
            try:
                request_id, op, args = protocol.decode_request(body)
            except Exception as exc:  # whatever a request holds, it fails alone: the batch's other replies still go
                if not isinstance(exc, protocol.ProtocolError):
                    exc = protocol.ProtocolError(f"cannot read the request: {type(exc).__name__}: {exc}")
                self.stats.errors += 1
                logger.warning("refused request: %s", exc)
                replies.append((envelope, protocol.encode_reply(exc.request_id, error="ProtocolError", message=str(exc))))
                continue
            if op == "ping":
                replies.append((envelope, protocol.encode_reply(request_id, {"pid": os.getpid()})))
            elif op == "status":
                replies.append((envelope, protocol.encode_reply(request_id, self.stats.as_dict())))
            else:
                requests.append((envelope, request_id, op, args, None if user is OWNER else user))
        if requests:
            if self.group_commit:
                replies.extend(self._commit_group(requests))
            else:
                for request in requests:
                    replies.extend(self._commit_group([request]))
        send = self.socket.send
        for envelope, reply in replies:
            for frame in envelope:
                send(frame, _SNDMORE)
            send(reply)

    def _commit_group(self, requests):
        from balsam.core.sql import write_transaction
        from balsam.dbserver import apply

        try:
            with write_transaction():
                outcomes = apply.apply_group([request[1:] for request in requests])
        except Exception as exc:  # the commit failed: nothing of this group was applied
            logger.exception("commit failed")
            message = f"the dbserver could not commit: {type(exc).__name__}: {exc}"
            outcomes = {request[1]: ("BalsamError", message) for request in requests}
            # ...but retries of requests committed by an earlier group still succeeded.
            outcomes.update(apply.committed_outcomes([request[1] for request in requests]))
        else:
            if any(outcome[0] is None for outcome in outcomes.values()):
                self.stats.commits += 1  # a group of refused requests wrote nothing: not a commit
        replies = []
        for envelope, request_id, *_ in requests:
            outcome = outcomes[request_id]
            if outcome[0] is None:
                self.stats.applied += 1
                replies.append((envelope, protocol.encode_ok_reply(request_id, outcome[1])))
            else:
                self.stats.errors += 1
                replies.append((envelope, protocol.encode_reply(request_id, error=outcome[0], message=outcome[1])))
        return replies

    def _maybe_prune(self):
        now = time.time()
        if now - self._last_prune < PRUNE_PERIOD_SEC:
            return
        self._last_prune = now
        from balsam.dbserver import apply

        try:
            pruned = apply.prune_applied(protocol.APPLIED_ID_RETENTION_SEC)
        except Exception:  # housekeeping must never take the writer down
            logger.exception("pruning applied-request ids failed")
            return
        if pruned:
            logger.info("pruned %d applied-request ids", pruned)


class ScheduledBackups:
    """Every ``interval_sec``, a verified copy of the DB in ``<DB>/backups``
    (``balsam.backups.take``), then all but the newest ``keep`` time-named
    copies removed. The copy runs on a thread of its own with a connection of
    its own: one read transaction, which in WAL mode never blocks the writer,
    so the loop keeps committing while the pages are copied."""

    def __init__(self, db_path, interval_sec, keep):
        self.db_path = db_path
        self.interval_sec = interval_sec
        self.keep = keep
        self._next = time.monotonic() + interval_sec
        self._thread = None

    def maybe_start(self):
        if not self.interval_sec or time.monotonic() < self._next:
            return
        if self._thread is not None and self._thread.is_alive():
            return  # a copy slower than the interval: the next starts when it is done
        self._next = time.monotonic() + self.interval_sec
        self._thread = threading.Thread(target=self._take, name="balsam-backup", daemon=True)
        self._thread.start()

    def _take(self):
        from balsam import backups

        try:
            path, size = backups.take(self.db_path)
            removed = backups.prune(self.db_path, self.keep)
        except Exception:  # housekeeping must never take the writer down
            logger.exception("scheduled backup failed")
            return
        logger.info("scheduled backup %s (%d bytes); removed %d old one(s)", path, size, len(removed))

    def wait(self, timeout=60):
        if self._thread is not None:
            self._thread.join(timeout)


def _request_id(body):
    """The id of a refused request, for its reply (None when it cannot be read)."""
    try:
        return protocol.decode_request(body)[0]
    except Exception:  # refused anyway: an unreadable request just gets no id
        return None


def _raise_open_file_limit():
    """Soft limit on open files up to the hard limit (capped), so a flood of
    connections slows the server down instead of running it out of descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # the kernel's own cap is lower: keep what we have


def _tune_writer_connection():
    from django.db import connection

    from balsam.core.operations import enable_app_name_cache

    # As the only writer it sees every change to applications.
    enable_app_name_cache()
    with connection.cursor() as cursor:
        # Checkpoint the WAL less often: fewer, larger page writes under load.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")


START_CHECK_SEC = 1.0  # every (re)start checks the file, but must not delay the restart after a crash much


def _damage():
    """Why this DB must not be served (a damaged file), or None."""
    from balsam.core.sql import check_sound
    from balsam.exceptions import DBDamaged

    try:
        if not check_sound(START_CHECK_SEC):
            logger.info("integrity check not finished within %g s (a large DB); serving", START_CHECK_SEC)
    except DBDamaged as exc:
        return str(exc)
    return None


def _apply_restart_rules(lease_expiry_sec):
    """``core.states.RESTART_RULES`` on every (re)start, before serving,
    through the write path (this process's direct client); the counters and
    what was done go to the log. A failure is logged and the server serves anyway."""
    from balsam.core import write_client

    try:
        write_client.get().apply_restart_rules(lease_expiry_sec)
    except Exception:
        logger.exception("the restart rules could not be applied")


def main(argv=None):
    args = parse_process_args("Balsam dbserver (started by the watchdog)", argv)

    from balsam import logs
    from balsam.config import load_settings
    from balsam.django_config import activate, unapplied_migrations

    _raise_open_file_limit()
    activate(args.path, write_mode="direct")
    logs.configure(args.path, "dbserver")
    _tune_writer_connection()
    settings = load_settings()
    server = WriteServer(args.path, args.host, group_commit=not args.no_group_commit,
                         backup_interval_sec=settings.backup_interval_minutes * 60, backup_keep=settings.backup_keep)

    def stop(signum, frame):
        server.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    problems = _damage()
    if problems:
        logger.error(problems)
        print(f"dbserver: {problems}", file=sys.stderr)
        return 2
    unapplied = unapplied_migrations()
    if unapplied:
        message = f"the DB schema is out of date ({', '.join(unapplied)} not applied); run: balsam init {args.path}"
        logger.error(message)
        print(f"dbserver: {message}", file=sys.stderr)
        return 2
    _apply_restart_rules(settings.launcher_lease_expiry_sec)
    try:
        server.bind()
    except (zmq.ZMQError, OSError) as exc:
        logger.error("cannot bind %s: %s", args.host, exc)
        print(f"dbserver: cannot bind {args.host}: {exc}", file=sys.stderr)
        return 2
    server.publish()
    try:
        server.serve()
    finally:
        server.close()
        logger.info("stopped after %d requests in %d commits", server.stats.requests, server.stats.commits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
