"""What happened in a DB, computed for ``balsam report`` and the dashboard:
job counts by state and workflow, throughput and utilization over time,
recent failures with the end of their output, launchers and batch launches.

Reads only, no printing, no web code. The caller attaches Django first
(``balsam.api.attach()``). Every time is timezone-aware UTC.

Nothing here scans the job or event tables: counts come from
``balsam_job_count`` and series from ``balsam_state_minute``, two small
tables kept in every write transaction (migration 0008, ``models.JobCount``
and ``models.StateMinute``); failures and launchers are index lookups
bounded by ``limit``. See docs/development/decisions.md ("Analytics read
aggregates kept in the write transaction" and the two entries after it) for
the choices: buckets, rates, the time-weighted utilization, which states
count as failures, when a launcher is alive.
"""

import dataclasses
import datetime
import math
import re
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from balsam.core import outputs, sql, states
from balsam.core.models import BalsamJob, JobCount, JobEvent, LauncherRecord, QueuedLaunch, StateMinute
from balsam.exceptions import ValidationError

# Bucket widths a series may use (seconds): the narrowest that keeps a window
# within MAX_POINTS points. Whole minutes, because the aggregate is per minute.
BUCKETS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
MAX_POINTS = 500
# Jobs now in these states are the failures shown (RUN_TIMEOUT is not: a
# launcher that stops leaves its runs there, and they are retried; a job that
# keeps overrunning its wall time ends FAILED and shows then).
FAILURE_STATES = (states.FAILED, states.RUN_ERROR)
MAX_SINCE = datetime.timedelta(days=100 * 366)

_SINCE = re.compile(r"(\d{1,12}(?:\.\d{1,6})?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ---------------------------------------------------------------------------
# what the functions return
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WorkflowProgress:
    workflow: str
    total: int
    finished: int  # in JOB_FINISHED
    failed: int  # in FAILED
    by_state: dict  # every state of states.ALL_STATES: jobs

    @property
    def percent_finished(self):
        return 100.0 * self.finished / self.total if self.total else 0.0


@dataclasses.dataclass(frozen=True)
class Series:
    """Values over time: ``times[i]`` is the start of bucket i (UTC), which
    lasts ``bucket_seconds`` (the last one ends at the series' ``now``)."""

    title: str
    unit: str
    bucket_seconds: int
    times: list
    values: list
    capacity: list | None = None  # utilization: the launchers' run slots per bucket (None: no launcher seen)


@dataclasses.dataclass(frozen=True)
class Failure:
    job_id: str  # 32 hex digits
    short_id: str
    name: str
    workflow: str
    state: str
    at: datetime.datetime  # when it entered its state
    message: str  # the message of that state change
    output_tail: list  # last lines of its run's output file ([] when there is none)


@dataclasses.dataclass(frozen=True)
class LauncherSeen:
    owner: str
    host: str
    pid: int
    job_mode: str
    capacity: int
    started_at: datetime.datetime
    last_seen_at: datetime.datetime
    stopped_at: datetime.datetime | None
    jobs_held: int
    alive: bool


@dataclasses.dataclass(frozen=True)
class LaunchInfo:
    id: int
    scheduler: str
    scheduler_id: str
    queue: str
    nodes: int
    wall_minutes: float
    state: str
    submitted_at: datetime.datetime | None
    jobs: int


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------
def parse_since(text):
    """A time window like ``90s``, ``30m``, ``2h``, ``1d``, ``1w`` as a
    timedelta; ``all``, ``''`` or None: no window (None)."""
    if text is None:
        return None
    cleaned = str(text).strip().lower()
    if cleaned in ("", "all"):
        return None
    match = _SINCE.fullmatch(cleaned)
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]] if match else 0
    if not seconds or seconds > MAX_SINCE.total_seconds():
        shown = str(text) if len(str(text)) <= 40 else str(text)[:40] + "..."
        raise ValidationError(f"--since: expected a time window like 30m, 2h, 1d or all, not {shown!r}")
    return datetime.timedelta(seconds=seconds)


