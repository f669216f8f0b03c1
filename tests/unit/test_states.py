import re
import subprocess
import sys
from pathlib import Path

import pytest

from balsam.core import states
from balsam.exceptions import InvalidStateTransition

DOCS = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def test_groups_partition_all_states():
    groups = [states.PROCESSABLE_STATES, states.RUNNABLE_STATES, states.ACTIVE_STATES, states.END_STATES]
    members = [s for g in groups for s in g]
    assert sorted(members) == sorted(states.ALL_STATES)
    assert len(members) == len(set(members)) == 15


@pytest.mark.parametrize("state", sorted(states.FINAL_STATES))
def test_final_states_have_no_exit(state):
    for target in states.ALL_STATES:
        assert not states.is_allowed(state, target)


@pytest.mark.parametrize(
    "path",
    [
        "CREATED AWAITING_PARENTS READY STAGED_IN PREPROCESSED RUNNING RUN_DONE POSTPROCESSED JOB_FINISHED",
        "PREPROCESSED RUNNING RUN_ERROR JOB_FINISHED",
        "PREPROCESSED RUNNING RUN_ERROR RESTART_READY RUNNING RUN_DONE",
        "PREPROCESSED RUNNING RUN_TIMEOUT RESTART_READY RUNNING",
        "PREPROCESSED RUNNING RUN_TIMEOUT JOB_FINISHED",
        "RUNNING RUN_TIMEOUT FAILED RESTART_READY",
        "RUNNING RUN_ERROR FAILED CREATED READY",
        "RUNNING RESTART_READY",
    ],
)
def test_lifecycles_of_the_original_are_allowed(path):
    steps = path.split()
    for a, b in zip(steps, steps[1:]):
        assert states.is_allowed(a, b), f"{a} -> {b}"


def test_every_unfinished_state_can_fail_or_be_killed():
    for state in set(states.ALL_STATES) - states.END_STATES:
        assert states.is_allowed(state, states.FAILED)
        assert states.is_allowed(state, states.USER_KILLED)


def test_only_waiting_states_become_parent_killed():
    sources = {s for s in states.ALL_STATES if states.is_allowed(s, states.PARENT_KILLED)}
    assert sources == {states.CREATED, states.AWAITING_PARENTS}


def test_illegal_transition_names_both_states_and_the_allowed_ones():
    with pytest.raises(InvalidStateTransition) as info:
        states.check_transition(states.CREATED, states.RUNNING, "[a | 12345678]")
    message = str(info.value)
    assert "[a | 12345678] cannot move from CREATED to RUNNING" in message
    assert "READY" in message


def test_final_state_message_says_final():
    with pytest.raises(InvalidStateTransition, match="USER_KILLED is final"):
        states.check_transition(states.USER_KILLED, states.READY)


def test_unknown_state_name_lists_valid_ones():
    with pytest.raises(InvalidStateTransition, match="unknown state 'DONE'.*JOB_FINISHED"):
        states.validate_state_name("DONE")
    assert states.validate_state_name("run_error") == "RUN_ERROR"


def test_states_module_does_not_import_django():
    code = "import sys, balsam.core.states; print('django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _diagram_edges(text):
    edges = set()
    for a, b in re.findall(r"^\s*(\S+)\s*-->\s*(\S+)\s*$", text, flags=re.M):
        if a != "[*]":
            edges.add((a, b))
    return edges


def test_docs_diagram_matches_the_transition_table():
    blocks = re.findall(r"```mermaid\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/states.md must hold exactly one mermaid diagram"
    table = {(a, b) for a, targets in states.TRANSITIONS.items() for b in targets}
    assert _diagram_edges(blocks[0]) == table
    assert _diagram_edges(states.mermaid_diagram()) == table
