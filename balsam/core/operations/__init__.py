"""The write operations: the only code that mutates Balsam's tables.

Each operation takes JSON-able arguments, validates them, and returns a
JSON-able result. The caller runs it inside one write transaction
(``core.sql.write_transaction``): the direct client per request, the dbserver
per group of requests (with a savepoint each). Raising a ``BalsamError``
aborts the operation's changes.

One module per role, each declaring its ``OPERATIONS``; this package merges
them into the one whitelist. Module imports run one way (``.importlinter``):
leases and launches on jobs and dependencies, those on applications and
transitions, everything on validation; reads come from ``core.queries``.
"""

from balsam.core.operations import (applications, cleanup, dependencies, identity, jobs, launchers, launches, leases,
                                    transitions)
from balsam.core.operations.applications import enable_app_name_cache
from balsam.core.operations.jobs import create_jobs_many
from balsam.core.operations.leases import UNSERIALIZED

OPERATIONS = {}
for _module in (applications, jobs, transitions, dependencies, leases, launches, identity, cleanup, launchers):
    _clash = set(OPERATIONS) & set(_module.OPERATIONS)
    if _clash:
        raise RuntimeError(f"write operations defined twice: {sorted(_clash)}")
    OPERATIONS.update(_module.OPERATIONS)
del _module, _clash

# PostgreSQL: operations that may first try the request as one implicit
# transaction of a single round trip, outside any transaction; each returns
# None when it cannot (``dbclient.direct.PostgresClient``).
ONE_ROUND_TRIP = {"create_jobs": jobs.create_jobs_in_one_round_trip}


def needs_write_lock(op, payload):
    """Whether ``op`` must run alone (on PostgreSQL, under the advisory write
    lock of ``sql.write_transaction``). All do but those that only touch rows
    they lock or make: lease claims and heartbeats (``leases.UNSERIALIZED``)
    and inserts of jobs without parents (they read no other job's state)."""
    if op in UNSERIALIZED:
        return False
    if op == "create_jobs":
        return jobs.reads_other_jobs(payload.get("rows"))
    return True


__all__ = ["ONE_ROUND_TRIP", "OPERATIONS", "UNSERIALIZED", "create_jobs_many", "enable_app_name_cache", "needs_write_lock"]
