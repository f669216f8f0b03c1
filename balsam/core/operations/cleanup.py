"""Clean-up writes: the repairs of ``balsam db check --repair`` (what a
check finds and can fix without deciding anything for the user; recovering
lapsed leases is ``leases.recover_expired_leases``), and the restart rules a
dbserver (or the first launcher without one) applies when it starts."""

import datetime
import logging

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from balsam.core import health, queries, sql, states
from balsam.core.json_values import job_id
from balsam.core.models import AppliedRequest, BalsamJob, JobEvent
from balsam.core.operations.jobs import delete_jobs
from balsam.core.operations.transitions import job_states, record, settle_children
from balsam.core.operations.validation import positive_number, whole_number
from balsam.exceptions import ValidationError

logger = logging.getLogger(__name__)


def settle_orphaned_waiters():
    """Jobs still waiting on a parent that can never finish (a parent that
    FAILED, or was killed, before the rule that settles its children ran, or
    in a DB written by hand) become PARENT_KILLED, as ``transition_jobs``
    would have made them. Returns the settled ids."""
    found, _ = health.waiting_on_dead_parents()
    dead = {}
    for _child, _name, parent, parent_state in found:
        dead.setdefault(parent, (parent_state, ""))
    return settle_children(list(dead), dead, timezone.now())


def prune_applied_requests(retention_sec):
    """Forget applied-request ids older than ``retention_sec`` (the dbserver
    does this every minute; a DB written without one keeps its ids). Returns how many."""
    positive_number("retention_sec", retention_sec)
    return AppliedRequest.objects.prune(timezone.now() - datetime.timedelta(seconds=retention_sec))


def prune_events(before, limit=20_000, after_id=0):
    """Remove up to ``limit`` of the events older than ``before`` (ISO time)
    of jobs in an END state, oldest first from id ``after_id`` on, keeping
    each job's newest event (so its state still agrees with its history).
    Returns ``{"removed", "last_id"}``: the caller repeats with ``after_id =
    last_id`` until none is removed, one short transaction each (starting
    past the last one keeps the events that stay from being read again every
    time: a million-event prune would otherwise be quadratic)."""
    moment = _moment(before)
    positive_number("limit", limit)
    after_id = whole_number("after_id", after_id) if after_id else 0
    query, end = health.events_to_prune_sql(count=False)
    ids = [row[0] for row in sql.raw_fetchall(query, [health.stamp(moment)] + end + [after_id, int(limit)])]
    for chunk in sql.chunks(ids):
        sql.raw_executemany(f"DELETE FROM {sql.table(JobEvent)} WHERE id IN ({sql.marks(len(chunk))})", [chunk])
    return {"removed": len(ids), "last_id": ids[-1] if ids else after_id}


def delete_finished_jobs(ids):
    """Remove the jobs among ``ids`` that are (still) in an END state, with
    their events and edges; a job a user retried meanwhile stays. Returns how many."""
    finished = [str(pk) for pk, state in job_states([job_id(i) for i in ids]).items()
                if state[0] in states.END_STATES]
    return delete_jobs(finished)


RECLAIM_MAX_PAGES = 10_000  # one step's bound: the write lock is held while it moves them


def reclaim_space(pages):
    """Give up to ``pages`` free pages of the file back (SQLite's
    ``incremental_vacuum``), one bounded step: ``db compact`` asks again until
    none are left, so through a dbserver other requests are served between
    the steps. Changes no row. On a DB whose ``auto_vacuum`` is not
    incremental (made before Balsam set it), nothing is freed. Returns
    ``{"freed", "free_pages"}`` (the pages still free)."""
    pages = whole_number("pages", pages)
    if pages > RECLAIM_MAX_PAGES:
        raise ValidationError(f"pages must be at most {RECLAIM_MAX_PAGES}, not {pages}")
    freed = sql.incremental_vacuum(pages) if sql.auto_vacuum_mode() == "incremental" else 0
    return {"freed": freed, "free_pages": sql.free_pages()}


def _moment(text):
    moment = parse_datetime(text) if isinstance(text, str) else None
    if moment is None:
        raise ValidationError(f"not a time: {text!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def apply_restart_rules(lease_expiry_sec):
    """``states.RESTART_RULES``, applied: count the jobs per state in one
    pass, then for each action the states it covers. Returns the counters and
    what was done: ``{"counts", "recovered", "released", "settled"}``."""
    positive_number("lease_expiry_sec", lease_expiry_sec)
    now = timezone.now()
    counts = queries.state_counts()
    expired = BalsamJob.objects.exclude(lease_owner="").filter(queries.lapsed_leases(now, lease_expiry_sec))
    recovered = []
    recover = states.restart_states(states.RECOVER_LAPSED)
    if recover:
        cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
        held = dict(expired.filter(state__in=recover).values_list("pk", "lease_owner"))
        # A job in such a state that nobody holds can only have lost its launcher.
        unheld = BalsamJob.objects.filter(lease_owner="", state__in=recover, state_changed_at__lt=cutoff)
        held.update((pk, "(none)") for pk in unheld.values_list("pk", flat=True))
        from_states = dict(BalsamJob.objects.filter(pk__in=list(held)).values_list("pk", "state")) if held else {}
        for owner in sorted(set(held.values())):
            moves = {pk: from_states[pk] for pk, o in held.items() if o == owner}
            record(moves, states.RESTART_READY, f"restart: launcher {owner} stopped heartbeating", now)
        recovered = [str(pk) for pk in held]
    releasing = recover + states.restart_states(states.RELEASE_LAPSED) + states.restart_states(states.SETTLE_IF_PARENT_DEAD)
    released = expired.filter(state__in=releasing)._direct_update(
        lease_owner="", lease_heartbeat=None, lease_expires_at=None)
    settled = []
    if states.restart_states(states.SETTLE_IF_PARENT_DEAD):
        settled = settle_orphaned_waiters()
    logger.info("restart rules: %s; recovered %d, released %d lapsed lease(s), settled %d",
                ", ".join(f"{s} {counts[s]}" for s in states.ALL_STATES if counts.get(s)) or "no jobs",
                len(recovered), released, len(settled))
    return {"counts": counts, "recovered": recovered, "released": released, "settled": settled}


OPERATIONS = {
    "apply_restart_rules": apply_restart_rules,
    "prune_events": prune_events,
    "delete_finished_jobs": delete_finished_jobs,
    "reclaim_space": reclaim_space,
    "settle_orphaned_waiters": settle_orphaned_waiters,
    "prune_applied_requests": prune_applied_requests,
}
