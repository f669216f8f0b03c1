"""Write operations on leases -- which launcher runs which job -- and the
launcher's batch of one loop pass."""

import datetime
import math

from django.utils import timezone

from balsam.core import queries, sql, states
from balsam.core.json_values import id_text, job_id
from balsam.core.models import BalsamJob
from balsam.core.operations.jobs import update_jobs_each
from balsam.core.operations.launchers import seen as launcher_seen
from balsam.core.operations.transitions import event_stamp, note_jobs, record, record_steps
from balsam.core.operations.validation import owner as valid_owner
from balsam.core.operations.validation import positive_number, state_list
from balsam.exceptions import ValidationError


def _expires(now, lease_expiry_sec):
    return now + datetime.timedelta(seconds=lease_expiry_sec)


def claim_jobs(owner, states, limit=1, lease_expiry_sec=180, scope=None):
    """Lease up to ``limit`` jobs in ``states`` (within ``scope``, options of
    ``queries.job_scope``) that nobody holds, or whose lease lapsed; returns
    their ids. The lease lapses ``lease_expiry_sec`` from now unless renewed.

    Runs inside the write transaction, so two launchers never get the same
    job; on PostgreSQL the rows are taken ``FOR UPDATE SKIP LOCKED``
    (``sql.claimable``), outside the one-writer lock (``UNSERIALIZED``).
    """
    owner = valid_owner(owner)
    wanted = state_list(states)
    positive_number("limit", limit, allow_zero=True)
    positive_number("lease_expiry_sec", lease_expiry_sec)
    now = timezone.now()
    # The ids as stored, into a plain UPDATE: a launcher claims hundreds of
    # jobs a second, and the ORM's per-row conversions and update compiler
    # cost more than the statements.
    ids = queries.claimable_ids(wanted, scope, now, lease_expiry_sec, int(limit), lock=True) if limit else []
    lease = [owner, event_stamp(now), event_stamp(_expires(now, lease_expiry_sec))]  # as Django stores times
    for chunk in sql.chunks(ids):
        sql.raw_executemany(
            f"UPDATE {sql.table(BalsamJob)} SET lease_owner = %s, lease_heartbeat = %s, lease_expires_at = %s "
            f"WHERE job_id IN ({sql.marks(len(chunk))})", [lease + chunk])
    return [id_text(pk) for pk in ids]


def recover_expired_leases(lease_expiry_sec):
    """Jobs whose launcher let its lease lapse: RUNNING ones go to
    RESTART_READY; every lapsed lease is cleared. Returns the recovered ids.
    (``lease_expiry_sec``: for leases without an expiry time, and for RUNNING
    jobs nobody holds.)"""
    positive_number("lease_expiry_sec", lease_expiry_sec)
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
    expired = BalsamJob.objects.exclude(lease_owner="").filter(queries.lapsed_leases(now, lease_expiry_sec))
    running = {pk: owner for pk, owner in expired.filter(state=states.RUNNING).values_list("pk", "lease_owner")}
    # A RUNNING job nobody holds can only have lost its launcher (a safety net).
    orphans = BalsamJob.objects.filter(lease_owner="", state=states.RUNNING, state_changed_at__lt=cutoff)
    running.update((pk, "(none)") for pk in orphans.values_list("pk", flat=True))
    for owner in set(running.values()):
        ids = [pk for pk, o in running.items() if o == owner]
        record({pk: states.RUNNING for pk in ids}, states.RESTART_READY,
               f"recovered: launcher {owner} stopped heartbeating", now)
    expired._direct_update(lease_owner="", lease_heartbeat=None, lease_expires_at=None)
    return [str(pk) for pk in running]


def _owned(owner, ids):
    qs = BalsamJob.objects.filter(lease_owner=valid_owner(owner))
    if ids is not None:
        qs = qs.filter(pk__in=[job_id(i) for i in ids])
    return qs


def heartbeat_leases(owner, ids=None, lease_expiry_sec=180):
    """Renew the owner's leases (all of them, or ``ids``) for another
    ``lease_expiry_sec``; returns how many. The owner's launcher record (if
    it has one) is seen now: its heartbeat is its sign of life."""
    positive_number("lease_expiry_sec", lease_expiry_sec)
    now = timezone.now()
    renewed = _owned(owner, ids)._direct_update(lease_heartbeat=now, lease_expires_at=_expires(now, lease_expiry_sec))
    launcher_seen(owner, now)
    return renewed


