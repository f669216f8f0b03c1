"""Write operations on jobs: inserting them (with their directories and
dependency edges), changing their fields, and removing them."""

import functools
import re
import uuid

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from balsam.core import actor, sql, states
from balsam.core.json_values import job_id
from balsam.core.models import ApplicationDefinition, BalsamJob, JobDependency, JobEvent
from balsam.core.operations.applications import require_apps
from balsam.core.operations.transitions import (event_insert_by_id, event_stamp, insert_events_by_id, job_states,
                                                 settle_children, transition_jobs)
from balsam.core.operations.validation import JOB_CREATE_FIELDS, JOB_UPDATE_FIELDS, TEXT_FIELDS, clean_fields
from balsam.exceptions import ValidationError

_UNSAFE = re.compile(r"[^\w.+-]")


def _dir_part(text, fallback):
    cleaned = _UNSAFE.sub("_", text.strip()).strip(".")
    return cleaned or fallback


def _workdir_prefix(job):
    name = _dir_part(job.get("name", ""), "job")
    workflow = _dir_part(job.get("workflow", ""), "")
    return f"{workflow}/{name}_" if workflow else f"{name}_"


def _assign_workdirs(jobs, check_db):
    """Give each new job ``<workflow>/<name>_<first 8 of id>``, taking more id
    characters while that path is taken (in this batch, or in the DB when
    ``check_db``)."""
    taken = set()
    for job in jobs:
        prefix, hex_id, width = _workdir_prefix(job), job["job_id"].hex, 8
        while True:
            path = prefix + hex_id[:width]
            if path not in taken and not (check_db and BalsamJob.objects.filter(workdir=path).exists()):
                break
            width += 1
        taken.add(path)
        job["workdir"] = path


_TIME_FIELDS = ("created_at", "state_changed_at")
MAX_NOTE_CHARS = 1000


@functools.lru_cache(maxsize=None)
def _insert_plan(vendor):
    """The INSERT statement, a row of column defaults, and how to convert each
    field: the same for every insert, so built once per process (and backend)."""
    fields = _inserted_fields(vendor)
    template = [
        None if f.name in ("job_id", "workdir") + _TIME_FIELDS else f.get_db_prep_save(f.get_default(), connection)
        for f in fields
    ]
    slots = {f.name: (i, _fast_prep(f)) for i, f in enumerate(fields)}
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    statement = f"INSERT INTO {sql.table(BalsamJob)} ({columns}) VALUES ({sql.marks(len(fields))})"
    time_slots = [slots[name][0] for name in _TIME_FIELDS]
    return statement, template, slots, time_slots


def _inserted_fields(vendor):
    """The columns an insert names: every field but, on PostgreSQL, the job's
    number (``seq``), which its sequence gives (the column's default); on
    SQLite the writer gives it (``_next_seq``)."""
    fields = BalsamJob._meta.concrete_fields
    return fields if vendor == "sqlite" else [f for f in fields if f.name != "seq"]


def _next_seq():
    """SQLite: the number the next new job gets (highest so far plus one),
    read inside the insert's write transaction, so no other writer takes it."""
    return (sql.raw_fetchall(f"SELECT MAX(seq) FROM {sql.table(BalsamJob)}", [])[0][0] or 0) + 1


def _fast_prep(field):
    """How to turn a cleaned value into its column value, skipping Django's
    generic conversion where it would change nothing (text, numbers)."""
    if field.name in TEXT_FIELDS[BalsamJob] or isinstance(field, (models.IntegerField, models.BooleanField)):
        return None
    if isinstance(field, models.UUIDField) and not connection.features.has_native_uuid_field:
        return lambda value, _connection: value.hex
    return field.get_db_prep_save


def _insert_jobs(jobs, now):
    """Insert with one executemany: Django's bulk_create costs ~10x more per row."""
    statement, rows = _job_rows(jobs, now)
    if connection.vendor == "sqlite":
        _, _, slots, _ = _insert_plan("sqlite")
        seq_slot = slots["seq"][0]
        for number, row in enumerate(rows, _next_seq()):
            row[seq_slot] = number
    sql.insert_rows(statement, rows)


