"""The aggregates the analytics read, for state changes: the jobs per
workflow and state (``models.JobCount``) and the moves per minute
(``models.StateMinute``). ``transitions.record`` -- the one writer of state
changes and their events -- adds each batch of moves here, in the same
transaction: a few upserts per (workflow, state) of the batch, where SQL
triggers per row cost about as much as the rest of the write
(docs/development/decisions.md). Job inserts, removals and workflow changes
are counted by triggers (migration 0008): they do not pass here."""

from collections import Counter

from django.db import connection

from balsam.core import sql
from balsam.core.models import JobCount, StateMinute


def _upsert():
    return (
        # The table's alias ``s``: PostgreSQL finds a bare ``entered`` ambiguous (the row or ``excluded``).
        f"INSERT INTO {sql.table(StateMinute)} AS s (state, minute, workflow, entered, exited, entered_rest, "
        "exited_rest) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (state, minute, workflow) DO UPDATE SET "
        "entered = s.entered + excluded.entered, exited = s.exited + excluded.exited, "
        "entered_rest = s.entered_rest + excluded.entered_rest, exited_rest = s.exited_rest + excluded.exited_rest"
    )


def _count_upsert():
    # PostgreSQL's counts have shards (migration 0010); state changes, made
    # under the write lock, add to shard 0 (the column's default).
    key = "workflow, state, shard" if connection.vendor == "postgresql" else "workflow, state"
    return (f"INSERT INTO {sql.table(JobCount)} AS c (workflow, state, count) VALUES (%s, %s, %s) "
            f"ON CONFLICT ({key}) DO UPDATE SET count = c.count + excluded.count")


def add_moves(sources, to_state, now):
    """Jobs moved to ``to_state`` at ``now``; ``sources``: their (workflow,
    from_state), one per job."""
    exits = Counter(sources)
    if not exits:
        return
    epoch = now.timestamp()
    minute = int(epoch // 60)
    rest = (minute + 1) * 60 - epoch  # seconds to the end of the minute
    entries = Counter()
    for (workflow, _), n in exits.items():
        entries[workflow] += n
    rows = [(from_state, minute, workflow, 0, n, 0.0, n * rest) for (workflow, from_state), n in exits.items()]
    rows += [(to_state, minute, workflow, n, 0, n * rest, 0.0) for workflow, n in entries.items()]
    sql.raw_executemany(_upsert(), rows)
    counts = Counter()
    for (workflow, from_state), n in exits.items():
        counts[workflow, from_state] -= n
        counts[workflow, to_state] += n
    sql.raw_executemany(_count_upsert(), [(workflow, state, n) for (workflow, state), n in counts.items() if n])


def add_events(events):
    """Moves ``(workflow, from_state, to_state, time)`` (time: seconds since
    the epoch), each counted in the minute of its own time (the launcher's
    batch: one pass for all its steps)."""
    minutes, counts = {}, Counter()
    for workflow, from_state, to_state, epoch in events:
        minute = int(epoch // 60)
        rest = (minute + 1) * 60 - epoch
        for state, entered, exited in ((from_state, 0, 1), (to_state, 1, 0)):
            row = minutes.setdefault((state, minute, workflow), [0, 0, 0.0, 0.0])
            row[0] += entered
            row[1] += exited
            row[2] += entered * rest
            row[3] += exited * rest
        counts[workflow, from_state] -= 1
        counts[workflow, to_state] += 1
    if not minutes:
        return
    sql.raw_executemany(_upsert(), [key + tuple(row) for key, row in minutes.items()])
    sql.raw_executemany(_count_upsert(), [(workflow, state, n) for (workflow, state), n in counts.items() if n])
