"""Job states, their groups and the transition table.

Pure Python (no Django): the launcher, the dbserver and the docs all read it.
``check_transition`` is the rule; ``BalsamJob.update_state`` and the write path's
transition operation are the only places that apply it.
"""

from balsam.exceptions import InvalidStateTransition

CREATED = "CREATED"
AWAITING_PARENTS = "AWAITING_PARENTS"
READY = "READY"
STAGED_IN = "STAGED_IN"
PREPROCESSED = "PREPROCESSED"
RUNNING = "RUNNING"
RUN_DONE = "RUN_DONE"
POSTPROCESSED = "POSTPROCESSED"
JOB_FINISHED = "JOB_FINISHED"
RUN_TIMEOUT = "RUN_TIMEOUT"
RUN_ERROR = "RUN_ERROR"
RESTART_READY = "RESTART_READY"
FAILED = "FAILED"
USER_KILLED = "USER_KILLED"
PARENT_KILLED = "PARENT_KILLED"

ALL_STATES = (
    CREATED,
    AWAITING_PARENTS,
    READY,
    STAGED_IN,
    PREPROCESSED,
    RUNNING,
    RUN_DONE,
    POSTPROCESSED,
    JOB_FINISHED,
    RUN_TIMEOUT,
    RUN_ERROR,
    RESTART_READY,
    FAILED,
    USER_KILLED,
    PARENT_KILLED,
)

# The four groups partition ALL_STATES (checked below and in the tests).
# PROCESSABLE: the launcher has a transition step for it; RUNNABLE: a runner may
# start it; ACTIVE: an application process is running; END: nothing more happens
# unless a user retries a FAILED job.
PROCESSABLE_STATES = frozenset(
    {CREATED, AWAITING_PARENTS, READY, STAGED_IN, RUN_DONE, POSTPROCESSED, RUN_TIMEOUT, RUN_ERROR}
)
RUNNABLE_STATES = frozenset({PREPROCESSED, RESTART_READY})
ACTIVE_STATES = frozenset({RUNNING})
END_STATES = frozenset({JOB_FINISHED, FAILED, USER_KILLED, PARENT_KILLED})

# A child in one of these is still waiting on its parents.
WAITING_STATES = frozenset({CREATED, AWAITING_PARENTS})
# A parent that ends here can never finish, so its waiting children are settled.
KILLING_STATES = frozenset({FAILED, USER_KILLED, PARENT_KILLED})
# States nothing may leave.
FINAL_STATES = frozenset({JOB_FINISHED, USER_KILLED, PARENT_KILLED})
# What a launcher leases: every state it has a step for, except the waiting
# ones (dependency resolution moves those, for any launcher), and the runnable.
CLAIMABLE_STATES = (PROCESSABLE_STATES - WAITING_STATES) | RUNNABLE_STATES

_forward = {
    CREATED: {AWAITING_PARENTS, READY},
    AWAITING_PARENTS: {READY},
    READY: {STAGED_IN},
    STAGED_IN: {PREPROCESSED},
    PREPROCESSED: {RUNNING},
    RESTART_READY: {RUNNING},
    # RESTART_READY from RUNNING: a launcher's lease expired mid-run.
    RUNNING: {RUN_DONE, RUN_ERROR, RUN_TIMEOUT, RESTART_READY},
    RUN_DONE: {POSTPROCESSED},
    POSTPROCESSED: {JOB_FINISHED},
    # What an error or timeout handler (a postprocess script) may decide, and the
    # launcher's own default handling (auto timeout retry).
    RUN_ERROR: {JOB_FINISHED, RESTART_READY},
    RUN_TIMEOUT: {JOB_FINISHED, RESTART_READY},
    # A user retries a failed job: from the start, or straight to a rerun.
    FAILED: {CREATED, RESTART_READY},
}

TRANSITIONS = {}
for _state in ALL_STATES:
    _targets = set(_forward.get(_state, ()))
    if _state not in END_STATES:
        # Anything still in progress can fail or be killed by a user.
        _targets |= {FAILED, USER_KILLED}
    if _state in WAITING_STATES:
        _targets.add(PARENT_KILLED)
    if _state == FAILED:
        _targets.add(USER_KILLED)
    TRANSITIONS[_state] = frozenset(_targets)
del _state, _targets


def _check_groups():
    groups = (PROCESSABLE_STATES, RUNNABLE_STATES, ACTIVE_STATES, END_STATES)
    members = [s for g in groups for s in g]
    if sorted(members) != sorted(ALL_STATES):
        raise RuntimeError("state groups must partition ALL_STATES")
    for state in FINAL_STATES:
        if TRANSITIONS[state]:
            raise RuntimeError(f"final state {state} has outgoing transitions")


_check_groups()


