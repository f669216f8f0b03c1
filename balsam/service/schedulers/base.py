"""The interface every scheduler adapter implements.

Adapters run the scheduler's own commands (argument lists, never a shell)
and parse their output; they import neither Django nor each other.
"""

import shutil
import subprocess

from balsam.core.launch_states import FINISHED, RUNNING
from balsam.exceptions import BalsamError

COMMAND_TIMEOUT_SEC = 60


def states_by_id(pairs, scheduler_ids, table):
    """``{id: state}`` for ``scheduler_ids`` from the scheduler's ``(id, its
    state name)`` pairs: names not in ``table`` count as RUNNING, ids it no
    longer lists as FINISHED."""
    found = {job: table.get(state, RUNNING) for job, state in pairs}
    return {i: found.get(i, FINISHED) for i in scheduler_ids}


class SchedulerError(BalsamError):
    """A scheduler command failed or is missing; the message says which and why."""


class Scheduler:
    """A batch scheduler driven by its commands: an adapter names its delete
    command and builds its status command and parser (or overrides
    ``status``/``delete`` altogether, like the local one)."""

    name = "?"
    delete_command = None

    def submit(self, script_path, launch):
        """Submit ``script_path``; return the scheduler's id for it."""
        raise NotImplementedError

    def status_argv(self, scheduler_ids):
        raise NotImplementedError

    def parse_status(self, text, scheduler_ids):
        raise NotImplementedError

    def status(self, scheduler_ids):
        """``{id: QUEUED | RUNNING | FINISHED | FAILED}`` (``core.launch_states``); ids the scheduler
        no longer knows are FINISHED."""
        if not scheduler_ids:
            return {}
        return self.parse_status(self.run(self.status_argv(scheduler_ids), "read job states"), scheduler_ids)

    def delete(self, scheduler_id):
        self.run([self.delete_command, str(scheduler_id)], "cancel the launch")

    # -- helpers ------------------------------------------------------------------
    def run(self, argv, what):
        """Run a scheduler command; its stdout, or one clear ``SchedulerError``."""
        if shutil.which(argv[0]) is None:
            raise SchedulerError(f"{argv[0]} is not installed or not on PATH (needed to {what} with {self.name})")
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            raise SchedulerError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_SEC} s (trying to {what})") from None
        if result.returncode != 0:
            detail = " ".join((result.stderr or result.stdout).split()) or f"exit code {result.returncode}"
            raise SchedulerError(f"{argv[0]} failed to {what}: {detail}")
        return result.stdout
