"""Slurm: sbatch, squeue, scancel."""

from balsam.service.schedulers.base import FAILED, FINISHED, QUEUED, RUNNING, Scheduler

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
        return parse_squeue(text, scheduler_ids)


def parse_squeue(text, scheduler_ids):
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[0]] = STATES.get(parts[1].rstrip("+"), RUNNING)
    return {i: found.get(i, FINISHED) for i in scheduler_ids}