# ---------------------------------------------------------------------------
# counts
# ---------------------------------------------------------------------------
def _counts(workflow=None):
    """``[(workflow, state, jobs)]`` with jobs > 0 (``JobCount.objects.totals``)."""
    qs = JobCount.objects.all()
    return (qs if workflow is None else qs.filter(workflow=workflow)).totals()


def workflows():
    """The names of the workflows that have jobs, sorted."""
    return sorted({name for name, _, _ in _counts()})


def workflow_exists(name):
    return bool(_counts(name))


def state_counts(workflow=None):
    """{state: jobs} with every state of ``states.ALL_STATES`` (0 when none)."""
    counts = dict.fromkeys(states.ALL_STATES, 0)
    for _, state, n in _counts(workflow):
        counts[state] = counts.get(state, 0) + n
    return counts


def workflow_progress(workflow=None):
    """One ``WorkflowProgress`` per workflow with jobs (or just ``workflow``), by name."""
    per_workflow = {}
    for name, state, n in _counts(workflow):
        per_workflow.setdefault(name, dict.fromkeys(states.ALL_STATES, 0))[state] = n
    return [
        WorkflowProgress(name, sum(by_state.values()), by_state[states.JOB_FINISHED], by_state[states.FAILED],
                         by_state)
        for name, by_state in sorted(per_workflow.items())
    ]


# ---------------------------------------------------------------------------
# series
# ---------------------------------------------------------------------------
def bucket_seconds(span_seconds):
    """The narrowest bucket that cuts ``span_seconds`` into at most MAX_POINTS points."""
    for width in BUCKETS:
        if span_seconds <= width * MAX_POINTS:
            return width
    return BUCKETS[-1] * math.ceil(span_seconds / (BUCKETS[-1] * MAX_POINTS))


def _now(now):
    return now if now is not None else timezone.now()


def _workflow_clause(workflow):
    return ("", []) if workflow is None else (" AND workflow = %s", [workflow])


def _first_minute(state, workflow):
    """The earliest minute in which a job entered ``state``, or None."""
    where, params = _workflow_clause(workflow)
    rows = sql.raw_fetchall(f"SELECT min(minute) FROM {sql.table(StateMinute)} "
                            f"WHERE state = %s AND entered > 0{where}", [state] + params)
    return rows[0][0] if rows else None


def _window(since, now, first_minute):
    """(start, end, bucket) in epoch seconds: the window aligned down to its
    bucket, or None when there is nothing to show."""
    end = now.timestamp()
    if since is not None:
        start = end - since.total_seconds()
    elif first_minute is not None:
        start = min(first_minute * 60, end - 60)
    else:
        return None
    bucket = bucket_seconds(end - start)
    return start // bucket * bucket, end, bucket


def _bucket_times(start, end, bucket):
    return [datetime.datetime.fromtimestamp(t, datetime.timezone.utc) for t in range(int(start), math.ceil(end), bucket)]


def _title(what, workflow):
    return what if workflow is None else f"{what} (workflow {workflow})"


def _minute_sums(state, first_minute, workflow):
    """{minute: (jobs in, jobs out, their rest seconds in - out)} of ``state``
    from ``first_minute`` on: one range of the table's primary key."""
    where, params = _workflow_clause(workflow)
    rows = sql.raw_fetchall(
        f"SELECT minute, sum(entered), sum(exited), sum(entered_rest) - sum(exited_rest) "
        f"FROM {sql.table(StateMinute)} WHERE state = %s AND minute >= %s{where} GROUP BY minute",
        [state, first_minute] + params)
    return {minute: (entered, exited, rest) for minute, entered, exited, rest in rows}


