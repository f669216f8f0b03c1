"""The launcher: the pilot that runs jobs inside a batch allocation.

One loop. Each pass it asks its ``JobSource`` for work (leases, dependency
resolution, kills), advances each held job one step (inline, or by starting a
supervised child process, see ``steps``), places runnable jobs on free nodes,
reaps finished processes, and hands every state change to its ``Batch``.
Two helpers keep slow work off the loop: the batch's thread writes, and the
spawner process starts and reaps the child processes. Any number of
launchers can share a DB: leases keep them off each other's jobs, and the
jobs of a launcher that dies come back when its lease expires.
"""

import logging
import math
import os
import signal
import time
import uuid
from pathlib import Path

from balsam.core import queries, states, write_client
from balsam.core.models.job_rows import JOB_ROW_FIELDS
from balsam.core.outputs import run_output_name
from balsam.exceptions import BalsamError
from balsam.launcher import mpi_commands, steps
from balsam.launcher.batch import Batch
from balsam.launcher.environment import base_environment, job_variables
from balsam.launcher.job_source import JobSource, launcher_scope, lease_owner_name, misfit
from balsam.launcher.processes import SpawnerDied
from balsam.launcher.slots import MPISlots, SerialSlots
from balsam.launcher.supervisor import Supervisor

logger = logging.getLogger(__name__)

MAX_IDLE_SLEEP_SEC = 0.25
IDLE_WATCH_SEC = 0.01  # how often an idle launcher looks whether the DB changed (a ~20 us read)
SHUTDOWN_GRACE_SEC = 30
HOLD_PER_SLOT = 16
CLAIM_PERIOD_SEC = 1.0  # how often to top up while more than half the target is in hand
# Also hold what the launcher gets through in this long (bounded): at hundreds
# of jobs/s a fixed target meant a claim (a few ms of DB work) every few dozen jobs.
HOLD_AHEAD_SEC = 0.25
MAX_HOLD_AHEAD = 1000
# Runs requested ahead: each slot's queue in the spawner holds QUEUE_AHEAD_SEC
# of starts (MIN_QUEUE_DEPTH to MAX_QUEUE_DEPTH runs; see _queue_depth). With
# every queue that deep, the loop need not answer each run's end: it waits up
# to TICK_SEC between passes (never longer than the shortest queue lasts)
# instead of waking for every reply, so a pass (its scans over the held jobs,
# its timers, its claim) serves many runs.
# Queues are for short runs only: a queue behind a run holds its jobs until
# that run ends, however long it takes, while other slots may free. Runs of a
# second or more gain nothing from them (the loop refills a slot within a
# pass), so nothing is queued until a run has ended and runs are known to be
# shorter, and never behind a run that has gone on OUTLIER_RUNS times the mean;
# the spawner hands back what was queued behind a run before it went on that long.
QUEUE_AHEAD_SEC = 0.25
MIN_QUEUE_DEPTH = 1
MAX_QUEUE_DEPTH = 64
TICK_SEC = 0.04
RUN_SECONDS_WEIGHT = 0.05  # of each ended run in the mean duration (a moving average over ~20 runs)
LONG_RUN_SEC = 1.0
OUTLIER_RUNS = 4
UNKNOWN_RUNS_DEPTH = 0  # before any run has ended
REFILL_ROUNDS = 3
MAX_STARTS_PER_PASS = 256
MAX_STEPS_PER_PASS = 4
OUTPUT_TAIL_LINES = 10