def _job_rows(jobs, now):
    """The INSERT statement (one row's VALUES) and the column values of
    ``jobs`` (on SQLite without their numbers: ``_insert_jobs`` gives them)."""
    statement, template, slots, time_slots = _insert_plan(connection.vendor)
    template = list(template)
    stamp = BalsamJob._meta.get_field("created_at").get_db_prep_save(now, connection)
    for index in time_slots:
        template[index] = stamp
    rows = []
    for job in jobs:
        row = template.copy()
        for name, value in job.items():
            index, prep = slots[name]
            row[index] = value if prep is None else prep(value, connection)
        rows.append(row)
    return statement, rows


def _prepare_jobs(rows):
    """Validate one request's rows (no DB access): ``(jobs, edges, app_names,
    notes)``. A row may carry a ``note``, the first line of the job's history
    (0.2's "spawned by [parent]")."""
    if not isinstance(rows, list):
        raise ValidationError("rows must be a list")
    jobs, edges, app_names, notes = [], [], set(), []
    for row in rows:
        if not isinstance(row, dict):
            raise ValidationError("each job must be an object of field: value pairs")
        row = dict(row)
        parents = row.pop("parents", None) or []
        if not isinstance(parents, list):
            raise ValidationError("parents must be a list of job ids")
        note = row.pop("note", None)
        if note is not None and not (isinstance(note, str) and 0 < len(note) <= MAX_NOTE_CHARS):
            raise ValidationError(f"a job's creation note must be text of 1 to {MAX_NOTE_CHARS} characters")
        job = clean_fields(BalsamJob, row, JOB_CREATE_FIELDS)
        job["job_id"] = job.get("job_id") or uuid.uuid4()
        if note:
            notes.append((job["job_id"], note))
        if job.get("application"):
            app_names.add(job["application"])
        jobs.append(job)
        edges.extend((job_id(p), job["job_id"]) for p in parents)
    return jobs, edges, app_names, notes


def _reject_existing_ids(ids):
    for chunk in sql.chunks(ids):
        clash = BalsamJob.objects.filter(pk__in=chunk).values_list("pk", flat=True).first()
        if clash:
            raise ValidationError(f"a job with id {clash} already exists")


def create_jobs_many(requests):
    """Apply several ``create_jobs`` requests with one INSERT; one result list each.

    Any error fails them all (the dbserver then applies them one by one).
    """
    now = timezone.now()
    jobs, edges, app_names, notes, sizes = [], [], set(), [], []
    for rows in requests:
        request_jobs, request_edges, request_apps, request_notes = _prepare_jobs(rows)
        jobs.extend(request_jobs)
        edges.extend(request_edges)
        notes.extend(request_notes)
        app_names |= request_apps
        sizes.append(len(request_jobs))
    require_apps(app_names)
    ids = [job["job_id"] for job in jobs]
    if len(set(ids)) != len(ids):
        raise ValidationError("two new jobs have the same id")
    # Ids and directory names rarely clash with stored ones: insert the batch as
    # it is, and look for the clash only if a unique index refuses a row.
    _assign_workdirs(jobs, check_db=False)
    try:
        with transaction.atomic():
            _insert_jobs(jobs, now)
    except IntegrityError:
        _reject_existing_ids(ids)
        _assign_workdirs(jobs, check_db=True)
        _insert_jobs(jobs, now)
    if notes:  # from no state to CREATED: the first line of the history, in place of "created"
        stamp = event_stamp(now)
        insert_events_by_id([(pk, stamp, "", states.CREATED, note)
                             for pk, note in zip(sql.pk_params(p for p, _ in notes), (n for _, n in notes))])
    if edges:
        parent_states = job_states({p for p, _ in edges})
        JobDependency.objects._direct_bulk_create(
            [JobDependency(parent_id=p, child_id=c) for p, c in dict.fromkeys(edges)]
        )
        dead = [p for p, (state, _) in parent_states.items() if state in states.KILLING_STATES]
        settle_children(dead, parent_states, now)
    results, start, created = [], 0, now.isoformat()
    for size in sizes:
        results.append(
            [{"job_id": str(j["job_id"]), "workdir": j["workdir"], "created_at": created} for j in jobs[start : start + size]]
        )
        start += size
    return results


