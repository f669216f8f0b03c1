"""The reads behind ``balsam db stats`` and ``balsam db check`` (and the
clean-up operations that repair what ``check`` finds): sizes, counts, and the
queries that look for jobs breaking Balsam's own invariants.

Read only. Each query is written to stay fast on a million jobs: counts come
from indexes, "the last hour" is found by a binary search on the event ids
(appended in time order by the single writer), and the invariant checks walk
an index once each.
"""

import datetime
import os
import queue
import threading

from django.db import connection
from django.utils.dateparse import parse_datetime
from django.db.models import Max, Min

from balsam.core import sql, states
from balsam.core.json_values import job_id
from balsam.core.models import (AppliedRequest, ApplicationDefinition, BalsamJob, JobCount, JobDependency, JobEvent,
                                 QueuedLaunch)

# States a job reaches only after its application ran (its directory exists from then on).
RAN_STATES = frozenset(
    {states.RUNNING, states.RUN_DONE, states.POSTPROCESSED, states.JOB_FINISHED, states.RUN_ERROR, states.RUN_TIMEOUT}
)


def stamp(moment):
    """A datetime as the backend stores it, for raw comparisons."""
    return connection.ops.adapt_datetimefield_value(moment)


def _pk(value):
    return value if not isinstance(value, str) else job_id(value)


def kept_job_counts():
    """{workflow: {state: jobs}} as the write path keeps them (``JobCount``:
    every state change adds to it in its own transaction, SQLite triggers count
    inserts, removals and workflow changes), a few rows instead of a scan of a
    million; None where they are not kept (other backends)."""
    if connection.vendor != "sqlite":
        return None
    per_workflow = {}
    for workflow, state, n in JobCount.objects.totals():
        per_workflow.setdefault(workflow, {})[state] = n
    return per_workflow


def row_counts(jobs=None):
    """{table role: rows} for the jobs (unless counted already: ``jobs``),
    events, edges, applications, launches and applied requests."""
    counts = {} if jobs is None else {"jobs": jobs}
    for label, model in (("jobs", BalsamJob), ("events", JobEvent), ("dependencies", JobDependency),
                         ("applications", ApplicationDefinition), ("launches", QueuedLaunch),
                         ("applied_requests", AppliedRequest)):
        if label in counts:
            continue
        # COUNT(*) lets SQLite count the smallest index instead of the table.
        counts[label] = sql.raw_fetchall(f"SELECT COUNT(*) FROM {sql.table(model)}", [])[0][0]
    return counts


def job_time_range():
    """(oldest, newest) job creation times, or (None, None) without jobs. The
    first and last rows of the table: jobs get their creation time from the
    transaction that inserts them, one writer at a time, so the table's row
    order is their creation order (MIN/MAX of the column would read every row)."""
    jobs = BalsamJob.objects.order_by()
    if connection.vendor != "sqlite":
        found = jobs.aggregate(oldest=Min("created_at"), newest=Max("created_at"))
        return found["oldest"], found["newest"]

    def end(direction):
        rows = sql.raw_fetchall(f"SELECT created_at FROM {sql.table(BalsamJob)} ORDER BY rowid {direction} LIMIT 1", [])
        if not rows:
            return None
        value = rows[0][0]  # Django's SQLite connection converts declared datetime columns itself
        value = parse_datetime(value) if isinstance(value, str) else value
        return value.replace(tzinfo=datetime.timezone.utc)

    return end("ASC"), end("DESC")


