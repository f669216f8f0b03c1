"""State changes: the one choke point (``transition_jobs``), user kills, and
the settling of children whose parents can never finish.

Every state change of every job is written by ``record`` here, with one
``JobEvent`` per job, so the history is complete by construction (and the
per-minute aggregate of the analytics is added in the same place).
"""

import datetime
import math
from collections import deque

from django.db import connection
from django.utils import timezone

from balsam.core import actor, sql, states
from balsam.core.json_values import job_id
from balsam.core.models import BalsamJob, JobDependency, JobEvent
from balsam.core.operations import aggregates
from balsam.exceptions import NotFound, ValidationError


def job_states(ids):
    """{uuid: (state, name)} for the given ids; NotFound if any is missing."""
    return {pk: row[:2] for pk, row in _job_rows(ids).items()}


def label(name, pk):
    return f"[{name} | {pk.hex[:8]}]"


def record(moves, to_state, message, now):
    """Apply ``moves`` ({uuid: from_state}) to ``to_state`` with one event each."""
    if not moves:
        return
    # Raw SQL and executemany: Django's update and bulk_create cost several
    # times more per row, and every state change of every job comes here.
    stamp = event_stamp(now)
    pks = sql.pk_params(moves)
    from_states = dict(zip(pks, moves.values()))
    rows = _set_state(pks, to_state, stamp)
    insert_events([(seq, stamp, from_states[pk], to_state, message) for pk, _, seq in rows])
    aggregates.add_moves(((workflow, from_states[pk]) for pk, workflow, _ in rows), to_state, now)


def record_where(pks, from_state, to_state, message, now, condition):
    """Move those of ``pks`` that are in ``from_state`` and whose row meets
    ``condition`` (SQL over the job table's own columns) to ``to_state``,
    with one event each; returns the moved ids. The check is the ``UPDATE``'s
    own ``WHERE``: no read before it, and a row changed meanwhile by another
    writer is judged as it is when the ``UPDATE`` reaches it."""
    given = dict(zip(sql.pk_params(pks), pks))  # each id as stored -> as given (no UUID made per row)
    stamp = event_stamp(now)
    rows = _set_state(list(given), to_state, stamp, f"AND {condition}", from_state=from_state)
    if not rows:
        return set()
    insert_events([(seq, stamp, from_state, to_state, message) for _, _, seq in rows])
    aggregates.add_moves([(workflow, from_state) for _, workflow, _ in rows], to_state, now)
    return {given[stored] for stored, _, _ in rows}


def _set_state(stored_pks, to_state, stamp, condition="", from_state=None):
    """``UPDATE`` the jobs ``stored_pks`` (ids as stored) that are in
    ``from_state`` (when given) and meet ``condition`` (more of the
    ``WHERE``, without parameters) into ``to_state`` at ``stamp``;
    ``[(id as stored, workflow, seq)]`` of those it changed."""
    where, params = condition, []
    if from_state is not None:
        # SQLite, which has no statistics here, would find the rows of ten ids
        # or more through the state's index -- every job in that state: a
        # million CREATED jobs of another workflow cost seconds per call,
        # under the write lock. A unary + keeps the state term out of its
        # choice of index (PostgreSQL chooses by its statistics, and has no +
        # for text). The rows are found by id, whatever else is asked.
        state = "+state" if connection.vendor == "sqlite" else "state"
        where, params = f"AND {state} = %s {condition}", [from_state]
    rows = []
    for chunk in sql.chunks(stored_pks):
        rows += sql.raw_fetchall(
            f"UPDATE {sql.table(BalsamJob)} SET state = %s, state_changed_at = %s "
            f"WHERE job_id IN ({sql.marks(len(chunk))}) {where} RETURNING job_id, workflow, seq",
            [to_state, stamp, *chunk, *params])
    return rows


