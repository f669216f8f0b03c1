"""The launcher: the pilot that runs jobs inside a batch allocation.

One loop: it resolves dependencies, claims jobs with a lease, advances each
held job one step (inline, or by starting a supervised child process), starts
runnable jobs on free nodes, reaps finished processes and writes every state
change in batches. Two helpers keep slow work off the loop: a thread writes
the batches, and the spawner process starts and reaps the child processes.
Any number of launchers can share a DB: leases keep them off each other's
jobs, and the jobs of a launcher that dies come back when its lease expires.
"""

import logging
import os
import shlex
import signal
import socket
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.db import connection

from balsam.core import states
from balsam.core.models import ApplicationDefinition, BalsamJob, JobDependency, JobEvent
from balsam.core.writes import SQL_CHUNK, chunks, job_scope, pk_params, raw_fetchall
from balsam.exceptions import BalsamError
from balsam.launcher import mpi_commands, steps
from balsam.launcher.environment import base_environment, job_variables
from balsam.launcher.processes import ManagedProcess, Spawner, SpawnerDied
from balsam.launcher.slots import MPISlots, SerialSlots

logger = logging.getLogger(__name__)

CLAIMABLE = [
    states.READY, states.STAGED_IN, states.PREPROCESSED, states.RESTART_READY,
    states.RUN_DONE, states.POSTPROCESSED, states.RUN_ERROR, states.RUN_TIMEOUT,
]
RUNNABLE = (states.PREPROCESSED, states.RESTART_READY)
DEPENDENCY_PERIOD_SEC = 1.0
KILL_CHECK_PERIOD_SEC = 0.5
MAX_IDLE_SLEEP_SEC = 0.25
SHUTDOWN_GRACE_SEC = 30
HOLD_PER_SLOT = 16
REFILL_ROUNDS = 3
DEPENDENCY_MIN_PERIOD_SEC = 0.25
MAX_STARTS_PER_PASS = 256
MAX_STEPS_PER_PASS = 4
OUTPUT_TAIL_LINES = 10
OVERRUN_RETRY = "timed out; retry"  # message prefix of the reruns counted against max_timeout_retries


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
        self.moves = defaultdict(list)  # (round, state, message) -> ids
        self.rounds = defaultdict(int)
        self.fields = []
        self.releases = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="balsam-batch")
        self._in_flight = None
        self._refused = []

    def move(self, job_id, state, message=""):
        self.rounds[job_id] += 1
        self.moves[(self.rounds[job_id], state, message)].append(str(job_id))

    def set_fields(self, job_id, **fields):
        self.fields.append((job_id, fields))

    def release(self, job_id):
        self.releases.append(str(job_id))

    def flush(self, wait=False):
        """Start writing everything collected, unless a write is still in
        flight: then it waits for the next flush and goes in a larger batch
        (the loop never stalls on the DB). Returns the ids whose move an
        earlier write refused (a user killed the job meanwhile; their leases
        are released). ``wait``: return only once everything has landed."""
        if self._in_flight is not None and (wait or self._in_flight.done()):
            self.wait()
        if self._in_flight is None and (self.moves or self.fields or self.releases):
            moves = [(ids, state, message) for (_, state, message), ids in sorted(self.moves.items())]
            self._in_flight = self._writer.submit(self._write, moves, self.fields, self.releases)
            self.moves, self.rounds = defaultdict(list), defaultdict(int)
            self.fields, self.releases = [], []
        if wait:
            self.wait()
        refused, self._refused = self._refused, []
        return refused

    def wait(self):
        """Until the write in flight (if any) has landed: before reading back
        states this launcher has written."""
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            self._refused += future.result()  # a failed write raises here, in the loop

    def _write(self, moves, fields, releases):
        return list(self.client.apply_batch(moves, fields, self.owner, releases)["refused"])

    def close(self):
        # The writer thread has a DB connection of its own (direct mode): close
        # it there (``connection`` resolves to the calling thread's).
        self._writer.submit(lambda: connection.close()).result()
        self._writer.shutdown(wait=True)