def events_since(moment):
    """How many events were written at or after ``moment``. Events are
    appended by one writer at a time with the time of their transaction, so
    their times grow with their ids: a binary search on the id finds the first
    one, and the ids handed out since then are the count (ids are never reused;
    counting the rows instead would read every one of them, and would miss the
    events of jobs removed since, which still happened)."""
    # Two queries: SQLite answers a lone MIN or MAX from the key, not both at once.
    low = JobEvent.objects.order_by().aggregate(low=Min("id"))["low"]
    high = high_id = JobEvent.objects.order_by().aggregate(high=Max("id"))["high"]
    if high is None:
        return 0
    events = JobEvent.objects.order_by()
    if events.filter(id=high, timestamp__lt=moment).exists():
        return 0
    while low < high:  # the first id whose event is at or after moment (ids may have gaps)
        middle = (low + high) // 2
        probe = events.filter(id__gte=middle).order_by("id").values_list("id", "timestamp").first()
        if probe[1] < moment:
            low = probe[0] + 1
        else:
            high = probe[0] if probe[0] > middle else middle
    return high_id - low + 1


def page_usage():
    """SQLite's page size, pages in the file and pages on the free list."""
    if connection.vendor != "sqlite":
        return None
    page_size, page_count, free = (sql.raw_fetchall(f"PRAGMA {name}", [])[0][0]
                                   for name in ("page_size", "page_count", "freelist_count"))
    return {"page_size": page_size, "pages": page_count, "free_pages": free}


