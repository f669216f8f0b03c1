"""``balsam doctor [--wf NAME] [JOB]``: why nothing (or that job) is running,
in plain words, each cause with the command that would fix it.

Read only. Above the launcher and the service in the layers: it reads the
service's queue policy (``service.json``) and what launchers leave in the DB
(their leases); everything else through ``core.health``/``core.queries``.
"""

import datetime
import os
import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from django.utils import timezone

from balsam.core import health, launch_states, queries, states
from balsam.core.models import ApplicationDefinition, BalsamJob, LauncherRecord, QueuedLaunch
from balsam.dbserver.control import watchdog_running
from balsam.django_config import missing_schema_updates
from balsam.exceptions import ConfigError
from balsam.maintenance.backup import users

SHOWN = 5  # jobs named per finding
STUCK_QUEUED = datetime.timedelta(minutes=30)  # a launch queued longer than this is worth a look
# A launcher that holds nothing while jobs have been ready this long is idle, not between two passes.
IDLE_AFTER = datetime.timedelta(minutes=2)


@dataclass
class Finding:
    cause: str
    fix: str

    def as_dict(self):
        return asdict(self)


def _label(job):
    return f"[{job.name} | {job.pk.hex[:8]}]"


def _unfinished(workflow, job):
    qs = BalsamJob.objects.exclude(state__in=states.END_STATES)
    if job is not None:
        return qs.filter(pk=job.pk)
    return qs.filter(workflow=workflow) if workflow else qs


def diagnose(db_path, lease_expiry_sec, workflow=None, job=None):
    """The findings for the DB (or one workflow, or one job), most basic first."""
    missing = missing_schema_updates()
    if missing:  # the other checks read tables this DB may not have yet
        return [Finding(f"the DB's tables are older than this Balsam ({len(missing)} schema update(s) not applied, "
                        f"the latest {missing[-1]}): launchers and commands refuse it", f"balsam init {db_path}")]
    findings = []
    now = timezone.now()
    if workflow and not BalsamJob.objects.filter(workflow=workflow).exists():
        known = sorted(queries.workflow_state_counts())[:10]
        return [Finding(f"no job is in workflow {workflow!r} (workflows: {', '.join(map(repr, known)) or 'none'})",
                        "balsam ls wf")]
    unfinished = _unfinished(workflow, job)
    if job is not None and job.state in states.END_STATES:
        return [Finding(f"job {_label(job)} has ended: {job.state}", f"balsam ls --id {job.pk.hex[:8]} --history")]
    if not unfinished.exists():
        return [Finding("every job" + (f" of workflow {workflow!r}" if workflow else "") + " has ended: nothing to run",
                        "balsam ls --by-states")]
    findings += _activity(db_path, now)
    findings += _waiting(unfinished)
    findings += _dead_holders(unfinished, now, lease_expiry_sec)
    findings += _too_big(db_path, unfinished)
    launchers = _live_launchers(now)
    findings += _larger_than_launchers(unfinished, launchers)
    findings += _idle_launchers(launchers, now)
    findings += _stuck_launches(now)
    findings += _missing_executables(unfinished)
    return findings


def _activity(db_path, now):
    owners = health.live_lease_owners(now)
    active_launches = QueuedLaunch.objects.filter(state__in=launch_states.ACTIVE).count()
    service = any(u.startswith("a balsam service") for u in users(db_path))
    found = []
    if not owners and not active_launches and not service:
        found.append(Finding("no launcher, service or batch launch is active on this DB: nothing runs jobs",
                             "balsam launcher --consume-all   (or: balsam service)"))
    if len(owners) > 1 and not watchdog_running(db_path):
        found.append(Finding(f"{len(owners)} launchers write the DB file directly, without a dbserver: "
                             "they wait on each other's locks", f"balsam dbserver --path {shlex.quote(str(db_path))}"))
    return found


def _waiting(unfinished):
    waiting = list(unfinished.filter(state__in=states.WAITING_STATES, parents__isnull=False).distinct()[:SHOWN])
    total = unfinished.filter(state__in=states.WAITING_STATES, parents__isnull=False).distinct().count()
    found = []
    for child in waiting:
        parents = BalsamJob.objects.filter(child_links__child=child).values_list("pk", "name", "state")
        listed = ", ".join(f"[{name} | {pk.hex[:8]}] {state}" for pk, name, state in parents)
        found.append(Finding(f"job {_label(child)} waits on its parents: {listed}",
                             f"balsam ls --id {child.pk.hex[:8]} --tree"))
    if total > len(waiting):
        found.append(Finding(f"... and {total - len(waiting)} more jobs waiting on parents", "balsam ls --state "
                             "AWAITING_PARENTS"))
    return found


def _dead_holders(unfinished, now, lease_expiry_sec):
    """Leases still live whose holder stopped heartbeating (it heartbeats every expiry/3)."""
    quiet = now - datetime.timedelta(seconds=lease_expiry_sec / 2)
    held = (unfinished.exclude(lease_owner="").filter(lease_expires_at__gte=now, lease_heartbeat__lt=quiet)
            .values_list("lease_owner", "lease_heartbeat", "lease_expires_at"))
    owners = {}
    for owner, beat, expires in held:
        count, last, until = owners.get(owner, (0, beat, expires))
        owners[owner] = (count + 1, max(last, beat), max(until, expires))
    return [Finding(f"{count} job(s) are held by launcher {owner}, silent since {last:%Y-%m-%d %H:%M:%S} UTC "
                    f"(probably dead); its lease expires at {until:%Y-%m-%d %H:%M:%S} UTC, then any launcher takes them",
                    "wait until then, or stop that launcher; afterwards: balsam db check --repair")
            for owner, (count, last, until) in sorted(owners.items())]


