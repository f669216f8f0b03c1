"""Applying a group of write requests inside the dbserver's transaction.

Every request runs in its own savepoint, so one bad request fails alone.
Consecutive ``create_jobs`` requests are first tried as one combined insert
(the common case under load: many processes each adding a job); if that
fails, each is applied on its own so the error reaches only its sender.
Each request is applied as its sender's user (``core.actor``), so the events
it writes name them; only requests of one user are combined.
"""

import datetime
import json
import logging

from django.db import DatabaseError, transaction
from django.utils import timezone

from balsam.core import actor
from balsam.core.models import AppliedRequest
from balsam.core.operations import OPERATIONS, create_jobs_many
from balsam.exceptions import BalsamError

logger = logging.getLogger(__name__)


def apply_group(requests):
    """``requests``: [(request_id, op, args, user)] -> {request_id: (error_name | None, result_json | message)}.
    ``user``: who sent it (None: the server's own user).

    Must run inside a transaction; the caller commits.
    """
    outcomes = committed_outcomes([r[0] for r in requests])
    pending, seen = [], set(outcomes)
    for request in requests:
        if request[0] not in seen:  # a retry can arrive while the original waits in the same batch
            seen.add(request[0])
            pending.append(request)
    if len(pending) == 1:
        _apply_one(pending[0], outcomes, savepoint=False)
        pending_ok = [] if outcomes[pending[0][0]][0] else pending
        _record([(rid, outcomes[rid][1]) for rid, _, _, _ in pending_ok])
        return outcomes
    start = 0
    while start < len(pending):
        end = start + 1
        if pending[start][1] == "create_jobs":
            user = pending[start][3]
            while end < len(pending) and pending[end][1] == "create_jobs" and pending[end][3] == user:
                end += 1
        run = pending[start:end]
        if len(run) == 1 or not _apply_creates(run, outcomes):
            for request in run:
                _apply_one(request, outcomes)
        start = end
    _record([(rid, outcomes[rid][1]) for rid, _, _, _ in pending if outcomes[rid][0] is None])
    return outcomes


def _apply_creates(run, outcomes):
    if not all(isinstance(args, dict) and set(args) == {"rows"} for _, _, args, _ in run):
        return False
    try:
        with transaction.atomic(), actor.acting_as(run[0][3]):
            results = create_jobs_many([args["rows"] for _, _, args, _ in run])
    except Exception:  # one of them is bad: apply them one by one
        return False
    for (rid, _, _, _), result in zip(run, results):
        outcomes[rid] = (None, json.dumps(result))
    return True


def _apply_one(request, outcomes, savepoint=True):
    """Apply one request in a savepoint; alone in its group it needs none: on
    error the whole (one-request) transaction is rolled back instead."""
    rid, op, args, user = request
    try:
        with transaction.atomic(savepoint=savepoint), actor.acting_as(user):
            outcomes[rid] = (None, json.dumps(OPERATIONS[op](**args)))
    except BalsamError as exc:
        outcomes[rid] = (type(exc).__name__, str(exc))
    except TypeError as exc:
        outcomes[rid] = ("ValidationError", f"bad arguments for {op}: {exc}")
    except DatabaseError as exc:
        logger.warning("database error in %s: %s", op, exc)
        outcomes[rid] = ("BalsamError", f"database error in {op}: {exc}")
    except Exception as exc:  # a bug must not take the server down
        logger.exception("unexpected error in %s", op)
        outcomes[rid] = ("BalsamError", f"internal error in {op}: {type(exc).__name__}: {exc}")


def committed_outcomes(request_ids):
    """Outcomes of the requests among ``request_ids`` that an earlier group committed."""
    return {rid: (None, result) for rid, result in AppliedRequest.objects.stored(request_ids).items()}


def _record(applied):
    AppliedRequest.objects.record(applied, timezone.now())


def prune_applied(retention_sec):
    return AppliedRequest.objects.prune(timezone.now() - datetime.timedelta(seconds=retention_sec))