def file_sizes():
    """Bytes of the DB file and of its write-ahead log (0 when there is none).
    PostgreSQL: the database's size on disk (its write-ahead log is the
    cluster's, not the database's: 0)."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        params = connection.get_connection_params()
        size = sql.raw_fetchall("SELECT pg_database_size(current_database())", [])[0][0]
        return {"db_file": f"PostgreSQL database {params['dbname']} at {params['host']}:{params['port']}",
                "db_bytes": size, "wal_bytes": 0}

    def size(path):
        try:
            return os.stat(path).st_size
        except OSError:
            return 0

    return {"db_file": str(name), "db_bytes": size(name), "wal_bytes": size(f"{name}-wal")}


# ---------------------------------------------------------------------------
# Balsam's invariants
# ---------------------------------------------------------------------------
def foreign_key_problems(most):
    """Rows whose foreign key names a missing row: ``[(table, rowid, parent table)]``."""
    if connection.vendor != "sqlite":
        return [], 0
    rows = sql.raw_fetchall("PRAGMA foreign_key_check", [])
    return [(table, rowid, parent) for table, rowid, parent, _ in rows[:most]], len(rows)


def state_event_mismatches(most):
    """Jobs whose state is not the ``to_state`` of their newest event (a job
    without events must be CREATED), and events of jobs that do not exist.
    Returns (up to ``most`` of ``(id, name, state, last event's state)``, how
    many jobs in all, how many job ids only events name)."""
    if connection.vendor != "sqlite":
        return _state_event_mismatches_sql(most)
    # A join of each job with its newest event costs two B-tree searches per job
    # (minutes on millions); two sequential scans and a dict cost seconds. Each
    # piece comes as one group_concat text: building a Python row per event
    # would cost more than SQLite's whole scan.
    # The pieces are read on a thread of their own, a few ahead, while this
    # one matches them (SQLite leaves Python's lock while it reads).
    event, job = sql.table(JobEvent), sql.table(BalsamJob)
    # Events name their job by its number (``seq``); a job's id is read beside it for the report.
    events = [(f"SELECT group_concat(job_seq, ','), group_concat(to_state, ',') FROM "
               f"(SELECT job_seq, to_state FROM {event} WHERE id >= %s AND id < %s ORDER BY id)", [low, high])
              for low, high in _key_ranges(event, "id")]
    # (ifnull: group_concat skips NULLs, which would shift the ids against the states)
    jobs = [(f"SELECT group_concat(ifnull(seq, '') || ':' || job_id, ','), group_concat(state, ',') FROM {job} "
             f"WHERE rowid >= %s AND rowid < %s", [low, high]) for low, high in _key_ranges(job, "rowid")]
    last, wrong, created = {}, [], states.CREATED
    pop = last.pop
    for n, rows in enumerate(_fetched_ahead(events + jobs)):
        ids, values = rows[0]
        if not ids:
            continue
        if n < len(events):
            last.update(zip(ids.split(","), values.split(",")))  # in id order: the newest event wins
        else:
            wrong += [(key.partition(":")[2], state) for key, state in zip(ids.split(","), values.split(","))
                      if pop(key.partition(":")[0], created) != state]
    shown = []
    for pk, state in wrong[:most]:
        name = BalsamJob.objects.filter(pk=job_id(pk)).values_list("name", flat=True).first()
        newest = JobEvent.objects.filter(job__job_id=job_id(pk)).order_by("-id").values_list("to_state", flat=True).first()
        shown.append((job_id(pk), name, state, newest))
    return shown, len(wrong), len(last)


def _fetched_ahead(statements, ahead=3):
    """The rows of each ``(sql, params)`` in turn, read by a thread with a
    connection of its own (mapped: ``sql.map_file``) up to ``ahead``
    statements before the caller takes them. Its error is raised here."""
    results = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def read():
        try:
            sql.map_file()
            for statement, params in statements:
                if stop.is_set():
                    return
                results.put((sql.raw_fetchall(statement, params), None))
        except Exception as exc:
            results.put((None, exc))
        finally:
            connection.close()

    reader = threading.Thread(target=read, name="balsam-read-ahead", daemon=True)
    reader.start()
    try:
        for _ in statements:
            rows, error = results.get()
            if error is not None:
                raise error
            yield rows
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue see the stop
            try:
                results.get(timeout=0.1)
            except queue.Empty:
                pass
        reader.join()


def _key_ranges(table_sql, key, span=100_000):
    """``[low, high)`` ranges of an integer key covering the table, ``span`` keys each."""
    # Two queries: SQLite answers a lone MIN or MAX from the key, not both at once.
    low = sql.raw_fetchall(f"SELECT MIN({key}) FROM {table_sql}", [])[0][0]
    high = sql.raw_fetchall(f"SELECT MAX({key}) FROM {table_sql}", [])[0][0]
    if low is None:
        return []
    return [(start, start + span) for start in range(low, high + 1, span)]


def _state_event_mismatches_sql(most):
    job, event = sql.table(BalsamJob), sql.table(JobEvent)
    newest = f"SELECT job_seq, MAX(id) AS last_id FROM {event} GROUP BY job_seq"
    query = (
        f"SELECT j.job_id, j.name, j.state, e.to_state FROM {job} j "
        f"JOIN ({newest}) n ON n.job_seq = j.seq JOIN {event} e ON e.id = n.last_id "
        f"WHERE e.to_state <> j.state "
        f"UNION ALL "
        f"SELECT j.job_id, j.name, j.state, NULL FROM {job} j WHERE j.state <> %s "
        f"AND NOT EXISTS (SELECT 1 FROM {event} e WHERE e.job_seq = j.seq)"
    )
    rows = sql.raw_fetchall(query, [states.CREATED])
    orphans = sql.raw_fetchall(
        f"SELECT COUNT(DISTINCT job_seq) FROM {event} e WHERE NOT EXISTS (SELECT 1 FROM {job} j WHERE j.seq = e.job_seq)",
        [])[0][0]
    return [(_pk(pk), name, state, last) for pk, name, state, last in rows[:most]], len(rows), orphans


def waiting_on_dead_parents(most=None):
    """Jobs still waiting (and waiting for their parents) on a parent that can
    never finish: ``[(child id, child name, parent id, parent state)]``, and how many children."""
    job, edge = sql.table(BalsamJob), sql.table(JobDependency)
    waiting, dead = sorted(states.WAITING_STATES), sorted(states.KILLING_STATES)
    query = (
        f"SELECT c.job_id, c.name, p.job_id, p.state FROM {edge} d "
        f"JOIN {job} c ON c.job_id = d.child_id JOIN {job} p ON p.job_id = d.parent_id "
        f"WHERE c.state IN ({sql.marks(len(waiting))}) AND c.wait_for_parents "
        f"AND p.state IN ({sql.marks(len(dead))}) ORDER BY c.job_id"
    )
    rows = sql.raw_fetchall(query, waiting + dead)
    found, seen = [], set()
    for child, name, parent, parent_state in rows:
        if child in seen:
            continue
        seen.add(child)
        found.append((_pk(child), name, _pk(parent), parent_state))
    return (found if most is None else found[:most]), len(found)


def lapsed_running(now, lease_expiry_sec, most):
    """RUNNING jobs whose lease lapsed (their launcher stopped heartbeating),
    or that nobody holds for longer than ``lease_expiry_sec``: what
    ``recover_expired_leases`` would recover. ``[(id, name, owner, expired at)]``, count."""
    cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
    job = sql.table(BalsamJob)
    query = (
        f"SELECT job_id, name, lease_owner, lease_expires_at FROM {job} WHERE state = %s AND ("
        f"(lease_owner <> '' AND (lease_expires_at < %s OR (lease_expires_at IS NULL AND "
        f"(lease_heartbeat IS NULL OR lease_heartbeat < %s)))) "
        f"OR (lease_owner = '' AND state_changed_at < %s))"
    )
    rows = sql.raw_fetchall(query, [states.RUNNING, stamp(now), stamp(cutoff), stamp(cutoff)])
    return [(_pk(pk), name, owner, expires) for pk, name, owner, expires in rows[:most]], len(rows)


def _position():
    """The SQL function that finds a substring's position (1-based, 0 if absent): SQLite's ``instr``, PostgreSQL's ``strpos``."""
    return "instr" if connection.vendor == "sqlite" else "strpos"


def ran_jobs_by_folder():
    """{folder under data/ ('' for jobs without a workflow): jobs that ran in
    it}, for jobs in a state reached only by running that have no
    ``user_workdir``. One scan in SQLite: no Python row per job."""
    ran = sorted(RAN_STATES)
    job = sql.table(BalsamJob)
    return dict(sql.raw_fetchall(
        f"SELECT substr(workdir, 1, {_position()}(workdir, '/') - 1) AS folder, COUNT(*) FROM {job} "
        f"WHERE state IN ({sql.marks(len(ran))}) AND user_workdir = '' GROUP BY folder", ran))


def ran_jobs_in_folder(folder, limit=None):
    """``(id text, name, workdir)`` of the jobs that ran in ``data/<folder>/``
    (``''``: directly in ``data/``), without a ``user_workdir``; at most ``limit`` (None: all)."""
    if limit is None:  # no bound: SQLite's is a negative LIMIT, PostgreSQL's a NULL one
        limit = -1 if connection.vendor == "sqlite" else None
    ran = sorted(RAN_STATES)
    job = sql.table(BalsamJob)
    if folder:  # a range of the unique workdir index ('/' sorts just before '0')
        where, params = "workdir >= %s AND workdir < %s", [f"{folder}/", f"{folder}0"]
    else:
        where, params = f"{_position()}(workdir, '/') = 0", []
    return sql.raw_fetchall(
        f"SELECT job_id, name, workdir FROM {job} WHERE {where} AND state IN ({sql.marks(len(ran))}) "
        f"AND user_workdir = '' LIMIT %s", params + ran + [limit])


def ran_jobs_elsewhere():
    """``(id text, name, user_workdir)`` of the jobs that ran in a directory of the user's choosing."""
    ran = sorted(RAN_STATES)
    job = sql.table(BalsamJob)
    return sql.raw_fetchall(
        f"SELECT job_id, name, user_workdir FROM {job} WHERE state IN ({sql.marks(len(ran))}) AND user_workdir <> ''",
        ran)


def known_workdirs(paths):
    """The ``paths`` (relative to ``data/``) that are some job's working directory."""
    found = set()
    for chunk in sql.chunks(paths):
        found.update(BalsamJob.objects.order_by().filter(workdir__in=chunk).values_list("workdir", flat=True))
    return found


def workflow_dir_in_use(name):
    """Whether some job's working directory lies in ``data/<name>/``. A range
    on the unique workdir index ('/' sorts just before '0')."""
    return BalsamJob.objects.order_by().filter(workdir__gte=f"{name}/", workdir__lt=f"{name}0").exists()


def dangling_edges(most):
    """Dependency rows naming a job that does not exist: ``[(edge id, child, parent)]``, count."""
    job, edge = sql.table(BalsamJob), sql.table(JobDependency)
    query = (
        f"SELECT d.id, d.child_id, d.parent_id FROM {edge} d "
        f"WHERE NOT EXISTS (SELECT 1 FROM {job} j WHERE j.job_id = d.child_id) "
        f"OR NOT EXISTS (SELECT 1 FROM {job} j WHERE j.job_id = d.parent_id)"
    )
    rows = sql.raw_fetchall(query, [])
    return rows[:most], len(rows)


def applied_requests_before(cutoff):
    """How many applied-request ids are older than ``cutoff``."""
    return AppliedRequest.objects.filter(applied_at__lt=cutoff).count()



def live_lease_owners(now):
    """Launchers holding a lease that has not lapsed: ``{owner: jobs held}``
    (what says a launcher is at work on the DB)."""
    job = sql.table(BalsamJob)
    rows = sql.raw_fetchall(
        f"SELECT lease_owner, COUNT(*) FROM {job} WHERE lease_owner <> '' AND lease_expires_at >= %s "
        f"GROUP BY lease_owner", [stamp(now)])
    return dict(rows)


def events_to_prune_sql(count):
    """Events older than a time (first parameter) of jobs that can no longer
    change (END states), except each job's newest: what ``db compact``
    removes. Oldest first; ``count``: a COUNT instead of ids (otherwise two more
    parameters: the id to start after, and LIMIT)."""
    job, event = sql.table(BalsamJob), sql.table(JobEvent)
    end = sorted(states.END_STATES)
    select = "COUNT(*)" if count else "e.id"
    # The ids: walk the events in id order from the start id and stop at the
    # LIMIT (SQLite keeps the left table of a CROSS JOIN outside); joined the
    # other way, each batch would find every prunable event of every ended
    # job and sort them, a million-event prune taking minutes per batch.
    joined = f"{event} e JOIN {job} j ON j.seq = e.job_seq" if count else \
        f"{event} e CROSS JOIN {job} j WHERE j.seq = e.job_seq AND"
    return (
        f"SELECT {select} FROM {joined}" + (" WHERE" if count else "") +
        f" e.timestamp < %s AND j.state IN ({sql.marks(len(end))}) "
        f"AND e.id < (SELECT MAX(n.id) FROM {event} n WHERE n.job_seq = e.job_seq)"
        + ("" if count else " AND e.id > %s ORDER BY e.id LIMIT %s")
    ), end


def prunable_events(before):
    """How many events ``db compact --events-older-than`` would remove."""
    query, end = events_to_prune_sql(count=True)
    return sql.raw_fetchall(query, [stamp(before)] + end)[0][0]


def finished_workflows():
    """``{workflow: jobs}`` of the workflows whose every job is in an END state."""
    end = sorted(states.END_STATES)
    job = sql.table(BalsamJob)
    return dict(sql.raw_fetchall(
        f"SELECT workflow, COUNT(*) FROM {job} GROUP BY workflow "
        f"HAVING SUM(CASE WHEN state IN ({sql.marks(len(end))}) THEN 0 ELSE 1 END) = 0", end))


def workflow_job_ids(workflow):
    """The ids (text) of a workflow's jobs."""
    return [str(pk) for pk in BalsamJob.objects.order_by().filter(workflow=workflow).values_list("pk", flat=True)]
