"""Writes sent to the DB's dbserver over ZeroMQ (CURVE-authenticated).

Lazy Pirate: one REQ socket; on a timeout it is closed, the server's address
is re-read from ``dbwriter_address`` (a restarted server posts a new port)
and the same request -- same id, so never applied twice -- is sent again,
until the deadline.
"""

import logging
import os
import threading
import time

import zmq

from balsam.dbclient.base import ServerGone, WriteClient
from balsam.wire import protocol
from balsam.wire.credentials import client_keys
from balsam.wire.serverinfo import ServerInfo, is_local_host, server_alive
from balsam.exceptions import ERRORS_BY_NAME, AccessDenied, BalsamError, ConfigError, DBServerUnavailable, ValidationError

logger = logging.getLogger(__name__)

SLICE_MS = 250  # how often a waiting request looks for a restarted server
FIRST_TRY_SEC = 2.0  # per-attempt timeout, doubled up to MAX_TRY_SEC
MAX_TRY_SEC = 10.0
_TIMED_OUT = object()  # why an attempt ended without a reply
_MOVED = object()


def stale_reason(info):
    """Why the posted server can't be running, when that can be told locally (else None)."""
    host = info.get("host")
    if not host or not is_local_host(host):
        return None
    if server_alive(info):
        return None
    return f"its server (pid {info.get('server_pid')}) and watchdog (pid {info.get('watchdog_pid')}) are not running"


def stale_message(db_path, info, reason):
    return (
        f"the dbserver posted in {db_path}/dbwriter_address ({info.get('address')}) is not reachable: {reason}; "
        f"start it with: balsam dbserver --path {db_path}, or clear the stale address with: "
        f"balsam dbserver --reset --path {db_path}"
    )


