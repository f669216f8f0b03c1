"""What the launcher does for a job in each state it processes, as a table.

``STEPS`` maps each state to a ``Step``: a function deciding either a state
to move to at once (a ``Move``) or a process to run (a ``ProcessSpec``), and
the set of states the step can lead to -- inline, after its process, or on
failure. ``after_process`` turns a finished process into the next move. The
unit tests check every declared target against the transition table, and
every decision against its step's targets. Pure decisions plus file work in
the job's directory; all DB writes are the launcher's.
"""

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from balsam.core import states
from balsam.launcher import staging

# Message prefix of the reruns counted in a job's ``timeout_retries``.
OVERRUN_RETRY = "timed out; retry"


@dataclass
class Move:
    state: str
    message: str = ""
    fields: dict = field(default_factory=dict)  # set on the job with the move


@dataclass
class ProcessSpec:
    kind: str
    argv: list
    log_name: str
    handler: str = None  # "ERROR" / "TIMEOUT" for postprocess as handler
    header: str = ""


@dataclass(frozen=True)
class StepContext:
    """What a step needs beyond the job and its application."""

    parent_dirs: tuple = ()  # (parent id, its working directory, its run output name)
    overran: bool = False  # the job was killed for running past its own wall time
    max_timeout_retries: int = 5


@dataclass(frozen=True)
class Step:
    decide: object  # (job, app, StepContext) -> Move | ProcessSpec
    targets: frozenset  # every state the step can lead to


# After a transition process exits 0, by its kind.
AFTER_PROCESS = {
    "stage_in": states.STAGED_IN,
    "preprocess": states.PREPROCESSED,
    "postprocess": states.POSTPROCESSED,
    "stage_out": states.JOB_FINISHED,
}
# The launcher's own moves around a run (outside the step table): starting it,
# and how it can end (FAILED: it could not start).
RUN_START = {states.PREPROCESSED: states.RUNNING, states.RESTART_READY: states.RUNNING}
RUN_ENDS = frozenset({states.RUN_DONE, states.RUN_ERROR, states.RUN_TIMEOUT, states.FAILED})


def script_argv(command):
    return shlex.split(command)


def _pre(job, app):
    return job.preprocess or (app.preprocess if app else "")


def _post(job, app):
    return job.postprocess or (app.postprocess if app else "")


def _ready(job, app, ctx):
    # Without parents' files to link, the directory is left to the spawner,
    # which makes it for the job's first process (off the launcher's loop).
    if ctx.parent_dirs:
        workdir = Path(job.working_directory)
        workdir.mkdir(parents=True, exist_ok=True)
        staging.link_parent_files(workdir, job.input_files, [(pk, d) for pk, d, _ in ctx.parent_dirs],
                                  skip_names={out for _, _, out in ctx.parent_dirs})
    if job.stage_in_url:
        return ProcessSpec("stage_in", staging.transfer_in_command(job.stage_in_url, Path(job.working_directory)),
                           "stage_in.log", header=f"# stage in from {job.stage_in_url}")
    return Move(states.STAGED_IN)


def _staged_in(job, app, ctx):
    pre = _pre(job, app)
    if pre:
        return ProcessSpec("preprocess", script_argv(pre), "preprocess.log", header=f"# preprocess: {pre}")
    return Move(states.PREPROCESSED, "no preprocess")


def _run_done(job, app, ctx):
    post = _post(job, app)
    if post:
        return ProcessSpec("postprocess", script_argv(post), "postprocess.log", header=f"# postprocess: {post}")
    return Move(states.POSTPROCESSED, "no postprocess")


def _postprocessed(job, app, ctx):
    if job.stage_out_url:
        argv = staging.transfer_out_command(job.working_directory, job.stage_out_files, job.stage_out_url)
        if argv:
            return ProcessSpec("stage_out", argv, "stage_out.log", header=f"# stage out to {job.stage_out_url}")
    return Move(states.JOB_FINISHED)


def _run_error(job, app, ctx):
    post = _post(job, app)
    if job.post_error_handler and post:
        return ProcessSpec("postprocess", script_argv(post), "postprocess.log", handler="ERROR",
                           header=f"# postprocess: {post}\n# Invoked to handle RUN_ERROR")
    return Move(states.FAILED, "run error and no error handler")


def _run_timeout(job, app, ctx):
    post = _post(job, app)
    if job.post_timeout_handler and post:
        return ProcessSpec("postprocess", script_argv(post), "postprocess.log", handler="TIMEOUT",
                           header=f"# postprocess: {post}\n# Invoked to handle RUN_TIMEOUT")
    if not job.auto_timeout_retry:
        return Move(states.FAILED, "timed out and auto_timeout_retry is off")
    if not ctx.overran:  # stopped by a launcher going away: the job did no wrong
        return Move(states.RESTART_READY, "timed out; retrying")
    done = job.timeout_retries
    if done >= ctx.max_timeout_retries:
        return Move(states.FAILED, f"ran past its wall time {done + 1} times; giving up "
                                   f"(launcher_max_timeout_retries = {ctx.max_timeout_retries})")
    return Move(states.RESTART_READY, f"{OVERRUN_RETRY} {done + 1} of {ctx.max_timeout_retries}",
                fields={"timeout_retries": done + 1})


STEPS = {
    states.READY: Step(_ready, frozenset({states.STAGED_IN, states.FAILED})),
    states.STAGED_IN: Step(_staged_in, frozenset({states.PREPROCESSED, states.FAILED})),
    states.RUN_DONE: Step(_run_done, frozenset({states.POSTPROCESSED, states.FAILED})),
    states.POSTPROCESSED: Step(_postprocessed, frozenset({states.JOB_FINISHED, states.FAILED})),
    # With a handler the script moves the job itself; the launcher only fails it.
    states.RUN_ERROR: Step(_run_error, frozenset({states.FAILED})),
    states.RUN_TIMEOUT: Step(_run_timeout, frozenset({states.RESTART_READY, states.FAILED})),
}


def next_step(job, app, ctx=StepContext()):
    """The step for ``job`` in its current state, or None if it is not ours to process."""
    step = STEPS.get(job.state)
    return None if step is None else step.decide(job, app, ctx)


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
    return Move(AFTER_PROCESS[spec.kind])
