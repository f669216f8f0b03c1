"""The launcher's batch: the order its moves are written in (issue 16: moves
to one state with one message share a request when every job's moves climb
its usual life; otherwise rounds keep each job's moves in its own order)."""

from balsam.core import states
from balsam.launcher.batch import Batch


def requests(moves):
    batch = Batch(client=None, owner="me")  # nothing is written: only the order is looked at
    try:
        for job, state, message in moves:
            batch.move(job, state, message)
        return [(sorted(ids), state) for ids, state, *_ in batch._move_requests()]
    finally:
        batch._writer.shutdown()


def test_moves_up_the_usual_life_share_one_request_per_state():
    got = requests([("a", states.STAGED_IN, ""), ("a", states.PREPROCESSED, "no preprocess"),
                    ("b", states.PREPROCESSED, "no preprocess"), ("c", states.RUN_DONE, "exit code 0"),
                    ("c", states.POSTPROCESSED, ""), ("b", states.RUNNING, "on vm")])
    assert got == [(["a"], states.STAGED_IN), (["a", "b"], states.PREPROCESSED), (["b"], states.RUNNING),
                   (["c"], states.RUN_DONE), (["c"], states.POSTPROCESSED)]


def test_any_other_move_keeps_the_rounds():
    got = requests([("a", states.RUNNING, "on vm"), ("a", states.RUN_TIMEOUT, "killed"),
                    ("a", states.RESTART_READY, ""), ("a", states.RUNNING, "on vm"), ("b", states.RUNNING, "on vm")])
    assert got == [(["a", "b"], states.RUNNING), (["a"], states.RUN_TIMEOUT), (["a"], states.RESTART_READY),
                   (["a"], states.RUNNING)]
