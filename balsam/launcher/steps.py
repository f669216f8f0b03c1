"""What the launcher does for a job in each state it processes.

``next_step`` returns either a state to move to at once (with a message) or a
``ProcessSpec`` to run; ``after_process`` turns a finished process into the
next state. Pure decisions plus file work in the job's directory; all DB
writes are the launcher's.
"""

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from balsam.core import states
from balsam.launcher import staging


@dataclass
class Move:
    state: str
    message: str = ""


@dataclass
class ProcessSpec:
    kind: str
    argv: list
    log_name: str
    handler: str = None  # "ERROR" / "TIMEOUT" for postprocess as handler
    header: str = ""
    extra: dict = field(default_factory=dict)


def script_argv(command):
    return shlex.split(command)


def run_output_name(job_name):
    """The file a job's run writes its stdout and stderr to."""
    return ("".join(c if c.isalnum() or c in "._-" else "_" for c in job_name) or "job") + ".out"


def next_step(job, app, parent_dirs):
    """The step for ``job`` in its current state, or None if it is not ours to process.
    ``parent_dirs``: [(parent id, its working directory, its run output name)]."""
    state = job.state
    pre = job.preprocess or (app.preprocess if app else "")
    post = job.postprocess or (app.postprocess if app else "")
    if state == states.READY:
        workdir = Path(job.working_directory)
        if parent_dirs:  # else the spawner makes it for the job's first process (off the launcher's loop)
            workdir.mkdir(parents=True, exist_ok=True)
        staging.link_parent_files(workdir, job.input_files, [(pk, d) for pk, d, _ in parent_dirs],
                                  skip_names={out for _, _, out in parent_dirs})
        if job.stage_in_url:
            return ProcessSpec("stage_in", staging.transfer_in_command(job.stage_in_url, workdir), "stage_in.log",
                               header=f"# stage in from {job.stage_in_url}")
        return Move(states.STAGED_IN)
    if state == states.STAGED_IN:
        if pre:
            return ProcessSpec("preprocess", script_argv(pre), "preprocess.log", header=f"# preprocess: {pre}")
        return Move(states.PREPROCESSED, "no preprocess")
    if state == states.RUN_DONE:
        if post:
            return ProcessSpec("postprocess", script_argv(post), "postprocess.log", header=f"# postprocess: {post}")
        return Move(states.POSTPROCESSED, "no postprocess")
    if state == states.POSTPROCESSED:
        if job.stage_out_url:
            argv = staging.transfer_out_command(job.working_directory, job.stage_out_files, job.stage_out_url)
            if argv:
                return ProcessSpec("stage_out", argv, "stage_out.log", header=f"# stage out to {job.stage_out_url}")
        return Move(states.JOB_FINISHED)
    if state == states.RUN_ERROR:
        if job.post_error_handler and post:
            return ProcessSpec("postprocess", script_argv(post), "postprocess.log", handler="ERROR",
                               header=f"# postprocess invoked to handle RUN_ERROR: {post}")
        return Move(states.FAILED, "run error and no error handler")
    if state == states.RUN_TIMEOUT:
        if job.post_timeout_handler and post:
            return ProcessSpec("postprocess", script_argv(post), "postprocess.log", handler="TIMEOUT",
                               header=f"# postprocess invoked to handle RUN_TIMEOUT: {post}")
        if job.auto_timeout_retry:
            return Move(states.RESTART_READY, "timed out; retrying")
        return Move(states.FAILED, "timed out and auto_timeout_retry is off")
    return None


def after_process(spec, code, timed_out, tail, stored_state):
    """The move after a transition process ended (None: the script decided itself)."""
    if timed_out:
        return Move(states.FAILED, f"{spec.kind} timed out")
    if code != 0:
        return Move(states.FAILED, f"{spec.kind} exited with code {code}: {tail}")
    if spec.handler:
        handled = states.RUN_ERROR if spec.handler == "ERROR" else states.RUN_TIMEOUT
        if stored_state == handled:
            return Move(states.FAILED, f"the {spec.handler.lower()} handler left the job in {handled}")
        return None
    return {
        "stage_in": Move(states.STAGED_IN),
        "preprocess": Move(states.PREPROCESSED),
        "postprocess": Move(states.POSTPROCESSED),
        "stage_out": Move(states.JOB_FINISHED),
    }[spec.kind]