def record_steps(steps, run_times=None, release_owner=None, releasing=frozenset()):
    """Many jobs' moves, several per job, applied together (a launcher's
    batch): ``steps`` is ``[(ids, to_state, message, times)]`` in the order
    to apply them, ``times`` each move's moment (seconds since the epoch,
    parallel to ``ids``) or None for now. Each job's moves are checked in turn from its
    stored state; a move the table refuses is skipped, as ``transition_jobs``
    with ``strict=False`` would. Returns the refused ``{id: state}`` and the
    set of jobs moved (whose run times and lease releases were written).

    A moved job's run time (``run_times``: {uuid: seconds}) and the release
    of its lease (``releasing``, held by ``release_owner``) are written by the
    same ``UPDATE`` as its state: one row write per job where a run's end
    took three (on PostgreSQL each costs the server ~40 us: a new row
    version and an entry in each of the table's indexes).

    Where ``transition_jobs`` per step costs a read, an ``UPDATE``, an
    ``INSERT`` and the aggregates for each step, this is one read, one
    ``UPDATE`` per state the jobs end the batch in (``state_changed_at``: the
    latest of their moves into it), one insert of every event (each at its
    own time: a run's start and end as they happened) and one pass of the
    aggregates. Moves into a killing state settle waiting children after."""
    now = timezone.now()
    now_epoch = now.timestamp()
    current = _job_rows({pk for ids, _, _, _ in steps for pk in ids})
    state_now = {pk: row[0] for pk, row in current.items()}
    refused, events, ended_at, killing = {}, [], {}, []
    for ids, to_state, message, times in steps:
        moved = []
        for i, pk in enumerate(ids):
            from_state = state_now[pk]
            if not states.is_allowed(from_state, to_state):
                refused[str(pk)] = from_state
                continue
            at = times[i] if times else now_epoch
            state_now[pk] = to_state
            events.append((pk, at, from_state, to_state, message))
            ended_at[pk] = at
            moved.append(pk)
        if moved and to_state in states.KILLING_STATES:
            killing.append(moved)
    if not events:
        return refused, set()
    last = {}  # final state -> (job ids, latest time)
    for pk, at in ended_at.items():
        pks, latest = last.get(state_now[pk], ([], at))
        pks.append(pk)
        last[state_now[pk]] = (pks, max(latest, at))
    run_times = run_times or {}
    for to_state, (pks, latest) in last.items():
        stamp = event_stamps([latest])[0]
        kinds = {}  # (with a run time, released) -> job ids
        for pk in pks:
            kinds.setdefault((pk in run_times, pk in releasing), []).append(pk)
        for (timed, release), group in kinds.items():
            _store_state(to_state, stamp, group, run_times if timed else None, release_owner if release else None)
    stamps = event_stamps([at for _, at, _, _, _ in events])
    insert_events([(current[pk][3], stamp, from_state, to_state, message)
                   for (pk, _, from_state, to_state, message), stamp in zip(events, stamps)])
    aggregates.add_events((current[pk][2], from_state, to_state, at) for pk, at, from_state, to_state, _ in events)
    names = {pk: (row[0], row[1]) for pk, row in current.items()}
    for moved in killing:
        settle_children(moved, names, now)
    return refused, set(ended_at)


_RELEASE = ("lease_owner = CASE WHEN lease_owner = %s THEN '' ELSE lease_owner END, "
            "lease_heartbeat = CASE WHEN lease_owner = %s THEN NULL ELSE lease_heartbeat END, "
            "lease_expires_at = CASE WHEN lease_owner = %s THEN NULL ELSE lease_expires_at END")


def _store_state(to_state, stamp, pks, run_times=None, release_owner=None):
    """``UPDATE`` jobs ``pks`` into ``to_state`` at ``stamp``, with their
    ``run_times`` when given (each its own: ``sql.update_rows``) and giving
    up ``release_owner``'s leases when given (a lease another launcher holds
    stays, as in ``leases.release_leases``)."""
    assignments, head = "state = %s, state_changed_at = %s", [to_state, stamp]
    if release_owner is not None:
        assignments += ", " + _RELEASE
        head += [release_owner] * 3
    if run_times is not None:
        sql.update_rows(BalsamJob, [BalsamJob._meta.get_field("runtime_seconds")],
                        [[run_times[pk], param] for pk, param in zip(pks, sql.pk_params(pks))], assignments, head)
        return
    for chunk in sql.chunks(sql.pk_params(pks)):
        sql.raw_executemany(f"UPDATE {sql.table(BalsamJob)} SET {assignments} WHERE job_id IN ({sql.marks(len(chunk))})",
                            [head + chunk])


