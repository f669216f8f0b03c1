"""The reads: every query the launcher, the service, the api (and through it
the CLI) and the write operations make about jobs, in one place.

Functions take plain values and return querysets or plain values. Nothing
here writes. Raw SQL is used only on the launcher's hot paths, through
``core.sql`` (table names from the models).
"""

import datetime
import functools
import json
import re
import uuid
from collections import defaultdict
from pathlib import Path

from django.db import connection
from django.db.models import Count, Max, Q, Sum

from balsam.core import launch_states, sql, states
from balsam.core.json_values import job_id
from balsam.core.models import ApplicationDefinition, BalsamJob, DBIdentity, JobDependency, QueuedLaunch
from balsam.core.models.job_rows import JOB_ROW_FIELDS, JobRow
from balsam.exceptions import ValidationError


# The order a launcher takes jobs in: by state, then in the order they
# entered it. Both job indexes on state end in (state, state_changed_at), so
# a query in this order reads the first rows of the index and stops at its
# LIMIT; ordering by creation time instead sorted every candidate (0.6-0.9 s
# for a million jobs, on every claim, inside the write lock).
IN_STATE_ORDER = ("state", "state_changed_at")


# ---------------------------------------------------------------------------
# scopes: the jobs a launcher, a launch or a service pass works on
# ---------------------------------------------------------------------------
def job_scope(workflow=None, job_ids=None, serial_only=False, max_num_nodes=None, max_wall_time_minutes=None,
              queued_launch=None, mpi_only=False):
    """The jobs a launcher works on: its workflow or job list, and what fits its
    mode (serial: one node, one rank), its allocation and its time left."""
    qs = BalsamJob.objects.all()
    if workflow is not None:
        qs = qs.filter(workflow=workflow)
    if job_ids is not None:
        qs = qs.filter(pk__in=[job_id(i) for i in job_ids])
    if serial_only:
        qs = qs.filter(num_nodes=1, ranks_per_node=1)
    if mpi_only:
        qs = qs.exclude(num_nodes=1, ranks_per_node=1)
    if max_num_nodes is not None:
        qs = qs.filter(num_nodes__lte=max_num_nodes)
    if max_wall_time_minutes is not None:
        qs = qs.filter(wall_time_minutes__lte=max_wall_time_minutes)
    if queued_launch is not None:
        qs = qs.filter(queued_launch_id=queued_launch)
    return qs


def scope_from(options):
    """``job_scope(**options)`` for options that came in a request: one clear
    error for anything else."""
    if options is None:
        return job_scope()
    if not isinstance(options, dict):
        raise ValidationError("scope must be an object of job_scope options")
    try:
        return job_scope(**options)
    except TypeError as exc:
        raise ValidationError(f"bad job scope: {exc}") from None


def untied_jobs(scope):
    """Unfinished jobs in ``scope`` (options) that no launch will run yet."""
    return scope_from(scope).filter(queued_launch__isnull=True).exclude(state__in=states.END_STATES)


def untied_size(scope):
    """(how many unfinished untied jobs ``scope`` holds, the nodes they need together)."""
    found = untied_jobs(scope).aggregate(count=Count("*"), nodes=Sum("num_nodes"))
    return found["count"], found["nodes"] or 0


def has_unfinished(scope):
    return scope_from(scope).exclude(state__in=states.END_STATES).exists()


def unplaceable_work(most_nodes, longest_minutes):
    """Unfinished untied jobs no launch could run: more than ``most_nodes`` nodes
    or longer than ``longest_minutes``. (count, the largest num_nodes, the
    longest wall_time_minutes among them)."""
    too_big = Q(num_nodes__gt=most_nodes) | Q(wall_time_minutes__gt=longest_minutes)
    found = (BalsamJob.objects.filter(too_big, queued_launch__isnull=True).exclude(state__in=states.END_STATES)
             .aggregate(count=Count("pk"), nodes=Max("num_nodes"), minutes=Max("wall_time_minutes")))
    return found["count"], found["nodes"] or 0, found["minutes"] or 0


