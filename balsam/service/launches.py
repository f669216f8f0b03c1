"""Submitting, following and cancelling launches (used by ``balsam
submit-launch``, ``balsam service`` and ``balsam cancel-launch``)."""

import logging
import math
from pathlib import Path

from django.utils import timezone

from balsam.core.models import QueuedLaunch
from balsam.core.writes import job_scope
from balsam.dbclient import get_client
from balsam.exceptions import NotFound
from balsam.service import templates
from balsam.service.schedulers import get_scheduler
from balsam.service.schedulers.base import ACTIVE, FAILED, FINISHED, RUNNING

logger = logging.getLogger(__name__)

SCRIPT_DIR = "qsubmit"


def mode_scope(job_mode, nodes, wf_filter=""):
    """The jobs a launch of this mode and size is for (MPI launches are sized
    for multi-rank jobs only: single-rank ones go to serial launches)."""
    scope = {"serial_only": True} if job_mode == "serial" else {"mpi_only": True, "max_num_nodes": nodes}
    if wf_filter:
        scope["workflow"] = wf_filter
    return scope


def submit_launch(db_path, policy, queue, nodes, wall_minutes, job_mode, project="", wf_filter="", tie_limit=None):
    """Record, render and submit one launch; returns it. On any failure nothing
    stays recorded: the launch row, its script and its ties to jobs are undone."""
    policy.check(queue, nodes, wall_minutes)
    scheduler = get_scheduler(policy.scheduler)
    launch = QueuedLaunch(scheduler=policy.scheduler, queue=queue, project=project or "", nodes=nodes,
                          wall_minutes=wall_minutes, job_mode=job_mode, wf_filter=wf_filter or "")
    launch.save()
    client = get_client()
    script = Path(db_path) / SCRIPT_DIR / f"qlaunch{launch.pk}.sh"
    try:
        if tie_limit is None:
            tie_limit = nodes * policy.queue(queue).jobs_per_node if job_mode == "serial" else 10**9
        client.tie_jobs(launch.pk, tie_limit, mode_scope(job_mode, nodes, wf_filter))
        fields = {f: getattr(launch, f) for f in ("scheduler", "queue", "project", "nodes", "wall_minutes",
                                                  "job_mode", "wf_filter")}
        text = templates.render({"id": launch.pk, **fields}, db_path, script)
        script.parent.mkdir(exist_ok=True)
        script.write_text(text)
        script.chmod(0o755)
        scheduler_id = scheduler.submit(script, {"id": launch.pk, **fields})
    except BaseException:
        launch.delete()
        script.unlink(missing_ok=True)
        raise
    launch.scheduler_id = scheduler_id
    launch.state = QueuedLaunch.QUEUED
    launch.submit_time = timezone.now()
    launch.script_path = str(script)
    launch.save()
    logger.info("submitted launch %s to %s as %s (%d nodes, %g min, %s)", launch.pk, policy.scheduler,
                scheduler_id, nodes, wall_minutes, job_mode)
    return launch


def sync_launches(policy):
    """Bring every active launch up to date with the scheduler; ended launches
    free their unfinished jobs. Returns the launches that ended."""
    active = list(QueuedLaunch.objects.filter(state__in=[QueuedLaunch.QUEUED, QueuedLaunch.RUNNING],
                                              scheduler=policy.scheduler))
    if not active:
        return []
    seen = get_scheduler(policy.scheduler).status([launch.scheduler_id for launch in active])
    ended = []
    for launch in active:
        state = seen.get(launch.scheduler_id, FINISHED)
        if state == RUNNING and launch.state != QueuedLaunch.RUNNING:
            launch.state = QueuedLaunch.RUNNING
            launch.save()
        elif state not in ACTIVE:
            final = QueuedLaunch.FAILED if state == FAILED else QueuedLaunch.FINISHED
            freed = get_client().end_launch(launch.pk, final)
            logger.info("launch %s %s; %d unfinished job(s) freed", launch.pk, final, freed)
            ended.append(launch)
    return ended


def cancel_launch(launch_id):
    launch = QueuedLaunch.objects.filter(pk=launch_id).first()
    if launch is None:
        raise NotFound(f"no launch with id {launch_id}; see: balsam ls queues")
    if launch.state not in QueuedLaunch.ACTIVE_STATES:
        raise NotFound(f"launch {launch_id} already ended ({launch.state})")
    if launch.scheduler_id:
        get_scheduler(launch.scheduler).delete(launch.scheduler_id)
    freed = get_client().end_launch(launch.pk, QueuedLaunch.CANCELLED)
    return launch, freed


def untied_work(job_mode, max_nodes):
    """Unfinished jobs no launch will run yet: (count, nodes the MPI ones need)."""
    from balsam.core import states

    qs = job_scope(**mode_scope(job_mode, max_nodes)).filter(queued_launch__isnull=True).exclude(
        state__in=states.END_STATES)
    if job_mode == "serial":
        return qs.count(), 0
    sizes = list(qs.values_list("num_nodes", flat=True))
    return len(sizes), sum(sizes)


def launch_size(job_mode, count, mpi_nodes, queue_policy):
    """Nodes for a launch that runs ``count`` jobs, within the queue's bounds."""
    if job_mode == "serial":
        wanted = math.ceil(count / max(1, queue_policy.jobs_per_node))
    else:
        wanted = mpi_nodes
    return max(queue_policy.min_nodes, min(queue_policy.max_nodes, wanted))
