"""Whose requests the dbserver accepts, and on whose behalf it writes them.

``Authorized`` holds the public keys the server accepts (the owner's client
key and every collaborator's from ``credentials/users.json``) and re-reads the
list whenever the file changes (one ``stat`` per drained batch and per
handshake), so ``balsam dbserver --remove-user`` cuts a collaborator off at
once: new connections fail the CURVE handshake, and the next request on a
connection they already hold is refused.
"""

import logging
import os
import threading

from balsam.exceptions import BalsamError
from balsam.wire.credentials import authorized_keys, users_file

logger = logging.getLogger("balsam.dbserver.users")

OWNER = object()  # what ``user_of`` returns for the owner's own key
REVOKED_MESSAGE = "your key for this DB is not (or no longer) authorized by its owner; ask them to run: balsam dbserver --add-user NAME"


class Authorized:
    def __init__(self, db_path):
        self.db_path = db_path
        self._path = str(users_file(db_path))
        self._stamp = ()
        self._names = {}  # z85 text -> user name (None: the owner)
        self._lock = threading.Lock()  # the ZAP thread and the serving loop both refresh
        self.refresh()

    def refresh(self):
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                keys = authorized_keys(self.db_path)
            except BalsamError as exc:  # a damaged list authorizes nobody but the owner
                logger.error("%s", exc)
                keys = {k: v for k, v in self._names.items() if v is None}
            else:
                keys = {k.decode(): v for k, v in keys.items()}
            if self._stamp != () and keys != self._names:
                logger.info("authorized users now: %s", ", ".join(sorted(n for n in keys.values() if n)) or "none")
            self._names, self._stamp = keys, stamp

    def user_of(self, key_text):
        """``OWNER``, a collaborator's name, or None when the key is not authorized."""
        name = self._names.get(key_text, False)
        if name is False:
            return None
        return OWNER if name is None else name


class KeyCheck:
    """The CURVE (ZAP) callback: only authorized keys complete the handshake."""

    def __init__(self, authorized):
        self.authorized = authorized

    def callback(self, domain, key):
        self.authorized.refresh()
        text = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
        if self.authorized.user_of(text) is not None:
            return True
        logger.warning("refused a client without an authorized key for this DB (key %s...)", text[:8])
        return False
