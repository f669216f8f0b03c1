"""Writes applied in this process, one write transaction per request.

Correct with any number of processes (SQLite's lock serialises them, the busy
timeout makes them queue); the dbserver is faster under heavy concurrency.
"""

from balsam.core.operations import OPERATIONS
from balsam.core.sql import write_transaction
from balsam.dbclient.base import WriteClient
from balsam.exceptions import ValidationError


class DirectClient(WriteClient):
    mode = "direct"

    def describe(self):
        return "direct (this process writes the DB file; no dbserver running)"

    def request(self, op, payload):
        try:
            operation = OPERATIONS[op]
        except KeyError:
            raise ValidationError(f"unknown write operation {op!r}") from None
        with write_transaction():
            return operation(**payload)
