"""Writes applied in this process, one write transaction per request.

Correct with any number of processes (SQLite's lock serialises them, the busy
timeout makes them queue); the dbserver is faster under heavy concurrency.
"""

from balsam.config import can_write, owner_name, require_write_access
from balsam.core.operations import ONE_ROUND_TRIP, OPERATIONS, needs_write_lock
from balsam.core.sql import in_own_transaction, needs_own_transaction, write_transaction
from balsam.dbclient.base import WriteClient
from balsam.exceptions import DBServerUnavailable, ValidationError
from balsam.wire.credentials import collaborator_keys


class DirectClient(WriteClient):
    mode = "direct"

    def __init__(self, db_path=None):
        self.db_path = db_path
        self._may_write = False

    def _check_access(self):
        # Once per process (the first write): a reader of another user's DB
        # gets a line naming the owner, not SQLite's "readonly database".
        if not self._may_write and self.db_path is not None:
            if not can_write(self.db_path) and collaborator_keys(self.db_path) is not None:
                raise DBServerUnavailable(
                    f"no dbserver is running for {self.db_path}, and a collaborator writes only through it: "
                    f"ask its owner ({owner_name(self.db_path)}) to start it with: balsam dbserver --path {self.db_path}")
            require_write_access(self.db_path, "change this DB")
        self._may_write = True

    def describe(self):
        return "direct (this process writes the DB file; no dbserver running)"

    def request(self, op, payload):
        try:
            operation = OPERATIONS[op]
        except KeyError:
            raise ValidationError(f"unknown write operation {op!r}") from None
        self._check_access()
        serialize = needs_write_lock(op, payload)
        if needs_own_transaction():
            return in_own_transaction(lambda: operation(**payload), serialize)
        with write_transaction(serialize):
            return operation(**payload)


class PostgresClient(DirectClient):
    """The write client of a PostgreSQL DB: every process writes through its
    own connection, one transaction per request (the server is the one
    writer; Balsam's dbserver only runs it)."""

    mode = "postgres"

    def _check_access(self):
        # No file to check: PostgreSQL checks the privileges of this user's
        # role (the owner's, or a collaborator's own from `balsam login`).
        self._may_write = True

    def describe(self):
        return "postgres (this process writes through its own PostgreSQL connection)"

    def request(self, op, payload):
        # A request that fits one statement outside a transaction (a few jobs
        # added by dag.add_job) goes in one round trip; None: the usual way.
        one_statement = ONE_ROUND_TRIP.get(op)
        if one_statement is not None and not needs_own_transaction():
            self._check_access()
            result = one_statement(**payload)
            if result is not None:
                return result
        return super().request(op, payload)