def state_counts(queryset=None):
    """{state: jobs} over ``queryset`` (default: every job)."""
    qs = queryset if queryset is not None else BalsamJob.objects.all()
    # COUNT(*), not COUNT(pk): SQLite then answers from the state index alone.
    return dict(qs.order_by().values_list("state").annotate(n=Count("*")).values_list("state", "n"))


def workflow_state_counts(workflow=None):
    """{workflow: {state: jobs}}."""
    qs = BalsamJob.objects.all()
    if workflow:
        qs = qs.filter(workflow=workflow)
    per_state = {}
    for name, state, n in qs.order_by().values_list("workflow", "state").annotate(n=Count("*")):
        per_state.setdefault(name, {})[state] = n
    return per_state


# ---------------------------------------------------------------------------
# single jobs and lists of them
# ---------------------------------------------------------------------------
def jobs_by_id(ids):
    """The jobs with these ids (any order; missing ones are left out)."""
    found = []
    for chunk in sql.chunks(ids):
        found.extend(BalsamJob.objects.filter(pk__in=chunk))
    return found


def job_rows(ids):
    """The jobs with these ids as ``JobRow``s (plain values, no model
    instances: what a launcher reads for every job it claims), in the order
    of ``ids`` (a claim's order is the order to run them in); missing ones
    are left out."""
    head = _job_row_select(connection.vendor)
    ids = [job_id(i) for i in ids]
    wanted = sql.pk_params(ids)
    found = {}  # stored id -> row
    for chunk in sql.chunks(wanted):
        for values in sql.raw_fetchall(head + sql.marks(len(chunk)) + ")", chunk):
            found[values[0]] = values
    return [JobRow.from_db(found[key], pk) for key, pk in zip(wanted, ids) if key in found]


@functools.lru_cache(maxsize=4)
def _job_row_select(vendor):
    """``SELECT <JOB_ROW_FIELDS> FROM <job table> WHERE job_id IN (`` (the
    caller adds the marks), made once per backend: a launcher reads rows on
    every claim."""
    columns = ", ".join(connection.ops.quote_name(BalsamJob._meta.get_field(name).column) for name in JOB_ROW_FIELDS)
    # And whether it has parents (``JobRow.has_parents``): a launcher reads
    # its parents' directories only for jobs that have some.
    return f"SELECT {columns}, {has_parents()} FROM {sql.table(BalsamJob)} WHERE job_id IN ("


def has_parents():
    """SQL, true for a row of the job table that has parents (a condition or a column)."""
    return (f"EXISTS (SELECT 1 FROM {sql.table(JobDependency)} d "
            f"WHERE d.child_id = {sql.table(BalsamJob)}.job_id)")


def stored_state(pk):
    return BalsamJob.objects.filter(pk=pk).values_list("state", flat=True).first()


def jobs_with_id_prefix(prefix, limit):
    """Up to ``limit`` jobs whose id starts with ``prefix`` (hex digits, no dashes)."""
    qs = BalsamJob.objects.filter(pk=prefix) if len(prefix) == 32 else BalsamJob.objects.filter(job_id__startswith=prefix)
    return list(qs[:limit])


def jobs_named(name, limit=None):
    qs = BalsamJob.objects.filter(name=name)
    return list(qs if limit is None else qs[:limit])


def job_ids(name=None):
    """Ids of every job, or of those named exactly ``name``."""
    qs = BalsamJob.objects.all() if name is None else BalsamJob.objects.filter(name=name)
    return list(qs.values_list("pk", flat=True))


def jobs_matching(name_contains=None, id_prefix=None, state=None, workflow=None):
    """The listing behind ``balsam ls``: a queryset, filtered by what is given."""
    qs = BalsamJob.objects.all()
    if id_prefix:
        qs = qs.filter(job_id__startswith=id_prefix)
    if name_contains:
        qs = qs.filter(name__contains=name_contains)
    if state is not None:
        qs = qs.filter(state=states.validate_state_name(state))
    if workflow:
        qs = qs.filter(workflow=workflow)
    return qs