def release_leases(owner, ids=None):
    """Give up the owner's leases (all of them, or ``ids``); returns how many."""
    if ids is not None and len(ids) > sql.max_params() - sql.RESERVED_PARAMS:
        return sum(release_leases(owner, chunk) for chunk in sql.chunks(ids))
    if ids is None:
        return _owned(owner, ids)._direct_update(lease_owner="", lease_heartbeat=None, lease_expires_at=None)
    # Raw SQL: a launcher releases a lease for every job that ends (see "Raw SQL on the hot write path").
    pks = sql.pk_params([job_id(i) for i in ids])
    if not pks:
        return 0
    return len(sql.raw_fetchall(
        f"UPDATE {sql.table(BalsamJob)} SET lease_owner = '', lease_heartbeat = NULL, lease_expires_at = NULL "
        f"WHERE lease_owner = %s AND job_id IN ({sql.marks(len(pks))}) RETURNING job_id", [valid_owner(owner)] + pks))


def apply_batch(moves=(), fields=(), release_owner=None, release_ids=(), notes=()):
    """A launcher's writes of one loop pass in one transaction: per-job field
    updates, then the ``[ids, state, message]`` or ``[ids, state, message,
    times]`` moves in order (``times``: when each job moved, epoch seconds;
    default now), all recorded together by ``record_steps`` (illegal moves
    refused, not failed: a user may have killed the job meanwhile), each
    ``[ids, message]`` note, then lease releases. Returns the refused moves
    ``{id: stored state}``.

    A job's run time and the release of its lease are stored with its moves
    when it has any (``record_steps``: one row write per job); the rest as
    the plain field updates and releases they are."""
    run_times, fields = _run_times(fields)
    if fields:
        update_jobs_each(fields)
    steps = [_step(move) for move in moves]
    owner = valid_owner(release_owner) if release_owner is not None else None
    releasing = {job_id(i) for i in release_ids} if owner is not None else set()
    refused, moved = record_steps(steps, run_times, owner, releasing) if steps else ({}, set())
    unmoved_times = [[str(pk), {"runtime_seconds": seconds}] for pk, seconds in run_times.items() if pk not in moved]
    if unmoved_times:  # (every move of the job refused, or none sent): stored as any field
        update_jobs_each(unmoved_times)
    for note in notes:
        if not (isinstance(note, list) and len(note) == 2):
            raise ValidationError("notes must be a list of [job ids, message]")
        note_jobs(*note)
    if owner is not None:
        rest = [i for i in releasing if i not in moved] + list(refused)
        if rest:
            release_leases(owner, rest)
    return {"refused": refused}


def _run_times(fields):
    """``({uuid: seconds}, other items)`` of ``[[id, {field: value}], ...]``:
    the items that set only a job's run time to a number are folded into its
    moves' write (``record_steps``); the rest go through ``update_jobs_each``,
    which checks them."""
    run_times, rest = {}, []
    for item in fields:
        item = list(item)
        if len(item) == 2 and isinstance(item[1], dict) and item[1].keys() == {"runtime_seconds"}:
            seconds = item[1]["runtime_seconds"]
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds):
                try:
                    run_times[job_id(item[0])] = float(seconds)
                    continue
                except ValidationError:
                    pass  # update_jobs_each says what is wrong with it
        rest.append(item)
    return run_times, rest


MAX_MOVE_AHEAD_SEC = 60  # a move's time may be this far past the writer's clock (clocks of two hosts)


def _step(move):
    if not (isinstance(move, list) and len(move) in (3, 4)):
        raise ValidationError("moves must be a list of [job ids, state, message] or [job ids, state, message, times]")
    ids, state, message, *times = move
    if not isinstance(ids, list):
        raise ValidationError("a move's job ids must be a list")
    if not isinstance(message, str):
        raise ValidationError("message must be text")
    ids = [job_id(i) for i in ids]
    times = times[0] if times else None
    if times is not None:
        if not isinstance(times, list) or len(times) != len(ids):
            raise ValidationError("a move's times must be a list with one time per job id")
        latest = timezone.now().timestamp() + MAX_MOVE_AHEAD_SEC
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= latest for t in times):
            raise ValidationError("a move's times must be seconds since the epoch, not in the future")
    return ids, states.validate_state_name(state), message, times


# Operations that lock only the rows they change: on PostgreSQL they run
# beside other writes (``sql.write_transaction(serialize=False)``).
UNSERIALIZED = frozenset({"claim_jobs", "heartbeat_leases"})

OPERATIONS = {
    "claim_jobs": claim_jobs,
    "recover_expired_leases": recover_expired_leases,
    "heartbeat_leases": heartbeat_leases,
    "release_leases": release_leases,
    "apply_batch": apply_batch,
}
