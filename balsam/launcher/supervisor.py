"""The launcher's running processes: each job's run (with the hosts it holds)
and its transition process (stage-in, pre/postprocess, stage-out), started
through one spawner. Stopping, reaping and replacing a dead spawner live
here; which job moves where is the launcher's business."""

import logging

from balsam.launcher.processes import ManagedProcess, Spawner, SpawnerDied

logger = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, base_env):
        self.base_env = base_env
        self.spawner = None  # started by start()
        self.runs = {}  # job id -> (ManagedProcess, hosts); also runs requested ahead (``waiting``)
        self.successors = {}  # job id of a run -> job id of the run requested to start in its place
        self.transitions = {}  # job id -> (ManagedProcess, ProcessSpec)
        self._zombies = []  # stopped processes not yet reaped
        # Stopped runs with a queue behind them: (job, hosts) until the spawner
        # says who has the hosts -- the next run of the queue (it started in the
        # stopped run's place) or, if it handed the queue back first, nobody.
        self._stopping = {}
        self._freed = []  # (job, hosts) of stopped runs whose queue was handed back: free now

    def start(self):
        self.spawner = Spawner(self.base_env, on_handed_back=self._handed_back)

    def busy(self):
        return bool(self.runs or self.transitions)

    def start_run(self, pk, hosts, argv, workdir, env, output, timeout, after=None, hand_back_after=None):
        """Start the job's run on ``hosts``; ``after``: the job id of a run on
        the same hosts (going, or itself waiting) whose place it takes the
        moment that run ends -- unless the running one has gone on
        ``hand_back_after`` seconds: then the spawner hands this one (and
        those behind it) back unstarted, and ``ended_runs`` yields it with
        ``handed_back`` set."""
        predecessor = self.runs[after][0] if after is not None else None
        process = ManagedProcess(self.spawner, "run", pk, argv, workdir, env, output, timeout, after=predecessor,
                                 hand_back_after=hand_back_after)
        process.hosts = hosts
        self.runs[pk] = (process, hosts)
        if after is not None:
            self.successors[after] = pk

    def queue_ends(self, running_at_most=None):
        """``(job id, hosts, queued)`` per run going now (for no longer than
        ``running_at_most`` seconds, if given): the last run of its queue
        (itself, or the last run requested to start after it, in turn) and
        how many runs wait in that queue."""
        ends = []
        for pk, (process, hosts) in self.runs.items():
            if process.waiting or process.code is not None:
                continue
            if running_at_most is not None and process.elapsed > running_at_most:
                continue
            last, queued = pk, 0
            while self.successors.get(last) in self.runs:
                last, queued = self.successors[last], queued + 1
            ends.append((last, hosts, queued))
        return ends

    def waiting_runs(self):
        """Job ids of the runs requested ahead that have not started yet."""
        return [pk for pk, (process, _) in self.runs.items() if process.waiting]

    def started_ahead(self):
        """``(job id, hosts, monotonic start time)`` of the runs requested ahead that started since the last call."""
        handles, self.spawner.started_ahead = self.spawner.started_ahead, []
        return [(handle.job_id, handle.hosts, handle.started) for handle in handles]

    def takes_over(self, pk):
        """The run of job ``pk`` ended (or is being stopped): whether a run
        requested after it took (or will take) its hosts. The spawner starts
        the next run of a queue the moment one is reaped, so any successor
        still linked took them -- even one that has itself ended since, in the
        same collection: its own end hands them on or gives them back. (Asking
        whether the successor is still running gave a slot back twice when
        both runs of a 10 ms task ended between two looks: the launcher then
        ran more jobs at once than it has slots.) A cancelled successor is
        unlinked by ``stop``; one that failed to start passes the hosts on in
        the spawner as in ``successors``."""
        return self.successors.pop(pk, None) is not None

    def _handed_back(self, process):
        """The spawner handed this queued run back (the run before it went on
        too long): it takes no one's hosts. Unlinked as its answer is read --
        before the end of the run it was queued behind, which then gives its
        hosts back (``takes_over``). Those queued behind it come back too,
        each with its own answer."""
        pk = process.job_id
        for before, after in list(self.successors.items()):
            if after == pk:
                del self.successors[before]
                if before in self._stopping:  # stopped, and this one will not take its place
                    self._freed.append(self._stopping.pop(before))
        self.successors.pop(pk, None)

    def freed(self):
        """``(job, hosts)`` given back since the last call: those of stopped
        runs whose queue the spawner handed back (see ``stop``)."""
        freed, self._freed = self._freed, []
        return freed

    def start_transition(self, pk, spec, workdir, env, log_path, timeout):
        process = ManagedProcess(self.spawner, spec.kind, pk, spec.argv, workdir, env, log_path, timeout,
                                 header=spec.header)
        self.transitions[pk] = (process, spec)

    def send(self):
        """Hand every start queued since the last call to the spawner."""
        self.spawner.send()

    def wait(self, timeout):
        """Sleep up to ``timeout``; a process ending ends the wait (True)."""
        return self.spawner.wait(timeout)

    def _ended(self, table):
        self.spawner.collect()
        for pk, (process, extra) in list(table.items()):
            code = process.poll()
            if code is not None:
                del table[pk]
                yield pk, process, extra, code

    def ended_runs(self):
        """``(job id, process, hosts, exit code)`` for each run that ended."""
        return self._ended(self.runs)

    def ended_transitions(self):
        """``(job id, process, spec, exit code)`` for each transition process that ended."""
        return self._ended(self.transitions)

    def stop(self, pk, job=None):
        """Stop the job's process (SIGTERM, then SIGKILL); returns the hosts its
        run held, if any and if no run requested after it takes them over (it
        starts when this one has ended). A run still waiting to start is
        cancelled: it held no hosts. A run with a queue behind it keeps its
        hosts for that queue's next run -- unless the spawner hands the queue
        back before this run has ended: then ``freed`` gives them (and
        ``job``) back."""
        hosts = None
        for table in (self.runs, self.transitions):
            if pk in table:
                process, extra = table.pop(pk)
                was_waiting = process.waiting
                process.kill()
                self._zombies.append(process)
                if table is self.runs:
                    if process.handed_back:
                        pass  # never started: it held no hosts
                    elif was_waiting:
                        self.spawner.send()  # the cancel, before its predecessor can end
                        # Its hosts are its own once the run before it ended: they pass
                        # to the run queued behind it, or come back if none is.
                        inherited = pk not in self.successors.values()
                        if self._unlink(pk) is None and inherited:
                            hosts = extra
                    elif pk in self.successors:
                        self._stopping[pk] = (job, extra)
                    else:
                        hosts = extra
        return hosts

    def _unlink(self, successor):
        """A waiting run was cancelled: the run queued behind it (if any) moves
        up to its place, as in the spawner."""
        behind = self.successors.pop(successor, None)
        for pk, waiting in list(self.successors.items()):
            if waiting == successor:
                if behind is None:
                    del self.successors[pk]
                else:
                    self.successors[pk] = behind
        return behind

    def reap_stopped(self):
        for process in list(self._zombies):
            if process.poll() is not None:
                self._zombies.remove(process)
                stopping = self._stopping.pop(process.job_id, None)
                # Ended with its queue still linked: the next run took its hosts;
                # with none left (cancelled meanwhile), nobody did.
                if stopping is not None and self.successors.pop(process.job_id, None) is None:
                    self._freed.append(stopping)

    def replace_spawner(self):
        """After the spawner died (someone killed it): stop what it had started
        -- its results are lost with it -- and start a new one. Returns the
        lost runs as ``{job id: hosts}``."""
        logger.error("the process spawner died; stopping its %d process(es) and starting a new one",
                     len(self.runs) + len(self.transitions))
        for process, _ in list(self.transitions.values()) + list(self.runs.values()):
            process.kill_group()
        lost = {pk: hosts for pk, (process, hosts) in self.runs.items() if not process.waiting}
        self._freed.extend(self._stopping.values())  # stopped runs killed with the rest: nothing takes their hosts
        self._stopping.clear()
        self.runs.clear()
        self.successors.clear()
        self.transitions.clear()
        self._zombies.clear()
        self.spawner.close()
        self.start()
        return lost

    def terminate_runs(self):
        """SIGTERM every run (applications may save a checkpoint); returns
        ``[(job id, process)]`` for ``kill_everything`` to finish off."""
        stopped = [(pk, process) for pk, (process, _) in self.runs.items() if not process.waiting]
        for process, _ in self.runs.values():
            if process.waiting:
                process.kill()  # cancelled: it never started, its job stays as it was
        try:
            self.spawner.send()  # the cancels go before the SIGTERMs that end their predecessors
        except SpawnerDied:
            pass  # nothing will start them now
        for _, process in stopped:
            process.kill()
        self.runs.clear()
        self.successors.clear()
        return stopped

    def kill_everything(self, extra=()):
        for process, _ in list(self.transitions.values()) + list(self.runs.values()):
            process.kill_now()
        for process in extra:
            process.kill_now()
        self.transitions.clear()
        self.runs.clear()
        self.successors.clear()

    def close(self):
        self.spawner.close()
