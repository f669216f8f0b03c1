"""Slurm: sbatch, squeue, scancel."""

from balsam.core.launch_states import FAILED, FINISHED, QUEUED, RUNNING
from balsam.service.schedulers.base import Scheduler, states_by_id

STATES = {
    "PENDING": QUEUED, "CONFIGURING": QUEUED, "REQUEUED": QUEUED, "RESV_DEL_HOLD": QUEUED, "SUSPENDED": QUEUED,
    "RUNNING": RUNNING, "COMPLETING": RUNNING, "STAGE_OUT": RUNNING,
    "COMPLETED": FINISHED,
    "FAILED": FAILED, "CANCELLED": FAILED, "TIMEOUT": FINISHED, "NODE_FAIL": FAILED, "PREEMPTED": FAILED,
    "BOOT_FAIL": FAILED, "DEADLINE": FAILED, "OUT_OF_MEMORY": FAILED,
}


class SlurmScheduler(Scheduler):
    name = "slurm"

    def submit(self, script_path, launch):
        out = self.run(["sbatch", "--parsable", str(script_path)], "submit the launch")
        return out.strip().split(";")[0]

    delete_command = "scancel"

    def status_argv(self, scheduler_ids):
        return ["squeue", "-h", "-t", "all", "-j", ",".join(scheduler_ids), "-o", "%i %T"]

    def parse_status(self, text, scheduler_ids):
        """``squeue -o "%i %T"`` rows; a state may carry a "+" suffix."""
        rows = (line.split() for line in text.splitlines())
        return states_by_id(((r[0], r[1].rstrip("+")) for r in rows if len(r) == 2), scheduler_ids, STATES)
