"""The launcher's step table: every target a step declares is a legal move,
every decision stays within its step's targets, and the timeout retry limit
is counted in ``timeout_retries``."""

import itertools
from types import SimpleNamespace

import pytest

from balsam.core import states
from balsam.launcher import steps


def test_every_declared_target_is_allowed_by_the_transition_table():
    for state, step in steps.STEPS.items():
        for target in step.targets:
            assert states.is_allowed(state, target), f"{state} -> {target}"
    for state, target in steps.RUN_START.items():
        assert states.is_allowed(state, target)
    for target in steps.RUN_ENDS:
        assert states.is_allowed(states.RUNNING, target)
    for kind, target in steps.AFTER_PROCESS.items():
        assert target in states.ALL_STATES, kind


def test_every_claimable_state_is_handled_by_a_step_or_a_run():
    assert set(steps.STEPS) | set(steps.RUN_START) == states.CLAIMABLE_STATES


def _job(tmp_path, state, **flags):
    fields = dict(state=state, preprocess="", postprocess="", stage_in_url="", stage_out_url="", stage_out_files="",
                  input_files="*", post_error_handler=False, post_timeout_handler=False, auto_timeout_retry=True,
                  timeout_retries=0, working_directory=str(tmp_path / "work"))
    fields.update(flags)
    return SimpleNamespace(**fields)


VARIANTS = [
    dict(zip(("preprocess", "postprocess", "stage_in_url", "stage_out_url", "post_error_handler",
              "post_timeout_handler", "auto_timeout_retry", "timeout_retries"), values))
    for values in itertools.product(("", "pre.sh"), ("", "post.sh"), ("", "IN"), ("", "OUT"),
                                    (False, True), (False, True), (False, True), (0, 9))
]


@pytest.mark.parametrize("state", sorted(steps.STEPS))
def test_every_decision_stays_within_its_steps_targets(tmp_path, state):
    step = steps.STEPS[state]
    (tmp_path / "in.dat").write_text("data")
    places = {"": "", "IN": str(tmp_path / "in.dat"), "OUT": str(tmp_path / "out")}
    for flags, overran in itertools.product(VARIANTS, (False, True)):
        flags = dict(flags, stage_in_url=places[flags["stage_in_url"]], stage_out_url=places[flags["stage_out_url"]])
        job = _job(tmp_path, state, stage_out_files="*", **flags)
        decision = steps.next_step(job, None, steps.StepContext(overran=overran, max_timeout_retries=5))
        if isinstance(decision, steps.Move):
            assert decision.state in step.targets, (flags, decision)
            continue
        assert isinstance(decision, steps.ProcessSpec)
        for code, timed_out in ((0, False), (1, False), (0, True)):
            after = steps.after_process(decision, code, timed_out, "tail", stored_state=state)
            assert after is None or after.state in step.targets, (flags, decision.kind, after)


def test_states_without_a_step_are_not_processed(tmp_path):
    for state in set(states.ALL_STATES) - set(steps.STEPS):
        assert steps.next_step(_job(tmp_path, state), None) is None


def test_overrun_reruns_are_counted_in_the_field_up_to_the_limit(tmp_path):
    context = steps.StepContext(overran=True, max_timeout_retries=2)
    first = steps.next_step(_job(tmp_path, states.RUN_TIMEOUT), None, context)
    assert (first.state, first.fields) == (states.RESTART_READY, {"timeout_retries": 1})
    assert first.message == "timed out; retry 1 of 2"
    last = steps.next_step(_job(tmp_path, states.RUN_TIMEOUT, timeout_retries=2), None, context)
    assert last.state == states.FAILED and "ran past its wall time 3 times" in last.message
    # A timeout from a launcher stopping is not the job's fault: not counted.
    stopped = steps.next_step(_job(tmp_path, states.RUN_TIMEOUT, timeout_retries=2), None, steps.StepContext())
    assert (stopped.state, stopped.fields) == (states.RESTART_READY, {})


def test_handlers_that_leave_the_job_where_it_was_fail_it():
    spec = steps.ProcessSpec("postprocess", ["post.sh"], "postprocess.log", handler="ERROR")
    assert steps.after_process(spec, 0, False, "", states.RUN_ERROR).state == states.FAILED
    assert steps.after_process(spec, 0, False, "", states.RESTART_READY) is None
