"""This machine: the launch script runs as a detached process (the default, so
the whole service loop works on a laptop)."""

import os
import subprocess

from pathlib import Path

import psutil

from balsam.core.launch_states import FINISHED, RUNNING
from balsam.service.schedulers.base import Scheduler


class LocalScheduler(Scheduler):
    name = "local"

    def submit(self, script_path, launch):
        script_path = Path(script_path)
        with open(script_path.with_suffix(".out"), "ab") as out:
            process = subprocess.Popen(["bash", str(script_path)], cwd=script_path.parent, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        # pid and start time: a pid alone could be reused after the launch ends
        return f"{process.pid}@{psutil.Process(process.pid).create_time():.2f}"

    def status(self, scheduler_ids):
        return {i: RUNNING if _alive(i) else FINISHED for i in scheduler_ids}

    def delete(self, scheduler_id):
        if _alive(scheduler_id):
            os.killpg(int(scheduler_id.split("@")[0]), 15)


def _alive(scheduler_id):
    pid, _, started = scheduler_id.partition("@")
    try:
        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            try:
                os.waitpid(int(pid), os.WNOHANG)  # our own child: reap it
            except ChildProcessError:
                pass
            return False
        return not started or abs(process.create_time() - float(started)) < 1
    except (psutil.NoSuchProcess, ValueError):
        return False


__all__ = ["LocalScheduler"]
