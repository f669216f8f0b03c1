"""Write operations on the dependency graph: adding and removing edges (no
cycles, parents only for waiting jobs), and moving waiting jobs on once their
parents allow it."""

from collections import deque

from django.db import connection
from django.utils import timezone

from balsam.core import queries, sql, states
from balsam.core.json_values import job_id
from balsam.core.models import JobDependency
from balsam.core.operations.transitions import job_states, label, record, record_where, settle_children
from balsam.exceptions import DependencyError, NotFound


def _ancestors_include(start, target):
    """Is ``target`` ``start`` or one of its ancestors?"""
    seen = {start}
    queue = deque([start])
    while queue:
        batch = sql.batches(queue)
        if target in batch:
            return True
        for parent in JobDependency.objects.filter(child_id__in=batch).values_list("parent_id", flat=True):
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return False


def add_dependency(parent, child):
    parent, child = job_id(parent), job_id(child)
    found = job_states([parent, child])
    p_label, c_label = label(found[parent][1], parent), label(found[child][1], child)
    if parent == child:
        raise DependencyError(f"a job cannot depend on itself ({c_label})")
    if JobDependency.objects.filter(parent_id=parent, child_id=child).exists():
        raise DependencyError(f"{c_label} already depends on {p_label}")
    if _ancestors_include(parent, child):
        raise DependencyError(f"making {c_label} depend on {p_label} would create a cycle")
    child_state = found[child][0]
    if child_state not in states.WAITING_STATES:
        raise DependencyError(
            f"{c_label} is {child_state}; parents can only be added to jobs in CREATED or AWAITING_PARENTS"
        )
    JobDependency.objects._direct_bulk_create([JobDependency(parent_id=parent, child_id=child)])
    settled = []
    if found[parent][0] in states.KILLING_STATES:
        settled = settle_children([parent], found)
    return {"settled": settled}


def remove_dependency(parent, child):
    parent, child = job_id(parent), job_id(child)
    deleted = JobDependency.objects.filter(parent_id=parent, child_id=child)._raw_delete(connection.alias)
    if not deleted:
        raise NotFound(f"job {str(child)[:8]} does not depend on {str(parent)[:8]}")
    return deleted


def resolve_dependencies(ids):
    """Move the waiting jobs among ``ids`` on as their parents allow
    (``states.after_parents``): READY, or AWAITING_PARENTS while a CREATED
    job's parents are unfinished. The parents are read in the same transaction
    as the move, so a parent added a moment earlier is always counted. Jobs
    that stopped waiting meanwhile are left alone. Returns the moved ids.

    Most jobs have no parents: those go first, in one ``UPDATE`` whose own
    condition is "CREATED and no parents" (``record_where``), without reading
    them or their parents first -- a launcher moves every job of a fresh
    submission this way. The rest are read and judged by ``after_parents``."""
    ids = [job_id(i) for i in ids]
    now = timezone.now()
    ready, message = states.after_parents(states.CREATED, True, [])
    parentless = record_where(ids, states.CREATED, ready, message, now, f"NOT {queries.has_parents()}")
    rest = [pk for pk in ids if pk not in parentless]
    waiting = queries.waiting_jobs(ids=rest) if rest else []
    parents = queries.parent_states([pk for pk, _, _ in waiting])
    groups = {}
    for pk, state, wait in waiting:
        outcome = states.after_parents(state, wait, parents.get(pk, []))
        if outcome is not None:
            groups.setdefault(outcome, {})[pk] = state
    moved = {states.READY: [str(pk) for pk in parentless], states.AWAITING_PARENTS: []}
    for (to_state, message), moves in groups.items():
        record(moves, to_state, message, now)
        moved[to_state].extend(str(pk) for pk in moves)
    return {"ready": moved[states.READY], "awaiting": moved[states.AWAITING_PARENTS]}


OPERATIONS = {
    "add_dependency": add_dependency,
    "remove_dependency": remove_dependency,
    "resolve_dependencies": resolve_dependencies,
}
