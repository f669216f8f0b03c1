"""PBS Pro: qsub, qstat -x, qdel (Torque's qstat differs and is not supported)."""

from balsam.core.launch_states import FINISHED, QUEUED, RUNNING
from balsam.service.schedulers.base import Scheduler

STATES = {"Q": QUEUED, "H": QUEUED, "W": QUEUED, "T": QUEUED, "S": QUEUED,
          "R": RUNNING, "E": RUNNING, "B": RUNNING, "F": FINISHED, "C": FINISHED, "X": FINISHED}


class PBSScheduler(Scheduler):
    name = "pbs"

    def submit(self, script_path, launch):
        return self.run(["qsub", str(script_path)], "submit the launch").strip()

    delete_command = "qdel"

    def status_argv(self, scheduler_ids):
        return ["qstat", "-x", *scheduler_ids]

    def parse_status(self, text, scheduler_ids):
        """Rows of ``qstat`` (Job id, Name, User, Time Use, S, Queue) after the header rule."""
        found = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 6 and not line.startswith(("Job", "-")):
                found[parts[0]] = STATES.get(parts[4], RUNNING)
        states = {}
        for i in scheduler_ids:
            # qstat may shorten "123.server.domain" to "123.server"
            match = next((state for job, state in found.items() if i.startswith(job) or job.startswith(i)), None)
            states[i] = match or FINISHED
        return states