def application(name):
    """The application named ``name``, or None."""
    return ApplicationDefinition.objects.filter(name=name).first()


def application_by_id(pk):
    return ApplicationDefinition.objects.filter(pk=pk).first()


def applications(name=None):
    """Every application (by name), or the one named exactly ``name``."""
    return list(ApplicationDefinition.objects.filter(name=name) if name else ApplicationDefinition.objects.all())


def parent_ids(pk):
    return list(JobDependency.objects.filter(child_id=pk).values_list("parent_id", flat=True))


# ---------------------------------------------------------------------------
# dependencies
# ---------------------------------------------------------------------------
def waiting_jobs(scope=None, ids=None, limit=None):
    """``[(id, state, wait_for_parents)]`` of jobs still waiting on their
    parents, within ``scope`` (options), or among ``ids`` (any scope)."""
    if ids is None:
        part = (scope_from(scope).filter(state__in=states.WAITING_STATES).order_by(*IN_STATE_ORDER)
                .values_list("pk", "state", "wait_for_parents"))
        return list(part if limit is None else part[:limit])
    # Among ids: found by id alone, the state checked here. With the state in
    # the query SQLite may choose the state index instead of the id's and read
    # every waiting job of the DB (a million-job backlog: over a second).
    rows = [(pk, state, bool(wait)) for pk, state, wait in _rows_by_id(
        ids, f"SELECT job_id, state, wait_for_parents FROM {sql.table(BalsamJob)} WHERE job_id IN ({{marks}})")
        if state in states.WAITING_STATES]
    return rows if limit is None else rows[:limit]


def _rows_by_id(ids, select):
    """The rows of ``select`` (SQL whose first column is a job id, with
    ``{marks}`` where the IN list of ``ids`` goes), run over ``ids`` in chunks,
    that first column as a UUID. Not the ORM: its IN lookup prepares each of a
    thousand ids in Python at several times the cost of the query, and the
    launcher reads a new submission's thousand jobs this way twice."""
    ids = [job_id(pk) for pk in ids]
    ours = dict(zip(sql.pk_params(ids), ids))  # the DB's form of each id -> the UUID
    rows = []
    with connection.cursor() as cursor:
        for chunk in sql.chunks(ours):
            cursor.execute(select.format(marks=sql.marks(len(chunk))), chunk)
            rows += [(ours[key] if key in ours else job_id(key), *values) for key, *values in cursor.fetchall()]
    return rows


def parent_states(child_ids):
    """{child id: [each parent's state]} for the children that have parents."""
    found = defaultdict(list)
    for child, state in _rows_by_id(child_ids, (
            f"SELECT d.child_id, p.state FROM {sql.table(JobDependency)} d "
            f"JOIN {sql.table(BalsamJob)} p ON p.job_id = d.parent_id WHERE d.child_id IN ({{marks}})")):
        found[child].append(state)
    return found


def relatives(ids):
    """({job: [parent ids]}, {job: [child ids]}) for ``ids`` in one query."""
    parents, children = defaultdict(list), defaultdict(list)
    wanted = set(ids)
    rows = []
    # Raw SQL: the launcher asks on every pass that starts jobs, and building
    # the ORM's OR-query costs more than running it. Each id appears twice.
    for chunk in sql.chunks(sql.pk_params(ids), per_item=2):
        marks = sql.marks(len(chunk))
        rows += sql.raw_fetchall(f"SELECT child_id, parent_id FROM {sql.table(JobDependency)} "
                                 f"WHERE child_id IN ({marks}) OR parent_id IN ({marks})", chunk + chunk)
    for child, parent in ((uuid.UUID(str(c)), uuid.UUID(str(p))) for c, p in rows):
        if child in wanted:
            parents[child].append(parent)
        if parent in wanted:
            children[parent].append(child)
    return parents, children


