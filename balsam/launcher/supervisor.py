"""The launcher's running processes: each job's run (with the hosts it holds)
and its transition process (stage-in, pre/postprocess, stage-out), started
through one spawner. Stopping, reaping and replacing a dead spawner live
here; which job moves where is the launcher's business."""

import logging

from balsam.launcher.processes import ManagedProcess, Spawner

logger = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, base_env):
        self.base_env = base_env
        self.spawner = None  # started by start()
        self.runs = {}  # job id -> (ManagedProcess, hosts)
        self.transitions = {}  # job id -> (ManagedProcess, ProcessSpec)
        self._zombies = []  # stopped processes not yet reaped

    def start(self):
        self.spawner = Spawner(self.base_env)

    def busy(self):
        return bool(self.runs or self.transitions)

    def start_run(self, pk, hosts, argv, workdir, env, output, timeout):
        self.runs[pk] = (ManagedProcess(self.spawner, "run", pk, argv, workdir, env, output, timeout), hosts)

    def start_transition(self, pk, spec, workdir, env, log_path, timeout):
        process = ManagedProcess(self.spawner, spec.kind, pk, spec.argv, workdir, env, log_path, timeout,
                                 header=spec.header)
        self.transitions[pk] = (process, spec)

    def send(self):
        """Hand every start queued since the last call to the spawner."""
        self.spawner.send()

    def wait(self, timeout):
        """Sleep up to ``timeout``; a process ending ends the wait."""
        self.spawner.wait(timeout)

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

    def stop(self, pk):
        """Stop the job's process (SIGTERM, then SIGKILL); returns the hosts its run held, if any."""
        hosts = None
        for table in (self.runs, self.transitions):
            if pk in table:
                process, extra = table.pop(pk)
                process.kill()
                self._zombies.append(process)
                if table is self.runs:
                    hosts = extra
        return hosts

    def reap_stopped(self):
        for process in list(self._zombies):
            if process.poll() is not None:
                self._zombies.remove(process)

    def replace_spawner(self):
        """After the spawner died (someone killed it): stop what it had started
        -- its results are lost with it -- and start a new one. Returns the
        lost runs as ``{job id: hosts}``."""
        logger.error("the process spawner died; stopping its %d process(es) and starting a new one",
                     len(self.runs) + len(self.transitions))
        for process, _ in list(self.transitions.values()) + list(self.runs.values()):
            process.kill_group()
        lost = {pk: hosts for pk, (_, hosts) in self.runs.items()}
        self.runs.clear()
        self.transitions.clear()
        self._zombies.clear()
        self.spawner.close()
        self.start()
        return lost

    def terminate_runs(self):
        """SIGTERM every run (applications may save a checkpoint); returns
        ``[(job id, process)]`` for ``kill_everything`` to finish off."""
        stopped = [(pk, process) for pk, (process, _) in self.runs.items()]
        for _, process in stopped:
            process.kill()
        self.runs.clear()
        return stopped

    def kill_everything(self, extra=()):
        for process, _ in list(self.transitions.values()) + list(self.runs.values()):
            process.kill_now()
        for process in extra:
            process.kill_now()
        self.transitions.clear()
        self.runs.clear()

    def close(self):
        self.spawner.close()