def _job_rows(ids):
    """{uuid: (state, name, workflow, seq)} for the given ids (``UUID``s);
    NotFound if any is missing.

    Raw SQL: this runs for every state change, and the ORM's query building
    would cost more than the query itself. The keys are the caller's own
    objects (found by their stored form), not new ones made from the rows:
    a batch looks each job up a dozen times, and a key that is the same
    object skips ``UUID.__eq__`` (Python code) at every look-up."""
    ids = list(ids)
    given = dict(zip(sql.pk_params(ids), ids))  # each id as stored -> as given
    found = {}
    for chunk in sql.chunks(list(given)):
        rows = sql.raw_fetchall(
            f"SELECT job_id, state, name, workflow, seq FROM {sql.table(BalsamJob)} "
            f"WHERE job_id IN ({sql.marks(len(chunk))})", chunk)
        for pk, *values in rows:
            found[given[pk]] = tuple(values)  # the driver returns each id as it was bound
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(f"no job with id {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return found


def insert_events(rows):
    """``(job seq, timestamp param, from_state, to_state, message)`` rows into
    the event table: the one statement that writes history, each row with the
    user the write is made for (``core.actor``). (Notes and creation notes
    change no state, so the aggregates of ``record`` skip them.) An event is
    filed under its job's number (``BalsamJob.seq``): the moves that write
    events read it, or have it returned, with the job's state."""
    user = actor.current()
    sql.insert_rows(_EVENT_INSERT.format(table=sql.table(JobEvent)), [row + (user,) for row in rows])


# "user" quoted: a reserved word in PostgreSQL
_EVENT_INSERT = ('INSERT INTO {table} (job_seq, timestamp, from_state, to_state, message, "user") '
                 "VALUES (%s, %s, %s, %s, %s, %s)")


def insert_events_by_id(rows):
    """``insert_events`` of rows that name their job by its id (as stored),
    not its number: each row looks the number up itself (jobs' creation
    notes, inserted with jobs whose numbers the caller does not know)."""
    for chunk in sql.chunks(rows, per_item=6):
        sql.raw_executemany(*event_insert_by_id(chunk))


def event_insert_by_id(rows):
    """``insert_events_by_id`` as one multi-row statement and its parameters
    (a list of one list, for ``sql.raw_executemany``); also for a caller that
    sends it with others (``jobs.create_jobs_in_one_round_trip``)."""
    user = actor.current()
    head, _, _ = _EVENT_INSERT.format(table=sql.table(JobEvent)).rpartition("VALUES")
    by_id = f"((SELECT seq FROM {sql.table(BalsamJob)} WHERE job_id = %s), %s, %s, %s, %s, %s)"
    return head + "VALUES " + ", ".join([by_id] * len(rows)), [[v for row in rows for v in (*row, user)]]


def event_stamp(now):
    return JobEvent._meta.get_field("timestamp").get_db_prep_save(now, connection)


def event_stamps(epochs):
    """``event_stamp`` of each of ``epochs`` (seconds since the epoch),
    without Django's checks per value: a launcher's batch has one time per
    event. On SQLite the same text Django stores (``str()`` of the UTC time)."""
    if connection.vendor != "sqlite":
        # PostgreSQL stores the aware datetime as it is (Django's conversion
        # returns it unchanged, at ~10x the cost of making it).
        return [datetime.datetime.fromtimestamp(at, datetime.timezone.utc) for at in epochs]
    # Django keeps SQLite's times in UTC (USE_TZ, and no per-DB TIME_ZONE in our settings);
    # test_event_stamps_are_what_django_stores holds this to event_stamp.
    return [_utc_text(at) for at in epochs]


_whole_seconds = {}  # epoch second -> its text: a batch's events fall in a few seconds


def _utc_text(epoch):
    """``str(datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None))``, the
    same digits (microseconds rounded half to even, as ``datetime`` does) at a
    sixth of the cost: seven events per job add up."""
    fraction, whole = math.modf(epoch)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    text = _whole_seconds.get(whole)
    if text is None:
        if len(_whole_seconds) > 4096:
            _whole_seconds.clear()
        text = _whole_seconds[whole] = str(datetime.datetime.fromtimestamp(whole, datetime.timezone.utc)
                                          .replace(tzinfo=None))
    return f"{text}.{micro:06d}" if micro else text


def note_jobs(ids, message):
    """A line in each job's history that changes nothing: an event from its
    state to the same state (e.g. why a launcher handed the job back)."""
    if not isinstance(message, str) or not message:
        raise ValidationError("a note must be non-empty text")
    current = _job_rows([job_id(i) for i in ids])
    stamp = event_stamp(timezone.now())
    insert_events([(seq, stamp, state, state, message) for state, _, _, seq in current.values()])


def transition_jobs(ids, state, message="", strict=True):
    """The one choke point for state changes.

    Checks every move against the transition table using the states stored in
    the DB. ``strict``: one illegal move fails the whole request; otherwise
    illegal moves are skipped and reported. Parents that end FAILED or killed
    settle their waiting children in the same transaction.
    """
    ids = [job_id(i) for i in ids]
    to_state = states.validate_state_name(state)
    if not isinstance(message, str):
        raise ValidationError("message must be text")
    current = job_states(ids)
    moves, refused = {}, {}
    for pk in ids:
        from_state, name = current[pk]
        if states.is_allowed(from_state, to_state):
            moves[pk] = from_state
        elif strict:
            states.check_transition(from_state, to_state, label(name, pk))
        else:
            refused[str(pk)] = from_state
    now = timezone.now()
    record(moves, to_state, message, now)
    settled = []
    if to_state in states.KILLING_STATES:
        settled = settle_children(list(moves), current, now)
    return {
        "moved": [str(pk) for pk in moves],
        "from": {str(pk): s for pk, s in moves.items()},
        "refused": refused,
        "settled": settled,
    }


def children_of(parent_ids):
    children = {}
    for chunk in sql.chunks(parent_ids):
        for child, parent in JobDependency.objects.filter(parent_id__in=chunk).values_list("child_id", "parent_id"):
            children.setdefault(parent, []).append(child)
    return children


def settle_children(dead_ids, known, now=None):
    """Waiting descendants of jobs that can never finish become PARENT_KILLED."""
    now = now or timezone.now()
    settled = []
    queue = deque(dead_ids)
    names = {pk: info[1] for pk, info in known.items()}
    while queue:
        links = children_of(sql.batches(queue))
        child_ids = {c for kids in links.values() for c in kids}
        if not child_ids:
            continue
        waiting = {}
        for chunk in sql.chunks(child_ids):
            # By id alone, the state checked here (see queries.waiting_jobs: a
            # state term may lead SQLite to read every waiting job of the DB).
            waiting.update(
                (pk, (state, name))
                for pk, state, name in BalsamJob.objects.order_by().filter(
                    pk__in=chunk, wait_for_parents=True
                ).values_list("pk", "state", "name")
                if state in states.WAITING_STATES
            )
        for parent, kids in links.items():
            moves = {kid: waiting[kid][0] for kid in kids if kid in waiting}
            if not moves:
                continue
            parent_name = names.get(parent) or BalsamJob.objects.filter(pk=parent).values_list("name", flat=True).first()
            record(moves, states.PARENT_KILLED, f"parent {label(parent_name or '', parent)} cannot finish", now)
            for kid in moves:
                names[kid] = waiting.pop(kid)[1]
                settled.append(str(kid))
                queue.append(kid)
    return settled


def kill_jobs(ids, recursive=True, message="killed by user"):
    """USER_KILLED for the jobs (and, if ``recursive``, every unfinished descendant)."""
    ids = [job_id(i) for i in ids]
    current = job_states(ids)
    targets = dict.fromkeys(ids)
    if recursive:
        queue = deque(ids)
        while queue:
            for kids in children_of(sql.batches(queue)).values():
                for kid in kids:
                    if kid not in targets:
                        targets[kid] = None
                        queue.append(kid)
    current.update(job_states([pk for pk in targets if pk not in current]))
    now = timezone.now()
    moves = {pk: current[pk][0] for pk in targets if states.is_allowed(current[pk][0], states.USER_KILLED)}
    record(moves, states.USER_KILLED, message, now)
    settled = settle_children(list(moves), current, now)
    return {"killed": [str(pk) for pk in moves], "settled": settled}


OPERATIONS = {
    "transition_jobs": transition_jobs,
    "kill_jobs": kill_jobs,
}