def throughput(workflow=None, since=None, now=None):
    """Jobs reaching JOB_FINISHED, in jobs per minute averaged over each
    bucket (the last bucket over its elapsed part, at least a minute)."""
    now = _now(now)
    title = _title("Jobs finished per minute", workflow)
    window = _window(since, now, _first_minute(states.JOB_FINISHED, workflow) if since is None else None)
    if window is None:
        return Series(title, "jobs/min", BUCKETS[0], [], [])
    start, end, bucket = window
    finished = _minute_sums(states.JOB_FINISHED, int(start // 60), workflow)
    times = _bucket_times(start, end, bucket)
    totals = [0] * len(times)
    for minute, (n, _, _) in finished.items():
        if minute * 60 < end:  # not the minutes after now (when now is in the past)
            totals[int((minute * 60 - start) // bucket)] += n
    values = []
    for i, total in enumerate(totals):
        covered = min(bucket, max(60.0, end - (start + i * bucket)))
        values.append(total * 60.0 / covered)
    return Series(title, "jobs/min", bucket, times, values)


def _running_integrals(n_start, deltas, start, end, bucket):
    """Time-weighted mean of a job count per bucket.

    ``n_start``: the count at ``start``; ``deltas``: {minute: (net jobs in,
    net rest seconds)}. Within a minute the count changes at each event; an
    event ``r`` seconds before the minute's end adds (or takes) ``r`` job-
    seconds to the minute's integral, so summed rest seconds make it exact.
    The minute holding ``end`` is cut at ``end``."""
    count = n_start
    minutes = sorted(m for m in deltas if m * 60 >= start)
    values, i = [], 0
    for bucket_start in range(int(start), math.ceil(end), bucket):
        bucket_end = min(bucket_start + bucket, end)
        t, area = bucket_start, 0.0
        while i < len(minutes) and minutes[i] * 60 < bucket_end:
            minute_start = minutes[i] * 60
            area += count * (minute_start - t)
            jobs, rest = deltas[minutes[i]]
            length = min(60.0, bucket_end - minute_start)
            # rest seconds run to the minute's end; a cut minute ends early
            area += count * length + rest - jobs * (60.0 - length)
            count += jobs
            t = minute_start + length
            i += 1
        area += count * (bucket_end - t)
        values.append(max(0.0, area / (bucket_end - bucket_start)))
    return values


def _running_now(workflow):
    return state_counts(workflow)[states.RUNNING]


def utilization(workflow=None, since=None, now=None):
    """Jobs RUNNING, as a time-weighted mean over each bucket; ``capacity``:
    the run slots of the launchers active in each bucket, time-weighted the
    same way (None where no launcher was seen)."""
    now = _now(now)
    title = _title("Jobs running", workflow)
    window = _window(since, now, _first_minute(states.RUNNING, workflow) if since is None else None)
    if window is None:
        return Series(title, "jobs", BUCKETS[0], [], [], [])
    start, end, bucket = window
    deltas = {minute: (entered - exited, rest)
              for minute, (entered, exited, rest) in _minute_sums(states.RUNNING, int(start // 60), workflow).items()}
    # Counted back from now: the jobs running now, less those that started
    # since the window began, plus those that stopped since.
    n_start = _running_now(workflow) - sum(jobs for jobs, _ in deltas.values())
    values = _running_integrals(n_start, deltas, start, end, bucket)
    return Series(title, "jobs", bucket, _bucket_times(start, end, bucket), values,
                  _capacity(workflow, start, end, bucket, now))


def _capacity(workflow, start, end, bucket, now):
    """Per bucket: the launchers' run slots, weighted by the part of the
    bucket each was active in (from its start to its stop, or to its last
    sign of life if it died; to ``now`` while alive); None where none was."""
    start_dt = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
    end_dt = datetime.datetime.fromtimestamp(end, datetime.timezone.utc)
    records = LauncherRecord.objects.filter(started_at__lt=end_dt)
    if workflow is not None:
        records = records.filter(wf_filter__in=["", workflow])
    spans = []
    for record in records.exclude(stopped_at__lt=start_dt):
        last = record.stopped_at or (now if _alive(record, now) else record.last_seen_at)
        if last.timestamp() >= start:
            spans.append((record.started_at.timestamp(), last.timestamp(), record.capacity))
    capacity = []
    for bucket_start in range(int(start), math.ceil(end), bucket):
        bucket_end = min(bucket_start + bucket, end)
        slots, seen = 0.0, False
        for began, ended, slots_of in spans:
            overlap = min(ended, bucket_end) - max(began, bucket_start)
            if overlap > 0:
                seen = True
                slots += slots_of * overlap
        capacity.append(slots / (bucket_end - bucket_start) if seen else None)
    return capacity


# ---------------------------------------------------------------------------
# failures
# ---------------------------------------------------------------------------
def _job_dir(workdir, user_workdir):
    if user_workdir:
        return Path(user_workdir).expanduser()
    return Path(settings.BALSAM_DB_PATH) / "data" / workdir


def failures(workflow=None, since=None, limit=20, tail_lines=5):
    """The jobs now in ``FAILURE_STATES`` (FAILED, RUN_ERROR), latest first,
    each with the message it got there with and the last ``tail_lines`` lines
    of its run's output; within ``since`` of now when given."""
    columns = ("job_id", "name", "workflow", "state", "state_changed_at", "workdir", "user_workdir")
    found = []
    for state in FAILURE_STATES:
        qs = BalsamJob.objects.filter(state=state)
        if workflow is not None:
            qs = qs.filter(workflow=workflow)
        if since is not None:
            qs = qs.filter(state_changed_at__gte=timezone.now() - since)
        found += qs.order_by("-state_changed_at").values_list(*columns)[:limit]
    found = sorted(found, key=lambda row: row[4], reverse=True)[:limit]
    messages = _entry_messages({pk: state for pk, _, _, state, *_ in found})
    return [
        Failure(pk.hex, pk.hex[:8], name, wf, state, at, messages.get(pk, ""),
                outputs.tail_lines(_job_dir(workdir, user_dir) / outputs.run_output_name(name), tail_lines))
        for pk, name, wf, state, at, workdir, user_dir in found
    ]


def _entry_messages(job_states):
    """{job id: message of its latest move into its current state}."""
    latest = {}
    for chunk in sql.chunks(job_states):
        rows = (JobEvent.objects.filter(job__job_id__in=chunk).order_by("id")
                .values_list("job__job_id", "to_state", "message"))
        for pk, to_state, message in rows:
            if to_state == job_states[pk]:
                latest[pk] = message
    return latest


# ---------------------------------------------------------------------------
# launchers and launches
# ---------------------------------------------------------------------------
def _alive(record, now):
    """Not stopped, and heard from within its own lease expiry (it heartbeats
    every third of it: past the expiry its jobs are free for others)."""
    if record.stopped_at is not None:
        return False
    return (now - record.last_seen_at).total_seconds() < record.lease_expiry_sec


def launchers(limit=50):
    """The ``limit`` launchers that started last, latest first."""
    now = timezone.now()
    records = list(LauncherRecord.objects.order_by("-started_at", "-id")[:limit])
    held = dict(BalsamJob.objects.filter(lease_owner__in=[r.owner for r in records]).exclude(lease_owner="")
                .order_by().values_list("lease_owner").annotate(n=Count("*")).values_list("lease_owner", "n"))
    return [
        LauncherSeen(r.owner, r.host, r.pid, r.job_mode, r.capacity, r.started_at, r.last_seen_at, r.stopped_at,
                     held.get(r.owner, 0), _alive(r, now))
        for r in records
    ]


def launches(limit=50):
    """The ``limit`` batch launches recorded last, latest first, with the number of jobs tied to each."""
    rows = QueuedLaunch.objects.annotate(tied=Count("jobs")).order_by("-id")[:limit]
    return [LaunchInfo(l.pk, l.scheduler, l.scheduler_id, l.queue, l.nodes, l.wall_minutes, l.state, l.submit_time,
                       l.tied) for l in rows]
