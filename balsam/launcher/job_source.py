"""Where a launcher's jobs come from: leases (claims, heartbeats, recovery of
dead launchers' jobs), dependency resolution, and the check for jobs a user
killed. Each periodic duty keeps its own timer, so the loop simply asks on
every pass."""

import os
import socket
import time
import uuid
from collections import defaultdict

from django.utils import timezone

from balsam.core import queries, states

DEPENDENCY_PERIOD_SEC = 1.0  # look for jobs whose parents finished at least this often
DEPENDENCY_MIN_PERIOD_SEC = 0.25  # ...and at most this often, when one of ours just finished
KILL_CHECK_PERIOD_SEC = 0.5
WAITING_PER_PASS = 5000
MAX_MOVES_PER_CALL = 1024


def lease_owner_name():
    """A name for this launcher's leases, unique across hosts and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def launcher_scope(job_mode, num_nodes, workflow=None, job_ids=None, queued_launch=None):
    """The options of ``queries.job_scope`` for a launcher: serial mode takes
    single-rank jobs, MPI mode any that fits its nodes; then its workflow,
    job list or queued launch."""
    scope = {"serial_only": True} if job_mode == "serial" else {"max_num_nodes": num_nodes}
    for name, value in (("workflow", workflow), ("job_ids", job_ids), ("queued_launch", queued_launch)):
        if value is not None:
            scope[name] = value
    return scope


def misfit(job_mode, node_count, num_nodes, ranks_per_node):
    """Why a job cannot run under a launcher of this mode and size (the rule
    ``launcher_scope`` claims by), or None. Checked again when a script has
    changed the job after it was claimed."""
    if job_mode == "serial":
        if num_nodes != 1 or ranks_per_node != 1:
            return (f"a serial launcher runs only jobs with num_nodes = 1 and ranks_per_node = 1, and this job now has "
                    f"num_nodes = {num_nodes}, ranks_per_node = {ranks_per_node}; a launcher with --job-mode mpi "
                    "will run it")
    elif num_nodes > node_count:
        return (f"it now needs {num_nodes} nodes and this launcher has {node_count}; a launcher with at least "
                f"{num_nodes} nodes will run it")
    return None


class JobSource:
    def __init__(self, client, owner, scope, lease_expiry_sec):
        self.client = client
        self.owner = owner
        self.scope = scope  # options of queries.job_scope: the jobs this launcher works on
        self.lease_expiry_sec = lease_expiry_sec
        # When each duty last ran: never (not 0.0: time.monotonic() counts from boot, and a node up for
        # less than a period would otherwise wait out the rest of it first).
        self._last = defaultdict(lambda: float("-inf"))
        self._parents_ended = True  # look at once on the first pass
        self._blocked = True  # the last look left jobs waiting on their parents: another look reads them again
        self._news = False  # the DB changed while the launcher idled: jobs may have been added
        self._commits = queries.commits_seen()
        self._found_none = False  # the last claim found nothing to claim
        self._moves_per_call = 0  # how many of them the next call moves
        self._movable = []  # jobs the last look found ready to move on and not yet moved (see resolve_dependencies)

    def _due(self, name, period):
        now = time.monotonic()
        if now - self._last[name] >= period:
            self._last[name] = now
            return True
        return False

    # ------------------------------------------------------------------ the launcher's record
    def register(self, job_mode, num_nodes, capacity):
        """Record this launcher (who, where, how many run slots) as it starts;
        its lease heartbeats keep the record's ``last_seen_at`` fresh."""
        self.client.register_launcher(
            self.owner, socket.gethostname(), os.getpid(), job_mode, num_nodes, capacity, self.lease_expiry_sec,
            wf_filter=self.scope.get("workflow") or "", queued_launch_id=self.scope.get("queued_launch"))

    def unregister(self):
        """This launcher stopped cleanly."""
        self.client.stop_launcher(self.owner)

    # ------------------------------------------------------------------ leases
    def recover(self):
        """Free the jobs of launchers whose leases lapsed; True if there were any."""
        return bool(self.client.recover_expired(self.lease_expiry_sec))

    def start(self):
        """At the launcher's start: the restart rules (``states.RESTART_RULES``)
        when this is the first launcher on a DB no dbserver serves (a dbserver
        applies them when it starts), else the usual recovery of dead peers' jobs."""
        from balsam.core import health

        if self.client.mode == "direct" and not health.live_lease_owners(timezone.now()):
            done = self.client.apply_restart_rules(self.lease_expiry_sec)
            return bool(done["recovered"])
        return self.recover()

    def keep_leases(self):
        """Heartbeat our leases and recover dead launchers' jobs, each on its
        period; True if jobs were recovered."""
        if self._due("heartbeat", self.lease_expiry_sec / 3):
            self.client.heartbeat(self.owner, lease_expiry_sec=self.lease_expiry_sec)
        return self._due("recover", self.lease_expiry_sec / 2) and self.recover()

    def claim(self, want, minutes_left=None):
        """Lease up to ``want`` claimable jobs (only those that fit in
        ``minutes_left``, when the launcher has a time limit); returns them
        (``JobRow``s)."""
        scope = dict(self.scope)
        if minutes_left is not None:
            scope["max_wall_time_minutes"] = max(0.0, minutes_left)
        wanted = sorted(states.CLAIMABLE_STATES)
        # A claim is a write (the write lock, or a request to the dbserver):
        # after one that found nothing, a read says first whether there is
        # anything to claim. An idle launcher passes every time another
        # launcher commits, and must not queue for the writer each time.
        if self._found_none and not queries.claimable_ids(wanted, scope, timezone.now(), self.lease_expiry_sec, 1):
            return []
        ids = self.client.claim(self.owner, wanted, want, self.lease_expiry_sec, scope)
        self._found_none = not ids
        return queries.job_rows(ids) if ids else []

    def release_all(self):
        self.client.release(self.owner)

    def killed(self, queued=list):
        """``(id, why)`` of our jobs a user killed, and of the jobs among
        ``queued()`` (runs waiting in the spawner to start) whose lease we
        lost: they must not start. Checked every KILL_CHECK_PERIOD_SEC; else []."""
        if not self._due("kills", KILL_CHECK_PERIOD_SEC):
            return []
        gone = [(pk, "killed by a user") for pk in queries.killed_jobs(self.owner)]
        return gone + [(pk, "its lease was lost") for pk in queries.not_leased_by(self.owner, queued())]

    # ------------------------------------------------------------------ news
    def can_watch(self):
        """Whether ``db_changed`` can tell (else an idle launcher just polls)."""
        return self._commits is not None

    def db_changed(self):
        """Whether another connection committed since the last call: jobs may
        have been added, or their parents finished. Remembered for
        ``resolve_dependencies``."""
        commits = queries.commits_seen()
        if commits == self._commits:
            return False
        self._commits, self._news = commits, True
        return True

    # ------------------------------------------------------------------ dependencies
    def job_ended(self):
        """One of our jobs ended: its children may be ready (look sooner)."""
        self._parents_ended = True

    def resolve_dependencies(self, limit=None):
        """Move waiting jobs on whose parents allow it, every
        DEPENDENCY_PERIOD_SEC, or after DEPENDENCY_MIN_PERIOD_SEC once one of
        our jobs ended or the DB changed -- at once when the DB changed and the
        last look left no job waiting (the look is then cheap; with a backlog
        of blocked jobs it reads thousands of rows again, so it keeps its
        period). A read picks the candidates; the write checks their
        parents again in its own transaction, so a parent added in between is
        never missed. True if any job moved.

        At most ``limit`` jobs move in the first call after a look (the
        launcher passes what it holds when full); the rest of the look's
        candidates move on the next calls, before any new look, each call
        moving twice as many as the last (at most MAX_MOVES_PER_CALL). A
        thousand jobs submitted at once cost the write that moves them ~60
        ms: the first of them start after a write of a few dozen, and the
        rest move while those run, in few writes (each has a fixed cost of
        ~2 ms: 3,000 jobs took 42 writes of 72 each, and take 6 now)."""
        if not self._movable:
            if not self._look():
                return False
            self._moves_per_call = limit or 0
        elif limit:
            self._moves_per_call = min(max(limit, 2 * self._moves_per_call), MAX_MOVES_PER_CALL)
        batch = self._movable[:self._moves_per_call] if limit else self._movable
        self._movable = self._movable[len(batch):]
        moved = self.client.resolve_dependencies(batch)
        return bool(moved["ready"] or moved["awaiting"])

    def _look(self):
        """Read the waiting jobs when due (see ``resolve_dependencies``) and
        keep those whose parents allow a move; True if there are any."""
        since = time.monotonic() - self._last["deps"]
        if self._news and not self._blocked:
            period = 0.0  # jobs submitted to an idle launcher start now, not a period later
        elif self._parents_ended or self._news:
            period = DEPENDENCY_MIN_PERIOD_SEC
        else:
            period = DEPENDENCY_PERIOD_SEC
        if since < period:
            return False
        self._last["deps"] = time.monotonic()
        self._parents_ended = self._news = False
        waiting = queries.waiting_jobs(self.scope, limit=WAITING_PER_PASS)
        if not waiting:
            self._blocked = False
            return False
        parents = queries.parent_states([pk for pk, _, _ in waiting])
        self._movable = [pk for pk, state, wait in waiting
                         if states.after_parents(state, wait, parents.get(pk, []))]
        self._blocked = len(self._movable) < len(waiting) or len(waiting) == WAITING_PER_PASS
        return bool(self._movable)

    # ------------------------------------------------------------------ summaries
    def state_counts(self):
        """{state: jobs} over this launcher's scope (for the progress display)."""
        return queries.state_counts(queries.job_scope(**self.scope))

    def has_unfinished(self):
        return queries.has_unfinished(self.scope)
