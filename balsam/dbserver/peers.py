"""A cap on the connections one peer may hold open to the dbserver.

libzmq has no such option: every connection costs the server a file
descriptor until its CURVE handshake fails (``HANDSHAKE_IVL``) or it closes,
so one local user opening connections in a loop could hold all of them. The
server watches its socket's monitor: each accepted connection is attributed to
a peer (the client's IP for TCP, its user id for the local socket), and a
peer's connections beyond the cap are hung up at once (``shutdown()`` of the
descriptor; libzmq then closes it itself). The DB owner's own processes on the
local socket are never capped: they are the clients the server exists for.
A legitimate client that is hung up retries (Lazy Pirate), so the cost of a
flood is latency, not availability.
"""

import logging
import os
import socket
import struct
from collections import Counter

import zmq
from zmq.utils.monitor import recv_monitor_message

logger = logging.getLogger(__name__)

MIN_CAP = 64
LIMIT_SHARE = 8  # one peer may hold at most 1/8 of the open-file limit
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def cap_for(open_file_limit):
    return max(MIN_CAP, open_file_limit // LIMIT_SHARE)


class PeerCap:
    def __init__(self, zmq_socket, cap, owner_uid=None):
        self.cap = cap
        self.owner_uid = os.getuid() if owner_uid is None else owner_uid
        self.monitor = zmq_socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.peer_of_fd = {}
        self.open = Counter()
        self.hung_up = Counter()

    def handle_events(self):
        """Apply every pending monitor event (events arrive in the order they happened)."""
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._accepted(event["value"])
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._gone(event["value"])

    def _accepted(self, fd):
        peer = _peer(fd, self.owner_uid)
        if peer is None:  # the owner's own process, or a connection already gone
            return
        if self.open[peer] >= self.cap:
            _hang_up(fd)
            self.hung_up[peer] += 1
            if self.hung_up[peer] in (1, 100, 10_000) or self.hung_up[peer] % 100_000 == 0:
                logger.warning("hung up %d connection(s) from %s beyond its cap of %d open connections",
                               self.hung_up[peer], peer, self.cap)
            return
        self.peer_of_fd[fd] = peer
        self.open[peer] += 1

    def _gone(self, fd):
        peer = self.peer_of_fd.pop(fd, None)
        if peer is not None:
            self.open[peer] -= 1
            if not self.open[peer]:
                del self.open[peer]

    def close(self):
        self.monitor.close(linger=0)


def _peer(fd, owner_uid):
    """Who is at the other end of ``fd``: 'IP' or 'uid N'; None for the owner's
    local processes or when the descriptor is already closed."""
    try:
        conn = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if conn.family == socket.AF_UNIX:
            _, uid, _ = _CRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
            return None if uid == owner_uid else f"uid {uid}"
        return conn.getpeername()[0]
    except OSError:
        return None
    finally:
        conn.close()


def _hang_up(fd):
    # shutdown() acts on the connection, not on our duplicate of the descriptor:
    # libzmq sees the end of the stream and closes its own descriptor.
    try:
        conn = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        conn.close()
