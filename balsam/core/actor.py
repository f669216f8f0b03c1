"""Who makes the write being applied: every job event records it.

A process writing the DB file itself acts as its own UNIX user (from its
effective uid, not from ``$USER``, which the caller controls). The dbserver
writes on behalf of its clients: around each request it names the user that
the request's CURVE key belongs to (``acting_as``).
"""

import os
import pwd
import threading
from contextlib import contextmanager

_state = threading.local()
_process_user = None


def process_user():
    """This process's user name (``uid N`` for a uid without a passwd entry)."""
    global _process_user
    if _process_user is None:
        uid = os.geteuid()
        try:
            _process_user = pwd.getpwuid(uid).pw_name
        except KeyError:
            _process_user = f"uid {uid}"
    return _process_user


def current():
    """The user the write in progress is made for."""
    return getattr(_state, "user", None) or process_user()


@contextmanager
def acting_as(user):
    """Writes inside are recorded as ``user``'s (None: this process's user)."""
    previous = getattr(_state, "user", None)
    _state.user = user
    try:
        yield
    finally:
        _state.user = previous
