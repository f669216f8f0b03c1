"""Write operations on batch launches and the jobs tied to them (the service's writes)."""

from django.db import models
from django.utils import timezone

from balsam.core import launch_states, queries, sql, states
from balsam.core.models import BalsamJob, QueuedLaunch
from balsam.core.operations.validation import LAUNCH_FIELDS, clean_fields, job_mode
from balsam.exceptions import NotFound, ValidationError


def _clean_launch(fields):
    fields = clean_fields(QueuedLaunch, fields, LAUNCH_FIELDS)
    if "nodes" in fields and fields["nodes"] < 1:
        raise ValidationError(f"a launch needs at least 1 node, not {fields['nodes']}")
    if "wall_minutes" in fields and fields["wall_minutes"] <= 0:
        raise ValidationError(f"a launch needs a positive wall time, not {fields['wall_minutes']} minutes")
    if "job_mode" in fields:
        job_mode(fields["job_mode"])
    if "scheduler" in fields and fields["scheduler"] not in launch_states.SCHEDULERS:
        raise ValidationError(f"unknown scheduler {fields['scheduler']!r}; choose one of "
                              f"{', '.join(launch_states.SCHEDULERS)}")
    if "state" in fields and fields["state"] not in launch_states.ALL:
        raise ValidationError(f"a launch's state is one of {', '.join(launch_states.ALL)}, not {fields['state']!r}")
    return fields


def create_launches(rows):
    launches = [QueuedLaunch(**_clean_launch(row)) for row in rows]
    for launch in launches:
        if not launch.queue or not launch.scheduler:
            raise ValidationError("a launch needs a scheduler and a queue")
    return [launch.pk for launch in QueuedLaunch.objects._direct_bulk_create(launches)]


def update_launches(ids, fields):
    fields = _clean_launch(fields)
    qs = QueuedLaunch.objects.filter(pk__in=ids)
    if qs.count() != len(set(ids)):
        raise NotFound("no launch with that id")
    return qs._direct_update(**fields)


def delete_launches(ids):
    """Remove launches that never ran (a failed submission); their jobs are untied."""
    BalsamJob.objects.filter(queued_launch_id__in=ids)._direct_update(queued_launch=None)
    deleted, _ = models.QuerySet.delete(QueuedLaunch.objects.filter(pk__in=ids))
    return deleted


def tie_jobs(launch_id, limit, scope=None):
    """Tie up to ``limit`` unfinished, untied jobs in ``scope`` (options of
    ``queries.job_scope``) to the launch that will run them; returns how many."""
    if not QueuedLaunch.objects.filter(pk=launch_id).exists():
        raise NotFound(f"no launch with id {launch_id}")
    ids = list(queries.untied_jobs(scope or {}).order_by("created_at").values_list("pk", flat=True)[: int(limit)])
    for chunk in sql.chunks(ids):
        BalsamJob.objects.filter(pk__in=chunk)._direct_update(queued_launch=launch_id)
    return len(ids)


def end_launch(launch_id, state):
    """Record that a launch ended; its unfinished jobs become free to run again."""
    if state not in launch_states.ENDED:
        raise ValidationError(f"a launch ends finished, failed or cancelled, not {state!r}")
    updated = QueuedLaunch.objects.filter(pk=launch_id)._direct_update(state=state, end_time=timezone.now())
    if not updated:
        raise NotFound(f"no launch with id {launch_id}")
    return BalsamJob.objects.filter(queued_launch_id=launch_id).exclude(
        state__in=states.END_STATES)._direct_update(queued_launch=None)


OPERATIONS = {
    "create_launches": create_launches,
    "update_launches": update_launches,
    "delete_launches": delete_launches,
    "tie_jobs": tie_jobs,
    "end_launch": end_launch,
}