def _too_big(db_path, unfinished):
    from balsam.service.policy import load_policy

    try:
        policy = load_policy(db_path)
    except ConfigError as exc:
        return [Finding(f"the queue policy cannot be read: {exc}", f"edit {Path(db_path) / 'service.json'}")]
    queues = list(policy.queues.values())
    if not queues or not policy.path.exists():  # no queue policy of the user's: a launcher runs any size
        return []
    most_nodes = max(q.max_nodes for q in queues)
    longest = max(q.max_minutes for q in queues)
    too_big = unfinished.filter(queued_launch__isnull=True).filter(num_nodes__gt=most_nodes) | unfinished.filter(
        queued_launch__isnull=True, wall_time_minutes__gt=longest)
    jobs = list(too_big.distinct()[:SHOWN])
    return [Finding(f"job {_label(j)} needs {j.num_nodes} node(s) for {j.wall_time_minutes:g} min, more than any "
                    f"queue allows ({most_nodes} node(s), {longest:g} min in {policy.path.name})",
                    f"balsam modify jobs {j.pk.hex[:8]} --attr num_nodes --value {most_nodes}   "
                    f"(or raise max_nodes/max_minutes in {policy.path})") for j in jobs]


def _live_launchers(now):
    """The launchers that have not stopped and were heard from within their own lease expiry."""
    records = LauncherRecord.objects.filter(stopped_at__isnull=True).order_by("owner")
    return [r for r in records if (now - r.last_seen_at).total_seconds() < r.lease_expiry_sec]


def _larger_than_launchers(unfinished, launchers):
    """Jobs no running launcher can place: more nodes than the largest one has."""
    if not launchers:
        return []
    largest = max(launchers, key=lambda r: r.num_nodes)
    too_big = unfinished.filter(num_nodes__gt=largest.num_nodes).order_by("num_nodes", "pk")
    jobs, total = list(too_big[:SHOWN]), too_big.count()
    where = f"launcher {largest.owner} on {largest.host}" if len(launchers) == 1 else \
        f"the largest of the {len(launchers)} running launchers ({largest.owner} on {largest.host})"
    found = [Finding(f"job {_label(j)} needs {j.num_nodes} node(s); {where} has {largest.num_nodes}",
                     f"balsam modify jobs {j.pk.hex[:8]} --attr num_nodes --value {largest.num_nodes}   "
                     f"(or run a launcher on {j.num_nodes} or more nodes)") for j in jobs]
    if total > len(jobs):
        found.append(Finding(f"... and {total - len(jobs)} more jobs larger than any running launcher",
                             f"run a launcher on more nodes, or lower their num_nodes: balsam modify jobs ID "
                             f"--attr num_nodes --value {largest.num_nodes}"))
    return found


def _idle_launchers(launchers, now):
    """Running launchers that hold no job although jobs they could take have
    waited for over ``IDLE_AFTER`` (in their workflow, mode and size)."""
    found = []
    for record in launchers:
        if BalsamJob.objects.filter(lease_owner=record.owner).exists():
            continue
        ready = queries.job_scope(workflow=record.wf_filter or None, serial_only=record.job_mode == "serial",
                                  max_num_nodes=record.num_nodes).filter(
            state__in=states.CLAIMABLE_STATES, lease_owner="", state_changed_at__lt=now - IDLE_AFTER)
        count = ready.count()
        if count and now - record.started_at > IDLE_AFTER:
            found.append(Finding(
                f"launcher {record.owner} on {record.host} is running but holds no job, while {count} job(s) it "
                f"could run have been ready for over {IDLE_AFTER.seconds // 60} minutes",
                f"balsam log --launcher {record.host}-{record.pid}   (what it is doing; or stop it and start another)"))
    return found


def _stuck_launches(now):
    stuck = QueuedLaunch.objects.filter(state=launch_states.QUEUED, submit_time__lt=now - STUCK_QUEUED)
    return [Finding(f"batch launch {launch.pk} ({launch.scheduler} job {launch.scheduler_id or '?'}, queue "
                    f"{launch.queue}) has waited in the scheduler's queue since {launch.submit_time:%Y-%m-%d %H:%M} UTC",
                    f"ask the scheduler why (squeue/qstat), or: balsam cancel-launch {launch.pk}")
            for launch in stuck.order_by("submit_time")[:SHOWN]]


def _missing_executables(unfinished):
    names = set(unfinished.exclude(application="").values_list("application", flat=True).distinct()[:1000])
    found = []
    for app in ApplicationDefinition.objects.filter(name__in=names).order_by("name"):
        try:
            program = shlex.split(app.executable)[0]
        except (ValueError, IndexError):
            program = app.executable
        located = shutil.which(program) if os.sep not in program else (program if os.access(program, os.X_OK) else None)
        if not located:
            found.append(Finding(f"application {app.name!r}: its executable {program} is not found on this machine",
                                 f"balsam modify apps {app.name} --attr executable --value /path/to/program"))
    return found