class Launcher:
    def __init__(self, db_path, client, nodes, job_mode="serial", workflow=None, job_ids=None, queued_launch=None,
                 max_ranks_per_node=None, time_limit_minutes=0, num_transition_processes=4,
                 until_idle=False, lease_expiry_sec=180, script_timeout_sec=300, progress=None,
                 max_timeout_retries=5):
        self.db_path = Path(db_path)
        self.client = client
        self.nodes = nodes
        self.job_mode = job_mode
        self.until_idle = until_idle
        self.lease_expiry_sec = lease_expiry_sec
        self.script_timeout_sec = script_timeout_sec
        self.max_timeout_retries = max_timeout_retries
        self._overran = set()  # held jobs killed for exceeding their own wall time
        self.num_transition_processes = num_transition_processes
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started = time.monotonic()
        self.deadline = self.started + time_limit_minutes * 60 if time_limit_minutes else None
        if job_mode == "serial":
            self.slots = SerialSlots(nodes, max_ranks_per_node or nodes[0].cores)
        else:
            self.slots = MPISlots(nodes)
        self.mpi_flavour = mpi_commands.choose(os.environ, _mpirun_version() if job_mode == "mpi" or len(nodes) > 1 else "")
        self.local_hosts = {socket.gethostname(), socket.getfqdn(), "localhost"}
        # Options of core.writes.job_scope: the jobs this launcher works on.
        self.scope = {"serial_only": True} if job_mode == "serial" else {"max_num_nodes": len(nodes)}
        for name, value in (("workflow", workflow), ("job_ids", job_ids), ("queued_launch", queued_launch)):
            if value is not None:
                self.scope[name] = value
        self.held = {}  # job id -> BalsamJob (with our lease)
        self.apps = {}
        self.runs = {}  # job id -> (ManagedProcess, hosts)
        self.transitions = {}  # job id -> (ManagedProcess, ProcessSpec)
        self.batch = Batch(client, self.owner)
        self.inherited_env = dict(os.environ)
        self.base_env = base_environment(self.inherited_env)
        self.spawner = None  # started by run()
        self.db_path_text = str(self.db_path)
        self._commands = {}  # application name -> its executable, split into words
        self._scripted = set()  # held jobs a pre/post script ran for since they were loaded
        self._zombies = []  # killed processes not yet reaped
        self.stop_reason = None
        self.progress = progress
        self._last = defaultdict(float)
        self._deps_dirty = True

    # ------------------------------------------------------------------ main loop
    def request_stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason

    def run(self):
        logger.info("launcher %s starting: mode %s, %d node(s), scope %s", self.owner, self.job_mode,
                    len(self.nodes), self.scope)
        self.client.recover_expired(self.lease_expiry_sec)
        self.spawner = Spawner(self.base_env)
        sleep = 0.0
        try:
            while self.stop_reason is None:
                if self.deadline and time.monotonic() >= self.deadline:
                    self.request_stop("time limit reached")
                    break
                try:
                    busy = self.pass_once()
                except SpawnerDied:
                    self._replace_spawner()
                    busy = True
                if self.until_idle and not busy and self._idle():
                    self.request_stop("idle: nothing left to run or process")
                    break
                sleep = 0.0 if busy else min(MAX_IDLE_SLEEP_SEC, sleep * 2 or 0.005)
                if sleep:
                    self.spawner.wait(sleep)  # a process ending ends the wait
        except BaseException as exc:
            # Don't leave applications running: stop them, then report the error.
            self.request_stop(f"error: {type(exc).__name__}: {exc}")
            self._kill_everything()
            self.spawner.close()
            raise
        self.shutdown()
        return self.stop_reason

    def pass_once(self):
        """One pass over everything; True if anything happened."""
        busy = False
        busy |= self._periodic()
        busy |= self._resolve_dependencies()
        busy |= self._claim()
        busy |= self._reap()
        busy |= self._advance()
        busy |= self._start_runs()
        self.spawner.send()
        # Short jobs end within the pass: reap and refill their slots now
        # rather than a whole pass (and its DB work) later.
        for _ in range(REFILL_ROUNDS):
            if not (self.runs and self._reap_runs()):
                break
            self._advance()
            self._start_runs()
            self.spawner.send()
        self._flush()
        if self.progress:
            self.progress.update(self)
        return busy

    def _every(self, name, period):
        now = time.monotonic()
        if now - self._last[name] >= period:
            self._last[name] = now
            return True
        return False

    def _periodic(self):
        busy = False
        if self._every("heartbeat", self.lease_expiry_sec / 3):
            self.client.heartbeat(self.owner)
        if self._every("recover", self.lease_expiry_sec / 2):
            busy |= bool(self.client.recover_expired(self.lease_expiry_sec))
        if self._every("kills", KILL_CHECK_PERIOD_SEC):
            busy |= self._handle_kills()
        return busy

    def state_counts(self):
        """{state: jobs} over this launcher's scope (for the progress display)."""
        from balsam.api import state_counts

        return state_counts(job_scope(**self.scope))

    # ------------------------------------------------------------------ dependencies
    def _resolve_dependencies(self):
        since = time.monotonic() - self._last["deps"]
        if not ((self._deps_dirty and since >= DEPENDENCY_MIN_PERIOD_SEC) or since >= DEPENDENCY_PERIOD_SEC):
            return False
        self._last["deps"] = time.monotonic()
        self._deps_dirty = False
        waiting = list(
            job_scope(**self.scope).filter(state__in=states.WAITING_STATES)
            .values_list("pk", "state", "wait_for_parents")[:5000]
        )
        if not waiting:
            return False
        parent_states = defaultdict(list)
        ids = [pk for pk, _, _ in waiting]
        for chunk in chunks(ids):
            for child, state in JobDependency.objects.filter(child_id__in=chunk).values_list("child_id", "parent__state"):
                parent_states[child].append(state)
        ready, awaiting = [], []
        for pk, state, wait in waiting:
            parents = parent_states.get(pk, [])
            if not wait or all(s == states.JOB_FINISHED for s in parents):
                ready.append(pk)
            elif state == states.CREATED:
                awaiting.append(pk)
        moves = defaultdict(list)
        for pk in ready:
            if not parent_states.get(pk):
                message = "no parents"
            elif all(s == states.JOB_FINISHED for s in parent_states[pk]):
                message = "parents finished"
            else:
                message = "does not wait for its parents"
            moves[(states.READY, message)].append(str(pk))
        for pk in awaiting:
            moves[(states.AWAITING_PARENTS, f"waiting for {len(parent_states[pk])} parent(s)")].append(str(pk))
        # Written now, not in the pass's batch: these jobs are nobody's yet, and
        # another launcher may move them first (then ours are simply refused).
        for (state, message), ids in moves.items():
            self.client.transition(ids, state, message, strict=False)
        return bool(ready or awaiting)

    # ------------------------------------------------------------------ claiming
    def _claim(self):
        if self.stop_reason:
            return False
        # Enough jobs in hand that every pass writes large batches, yet bounded so
        # that launchers sharing a DB share its work.
        target = HOLD_PER_SLOT * self.slots.capacity + 2 * self.num_transition_processes + 32
        if len(self.held) > target // 2 and not self._every("claim", 1.0):
            return False  # enough in hand: claim in large, infrequent batches
        want = target - len(self.held)
        if want <= 0:
            return False
        scope = dict(self.scope)
        if self.deadline:  # only jobs that fit in the time left
            scope["max_wall_time_minutes"] = max(0.0, (self.deadline - time.monotonic()) / 60)
        ids = self.client.claim(self.owner, CLAIMABLE, want, self.lease_expiry_sec, scope)
        if not ids:
            return False
        for job in BalsamJob.objects.filter(pk__in=ids):
            self.held[job.pk] = job
        return True

    def _app(self, name):
        if name not in self.apps:
            self.apps[name] = ApplicationDefinition.objects.filter(name=name).first()
        return self.apps[name]

    # ------------------------------------------------------------------ transitions
    def _advance(self):
        busy = False
        waiting = [j for pk, j in self.held.items() if pk not in self.runs and pk not in self.transitions
                   and j.state not in RUNNABLE]
        parent_dirs = self._parent_dirs([j for j in waiting if j.state == states.READY and j.input_files.strip()])
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
                self._move(job, step.state, step.message)
                if job.state in states.END_STATES or job.state in RUNNABLE:
                    break
        return busy

    def _next_step(self, job, parent_dirs):
        try:
            step = steps.next_step(job, self._app(job.application), parent_dirs.get(job.pk, []))
            if job.pk in self._overran and job.state == states.RUN_TIMEOUT:
                self._overran.discard(job.pk)
                if isinstance(step, steps.Move) and step.state == states.RESTART_READY:
                    return self._limit_retries(job)
            return step
        except (BalsamError, OSError) as exc:
            return steps.Move(states.FAILED, f"{job.state} step failed: {exc}")
        except Exception as exc:  # a bug must cost one job, not the launcher
            logger.exception("unexpected error processing %s", job.cute_id)
            return steps.Move(states.FAILED, f"unexpected error in {job.state} step: {type(exc).__name__}: {exc}")

    def _limit_retries(self, job):
        """The automatic rerun of a job that ran past its wall time, unless it
        has already been rerun ``max_timeout_retries`` times for that reason.
        (Timeouts from a launcher stopping are not counted: the job did no wrong.)"""
        self.batch.wait()  # earlier reruns' events must have landed to be counted
        done = JobEvent.objects.filter(job_id=job.pk, to_state=states.RESTART_READY,
                                       message__startswith=OVERRUN_RETRY).count()
        if done >= self.max_timeout_retries:
            return steps.Move(states.FAILED, f"ran past its wall time {done + 1} times; giving up "
                                             f"(launcher_max_timeout_retries = {self.max_timeout_retries})")
        return steps.Move(states.RESTART_READY, f"{OVERRUN_RETRY} {done + 1} of {self.max_timeout_retries}")

    def _parent_dirs(self, jobs):
        """{child id: [(parent id, parent's working directory)]} in one query."""
        dirs = defaultdict(list)
        ids = [job.pk for job in jobs]
        for chunk in chunks(ids):
            rows = JobDependency.objects.filter(child_id__in=chunk).values_list(
                "child_id", "parent_id", "parent__workdir", "parent__user_workdir", "parent__name")
            for child, parent, workdir, user_dir, name in rows:
                output = steps.run_output_name(name)
                dirs[child].append((parent, user_dir or str(self.db_path / "data" / workdir), output))
        return dirs

    def _relatives(self, ids):
        """({job: [parent ids]}, {job: [child ids]}) for ``ids`` in one query."""
        parents, children = defaultdict(list), defaultdict(list)
        wanted = set(ids)
        rows = []
        # Raw SQL: this runs on every pass that starts jobs, and building the
        # ORM's OR-query costs more than running it. Each id appears twice.
        for chunk in chunks(pk_params(ids), SQL_CHUNK // 2):
            marks = ", ".join(["%s"] * len(chunk))
            rows += raw_fetchall(f"SELECT child_id, parent_id FROM balsam_job_dependency "
                                 f"WHERE child_id IN ({marks}) OR parent_id IN ({marks})", chunk + chunk)
        for child, parent in ((uuid.UUID(str(c)), uuid.UUID(str(p))) for c, p in rows):
            if child in wanted:
                parents[child].append(parent)
            if parent in wanted:
                children[parent].append(child)
        return parents, children

    def _start_transition(self, job, spec):
        app = self._app(job.application)
        parents, children = self._relatives([job.pk])
        env = job_variables(job, app.environ_vars if app else {}, parents[job.pk], children[job.pk],
                            self.db_path_text, spec.handler)
        process = ManagedProcess(self.spawner, spec.kind, job.pk, spec.argv, job.working_directory, env,
                                 Path(job.working_directory) / spec.log_name, self.script_timeout_sec,
                                 header=spec.header)
        self.transitions[job.pk] = (process, spec)

    def _move(self, job, state, message=""):
        self.batch.move(job.pk, state, message)
        job.state = state
        if state in states.END_STATES:
            self.held.pop(job.pk, None)
            self._overran.discard(job.pk)
            self.batch.release(job.pk)
            self._deps_dirty = True

    # ------------------------------------------------------------------ runs
    def _start_runs(self):
        if self.stop_reason:
            return False
        candidates = [pk for pk, job in self.held.items() if job.state in RUNNABLE and pk not in self.runs]
        if not candidates or not self.slots.has_room():
            return False
        # Re-read the jobs a script ran for: a preprocess script or an error
        # handler may have changed args, env, num_nodes or node_packing_count.
        candidates = candidates[:MAX_STARTS_PER_PASS]
        stale = [pk for pk in candidates if pk in self._scripted]
        fresh = {pk: self.held[pk] for pk in candidates}
        if stale:
            fresh.update((j.pk, j) for j in BalsamJob.objects.filter(pk__in=stale))
            self._scripted.difference_update(stale)
        placed = []
        for pk, job in fresh.items():
            job.state = self.held[pk].state
            hosts = self.slots.take(job)
            if hosts is not None:
                self.held[pk] = job
                placed.append((job, hosts))
        if not placed:
            return False
        parents, children = self._relatives([job.pk for job, _ in placed])
        for job, hosts in placed:
            try:
                process = self._launch(job, hosts, parents[job.pk], children[job.pk])
            except Exception as exc:
                self.slots.give_back(job, hosts)
                self._move(job, states.FAILED, f"cannot start the run: {exc}")
                continue
            self.runs[job.pk] = (process, hosts)
            self._move(job, states.RUNNING, f"on {','.join(hosts)}")
        return True

    def _launch(self, job, hosts, parents, children):
        app = self._app(job.application)
        if app is None:
            raise BalsamError(f"application {job.application!r} does not exist")
        executable = self._commands.get(app.name)
        if executable is None:
            executable = self._commands[app.name] = shlex.split(app.executable)
        command = executable + shlex.split(job.args) if job.args else list(executable)
        env = job_variables(job, app.environ_vars, parents, children, self.db_path_text)
        if self.job_mode == "serial" and set(hosts) <= self.local_hosts:
            argv = command
        else:
            extra = {k: v for k, v in env.items() if self.inherited_env.get(k) != v and k != "PATH"}
            launch = mpi_commands.Launch(command, hosts, job.ranks_per_node, job.threads_per_rank,
                                         job.threads_per_core, env=extra)
            argv = mpi_commands.BUILDERS[self.mpi_flavour](launch)
        workdir = job.working_directory  # the spawner makes it if stage-in had no reason to
        timeout = job.wall_time_minutes * 60 if job.wall_time_minutes else None
        output = os.path.join(workdir, steps.run_output_name(job.name))
        return ManagedProcess(self.spawner, "run", job.pk, argv, workdir, env, output, timeout)

    def _reap(self):
        busy = self._reap_runs()
        return self._reap_transitions() or busy

    def _ended(self, table):
        """``(pk, process, extra, exit code)`` for each process of ``table``
        (runs or transitions) that has ended, removing it from the table."""
        self.spawner.collect()
        for pk, (process, extra) in list(table.items()):
            code = process.poll()
            if code is not None:
                del table[pk]
                yield pk, process, extra, code

    def _reap_runs(self):
        busy = False
        for pk, process, hosts, code in self._ended(self.runs):
            busy = True
            job = self.held.get(pk)
            if job is None:
                continue
            self.slots.give_back(job, hosts)
            if process.start_error:
                self._move(job, states.FAILED, f"cannot start the run: {process.start_error}")
            elif process.timed_out:
                self._overran.add(pk)
                self._move(job, states.RUN_TIMEOUT, f"killed after its wall time of {job.wall_time_minutes:g} min")
            elif code == 0:
                # The runtime goes in its field: a shared message keeps the batch one request.
                self.batch.set_fields(pk, runtime_seconds=round(process.elapsed, 3))
                self._move(job, states.RUN_DONE, "exit code 0")
            else:
                self._move(job, states.RUN_ERROR, f"exit code {code}: {process.tail(OUTPUT_TAIL_LINES)}")
        return busy

    def _reap_transitions(self):
        busy = False
        for pk, process, spec, code in self._ended(self.transitions):
            busy = True
            job = self.held.get(pk)
            if job is None:
                continue
            if process.start_error:
                self._move(job, states.FAILED, f"cannot start {spec.kind}: {process.start_error}")
                continue
            self._scripted.add(pk)
            self.batch.wait()  # the state the script started in must have landed
            stored = BalsamJob.objects.filter(pk=pk).values_list("state", flat=True).first()
            move = steps.after_process(spec, code, process.timed_out, process.tail(OUTPUT_TAIL_LINES), stored)
            if move is None:  # an error/timeout handler moved the job itself
                job.state = stored
                if stored in states.END_STATES:
                    self.held.pop(pk, None)
                    self.batch.release(pk)
                    self._deps_dirty = True
            else:
                self._move(job, move.state, move.message)
        return busy

    # ------------------------------------------------------------------ kills
    def _handle_kills(self):
        killed = list(
            BalsamJob.objects.filter(lease_owner=self.owner, state=states.USER_KILLED).values_list("pk", flat=True)
        )
        for pk in killed:
            self._drop(pk, "killed by a user")
            self.batch.release(pk)
        return bool(killed)

    def _drop(self, pk, why):
        job = self.held.pop(pk, None)
        for table in (self.runs, self.transitions):
            if pk in table:
                process, extra = table.pop(pk)
                process.kill()
                self._zombies.append(process)
                if table is self.runs and job is not None:
                    self.slots.give_back(job, extra)
        logger.info("dropped job %s (%s)", pk, why)

    def _replace_spawner(self):
        """Carry on after the spawner died (someone killed it): stop what it
        had started -- its results are lost with it -- and start a new one.
        Runs time out (and are retried as the job allows); transitions are
        simply done again, as they are when a launcher is recovered."""
        logger.error("the process spawner died; stopping its %d process(es) and starting a new one",
                     len(self.runs) + len(self.transitions))
        for process, _ in list(self.transitions.values()) + list(self.runs.values()):
            process.kill_group()
        for pk, (_, hosts) in list(self.runs.items()):
            job = self.held.get(pk)
            if job is not None:
                self.slots.give_back(job, hosts)
                self._move(job, states.RUN_TIMEOUT, "lost when the launcher's process spawner died")
        self.runs.clear()
        self.transitions.clear()
        self._zombies.clear()
        self.spawner.close()
        self.spawner = Spawner(self.base_env)

    def _kill_everything(self, extra=()):
        for process, _ in list(self.transitions.values()) + list(self.runs.values()) + list(extra):
            process.kill_now()
        self.transitions.clear()
        self.runs.clear()

    def _flush(self, wait=False):
        refused = self.batch.flush(wait)
        for pk in refused:
            self._drop(uuid.UUID(pk), "state changed elsewhere")
        for process in list(self._zombies):
            if process.poll() is not None:
                self._zombies.remove(process)

    # ------------------------------------------------------------------ end
    def _idle(self):
        if self.held or self.runs or self.transitions:
            return False
        return not job_scope(**self.scope).exclude(state__in=states.END_STATES).exists()

    def shutdown(self):
        logger.info("launcher stopping: %s", self.stop_reason)
        runs = list(self.runs.values())
        for pk, (process, hosts) in list(self.runs.items()):
            process.kill()  # SIGTERM: applications may save a checkpoint
            job = self.held.get(pk)
            if job is not None:
                self._move(job, states.RUN_TIMEOUT, f"launcher stopped ({self.stop_reason})")
        self.runs.clear()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SEC
        try:
            while time.monotonic() < deadline and (self.transitions or any(p.code is None for p, _ in runs)):
                self._reap_transitions()  # let steps in progress finish (and collect the runs' ends)
                self.spawner.wait(0.05)
        except SpawnerDied:
            pass  # nothing more will end: what is left is killed next
        self._kill_everything(runs)
        self.spawner.close()
        self._flush(wait=True)
        self.batch.close()
        self.client.release(self.owner)
        if self.progress:
            self.progress.update(self, final=True)


def _mpirun_version():
    import subprocess

    try:
        result = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout + result.stderr


def install_signal_handlers(launcher):
    def stop(signum, frame):
        launcher.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
