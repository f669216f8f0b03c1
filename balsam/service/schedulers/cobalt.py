"""Cobalt (ALCF): qsub, qstat, qdel. The script's resources go on the qsub line."""

import math

from balsam.core.launch_states import FAILED, FINISHED, QUEUED, RUNNING
from balsam.service.schedulers.base import Scheduler, states_by_id

STATES = {"queued": QUEUED, "user_hold": QUEUED, "admin_hold": QUEUED, "starting": RUNNING, "running": RUNNING,
          "exiting": RUNNING, "killing": RUNNING, "done": FINISHED, "failed": FAILED}


class CobaltScheduler(Scheduler):
    name = "cobalt"

    def submit(self, script_path, launch):
        output_prefix = str(script_path)[: -len(".sh")] if str(script_path).endswith(".sh") else str(script_path)
        argv = ["qsub", "-n", str(launch["nodes"]), "-t", str(math.ceil(float(launch["wall_minutes"]))),
                "-q", launch["queue"], "--mode", "script", "-O", output_prefix]
        if launch.get("project"):
            argv += ["-A", launch["project"]]
        out = self.run(argv + [str(script_path)], "submit the launch")
        return out.strip().splitlines()[-1].strip()

    delete_command = "qdel"

    def status_argv(self, scheduler_ids):
        return ["qstat", "--header", "JobID:State", *scheduler_ids]

    def parse_status(self, text, scheduler_ids):
        """``qstat --header JobID:State`` rows (numeric ids) under a header."""
        rows = (line.split() for line in text.splitlines())
        return states_by_id(((r[0], r[1].lower()) for r in rows if len(r) == 2 and r[0].isdigit()),
                            scheduler_ids, STATES)
