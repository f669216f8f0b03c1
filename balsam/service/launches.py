"""Submitting, following and cancelling launches (used by ``balsam
submit-launch``, ``balsam service`` and ``balsam cancel-launch``)."""

import datetime
import logging
import math
from pathlib import Path

from django.utils import timezone

from balsam.core import launch_states, queries, write_client
from balsam.core.models import QueuedLaunch
from balsam.exceptions import NotFound
from balsam.service import templates
from balsam.service.schedulers import get_scheduler

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
    client = write_client.get()
    script = Path(db_path) / SCRIPT_DIR / f"qlaunch{launch.pk}.sh"
    try:
        if tie_limit is None:
            tie_limit = nodes * policy.queue(queue).jobs_per_node if job_mode == "serial" else 10**9
        scope = mode_scope(job_mode, nodes, wf_filter)
        # Only jobs that fit in the launcher's time limit: others would hold it idle.
        scope["max_wall_time_minutes"] = templates.launcher_minutes(wall_minutes)
        client.tie_jobs(launch.pk, tie_limit, scope)
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
    launch.state = launch_states.QUEUED
    launch.submit_time = timezone.now()
    launch.script_path = str(script)
    launch.save()
    logger.info("submitted launch %s to %s as %s (%d nodes, %g min, %s)", launch.pk, policy.scheduler,
                scheduler_id, nodes, wall_minutes, job_mode)
    return launch


PENDING_EXPIRY_SEC = 600  # a launch still pending-submission after this was never submitted


def sync_launches(policy):
    """Bring every active launch up to date with its scheduler; ended launches
    free their unfinished jobs. Returns the launches that ended."""
    ended = []
    stale = timezone.now() - datetime.timedelta(seconds=PENDING_EXPIRY_SEC)
    for launch in queries.unsubmitted_launches(stale):
        # Its submitter died between recording and submitting it.
        write_client.get().end_launch(launch.pk, launch_states.FAILED)
        ended.append(launch)
    active = queries.active_launches(in_states=launch_states.IN_SCHEDULER)
    for scheduler_name in set(active.values_list("scheduler", flat=True)):
        ended += _sync(scheduler_name, list(active.filter(scheduler=scheduler_name)))
    return ended


def _sync(scheduler_name, active):
    seen = get_scheduler(scheduler_name).status([launch.scheduler_id for launch in active])
    ended = []
    for launch in active:
        state = seen.get(launch.scheduler_id, launch_states.FINISHED)
        if state == launch_states.RUNNING and launch.state != launch_states.RUNNING:
            launch.state = launch_states.RUNNING
            launch.save()
        elif state not in launch_states.IN_SCHEDULER:
            final = launch_states.FAILED if state == launch_states.FAILED else launch_states.FINISHED
            freed = write_client.get().end_launch(launch.pk, final)
            logger.info("launch %s %s; %d unfinished job(s) freed", launch.pk, final, freed)
            ended.append(launch)
    return ended


def cancel_launch(launch_id):
    launch = queries.launch(launch_id)
    if launch is None:
        raise NotFound(f"no launch with id {launch_id}; see: balsam ls queues")
    if launch.state in launch_states.ACTIVE and launch.scheduler_id:
        scheduler = get_scheduler(launch.scheduler)
        if scheduler.status([launch.scheduler_id])[launch.scheduler_id] in launch_states.IN_SCHEDULER:
            scheduler.delete(launch.scheduler_id)
        else:
            _sync(launch.scheduler, [launch])
            launch.refresh_from_db()
    if launch.state not in launch_states.ACTIVE:
        raise NotFound(f"launch {launch_id} already ended ({launch.state})")
    freed = write_client.get().end_launch(launch.pk, launch_states.CANCELLED)
    return launch, freed


def untied_work(job_mode, max_nodes, max_minutes):
    """Unfinished jobs no launch will run yet and a launch of at most
    ``max_nodes`` and ``max_minutes`` could: (count, nodes the MPI ones need)."""
    scope = mode_scope(job_mode, max_nodes)
    scope["max_wall_time_minutes"] = templates.launcher_minutes(max_minutes)
    if job_mode == "serial":
        return queries.untied_jobs(scope).count(), 0
    return queries.untied_size(scope)


def unplaceable_work(most_nodes, longest_minutes):
    """Unfinished untied jobs no launch could run (see ``queries.unplaceable_work``)."""
    return queries.unplaceable_work(most_nodes, longest_minutes)


def launch_size(job_mode, count, mpi_nodes, queue_policy):
    """Nodes for a launch that runs ``count`` jobs, within the queue's bounds."""
    if job_mode == "serial":
        wanted = math.ceil(count / max(1, queue_policy.jobs_per_node))
    else:
        wanted = mpi_nodes
    return max(queue_policy.min_nodes, min(queue_policy.max_nodes, wanted))
