"""The write protocol shared by the dbserver and its clients (no Django here).

A request is one ZeroMQ frame of UTF-8 JSON::

    {"v": 1, "id": "<32 hex>", "op": "create_jobs", "args": {...}}

and every request gets exactly one reply frame::

    {"v": 1, "id": "<same>", "ok": true, "result": ...}
    {"v": 1, "id": "<same or null>", "ok": false, "error": "ValidationError", "message": "..."}

``ok: true`` means the change is committed. ``id`` makes a retried request
idempotent: the server answers a repeated id with the stored result.
"""

import json
import os
import random
import time
import uuid

VERSION = 1
MAX_REQUEST_BYTES = 32 * 2**20  # larger requests get an error reply
HARD_MAX_MESSAGE_BYTES = 2 * MAX_REQUEST_BYTES  # ZeroMQ drops the peer beyond this
JOBS_PER_REQUEST = 10_000  # bulk inserts are split into requests of this many jobs
# How long the server remembers applied request ids: a client retrying longer
# than this could apply a request twice, so client deadlines must stay below it.
APPLIED_ID_RETENTION_SEC = 3600

# Operations a client may ask for: the write whitelist plus the server's own.
WRITE_OPS = frozenset(
    {
        "create_apps",
        "update_apps",
        "delete_apps",
        "create_jobs",
        "update_jobs",
        "delete_jobs",
        "transition_jobs",
        "kill_jobs",
        "add_dependency",
        "remove_dependency",
        "resolve_dependencies",
        "update_jobs_each",
        "apply_batch",
        "recover_expired_leases",
        "claim_jobs",
        "heartbeat_leases",
        "release_leases",
        "create_launches",
        "update_launches",
        "delete_launches",
        "tie_jobs",
        "end_launch",
        "renew_db_identity",
        "settle_orphaned_waiters",
        "prune_applied_requests",
        "apply_restart_rules",
        "prune_events",
        "delete_finished_jobs",
        "reclaim_space",
        "register_launcher",
        "stop_launcher",
    }
)
SERVER_OPS = frozenset({"ping", "status"})
ALL_OPS = WRITE_OPS | SERVER_OPS


class ProtocolError(Exception):
    """A request the server cannot even parse; ``request_id`` when known."""

    def __init__(self, message, request_id=None):
        super().__init__(message)
        self.request_id = request_id


def _as_text(value):
    """Job ids may be ``UUID``s in a payload (an in-process client hands them
    to the operations as they are, saving a round trip through text per id);
    on the wire they are their text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# json.dumps/loads with options build a new encoder per call; these are reused.
_encode = json.JSONEncoder(separators=(",", ":"), default=_as_text).encode
_decode = json.JSONDecoder().decode
# Request ids need uniqueness, not secrecy: a per-process generator seeded from
# the OS (and reseeded in forked children) costs no system call per id.
_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


def new_request_id():
    """32 hex digits, time first: the server's id index then grows at its end."""
    return f"{time.time_ns():016x}{_ids.getrandbits(64):016x}"


def encode_request(request_id, op, args):
    return _encode({"v": VERSION, "id": request_id, "op": op, "args": args}).encode()


def decode_request(frame):
    """Parse and check one request frame; raise ``ProtocolError`` with a clear message."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"request of {len(frame)} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit; send smaller batches")
    try:
        message = _decode(frame.decode())
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("request is not UTF-8 JSON") from None
    except RecursionError:
        raise ProtocolError("request nests too deeply to read (keep values under 100 levels)") from None
    if not isinstance(message, dict):
        raise ProtocolError("request must be a JSON object")
    request_id = message.get("id")
    if not isinstance(request_id, str) or not 8 <= len(request_id) <= 64:
        raise ProtocolError("request needs an 'id' string of 8 to 64 characters")
    if message.get("v") != VERSION:
        raise ProtocolError(
            f"protocol version {message.get('v')!r} is not supported (server speaks {VERSION}); "
            "use the same Balsam version for clients and server",
            request_id,
        )
    op = message.get("op")
    if op not in ALL_OPS:
        raise ProtocolError(f"unknown operation {op!r}", request_id)
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be a JSON object", request_id)
    return request_id, op, args


def encode_reply(request_id, result=None, error=None, message=None):
    if error is None:
        body = {"v": VERSION, "id": request_id, "ok": True, "result": result}
    else:
        body = {"v": VERSION, "id": request_id, "ok": False, "error": error, "message": message}
    return _encode(body).encode()


def encode_ok_reply(request_id, result_json):
    """A success reply around an already encoded result (no decode/encode round trip)."""
    return b'{"v":%d,"id":%s,"ok":true,"result":%s}' % (VERSION, json.dumps(request_id).encode(), result_json.encode())


def decode_reply(frame):
    message = _decode(frame.decode())
    if not isinstance(message, dict) or "ok" not in message:
        raise ProtocolError("malformed reply from the dbserver")
    return message