def parent_dirs(child_ids, data_dir):
    """{child id: [(parent id, the parent's working directory, its name)]};
    ``data_dir`` is the DB's ``data/``."""
    dirs = defaultdict(list)
    data_dir = Path(data_dir)
    for chunk in sql.chunks(child_ids):
        rows = JobDependency.objects.filter(child_id__in=chunk).values_list(
            "child_id", "parent_id", "parent__workdir", "parent__user_workdir", "parent__name")
        for child, parent, workdir, user_dir, name in rows:
            dirs[child].append((parent, user_dir or str(data_dir / workdir), name))
    return dirs


def edges_among(ids):
    """``[(child, parent)]`` of the dependency edges between jobs of ``ids``."""
    wanted = set(ids)
    edges = []
    for chunk in sql.chunks(wanted):
        for child, parent in JobDependency.objects.filter(child_id__in=chunk).values_list("child_id", "parent_id"):
            if parent in wanted:
                edges.append((child, parent))
    return edges


# ---------------------------------------------------------------------------
# leases
# ---------------------------------------------------------------------------
def killed_jobs(owner):
    """Ids of the jobs ``owner`` holds that a user has killed since. (Raw
    SQL: a launcher asks twice a second, and building the ORM's query cost
    more than the lease index's answer.)"""
    rows = sql.raw_fetchall(f"SELECT job_id FROM {sql.table(BalsamJob)} WHERE lease_owner = %s AND state = %s",
                            [owner, states.USER_KILLED])
    return [job_id(pk) for pk, in rows]


def lapsed_leases(now, lease_expiry_sec):
    """Leases past the expiry time their holder set. A lease without one
    (set by hand, say) lapses ``lease_expiry_sec`` after its last heartbeat."""
    cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
    unset = Q(lease_expires_at__isnull=True)
    return Q(lease_expires_at__lt=now) | (unset & Q(lease_heartbeat__lt=cutoff)) | (unset & Q(lease_heartbeat__isnull=True))


def claimable_jobs(wanted_states, scope, now, lease_expiry_sec):
    """Jobs in ``wanted_states`` within ``scope`` (options) that nobody holds,
    or whose lease lapsed: what a launcher may claim."""
    return scope_from(scope).filter(Q(lease_owner="") | lapsed_leases(now, lease_expiry_sec), state__in=wanted_states)


def claimable_ids(wanted_states, scope, now, lease_expiry_sec, limit, lock=False):
    """Up to ``limit`` ids (as stored) of ``claimable_jobs``, in the order to
    run them (``IN_STATE_ORDER``); ``lock``: taken ``FOR UPDATE SKIP LOCKED``
    on PostgreSQL (``sql.claimable``), for the claim's own write."""
    return [pk for pk, in sql.raw_fetchall(*_claimable_select(wanted_states, scope, now, lease_expiry_sec, limit,
                                                               lock))]


# A launcher's claims run the same SELECT every time but for its times and its
# limit: compiled by Django once per (states, scope, expiry, lock), with marker
# times whose parameters are then swapped for the real ones (a third of a
# claim's CPU was Django building and compiling the query).
_MARK = datetime.datetime(1901, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc)
_LIMIT = re.compile(r" LIMIT (\d+)")
_CLAIMABLE_SELECTS = {}  # key -> (statement with LIMIT %s, params, {index: "now" or "cutoff"}), or None
_UNKNOWN = object()
_MAX_CLAIMABLE_SELECTS = 16  # a launcher with a time limit has a new scope each claim: those are not kept


def _claimable_select(wanted_states, scope, now, lease_expiry_sec, limit, lock):
    """``(statement, params)`` of ``claimable_ids``: the kept plan of these
    options with this call's times and limit, or Django's query compiled now
    (options JSON cannot key, a plan that could not be made, a full table)."""
    try:
        key = (connection.vendor, tuple(wanted_states), json.dumps(scope, sort_keys=True), lease_expiry_sec, lock)
    except TypeError:
        key = None  # a scope JSON cannot hold: compiled every time
    plan = _CLAIMABLE_SELECTS.get(key, _UNKNOWN) if key is not None else None
    if plan is _UNKNOWN:
        plan = _compile_claimable_select(wanted_states, scope, lease_expiry_sec, max(limit, 1), lock)
        if len(_CLAIMABLE_SELECTS) < _MAX_CLAIMABLE_SELECTS:
            _CLAIMABLE_SELECTS[key] = plan  # (None too: that query is compiled every time, not tried again)
    if plan is None:
        return _compiled_claimable(wanted_states, scope, now, lease_expiry_sec, limit, lock)
    statement, params, times = plan
    cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
    values = {"now": _time_param(now), "cutoff": _time_param(cutoff)}
    params = list(params)
    for index, which in times.items():
        params[index] = values[which]
    return statement, params + [limit]