def create_jobs_in_one_round_trip(rows):
    """``create_jobs`` on PostgreSQL outside any transaction, for a few jobs
    without parents (``dag.add_job``): the application check, the rows and
    their creation notes go as one query of a few statements, one implicit
    transaction (``sql.one_round_trip``), in place of BEGIN, a look-up, a
    savepoint, the insert, its release and COMMIT (six round trips, each
    through Django's cursor wrapper). One job, the usual case, is one
    prepared statement instead (``_create_one_job_prepared``).

    Returns the operation's result, or None when the request is not such a
    case or the server refused it (an unknown application, an id or
    directory already taken): it then rolled back whole, and the caller runs
    ``create_jobs`` itself, which raises the usual error or settles the clash."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    if not isinstance(rows, list) or not rows or len(rows) > sql.FEW_ROWS or reads_other_jobs(rows):
        return None
    now = timezone.now()
    jobs, _, app_names, notes = _prepare_jobs(rows)  # invalid input raises here: nothing written
    if len({job["job_id"] for job in jobs}) != len(jobs):
        return None
    _assign_workdirs(jobs, check_db=False)
    if len(jobs) == 1:
        return _create_one_job_prepared(jobs[0], notes, now)
    statement, job_rows = _job_rows(jobs, now)
    head, _, values = statement.rpartition("VALUES")
    statements = [head + "VALUES " + ", ".join([values.strip()] * len(job_rows))]
    params = [value for row in job_rows for value in row]
    if app_names:
        # Raises (as an integrity error) when one is missing: see migration 0010.
        statements.insert(0, "SELECT balsam_require_apps(%s)")
        params[:0] = [sorted(app_names)]
    if notes:
        stamp = event_stamp(now)
        events = [(pk, stamp, "", states.CREATED, note)
                  for pk, note in zip(sql.pk_params(p for p, _ in notes), (n for _, n in notes))]
        event_sql, (event_params,) = event_insert_by_id(events)
        statements.append(event_sql)
        params.extend(event_params)
    try:
        sql.one_round_trip("; ".join(statements), params)
    except IntegrityError:
        return None
    created = now.isoformat()
    return [{"job_id": str(j["job_id"]), "workdir": j["workdir"], "created_at": created} for j in jobs]


def _create_one_job_prepared(job, notes, now):
    """One job (``dag.add_job``): a statement prepared once per connection
    (``sql.prepared_execute``) that inserts the row only if its application
    exists, with its creation note's event in the same statement. Nothing
    inserted (no such application) or refused (an id or directory taken):
    None, and the caller's usual operation raises or settles it."""
    preps = _server_bound_preps()
    given = tuple(sorted(job))  # the statement has a parameter for these, literals for the rest
    params = [job[name] if name not in preps else preps[name](job[name], connection) for name in given]
    params += [now, now]  # created_at, state_changed_at: psycopg sends an aware datetime as it is
    application = job.get("application") or ""
    if application:
        params.append(application)
    if notes:
        params += [now, notes[0][1], actor.current()]
    try:
        inserted = sql.prepared_execute(_one_job_statement(given, bool(application), bool(notes)), params)
    except IntegrityError:
        return None
    if inserted != 1:
        return None
    return [{"job_id": str(job["job_id"]), "workdir": job["workdir"], "created_at": now.isoformat()}]


@functools.lru_cache(maxsize=None)
def _server_bound_preps():
    """PostgreSQL with the server binding the values: the fields whose cleaned
    value needs Django's conversion (JSON, which psycopg would send a list of
    as an array). Every other cleaned value -- text, numbers, booleans, a
    UUID, an aware datetime -- psycopg sends as it is, and the statement
    casts it to its column's type."""
    return {f.name: f.get_db_prep_save for f in BalsamJob._meta.concrete_fields if isinstance(f, models.JSONField)}


@functools.lru_cache(maxsize=64)
def _one_job_statement(given, check_app, with_note):
    """The text ``_create_one_job_prepared`` prepares, for the fields a call
    sets (``given``; a program adds its jobs with the same few, so there are
    few texts): the server parses and plans each once per connection. The
    other columns' defaults are literals in the text, not parameters the
    client converts and sends each time. Its row count is 1 when the job was
    inserted (with its note's event), else 0. Every value is cast to its
    column's type (without a length: storing it still checks that), so the
    types never depend on how the driver sends a value."""
    from psycopg.sql import Literal

    fields = _inserted_fields(connection.vendor)
    _, template, slots, _ = _insert_plan(connection.vendor)
    connection.ensure_connection()
    raw = connection.connection
    # The parameters' columns first, in the order of the call's parameters.
    columns = [BalsamJob._meta.get_field(name) for name in given + _TIME_FIELDS]
    values = ["%s"] * len(columns)
    for field in fields:
        if field not in columns:
            columns.append(field)
            values.append(Literal(template[slots[field.name][0]]).as_string(raw).replace("%", "%%"))
    values = [f"{value}::{sql.column_type(field)}" for field, value in zip(columns, values)]
    names = ", ".join(connection.ops.quote_name(f.column) for f in columns)
    insert = f"INSERT INTO {sql.table(BalsamJob)} ({names}) SELECT {', '.join(values)}"
    if check_app:
        insert += f" WHERE EXISTS (SELECT 1 FROM {sql.table(ApplicationDefinition)} WHERE name = %s)"
    if not with_note:
        return insert
    return (f"WITH job AS ({insert} RETURNING seq) "
            f'INSERT INTO {sql.table(JobEvent)} (job_seq, timestamp, from_state, to_state, message, "user") '
            f"SELECT seq, %s::timestamptz, '', '{states.CREATED}', %s::text, %s::text FROM job")


