"""Write operations on launcher records (``models.LauncherRecord``): a
launcher registers when it starts, is seen again with each lease heartbeat
(``seen``, called by ``leases.heartbeat_leases`` in the same request) and
marks itself stopped when it shuts down cleanly."""

from django.utils import timezone

from balsam.core.models import LauncherRecord
from balsam.core.operations import validation
from balsam.exceptions import NotFound


def register_launcher(owner, host, pid, job_mode, num_nodes, capacity, lease_expiry_sec, wf_filter="",
                      queued_launch_id=None):
    """Record a launcher that starts now (again, if ``owner`` is known: a
    retried request finds its own row); returns the record's id."""
    owner = validation.owner(owner)
    now = timezone.now()
    fields = {
        "host": validation.text("host", host),
        "pid": validation.whole_number("pid", pid),
        "job_mode": validation.job_mode(job_mode),
        "num_nodes": validation.whole_number("num_nodes", num_nodes),
        "capacity": validation.whole_number("capacity", capacity),
        "lease_expiry_sec": float(validation.positive_number("lease_expiry_sec", lease_expiry_sec)),
        "wf_filter": validation.text("wf_filter", wf_filter, allow_empty=True),
        "queued_launch_id": None if queued_launch_id is None else validation.whole_number("queued_launch_id",
                                                                                          queued_launch_id),
        "started_at": now, "last_seen_at": now, "stopped_at": None,
    }
    qs = LauncherRecord.objects.filter(owner=owner)
    if qs._direct_update(**fields):
        return qs.values_list("pk", flat=True).get()
    return LauncherRecord.objects._direct_bulk_create([LauncherRecord(owner=owner, **fields)])[0].pk


def seen(owner, now):
    """The launcher ``owner`` is alive at ``now`` (no record: nothing to do)."""
    LauncherRecord.objects.filter(owner=owner)._direct_update(last_seen_at=now)


def stop_launcher(owner):
    """The launcher ``owner`` stopped cleanly now; returns the time (ISO)."""
    now = timezone.now()
    if not LauncherRecord.objects.filter(owner=validation.owner(owner))._direct_update(last_seen_at=now,
                                                                                       stopped_at=now):
        raise NotFound(f"no launcher record for {owner!r}")
    return now.isoformat()


OPERATIONS = {
    "register_launcher": register_launcher,
    "stop_launcher": stop_launcher,
}