def validate_state_name(state):
    """Return ``state`` upper-cased, or raise with the list of valid names."""
    name = str(state).strip().upper()
    if name not in TRANSITIONS:
        raise InvalidStateTransition(
            f"unknown state {state!r}; valid states: {', '.join(ALL_STATES)}"
        )
    return name


def is_allowed(from_state, to_state):
    return to_state in TRANSITIONS.get(from_state, ())


def check_transition(from_state, to_state, job_label="job"):
    """Raise ``InvalidStateTransition`` unless ``from_state -> to_state`` is allowed."""
    to_state = validate_state_name(to_state)
    if is_allowed(from_state, to_state):
        return to_state
    if from_state in FINAL_STATES:
        reason = f"{from_state} is final"
    else:
        allowed = ", ".join(sorted(TRANSITIONS[from_state])) or "none"
        reason = f"allowed from {from_state}: {allowed}"
    raise InvalidStateTransition(
        f"{job_label} cannot move from {from_state} to {to_state} ({reason})"
    )


def after_parents(state, wait_for_parents, parent_states):
    """Where a waiting job goes, given its parents' states: ``(state,
    message)``, or None while it keeps waiting."""
    if state not in WAITING_STATES:
        return None
    if not parent_states:
        return READY, "no parents"
    if all(s == JOB_FINISHED for s in parent_states):
        return READY, "parents finished"
    if not wait_for_parents:
        return READY, "does not wait for its parents"
    if state == CREATED:
        return AWAITING_PARENTS, f"waiting for {len(parent_states)} parent(s)"
    return None


# ---------------------------------------------------------------------------
# Restart rules: what happens to each state when a dbserver (or, without one,
# the first launcher) starts on a DB -- like a job store's clean-up at a node's
# restart. Applied by the write operation ``apply_restart_rules``, after it
# counted the jobs per state in one pass. "Lapsed": a lease past its expiry
# (its launcher stopped heartbeating); a live lease is never touched.
# ---------------------------------------------------------------------------
NO_ACTION = "none"
RELEASE_LAPSED = "release-lapsed-lease"
RECOVER_LAPSED = "recover-lapsed-lease"
SETTLE_IF_PARENT_DEAD = "settle-if-parent-dead"

RESTART_ACTIONS = {
    NO_ACTION: "No action.",
    RELEASE_LAPSED: "A lapsed lease is released; the job stays in its state (the next launcher with work for it "
                    "picks it up).",
    RECOVER_LAPSED: f"A lapsed lease (or none for longer than the lease expiry) is released and the job moves to "
                    f"{RESTART_READY} with the event \"restart: launcher ... stopped heartbeating\".",
    SETTLE_IF_PARENT_DEAD: f"A job waiting on a parent that can never finish becomes {PARENT_KILLED}, with its event; "
                           f"a lapsed lease is released.",
}

RESTART_RULES = {
    CREATED: SETTLE_IF_PARENT_DEAD,
    AWAITING_PARENTS: SETTLE_IF_PARENT_DEAD,
    READY: RELEASE_LAPSED,
    STAGED_IN: RELEASE_LAPSED,
    PREPROCESSED: RELEASE_LAPSED,
    RUNNING: RECOVER_LAPSED,
    RUN_DONE: RELEASE_LAPSED,
    POSTPROCESSED: RELEASE_LAPSED,
    JOB_FINISHED: RELEASE_LAPSED,
    RUN_TIMEOUT: RELEASE_LAPSED,
    RUN_ERROR: RELEASE_LAPSED,
    RESTART_READY: RELEASE_LAPSED,
    FAILED: RELEASE_LAPSED,
    USER_KILLED: RELEASE_LAPSED,
    PARENT_KILLED: RELEASE_LAPSED,
}
if set(RESTART_RULES) != set(ALL_STATES) or not set(RESTART_RULES.values()) <= set(RESTART_ACTIONS):
    raise RuntimeError("RESTART_RULES must give every state one known action")


def restart_states(action):
    """The states the restart rules give ``action``."""
    return sorted(s for s, a in RESTART_RULES.items() if a == action)


def restart_rules_table():
    """The restart rules as a Markdown table (docs/states.md embeds this text; a test checks it)."""
    lines = ["| State | At a restart |", "|-------|--------------|"]
    lines += [f"| `{state}` | {RESTART_ACTIONS[RESTART_RULES[state]]} |" for state in ALL_STATES]
    return "\n".join(lines)


def mermaid_diagram():
    """The transition table as a Mermaid state diagram (the docs embed this text)."""
    lines = ["stateDiagram-v2", f"    [*] --> {CREATED}"]
    for state in ALL_STATES:
        for target in sorted(TRANSITIONS[state]):
            lines.append(f"    {state} --> {target}")
    return "\n".join(lines)