def reads_other_jobs(rows):
    """Does a ``create_jobs`` request read other jobs (its rows name parents)?
    Anything malformed counts as yes: it is refused under the write lock."""
    if not isinstance(rows, list):
        return True
    return any(not isinstance(row, dict) or row.get("parents") for row in rows)


def create_jobs(rows):
    """Insert jobs in state CREATED; returns ``[{"job_id", "workdir"}]`` in order.

    A row may carry ``parents`` (job ids, possibly of jobs earlier in ``rows``).
    """
    return create_jobs_many([rows])[0]


def update_jobs(ids, fields):
    """Set fields on jobs; a ``state`` among them goes through ``transition_jobs``."""
    ids = [job_id(i) for i in ids]
    fields = dict(fields)
    new_state = fields.pop("state", None)
    fields = clean_fields(BalsamJob, fields, JOB_UPDATE_FIELDS)
    job_states(ids)
    if "application" in fields and fields["application"]:
        require_apps({fields["application"]})
    if new_state is not None:
        transition_jobs([str(i) for i in ids], new_state, "state set by a field update")
    if fields:
        for chunk in sql.chunks(ids):
            BalsamJob.objects.filter(pk__in=chunk)._direct_update(**fields)
    return len(ids)


def update_jobs_each(items):
    """``[[id, {field: value}], ...]``: different values for each job, one
    request; jobs with the same set of fields are updated by one executemany."""
    if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
        raise ValidationError("items must be a list of [job id, fields] pairs")
    groups = {}
    for ref, fields in items:
        if isinstance(fields, dict) and "state" in fields:
            update_jobs([ref], fields)  # state changes go through the state machine
            continue
        cleaned = clean_fields(BalsamJob, fields, JOB_UPDATE_FIELDS - {"state"})
        if "application" in cleaned and cleaned["application"]:
            require_apps({cleaned["application"]})
        groups.setdefault(tuple(sorted(cleaned)), []).append((job_id(ref), cleaned))
    for names, rows in groups.items():
        job_states([pk for pk, _ in rows])
        if not names:
            continue
        fields = [BalsamJob._meta.get_field(name) for name in names]
        pk_prep = _fast_prep(BalsamJob._meta.pk) or BalsamJob._meta.pk.get_db_prep_save
        sql.update_rows(BalsamJob, fields, [[f.get_db_prep_save(values[f.name], connection) for f in fields]
                                            + [pk_prep(pk, connection)] for pk, values in rows])
    return len(items)


def delete_jobs(ids):
    """Remove jobs with their events and edges; returns how many were removed.

    A job a live launcher holds is kept: the launcher's next write would name a
    job that is gone and fail its whole batch. Killing it first releases it."""
    ids = [job_id(i) for i in ids]
    now = timezone.now()
    count = 0
    for chunk in sql.chunks(ids, per_item=2):  # the edge query names each id twice
        held = set(BalsamJob.objects.filter(pk__in=chunk, lease_expires_at__gt=now).exclude(lease_owner="")
                   .values_list("pk", flat=True))
        chunk = [i for i in chunk if i not in held]
        JobEvent.objects.filter(job__job_id__in=chunk)._raw_delete(connection.alias)
        JobDependency.objects.filter(models.Q(child_id__in=chunk) | models.Q(parent_id__in=chunk))._raw_delete(
            connection.alias
        )
        count += BalsamJob.objects.filter(pk__in=chunk)._raw_delete(connection.alias)
    return count


OPERATIONS = {
    "create_jobs": create_jobs,
    "update_jobs": update_jobs,
    "update_jobs_each": update_jobs_each,
    "delete_jobs": delete_jobs,
}
