"""The launcher's writes of one loop pass, collected and sent as one request."""

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

from balsam.core import states

# Each write has a fixed cost per round of moves (a SELECT, an UPDATE, an
# INSERT and the aggregates, whatever the number of jobs), which dominated the
# CPU per job when passes of one or two jobs each started their own write.
# Writes therefore start at most this often, unless much is waiting (a state
# lands up to this much later; dependency checks run every 0.25-1 s anyway).
# Spaced further, more of a short job's moves land in one write, and each
# write dirties a page of the event table's job index once per job, not per
# move: at 0.25 s and 2,048 moves the batch thread costs a fifth less per job
# than at 0.1 s and 256 (decisions.md, "Where the batch thread's time goes").
MIN_WRITE_INTERVAL_SEC = 0.25
WRITE_NOW_MOVES = 2048
# A job's usual life. When every job's moves in a batch climb it, moves to the
# same state with the same message go in one request whatever their rounds
# (fewer, larger requests; each job's moves still land in its order).
LIFE_ORDER = {state: rank for rank, state in enumerate(
    (states.READY, states.STAGED_IN, states.PREPROCESSED, states.RUNNING, states.RUN_DONE, states.POSTPROCESSED,
     states.JOB_FINISHED))}


class Batch:
    """State changes, field updates and lease releases collected during one
    loop pass and written in one request. A job may move several times in a
    pass: its n-th move goes in round n, and rounds are applied in order.

    The write runs on a background thread while the loop goes on spawning and
    reaping (the DB work releases the GIL: SQLite's, or the dbserver's round
    trip). One write is in flight at a time, so batches land in order."""

    def __init__(self, client, owner):
        self.client = client
        self.owner = owner
        self.moves = defaultdict(list)  # (round, state, message) -> [(id, epoch seconds)]
        self.rounds = defaultdict(int)
        self.fields = []
        self.releases = []
        self.notes = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="balsam-batch")
        self._in_flight = None
        self._refused = []
        self._pending_moves = 0
        self._written_at = float("-inf")
        self._life_rank = {}  # job id -> rank of its last move in this batch
        self._in_life_order = True

    def move(self, job_id, state, message="", at=None):
        """``at``: when the job moved, epoch seconds (a run's real start or
        end); default now. Its event carries that time, not the write's."""
        self.rounds[job_id] += 1
        self.moves[(self.rounds[job_id], state, message)].append((job_id, at or time.time()))
        self._pending_moves += 1
        if self._in_life_order:
            rank = LIFE_ORDER.get(state)
            if rank is None or rank <= self._life_rank.get(job_id, -1):
                self._in_life_order = False
            self._life_rank[job_id] = rank

    def set_fields(self, job_id, **fields):
        self.fields.append((job_id, fields))

    def note(self, job_id, message):
        """A line in the job's history that changes nothing else."""
        self.notes.append(([str(job_id)], message))

    def release(self, job_id):
        self.releases.append(job_id)

    def flush(self, wait=False, now=False):
        """Start writing everything collected, unless a write is still in
        flight or the last one started less than MIN_WRITE_INTERVAL_SEC ago
        (then it goes in the next, larger batch: the loop never stalls on the
        DB). Returns the ids whose move an earlier write refused (a user
        killed the job meanwhile; their leases are released). ``wait``:
        return only once everything has landed. ``now``: write without
        waiting for the interval (the launcher has nothing going that would
        add to the batch: its last states should land, not wait)."""
        if self._in_flight is not None and (wait or self._in_flight.done()):
            self._land()
        due = wait or now or self._pending_moves >= WRITE_NOW_MOVES or \
            time.monotonic() - self._written_at >= MIN_WRITE_INTERVAL_SEC
        if self._in_flight is None and due:
            self._submit()
        if wait:
            self._land()
        refused, self._refused = self._refused, []
        return refused

    def wait(self):
        """Until everything collected so far has landed: before reading back
        states this launcher has written. (Refused ids wait for the next flush.)"""
        self._land()
        if self._submit():
            self._land()

    def _submit(self):
        if not (self.moves or self.fields or self.releases or self.notes):
            return False
        self._in_flight = self._writer.submit(self._write, self._move_requests(), self.fields, self.releases, self.notes)
        self.moves, self.rounds = defaultdict(list), defaultdict(int)
        self.fields, self.releases, self.notes = [], [], []
        self._pending_moves = 0
        self._written_at = time.monotonic()
        self._life_rank, self._in_life_order = {}, True
        return True

    def _move_requests(self):
        """``[(ids, state, message, times)]`` in the order to apply them."""
        if self._in_life_order:
            merged = defaultdict(list)
            for (_, state, message), moved in self.moves.items():
                merged[(LIFE_ORDER[state], state, message)] += moved
            groups = merged.items()
        else:
            groups = self.moves.items()
        return [([pk for pk, _ in moved], state, message, [at for _, at in moved])
                for (_, state, message), moved in sorted(groups)]

    def _land(self):
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            self._refused += future.result()  # a failed write raises here, in the loop

    def _write(self, moves, fields, releases, notes):
        return list(self.client.apply_batch(moves, fields, self.owner, releases, notes)["refused"])

    def close(self):
        # The writer thread has a DB connection of its own (direct mode): close
        # it there (``connection`` resolves to the calling thread's).
        self._writer.submit(lambda: connection.close()).result()
        self._writer.shutdown(wait=True)