class ZmqClient(WriteClient):
    mode = "dbserver"

    def __init__(self, db_path, deadline_sec, ping_timeout_sec):
        self.db_path = db_path
        self.info = ServerInfo(db_path)
        self.deadline_sec = deadline_sec
        self.ping_timeout_sec = ping_timeout_sec
        self._keys = client_keys(db_path)
        # A collaborator's key can be revoked: watch the handshake so a refused
        # key fails at once in one line, not after the deadline. (The owner's cannot.)
        self._watch_auth = bool(self._keys.get("collaborator"))
        self._monitor = None
        self._pid = None
        self._ctx = None
        self._socket = None
        self.address = None
        self._try_local = True  # until a request through the local socket times out
        self._local = False
        self._lock = threading.Lock()  # one REQ socket: one request at a time

    def describe(self):
        info = self.info.read()
        return f"dbserver at {info.get('address')} (server pid {info.get('server_pid')} on {info.get('host')})"

    # -- connection ---------------------------------------------------------------
    def _context(self):
        if self._pid != os.getpid():  # ZeroMQ contexts do not survive fork()
            self._socket = None
            self._ctx = zmq.Context()
            self._pid = os.getpid()
        return self._ctx

    def _connect(self):
        info = self.info.read()
        address = info.get("address")
        if not address:
            raise ServerGone()
        sock = self._context().socket(zmq.REQ)
        sock.curve_serverkey = self._keys["server_public"]
        sock.curve_publickey = self._keys["public"]
        sock.curve_secretkey = self._keys["secret"]
        sock.setsockopt(zmq.LINGER, 0)
        # A blocking recv with a timeout costs far less CPU than poll() + recv().
        sock.setsockopt(zmq.RCVTIMEO, SLICE_MS)
        if self._watch_auth:
            self._monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        endpoint = self._endpoint(info)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise ConfigError(
                f"the address posted in {self.info.path} ({endpoint}) is not a dbserver's ({exc}); "
                f"clear it with: balsam dbserver --reset --path {self.db_path}") from None
        self._socket, self.address = sock, address
        return sock

    def _endpoint(self, info):
        """The server's local (Unix) socket when it runs on this host, else its TCP address.

        A process in another network namespace (some containers) cannot reach
        the local socket; after one timed-out attempt this client uses TCP.
        """
        local = info.get("local_address")
        if local and self._try_local and info.get("host") and is_local_host(info["host"]):
            self._local = True
            return local
        self._local = False
        return info["address"]

    def close(self):
        """Close the socket and its context now. Left to the garbage
        collector, a context can be finalised before its socket and then
        waits for it forever (a hang at interpreter exit)."""
        with self._lock:
            if self._pid == os.getpid():
                self._drop_socket()
                if self._ctx is not None:
                    self._ctx.term()
            self._socket = self._ctx = self._pid = None

    def _drop_socket(self):
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _refused(self):
        """Whether the server refused this client's key in the handshake."""
        return self._monitor is not None and self._monitor.poll(0) != 0

    def check_reachable(self):
        """Fail fast, in one line, if the posted server is evidently gone."""
        info = self.info.read()
        reason = stale_reason(info)
        if reason is None and not (info.get("host") and is_local_host(info["host"])):
            try:
                self._send("ping", {}, deadline_sec=self.ping_timeout_sec)
                return
            except DBServerUnavailable:
                reason = f"no answer to a ping within {self.ping_timeout_sec:g} s"
        if reason:
            raise DBServerUnavailable(stale_message(self.db_path, info, reason))

    # -- requests -----------------------------------------------------------------
    def request(self, op, payload):
        return self._send(op, payload, self.deadline_sec)

    def _send(self, op, payload, deadline_sec):
        request_id = protocol.new_request_id()
        with self._lock:
            try:
                return self._send_until(request_id, op, payload, deadline_sec)
            except ServerGone:
                raise ServerGone(request_id) from None

    def _send_until(self, request_id, op, payload, deadline_sec):
        try:
            frame = protocol.encode_request(request_id, op, payload)
        except RecursionError:
            raise ValidationError(f"cannot send {op}: a value nests too deeply (keep values under 100 levels)") from None
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"cannot send {op}: a value is not JSON-serialisable ({exc})") from None
        deadline = time.monotonic() + deadline_sec
        attempt_sec = FIRST_TRY_SEC
        while True:
            if self._socket is None or self._pid != os.getpid():
                self._context()
                self._connect()
            address = self.address
            self._socket.send(frame)
            reply = self._wait(deadline, attempt_sec, address)
            if reply is _TIMED_OUT:
                if self._local:
                    self._try_local = False
            elif reply is not _MOVED:
                return self._result(reply)
            self._drop_socket()
            if time.monotonic() >= deadline:
                info = self.info.read()
                reason = stale_reason(info)
                hint = f"; {reason}" if reason else ""
                raise DBServerUnavailable(
                    f"no reply from the dbserver of {self.db_path} at {address} within {deadline_sec:g} s{hint}; "
                    f"check it with: balsam dbserver --status --path {self.db_path}"
                )
            attempt_sec = min(attempt_sec * 2, MAX_TRY_SEC)

    def _wait(self, deadline, attempt_sec, address):
        """The reply frame, or why this attempt was given up (_TIMED_OUT or _MOVED)."""
        attempt_end = min(deadline, time.monotonic() + attempt_sec)
        recv = self._socket.recv
        while True:
            try:
                return recv()
            except zmq.Again:
                pass
            if self._refused():
                self._drop_socket()
                raise AccessDenied(
                    f"the dbserver of {self.db_path} refused your key: the DB's owner has not authorized it, or has "
                    "removed you (ask them to run: balsam dbserver --add-user NAME, then run: balsam login PATH TOKEN)")
            if time.monotonic() >= attempt_end:
                return _TIMED_OUT
            info = self.info.read()
            if info.get("address") != address:
                if not info.get("address"):
                    self._drop_socket()
                    raise ServerGone()
                return _MOVED  # restarted on a new port: resend there now

    def _result(self, frame):
        try:
            reply = protocol.decode_reply(frame)
        except (ValueError, protocol.ProtocolError) as exc:
            raise BalsamError(f"unreadable reply from the dbserver: {exc}") from None
        if reply["ok"]:
            return reply.get("result")
        error = ERRORS_BY_NAME.get(reply.get("error"), BalsamError)
        raise error(reply.get("message") or "the dbserver refused the request")