def _compiled_claimable(wanted_states, scope, now, lease_expiry_sec, limit, lock):
    qs = claimable_jobs(wanted_states, scope, now, lease_expiry_sec).order_by(*IN_STATE_ORDER)
    return (sql.claimable(qs) if lock else qs).values_list("pk")[:limit].query.sql_with_params()


def _compile_claimable_select(wanted_states, scope, lease_expiry_sec, limit, lock):
    """``(statement with LIMIT %s, params, {index: "now"|"cutoff"})``, or None
    when the compiled query does not show its times and limit exactly once."""
    statement, params = _compiled_claimable(wanted_states, scope, _MARK, lease_expiry_sec, limit, lock)
    marks = {_time_param(_MARK): "now", _time_param(_MARK - datetime.timedelta(seconds=lease_expiry_sec)): "cutoff"}
    times = {i: marks[p] for i, p in enumerate(params) if isinstance(p, (str, datetime.datetime)) and p in marks}
    if sorted(times.values()) != ["cutoff", "now"] or _LIMIT.findall(statement) != [str(limit)]:
        return None
    return _LIMIT.sub(" LIMIT %s", statement), tuple(params), times


def _time_param(moment):
    """A time as Django passes it to this backend's driver."""
    return connection.ops.adapt_datetimefield_value(moment)


def commits_seen():
    """A counter that moves when another connection commits to the DB
    (SQLite's ``data_version``, read from the WAL index in shared memory: no
    table is read, whatever the DB's size); None on backends without one."""
    if connection.vendor != "sqlite":
        return None
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA data_version")
        return cursor.fetchone()[0]


def not_leased_by(owner, ids):
    """Those of ``ids`` whose lease ``owner`` no longer holds (it lapsed and
    another launcher recovered or claimed the job). Found by id alone
    (``_rows_by_id``: the ORM prepared each id at several times the query's cost)."""
    rows = _rows_by_id(ids, f"SELECT job_id, lease_owner FROM {sql.table(BalsamJob)} WHERE job_id IN ({{marks}})")
    return [pk for pk, holder in rows if holder != owner]


# ---------------------------------------------------------------------------
# launches
# ---------------------------------------------------------------------------
def launches_with_job_counts():
    """Every launch, oldest first, with ``tied``: how many jobs are tied to it."""
    return QueuedLaunch.objects.annotate(tied=Count("jobs")).order_by("id")


def tied_job_count(launch_id):
    return BalsamJob.objects.filter(queued_launch_id=launch_id).count()


def active_launches(scheduler=None, queue=None, in_states=launch_states.ACTIVE):
    """Launches in ``in_states`` (default: still active), optionally of one scheduler and queue."""
    qs = QueuedLaunch.objects.filter(state__in=in_states)
    if scheduler is not None:
        qs = qs.filter(scheduler=scheduler)
    if queue is not None:
        qs = qs.filter(queue=queue)
    return qs


def unsubmitted_launches(recorded_before):
    """Launches still pending submission that were recorded before ``recorded_before``."""
    return list(QueuedLaunch.objects.filter(state=launch_states.PENDING, created_at__lt=recorded_before))


def launch(launch_id):
    return QueuedLaunch.objects.filter(pk=launch_id).first()


def db_id():
    """This DB's identity ('' for a DB whose schema predates it)."""
    return DBIdentity.objects.values_list("db_id", flat=True).first() or ""
