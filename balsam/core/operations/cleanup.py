"""Clean-up writes for ``balsam db check --repair``: what a check finds and
can fix without deciding anything for the user. (Recovering lapsed leases is
``leases.recover_expired_leases``.)"""

import datetime

from django.utils import timezone

from balsam.core import health
from balsam.core.models import AppliedRequest
from balsam.core.operations.transitions import settle_children
from balsam.core.operations.validation import positive_number


def settle_orphaned_waiters():
    """Jobs still waiting on a parent that can never finish (a parent that
    FAILED, or was killed, before the rule that settles its children ran, or
    in a DB written by hand) become PARENT_KILLED, as ``transition_jobs``
    would have made them. Returns the settled ids."""
    found, _ = health.waiting_on_dead_parents()
    dead = {}
    for _child, _name, parent, parent_state in found:
        dead.setdefault(parent, (parent_state, ""))
    return settle_children(list(dead), dead, timezone.now())


def prune_applied_requests(retention_sec):
    """Forget applied-request ids older than ``retention_sec`` (the dbserver
    does this every minute; a DB written without one keeps its ids). Returns how many."""
    positive_number("retention_sec", retention_sec)
    return AppliedRequest.objects.prune(timezone.now() - datetime.timedelta(seconds=retention_sec))


OPERATIONS = {
    "settle_orphaned_waiters": settle_orphaned_waiters,
    "prune_applied_requests": prune_applied_requests,
}