class Launcher:
    """The loop. ``source`` (a ``JobSource``) brings jobs and news of them;
    ``batch`` (a ``Batch``) writes what happens to them. ``make_launcher``
    builds both for a DB and a scope."""

    def __init__(self, db_path, nodes, source, batch, job_mode="serial", max_ranks_per_node=None,
                 time_limit_minutes=0, num_transition_processes=4, until_idle=False, script_timeout_sec=300,
                 progress=None, max_timeout_retries=5):
        self.db_path = Path(db_path)
        self.nodes = nodes
        self.source = source
        self.batch = batch
        self.job_mode = job_mode
        self.until_idle = until_idle
        self.script_timeout_sec = script_timeout_sec
        self.max_timeout_retries = max_timeout_retries
        self.num_transition_processes = num_transition_processes
        self.started = time.monotonic()
        self.deadline = self.started + time_limit_minutes * 60 if time_limit_minutes else None
        self.slots = SerialSlots(nodes, max_ranks_per_node or nodes[0].cores) if job_mode == "serial" else MPISlots(nodes)
        self.held = {}  # job id -> JobRow (with our lease)
        self.apps = {}
        inherited_env = dict(os.environ)
        self.commands = mpi_commands.RunCommands(job_mode, len(nodes), inherited_env)
        self.processes = Supervisor(base_environment(inherited_env))
        # The supervisor's tables (it empties them, never replaces them): looked up per held job on every pass.
        self.runs, self.transitions = self.processes.runs, self.processes.transitions
        self.db_path_text = str(self.db_path)
        self._scripted = set()  # held jobs a pre/post script ran for since they were loaded
        self._overran = set()  # held jobs killed for exceeding their own wall time
        self._plain_step = steps.StepContext(max_timeout_retries=max_timeout_retries)  # most steps need no more
        self._claimed_at = float("-inf")
        self._ended, self._rate, self._rate_since = 0, 0.0, time.monotonic()  # jobs/s ended, for the claim target
        self._run_seconds = None  # recent runs' mean duration, for the spawner's queues
        self.stop_reason = None
        self.progress = progress

    @property
    def scope(self):
        return self.source.scope

    # ------------------------------------------------------------------ main loop
    def request_stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason

    def run(self):
        logger.info("launcher %s starting: mode %s, %d node(s), scope %s", self.source.owner, self.job_mode,
                    len(self.nodes), self.scope)
        self.source.register(self.job_mode, len(self.nodes), self.slots.capacity)
        self.source.start()
        self.processes.start()
        sleep = 0.0
        try:
            while self.stop_reason is None:
                if self.deadline and time.monotonic() >= self.deadline:
                    self.request_stop("time limit reached")
                    break
                try:
                    busy = self.pass_once()
                except SpawnerDied:
                    self._lost_spawner()
                    busy = True
                if self.until_idle and not busy and self._idle():
                    self.request_stop("idle: nothing left to run or process")
                    break
                sleep = 0.0 if busy else min(MAX_IDLE_SLEEP_SEC, sleep * 2 or 0.005)
                tick = self._queued_seconds()
                if tick:
                    time.sleep(tick)  # not woken by each run's end: the spawner refills the slots meanwhile
                if sleep:
                    self._wait_idle(sleep)
        except BaseException as exc:
            # Don't leave applications running: stop them, then report the error.
            self.request_stop(f"error: {type(exc).__name__}: {exc}")
            self.processes.kill_everything()
            self.processes.close()
            raise
        self.shutdown()
        return self.stop_reason

    def _wait_idle(self, timeout):
        """Sleep up to ``timeout`` (the idle backoff), ending early when a
        process ends or -- looked at every IDLE_WATCH_SEC -- when something
        was committed to the DB: jobs submitted to an idle launcher start
        within milliseconds, not after its backoff."""
        if not self.source.can_watch():
            self.processes.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.processes.wait(min(IDLE_WATCH_SEC, left)) or self.source.db_changed():
                return

    def pass_once(self):
        """One pass over everything; True if anything happened."""
        busy = self.source.keep_leases()
        for pk, why in self.source.killed(self.processes.waiting_runs):
            self._drop(pk, why)
            self.batch.release(pk)
            busy = True
        busy |= self.source.resolve_dependencies(limit=self._claim_target())
        busy |= self._claim()
        busy |= self._reap_runs()
        busy |= self._reap_transitions()
        busy |= self._advance()
        busy |= self._start_runs()
        self.processes.send()
        # Short jobs end within the pass: reap and refill their slots now
        # rather than a whole pass (and its DB work) later.
        for _ in range(REFILL_ROUNDS):
            if not (self.runs and self._reap_runs()):
                break
            self._advance()
            self._start_runs()
            self.processes.send()
        self._flush()
        if self.progress:
            self.progress.update(self)
        return busy

    def state_counts(self):
        """{state: jobs} over this launcher's scope (for the progress display)."""
        return self.source.state_counts()

    def _claim(self):
        if self.stop_reason:
            return False
        # Enough jobs in hand that every pass writes large batches, yet bounded so
        # that launchers sharing a DB share its work.
        target = self._claim_target()
        if len(self.held) > target // 2:  # enough in hand: claim in large, infrequent batches
            if time.monotonic() - self._claimed_at < CLAIM_PERIOD_SEC:
                return False
            self._claimed_at = time.monotonic()
        want = target - len(self.held)
        if want <= 0:
            return False
        minutes_left = (self.deadline - time.monotonic()) / 60 if self.deadline else None
        claimed = self.source.claim(want, minutes_left)
        for job in claimed:
            self.held[job.pk] = job
        return bool(claimed)

    def _claim_target(self):
        """How many jobs the launcher holds when full."""
        return HOLD_PER_SLOT * self.slots.capacity + 2 * self.num_transition_processes + 32 + self._hold_ahead()

    def _hold_ahead(self):
        """Jobs this launcher ends in HOLD_AHEAD_SEC, at its rate over the last CLAIM_PERIOD_SEC."""
        now = time.monotonic()
        if now - self._rate_since >= CLAIM_PERIOD_SEC:
            self._rate = self._ended / (now - self._rate_since)
            self._ended, self._rate_since = 0, now
        return min(MAX_HOLD_AHEAD, int(self._rate * HOLD_AHEAD_SEC))

    def _app(self, name):
        if name not in self.apps:
            self.apps[name] = queries.application(name)
        return self.apps[name]

    # ------------------------------------------------------------------ steps
    def _advance(self):
        busy = False
        waiting = [j for pk, j in self.held.items() if pk not in self.runs and pk not in self.transitions
                   and j.state not in states.RUNNABLE_STATES]
        needing_files = [j.pk for j in waiting if j.state == states.READY and j.input_files.strip() and j.has_parents]
        parent_dirs = queries.parent_dirs(needing_files, self.db_path / "data") if needing_files else {}
        for job in waiting:
            if self.stop_reason:
                break
            for _ in range(MAX_STEPS_PER_PASS):  # run through the steps that need no process
                step = self._next_step(job, parent_dirs)
                if step is None:
                    break
                busy = True
                if isinstance(step, steps.ProcessSpec):
                    if len(self.transitions) < self.num_transition_processes:
                        self._start_transition(job, step)
                    break
                self._move(job, step.state, step.message, step.fields)
                if job.state in states.END_STATES or job.state in states.RUNNABLE_STATES:
                    break
        return busy

    def _next_step(self, job, parent_dirs):
        dirs, overran = parent_dirs.get(job.pk), job.pk in self._overran
        context = self._plain_step if not (dirs or overran) else steps.StepContext(
            tuple((pk, path, run_output_name(name)) for pk, path, name in dirs or ()), overran,
            self.max_timeout_retries)
        try:
            return steps.next_step(job, self._app(job.application), context)
        except (BalsamError, OSError) as exc:
            return steps.Move(states.FAILED, f"{job.state} step failed: {exc}")
        except Exception as exc:  # a bug must cost one job, not the launcher
            logger.exception("unexpected error processing %s", job.cute_id)
            return steps.Move(states.FAILED, f"unexpected error in {job.state} step: {type(exc).__name__}: {exc}")

    def _start_transition(self, job, spec):
        # A script reads its job and may move it (an error handler does): the
        # moves this launcher made must have landed first, or it finds the job
        # where it was a batch ago (RUNNING, not RUN_ERROR). Costs a write only
        # when moves are pending.
        self.batch.wait()
        app = self._app(job.application)
        parents, children = queries.relatives([job.pk])
        env = job_variables(job, app.environ_vars if app else {}, parents[job.pk], children[job.pk],
                            self.db_path_text, spec.handler)
        workdir = job.working_directory
        self.processes.start_transition(job.pk, spec, workdir, env, Path(workdir) / spec.log_name,
                                        self.script_timeout_sec)

    def _move(self, job, state, message="", fields=None, at=None):
        """``at``: when it happened (``time.monotonic``), if not now: a run's real start or end."""
        if fields:
            self.batch.set_fields(job.pk, **fields)
            for name, value in fields.items():
                if name in JOB_ROW_FIELDS:  # the row holds what the launcher reads back; the rest is only written
                    setattr(job, name, value)
        self.batch.move(job.pk, state, message, None if at is None else time.time() - (time.monotonic() - at))
        job.state = state
        self._overran.discard(job.pk)
        if state in states.END_STATES:
            self._let_go(job.pk)

    def _hand_back(self, job, why):
        """A script changed the job so that it no longer fits this launcher:
        leave it in its state for a launcher it fits, and say why in its history."""
        self.held.pop(job.pk, None)
        self.batch.note(job.pk, f"handed back by launcher {self.source.owner}: {why}")
        self.batch.release(job.pk)
        logger.warning("handed back job %s: %s", job.pk, why)

    def _let_go(self, pk):
        """A job of ours ended: forget it and give its lease back."""
        self.held.pop(pk, None)
        self.batch.release(pk)
        self.source.job_ended()
        self._ended += 1

    # ------------------------------------------------------------------ runs
    def _start_runs(self):
        if self.stop_reason:
            return False
        candidates = [pk for pk, job in self.held.items() if job.state in states.RUNNABLE_STATES and pk not in self.runs]
        if not candidates:
            return False
        depth = self._queue_depth()
        queue_ends = [end for end in self._open_queues() if end[2] < depth]
        if not (self.slots.has_room() or queue_ends):
            return False
        # Re-read the jobs a script ran for: a preprocess script or an error
        # handler may have changed args, env, num_nodes or node_packing_count.
        candidates = candidates[:MAX_STARTS_PER_PASS]
        stale = [pk for pk in candidates if pk in self._scripted]
        fresh = {pk: self.held[pk] for pk in candidates}
        if stale:
            fresh.update((j.pk, j) for j in queries.job_rows(stale))
            self._scripted.difference_update(stale)
        placed, rest = [], []
        for pk, job in fresh.items():
            job.state = self.held[pk].state
            why = misfit(self.job_mode, len(self.nodes), job.num_nodes, job.ranks_per_node) if pk in stale else None
            if why:
                self._hand_back(job, why)
                continue
            self.held[pk] = job
            hosts = self.slots.take(job)
            if hosts is not None:
                placed.append((job, hosts, None))
            else:
                rest.append(job)
        placed += self._ahead(rest, queue_ends, depth)
        if not placed:
            return False
        parents, children = queries.relatives([job.pk for job, _, _ in placed])
        for job, hosts, after in placed:
            try:
                self._start_run(job, hosts, parents[job.pk], children[job.pk], after)
            except Exception as exc:
                if after is None:
                    self.slots.give_back(job, hosts)
                self._move(job, states.FAILED, f"cannot start the run: {exc}")
                continue
            if after is None:
                self._move(job, steps.RUN_START[job.state], f"on {','.join(hosts)}")
        return True

    def _ahead(self, jobs, queue_ends, depth):
        """Runs to request ahead: each of ``jobs`` that fits exactly the hosts
        of a running run is queued in the spawner behind it (or behind the
        last run already queued there), to start the moment that one ends
        (its state moves when the spawner says it started). A slot that frees
        is then refilled without a pass of this loop or a DB round trip.
        Queues are filled in turn, up to ``depth`` runs each. Returns
        ``(job, hosts, job id of the run it waits for)``."""
        ahead = []
        ends = [[pk, hosts, queued] for pk, hosts, queued in queue_ends]
        for job in jobs:
            for end in ends:
                pk, hosts, queued = end
                last = self.held.get(pk)
                if queued < depth and last is not None and self.slots.same_share(job, last, hosts):
                    ahead.append((job, hosts, pk))
                    end[0], end[2] = job.pk, queued + 1
                    ends.remove(end)
                    ends.append(end)  # the next job goes to the next queue
                    break
            else:
                if not any(end[2] < depth for end in ends):
                    break
        return ahead

    def _queue_depth(self):
        """How many runs each slot's queue holds: QUEUE_AHEAD_SEC of starts
        in one slot. A slot starts a run every mean run duration, or less
        often when the launcher and its spawner get through fewer jobs than
        the slots could (many slots of no-op runs: then the rate over the
        last CLAIM_PERIOD_SEC says). The durations are known as soon as one
        run ends: a launcher that was idle has deep queues at once, where
        the rate alone left them one run deep for a second. 0 (nothing is
        queued) until runs are known to be short (``LONG_RUN_SEC``)."""
        if not self._run_seconds:
            return UNKNOWN_RUNS_DEPTH
        if self._run_seconds >= LONG_RUN_SEC:
            return 0
        period = self._run_seconds
        if self._rate > 0:
            period = max(period, self.slots.capacity / self._rate)
        return max(MIN_QUEUE_DEPTH, min(MAX_QUEUE_DEPTH, math.ceil(QUEUE_AHEAD_SEC / period)))

    def _open_queues(self):
        """``(last job id, hosts, queued)`` of the queues that may take more
        runs: those behind runs that have not gone on far longer than the mean."""
        limit = OUTLIER_RUNS * self._run_seconds if self._run_seconds else None
        return self.processes.queue_ends(running_at_most=limit)

    def _queued_seconds(self):
        """How long the loop may sleep without waking for each run's end
        (0: it should not): when every going run has a full queue behind it,
        until the shortest queue could run dry if its runs took their mean
        duration, at most TICK_SEC."""
        if self.stop_reason or not self.runs or not self._run_seconds:
            return 0
        depth = self._queue_depth()
        ends = self._open_queues()
        if not depth or not ends or any(queued < depth for _, _, queued in ends):
            return 0
        return min(TICK_SEC, min(queued for _, _, queued in ends) * self._run_seconds)

    def _start_run(self, job, hosts, parents, children, after=None):
        app = self._app(job.application)
        if app is None:
            raise BalsamError(f"application {job.application!r} does not exist")
        env = job_variables(job, app.environ_vars, parents, children, self.db_path_text)
        workdir = job.working_directory  # the spawner makes it if stage-in had no reason to
        timeout = job.wall_time_minutes * 60 if job.wall_time_minutes else None
        output = os.path.join(workdir, run_output_name(job.name))
        # A queued start is handed back if the run before it turns out long
        # (after it was queued): the jobs queued behind a long run start elsewhere.
        # Not before LONG_RUN_SEC: a 10 ms run slowed to 50 ms by a busy machine
        # would hand back its whole queue for a wait shorter than a requeue's worth.
        hand_back_after = (max(OUTLIER_RUNS * self._run_seconds, LONG_RUN_SEC)
                           if after is not None and self._run_seconds else None)
        self.processes.start_run(job.pk, hosts, self.commands.argv(job, app, hosts, env), workdir, env, output, timeout,
                                 after, hand_back_after)

    def _reap_runs(self):
        ended = list(self.processes.ended_runs())
        for job, hosts in self.processes.freed():  # stopped runs whose queue was handed back
            if job is not None:
                self.slots.give_back(job, hosts)
        # Runs requested ahead that started (in the place of runs among
        # ``ended``): their RUNNING comes before anything else they did.
        for pk, hosts, began in self.processes.started_ahead():
            job = self.held.get(pk)
            if job is not None and job.state in states.RUNNABLE_STATES:
                self._move(job, steps.RUN_START[job.state], f"on {','.join(hosts)}", at=began)
        for pk, process, hosts, code in ended:
            if process.handed_back:
                continue  # never started, held no hosts: its job (still runnable) starts elsewhere
            handed_on = self.processes.takes_over(pk)  # a run requested after it holds its hosts now
            job = self.held.get(pk)
            if job is None:
                continue
            if not handed_on:
                self.slots.give_back(job, hosts)
            ended_at = process.started + process.elapsed  # as the spawner measured it
            if self._run_seconds is None:
                self._run_seconds = process.elapsed
            else:
                self._run_seconds += RUN_SECONDS_WEIGHT * (process.elapsed - self._run_seconds)
            if process.start_error:
                self._move(job, states.FAILED, f"cannot start the run: {process.start_error}")
            elif process.timed_out:
                self._move(job, states.RUN_TIMEOUT, f"killed after its wall time of {job.wall_time_minutes:g} min",
                           at=ended_at)
                self._overran.add(pk)
            elif code == 0:
                # The runtime goes in its field: a shared message keeps the batch one request.
                self._move(job, states.RUN_DONE, "exit code 0", {"runtime_seconds": round(process.elapsed, 3)},
                           at=ended_at)
            else:
                self._move(job, states.RUN_ERROR, f"exit code {code}: {process.tail(OUTPUT_TAIL_LINES)}",
                           at=ended_at)
        return bool(ended)

    def _reap_transitions(self):
        busy = False
        for pk, process, spec, code in self.processes.ended_transitions():
            busy = True
            job = self.held.get(pk)
            if job is None:
                continue
            if process.start_error:
                self._move(job, states.FAILED, f"cannot start {spec.kind}: {process.start_error}")
                continue
            self._scripted.add(pk)
            self.batch.wait()  # the state the script started in must have landed
            stored = queries.stored_state(pk)
            move = steps.after_process(spec, code, process.timed_out, process.tail(OUTPUT_TAIL_LINES), stored)
            if move is None:  # an error/timeout handler moved the job itself
                job.state = stored
                if stored in states.END_STATES:
                    self._let_go(pk)
            else:
                self._move(job, move.state, move.message)
        return busy

    # ------------------------------------------------------------------ stopping processes
    def _drop(self, pk, why):
        job = self.held.pop(pk, None)
        hosts = self.processes.stop(pk, job)
        if hosts is not None and job is not None:
            self.slots.give_back(job, hosts)
        logger.info("dropped job %s (%s)", pk, why)

    def _lost_spawner(self):
        """The spawner died: its runs time out (and are retried as the job
        allows); transitions are simply done again, as after a recovery."""
        for pk, hosts in self.processes.replace_spawner().items():
            job = self.held.get(pk)
            if job is not None:
                self.slots.give_back(job, hosts)
                self._move(job, states.RUN_TIMEOUT, "lost when the launcher's process spawner died")

    def _flush(self, wait=False):
        refused = self.batch.flush(wait, now=not self.processes.busy())
        for pk in refused:
            self._drop(uuid.UUID(pk), "state changed elsewhere")
        self.processes.reap_stopped()

    # ------------------------------------------------------------------ end
    def _idle(self):
        if self.held or self.processes.busy():
            return False
        return not self.source.has_unfinished()

    def shutdown(self):
        logger.info("launcher stopping: %s", self.stop_reason)
        stopped = self.processes.terminate_runs()
        for pk, _ in stopped:
            job = self.held.get(pk)
            if job is not None:
                self._move(job, states.RUN_TIMEOUT, f"launcher stopped ({self.stop_reason})")
        deadline = time.monotonic() + SHUTDOWN_GRACE_SEC
        try:
            while time.monotonic() < deadline and (self.transitions or any(p.code is None for _, p in stopped)):
                self._reap_transitions()  # let steps in progress finish (and collect the runs' ends)
                self.processes.wait(0.05)
        except SpawnerDied:
            pass  # nothing more will end: what is left is killed next
        self.processes.kill_everything(p for _, p in stopped)
        self.processes.close()
        self._flush(wait=True)
        self.batch.close()
        self.source.release_all()
        self.source.unregister()
        if self.progress:
            self.progress.update(self, final=True)


def make_launcher(db_path, nodes, client=None, job_mode="serial", workflow=None, job_ids=None, queued_launch=None,
                  lease_expiry_sec=180, **options):
    """A launcher for the jobs of ``workflow`` (or ``job_ids``, or the queued
    launch) that fit ``job_mode`` and ``nodes``, writing through ``client``
    (default: this process's write client)."""
    client = client or write_client.get()
    owner = lease_owner_name()
    scope = launcher_scope(job_mode, len(nodes), workflow, job_ids, queued_launch)
    return Launcher(db_path, nodes, JobSource(client, owner, scope, lease_expiry_sec), Batch(client, owner),
                    job_mode=job_mode, **options)


def install_signal_handlers(launcher):
    def stop(signum, frame):
        launcher.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
