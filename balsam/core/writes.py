"""The write operations: the only code that mutates Balsam's tables.

Each operation takes JSON-able arguments, validates them, and returns a JSON-able
result. The caller runs it inside one write transaction: the direct client per
request, the dbserver per group of requests (with a savepoint each). Raising a
``BalsamError`` aborts the operation's changes.
"""

import datetime
import functools
import json
import re
import uuid
from collections import deque
from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from balsam.core import states
from balsam.core.models import ApplicationDefinition, BalsamJob, JobDependency, JobEvent, QueuedLaunch
from balsam.exceptions import DependencyError, NotFound, ValidationError

SQL_CHUNK = 900  # ids per IN (...) clause, under the 999 variables old SQLite builds allow

# Fields a job's creator may set; everything else belongs to Balsam.
JOB_CREATE_FIELDS = {f.name for f in BalsamJob._meta.concrete_fields} - BalsamJob.SYSTEM_FIELDS
JOB_UPDATE_FIELDS = (JOB_CREATE_FIELDS - {"job_id"}) | {"state", "runtime_seconds"}
APP_FIELDS = {f.name for f in ApplicationDefinition._meta.concrete_fields} - {"id"}

POSITIVE_INT_FIELDS = {"num_nodes", "ranks_per_node", "threads_per_rank", "threads_per_core", "node_packing_count"}
NON_NEGATIVE_FIELDS = {"wall_time_minutes"}
STRING_DICT_FIELDS = {"environ_vars"}


@contextmanager
def write_transaction():
    """A transaction that takes SQLite's write lock when it begins (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can fail half way with
    "database is locked" when another writer got in between; one that holds
    the lock from the start just waits its turn (the busy timeout). Inside a
    caller's transaction this is a savepoint of it.
    """
    if connection.in_atomic_block or connection.vendor != "sqlite":
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()
    previous = connection.transaction_mode
    connection.transaction_mode = "IMMEDIATE"
    try:
        with transaction.atomic():
            connection.transaction_mode = previous
            yield
    finally:
        connection.transaction_mode = previous


def raw_executemany(sql, rows):
    """``executemany`` on the DB-API connection, inside Django's transaction.

    For the statements run on every write (inserts, state changes, applied
    request ids): Django's cursor wrapper rewrites placeholders and runs debug
    hooks on every call, which costs more than SQLite's own work here.
    Errors are still Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(_native_sql(sql, connection.vendor), rows)
            return cursor.rowcount
        finally:
            cursor.close()


def raw_fetchall(sql, params):
    """``execute`` + ``fetchall`` the same way as ``raw_executemany``."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_native_sql(sql, connection.vendor), params)
            return cursor.fetchall()
        finally:
            cursor.close()


@functools.lru_cache(maxsize=64)
def _native_sql(sql, vendor):
    """Our SQL is written with ``%s`` placeholders; SQLite's own driver wants ``?``."""
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _text_fields(model):
    """Names of plain text fields with their length limit (their values need no conversion)."""
    return {
        f.name: f.max_length or 0
        for f in model._meta.concrete_fields
        if isinstance(f, (models.CharField, models.TextField)) and not f.choices
    }


_TEXT_FIELDS = {model: _text_fields(model) for model in (BalsamJob, ApplicationDefinition, QueuedLaunch)}
_NUMBER_FIELDS = {
    model: {
        f.name: int if isinstance(f, models.IntegerField) else float
        for f in model._meta.concrete_fields
        if isinstance(f, (models.IntegerField, models.FloatField)) and not f.primary_key
    }
    for model in (BalsamJob, ApplicationDefinition, QueuedLaunch)
}


def _clean(model, name, value, allowed):
    if name not in allowed:
        raise ValidationError(
            f"unknown or read-only {model._meta.verbose_name} field {name!r}; "
            f"settable fields: {', '.join(sorted(allowed))}"
        )
    limit = _TEXT_FIELDS[model].get(name)
    if limit is not None and type(value) is str:
        # The common case (names, args, paths) with no conversion to do.
        if limit and len(value) > limit:
            raise ValidationError(f"{name} is longer than {limit} characters")
        return value
    kind = _NUMBER_FIELDS[model].get(name)
    if kind is not None and type(value) in (int, float) and (kind is float or type(value) is int):
        if name in POSITIVE_INT_FIELDS and value < 1:
            raise ValidationError(f"{name} must be at least 1, not {value}")
        if name in NON_NEGATIVE_FIELDS and value < 0:
            raise ValidationError(f"{name} must not be negative, not {value}")
        return kind(value)
    field = model._meta.get_field(name)
    if isinstance(field, models.BooleanField) and not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false, not {value!r}")
    if isinstance(field, (models.IntegerField, models.FloatField)) and isinstance(value, bool):
        raise ValidationError(f"{name} must be a number, not {value!r}")
    if isinstance(field, (models.CharField, models.TextField)) and not isinstance(value, str):
        raise ValidationError(f"{name} must be text, not {value!r}")
    if value is None and not field.null:
        raise ValidationError(f"{name} must not be empty (null)")
    try:
        value = field.to_python(value)
    except DjangoValidationError as exc:
        raise ValidationError(f"{name}: {' '.join(exc.messages)} (got {value!r})") from None
    if isinstance(field, models.CharField) and field.max_length and len(value) > field.max_length:
        raise ValidationError(f"{name} is longer than {field.max_length} characters")
    if name in POSITIVE_INT_FIELDS and value < 1:
        raise ValidationError(f"{name} must be at least 1, not {value}")
    if name in NON_NEGATIVE_FIELDS and value < 0:
        raise ValidationError(f"{name} must not be negative, not {value}")
    if name in STRING_DICT_FIELDS:
        if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
            raise ValidationError(f"{name} must be an object of VARIABLE: value pairs")
        value = {k: str(v) for k, v in value.items()}
    if isinstance(field, models.JSONField):
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be JSON-serialisable") from None
    return value


def _clean_fields(model, fields, allowed):
    if not isinstance(fields, dict):
        raise ValidationError("fields must be an object of name: value pairs")
    return {name: _clean(model, name, value, allowed) for name, value in fields.items()}


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(f"{value!r} is not a job id") from None


def chunks(items, size=SQL_CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pk_params(pks):
    """Job ids as the DB stores them (32 hex digits on SQLite). One lookup of
    the backend's features per call: through Django's connection proxy it
    costs more than the conversion."""
    if connection.features.has_native_uuid_field:
        return list(pks)
    return [pk.hex for pk in pks]


def _job_states(ids):
    """{uuid: (state, name)} for the given ids; NotFound if any is missing.

    Raw SQL: this runs for every state change, and the ORM's query building
    would cost more than the query itself."""
    found = {}
    for chunk in chunks(ids):
        marks = ", ".join(["%s"] * len(chunk))
        rows = raw_fetchall(f"SELECT job_id, state, name FROM balsam_job WHERE job_id IN ({marks})", pk_params(chunk))
        for pk, state, name in rows:
            found[pk if isinstance(pk, uuid.UUID) else uuid.UUID(pk)] = (state, name)
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(f"no job with id {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return found


def _label(name, pk):
    return f"[{name} | {pk.hex[:8]}]"


# ---------------------------------------------------------------------------
# applications
# ---------------------------------------------------------------------------
def create_apps(rows):
    apps = []
    names = set()
    for row in rows:
        fields = _clean_fields(ApplicationDefinition, row, APP_FIELDS)
        name = fields.get("name", "")
        if not name:
            raise ValidationError("an application needs a name")
        if not fields.get("executable"):
            raise ValidationError(f"application {name!r} needs an executable")
        if name in names or ApplicationDefinition.objects.filter(name=name).exists():
            raise ValidationError(f"an application named {name!r} already exists")
        names.add(name)
        apps.append(ApplicationDefinition(**fields))
    created = ApplicationDefinition.objects._direct_bulk_create(apps)
    return [app.pk for app in created]


def update_apps(ids, fields):
    fields = _clean_fields(ApplicationDefinition, fields, APP_FIELDS)
    qs = ApplicationDefinition.objects.filter(pk__in=ids)
    if qs.count() != len(set(ids)):
        raise NotFound("no application with that id")
    _forget_app_names()
    if "name" in fields:
        if len(ids) != 1:
            raise ValidationError("only one application can be renamed at a time")
        if ApplicationDefinition.objects.filter(name=fields["name"]).exclude(pk__in=ids).exists():
            raise ValidationError(f"an application named {fields['name']!r} already exists")
        old = qs.get().name
        # Jobs refer to their application by name: keep them pointing at it.
        BalsamJob.objects.filter(application=old)._direct_update(application=fields["name"])
    return qs._direct_update(**fields)


def delete_apps(ids):
    _forget_app_names()
    names = list(ApplicationDefinition.objects.filter(pk__in=ids).values_list("name", flat=True))
    busy = BalsamJob.objects.filter(application__in=names).exclude(state__in=states.END_STATES)
    count = busy.count()
    if count:
        raise ValidationError(
            f"{count} unfinished job(s) use application {names[0]!r}; remove or kill them first"
        )
    deleted, _ = models.QuerySet.delete(ApplicationDefinition.objects.filter(pk__in=ids))
    return deleted


# ---------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------
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


@functools.lru_cache(maxsize=None)
def _insert_plan(vendor):
    """The INSERT statement, a row of column defaults, and how to convert each
    field: the same for every insert, so built once per process (and backend)."""
    fields = BalsamJob._meta.concrete_fields
    template = [
        None if f.name in ("job_id", "workdir") + _TIME_FIELDS else f.get_db_prep_save(f.get_default(), connection)
        for f in fields
    ]
    slots = {f.name: (i, _fast_prep(f)) for i, f in enumerate(fields)}
    table = connection.ops.quote_name(BalsamJob._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join("%s" for _ in fields)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    time_slots = [slots[name][0] for name in _TIME_FIELDS]
    return sql, template, slots, time_slots


def _fast_prep(field):
    """How to turn a cleaned value into its column value, skipping Django's
    generic conversion where it would change nothing (text, numbers)."""
    if field.name in _TEXT_FIELDS[BalsamJob] or isinstance(field, (models.IntegerField, models.BooleanField)):
        return None
    if isinstance(field, models.UUIDField) and not connection.features.has_native_uuid_field:
        return lambda value, _connection: value.hex
    return field.get_db_prep_save


def _insert_jobs(jobs, now):
    """Insert with one executemany: Django's bulk_create costs ~10x more per row."""
    sql, template, slots, time_slots = _insert_plan(connection.vendor)
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
    raw_executemany(sql, rows)


def _prepare_jobs(rows):
    """Validate one request's rows (no DB access): ``(jobs, edges, app_names)``."""
    if not isinstance(rows, list):
        raise ValidationError("rows must be a list")
    jobs, edges, app_names = [], [], set()
    for row in rows:
        if not isinstance(row, dict):
            raise ValidationError("each job must be an object of field: value pairs")
        row = dict(row)
        parents = row.pop("parents", None) or []
        if not isinstance(parents, list):
            raise ValidationError("parents must be a list of job ids")
        job = _clean_fields(BalsamJob, row, JOB_CREATE_FIELDS)
        job["job_id"] = job.get("job_id") or uuid.uuid4()
        if job.get("application"):
            app_names.add(job["application"])
        jobs.append(job)
        edges.extend((_uuid(p), job["job_id"]) for p in parents)
    return jobs, edges, app_names


def _reject_existing_ids(ids):
    for chunk in chunks(ids):
        clash = BalsamJob.objects.filter(pk__in=chunk).values_list("pk", flat=True).first()
        if clash:
            raise ValidationError(f"a job with id {clash} already exists")


def create_jobs_many(requests):
    """Apply several ``create_jobs`` requests with one INSERT; one result list each.

    Any error fails them all (the dbserver then applies them one by one).
    """
    now = timezone.now()
    jobs, edges, app_names, sizes = [], [], set(), []
    for rows in requests:
        request_jobs, request_edges, request_apps = _prepare_jobs(rows)
        jobs.extend(request_jobs)
        edges.extend(request_edges)
        app_names |= request_apps
        sizes.append(len(request_jobs))
    _require_apps(app_names)
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
    if edges:
        parent_states = _job_states({p for p, _ in edges})
        JobDependency.objects._direct_bulk_create(
            [JobDependency(parent_id=p, child_id=c) for p, c in dict.fromkeys(edges)]
        )
        dead = [p for p, (state, _) in parent_states.items() if state in states.KILLING_STATES]
        _settle_children(dead, parent_states, now)
    results, start, created = [], 0, now.isoformat()
    for size in sizes:
        results.append(
            [{"job_id": str(j["job_id"]), "workdir": j["workdir"], "created_at": created} for j in jobs[start : start + size]]
        )
        start += size
    return results


def create_jobs(rows):
    """Insert jobs in state CREATED; returns ``[{"job_id", "workdir"}]`` in order.

    A row may carry ``parents`` (job ids, possibly of jobs earlier in ``rows``).
    """
    return create_jobs_many([rows])[0]


class _AppNameCache:
    """Application names known to exist. Only the dbserver enables it: as the
    one writer it sees every change to applications and clears it then."""

    enabled = False
    names = set()


def enable_app_name_cache():
    _AppNameCache.enabled = True
    _AppNameCache.names = set()


def _forget_app_names():
    _AppNameCache.names = set()


def _require_apps(names):
    names = set(names) - _AppNameCache.names
    if not names:
        return
    known = set(ApplicationDefinition.objects.filter(name__in=names).values_list("name", flat=True))
    if _AppNameCache.enabled:
        _AppNameCache.names |= known
    unknown = sorted(names - known)
    if unknown:
        raise ValidationError(
            f"application {unknown[0]!r} does not exist; add it with: balsam app --name {unknown[0]} --executable ..."
        )


def update_jobs(ids, fields):
    """Set fields on jobs; a ``state`` among them goes through ``transition_jobs``."""
    ids = [_uuid(i) for i in ids]
    fields = dict(fields)
    new_state = fields.pop("state", None)
    fields = _clean_fields(BalsamJob, fields, JOB_UPDATE_FIELDS)
    _job_states(ids)
    if "application" in fields and fields["application"]:
        _require_apps({fields["application"]})
    if new_state is not None:
        transition_jobs([str(i) for i in ids], new_state, "state set by a field update")
    if fields:
        for chunk in chunks(ids):
            BalsamJob.objects.filter(pk__in=chunk)._direct_update(**fields)
    return len(ids)


def update_jobs_each(items):
    """``[[id, {field: value}], ...]``: different values for each job, one
    request; jobs with the same set of fields are updated by one executemany."""
    if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
        raise ValidationError("items must be a list of [job id, fields] pairs")
    groups = {}
    for job_id, fields in items:
        if isinstance(fields, dict) and "state" in fields:
            update_jobs([job_id], fields)  # state changes go through the state machine
            continue
        cleaned = _clean_fields(BalsamJob, fields, JOB_UPDATE_FIELDS - {"state"})
        if "application" in cleaned and cleaned["application"]:
            _require_apps({cleaned["application"]})
        groups.setdefault(tuple(sorted(cleaned)), []).append((_uuid(job_id), cleaned))
    for names, rows in groups.items():
        _job_states([pk for pk, _ in rows])
        if not names:
            continue
        fields = [BalsamJob._meta.get_field(name) for name in names]
        table = connection.ops.quote_name(BalsamJob._meta.db_table)
        assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
        pk_prep = _fast_prep(BalsamJob._meta.pk) or BalsamJob._meta.pk.get_db_prep_save
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {connection.ops.quote_name(BalsamJob._meta.pk.column)} = %s",
                [[f.get_db_prep_save(values[f.name], connection) for f in fields] + [pk_prep(pk, connection)]
                 for pk, values in rows],
            )
    return len(items)


def delete_jobs(ids):
    """Remove jobs with their events and edges; returns how many were removed."""
    ids = [_uuid(i) for i in ids]
    count = 0
    for chunk in chunks(ids):
        JobEvent.objects.filter(job_id__in=chunk)._raw_delete(connection.alias)
        JobDependency.objects.filter(models.Q(child_id__in=chunk) | models.Q(parent_id__in=chunk))._raw_delete(
            connection.alias
        )
        count += BalsamJob.objects.filter(pk__in=chunk)._raw_delete(connection.alias)
    return count


def _record(moves, to_state, message, now):
    """Apply ``moves`` ({uuid: from_state}) to ``to_state`` with one event each."""
    if not moves:
        return
    # Raw SQL and executemany: Django's update and bulk_create cost several
    # times more per row, and every state change of every job comes here.
    stamp = JobEvent._meta.get_field("timestamp").get_db_prep_save(now, connection)
    pks = pk_params(moves)
    for chunk in chunks(pks):
        marks = ", ".join(["%s"] * len(chunk))
        raw_executemany(f"UPDATE balsam_job SET state = %s, state_changed_at = %s WHERE job_id IN ({marks})",
                        [[to_state, stamp] + chunk])
    raw_executemany(
        "INSERT INTO balsam_job_event (job_id, timestamp, from_state, to_state, message) VALUES (%s, %s, %s, %s, %s)",
        [(pk, stamp, from_state, to_state, message) for pk, from_state in zip(pks, moves.values())],
    )


def transition_jobs(ids, state, message="", strict=True):
    """The one choke point for state changes.

    Checks every move against the transition table using the states stored in
    the DB. ``strict``: one illegal move fails the whole request; otherwise
    illegal moves are skipped and reported. Parents that end FAILED or killed
    settle their waiting children in the same transaction.
    """
    ids = [_uuid(i) for i in ids]
    to_state = states.validate_state_name(state)
    if not isinstance(message, str):
        raise ValidationError("message must be text")
    current = _job_states(ids)
    moves, refused = {}, {}
    for pk in ids:
        from_state, name = current[pk]
        if states.is_allowed(from_state, to_state):
            moves[pk] = from_state
        elif strict:
            states.check_transition(from_state, to_state, _label(name, pk))
        else:
            refused[str(pk)] = from_state
    now = timezone.now()
    _record(moves, to_state, message, now)
    settled = []
    if to_state in states.KILLING_STATES:
        settled = _settle_children(list(moves), current, now)
    return {
        "moved": [str(pk) for pk in moves],
        "from": {str(pk): s for pk, s in moves.items()},
        "refused": refused,
        "settled": settled,
    }


def _children_of(parent_ids):
    children = {}
    for chunk in chunks(parent_ids):
        for child, parent in JobDependency.objects.filter(parent_id__in=chunk).values_list("child_id", "parent_id"):
            children.setdefault(parent, []).append(child)
    return children


def _settle_children(dead_ids, known, now=None):
    """Waiting descendants of jobs that can never finish become PARENT_KILLED."""
    now = now or timezone.now()
    settled = []
    queue = deque(dead_ids)
    names = {pk: info[1] for pk, info in known.items()}
    while queue:
        batch = [queue.popleft() for _ in range(min(len(queue), SQL_CHUNK))]
        links = _children_of(batch)
        child_ids = {c for kids in links.values() for c in kids}
        if not child_ids:
            continue
        waiting = {
            pk: (state, name)
            for pk, state, name in BalsamJob.objects.filter(
                pk__in=list(child_ids), state__in=states.WAITING_STATES, wait_for_parents=True
            ).values_list("pk", "state", "name")
        }
        for parent, kids in links.items():
            moves = {kid: waiting[kid][0] for kid in kids if kid in waiting}
            if not moves:
                continue
            parent_name = names.get(parent) or BalsamJob.objects.filter(pk=parent).values_list("name", flat=True).first()
            _record(moves, states.PARENT_KILLED, f"parent {_label(parent_name or '', parent)} cannot finish", now)
            for kid in moves:
                names[kid] = waiting.pop(kid)[1]
                settled.append(str(kid))
                queue.append(kid)
    return settled


def kill_jobs(ids, recursive=True, message="killed by user"):
    """USER_KILLED for the jobs (and, if ``recursive``, every unfinished descendant)."""
    ids = [_uuid(i) for i in ids]
    current = _job_states(ids)
    targets = dict.fromkeys(ids)
    if recursive:
        queue = deque(ids)
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), SQL_CHUNK))]
            for kids in _children_of(batch).values():
                for kid in kids:
                    if kid not in targets:
                        targets[kid] = None
                        queue.append(kid)
    current.update(_job_states([pk for pk in targets if pk not in current]))
    now = timezone.now()
    moves = {pk: current[pk][0] for pk in targets if states.is_allowed(current[pk][0], states.USER_KILLED)}
    _record(moves, states.USER_KILLED, message, now)
    settled = _settle_children(list(moves), current, now)
    return {"killed": [str(pk) for pk in moves], "settled": settled}


# ---------------------------------------------------------------------------
# dependencies
# ---------------------------------------------------------------------------
def _ancestors_include(start, target):
    """Is ``target`` ``start`` or one of its ancestors?"""
    seen = {start}
    queue = deque([start])
    while queue:
        batch = [queue.popleft() for _ in range(min(len(queue), SQL_CHUNK))]
        if target in batch:
            return True
        for parent in JobDependency.objects.filter(child_id__in=batch).values_list("parent_id", flat=True):
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return False


def add_dependency(parent, child):
    parent, child = _uuid(parent), _uuid(child)
    found = _job_states([parent, child])
    p_label, c_label = _label(found[parent][1], parent), _label(found[child][1], child)
    if parent == child:
        raise DependencyError(f"a job cannot depend on itself ({c_label})")
    if JobDependency.objects.filter(parent_id=parent, child_id=child).exists():
        raise DependencyError(f"{c_label} already depends on {p_label}")
    if _ancestors_include(parent, child):
        raise DependencyError(f"making {c_label} depend on {p_label} would create a cycle")
    child_state = found[child][0]
    if child_state not in states.WAITING_STATES:
        raise DependencyError(
            f"{c_label} is {child_state}; parents can only be added to jobs in CREATED or AWAITING_PARENTS"
        )
    JobDependency.objects._direct_bulk_create([JobDependency(parent_id=parent, child_id=child)])
    settled = []
    if found[parent][0] in states.KILLING_STATES:
        settled = _settle_children([parent], found)
    return {"settled": settled}


def remove_dependency(parent, child):
    parent, child = _uuid(parent), _uuid(child)
    deleted = JobDependency.objects.filter(parent_id=parent, child_id=child)._raw_delete(connection.alias)
    if not deleted:
        raise NotFound(f"job {str(child)[:8]} does not depend on {str(parent)[:8]}")
    return deleted


# ---------------------------------------------------------------------------
# leases: which launcher runs which job
# ---------------------------------------------------------------------------
def _owner(owner):
    if not isinstance(owner, str) or not owner.strip() or len(owner) > 255:
        raise ValidationError("a lease owner must be a non-empty name of at most 255 characters")
    return owner


def _state_list(names):
    if not isinstance(names, list) or not names:
        raise ValidationError("states must be a non-empty list of state names")
    return [states.validate_state_name(name) for name in names]


def _positive_number(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(f"{name} must be a positive number, not {value!r}")
    return value


def job_scope(workflow=None, job_ids=None, serial_only=False, max_num_nodes=None, max_wall_time_minutes=None,
              queued_launch=None, mpi_only=False):
    """The jobs a launcher works on: its workflow or job list, and what fits its
    mode (serial: one node, one rank), its allocation and its time left."""
    qs = BalsamJob.objects.all()
    if workflow is not None:
        qs = qs.filter(workflow=workflow)
    if job_ids is not None:
        qs = qs.filter(pk__in=[_uuid(i) for i in job_ids])
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


def claim_jobs(owner, states, limit=1, lease_expiry_sec=180, scope=None):
    """Lease up to ``limit`` jobs in ``states`` (within ``scope``, see
    ``job_scope``) that nobody holds, or whose holder stopped heartbeating
    ``lease_expiry_sec`` ago; returns their ids.

    Runs inside the write transaction, so two launchers never get the same job.
    """
    owner = _owner(owner)
    wanted = _state_list(states)
    _positive_number("limit", limit, allow_zero=True)
    _positive_number("lease_expiry_sec", lease_expiry_sec)
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
    free = models.Q(lease_owner="") | models.Q(lease_heartbeat__lt=cutoff) | models.Q(lease_heartbeat__isnull=True)
    if scope is not None and not isinstance(scope, dict):
        raise ValidationError("scope must be an object of job_scope options")
    try:
        qs = job_scope(**(scope or {})).filter(free, state__in=wanted)
    except TypeError as exc:
        raise ValidationError(f"bad claim scope: {exc}") from None
    ids = list(qs.order_by("created_at").values_list("pk", flat=True)[: int(limit)])
    for chunk in chunks(ids):
        BalsamJob.objects.filter(pk__in=chunk)._direct_update(lease_owner=owner, lease_heartbeat=now)
    return [str(pk) for pk in ids]


def recover_expired_leases(lease_expiry_sec):
    """Jobs whose launcher stopped heartbeating: RUNNING ones go to
    RESTART_READY; every expired lease is cleared. Returns the recovered ids."""
    _positive_number("lease_expiry_sec", lease_expiry_sec)
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=lease_expiry_sec)
    expired = BalsamJob.objects.exclude(lease_owner="").filter(
        models.Q(lease_heartbeat__lt=cutoff) | models.Q(lease_heartbeat__isnull=True)
    )
    running = {pk: owner for pk, owner in expired.filter(state=states.RUNNING).values_list("pk", "lease_owner")}
    # A RUNNING job nobody holds can only have lost its launcher (a safety net).
    orphans = BalsamJob.objects.filter(lease_owner="", state=states.RUNNING, state_changed_at__lt=cutoff)
    running.update((pk, "(none)") for pk in orphans.values_list("pk", flat=True))
    for owner in set(running.values()):
        ids = [pk for pk, o in running.items() if o == owner]
        _record({pk: states.RUNNING for pk in ids}, states.RESTART_READY,
                f"recovered: launcher {owner} stopped heartbeating", now)
    expired._direct_update(lease_owner="", lease_heartbeat=None)
    return [str(pk) for pk in running]


def heartbeat_leases(owner, ids=None):
    """Renew the owner's leases (all of them, or ``ids``); returns how many."""
    qs = BalsamJob.objects.filter(lease_owner=_owner(owner))
    if ids is not None:
        qs = qs.filter(pk__in=[_uuid(i) for i in ids])
    return qs._direct_update(lease_heartbeat=timezone.now())


def release_leases(owner, ids=None):
    """Give up the owner's leases (all of them, or ``ids``); returns how many."""
    qs = BalsamJob.objects.filter(lease_owner=_owner(owner))
    if ids is not None:
        qs = qs.filter(pk__in=[_uuid(i) for i in ids])
    return qs._direct_update(lease_owner="", lease_heartbeat=None)


def apply_batch(moves=(), fields=(), release_owner=None, release_ids=()):
    """A launcher's writes of one loop pass in one transaction: per-job field
    updates, then each ``[ids, state, message]`` move (illegal moves refused,
    not failed: a user may have killed the job meanwhile), then lease releases.
    Returns the refused moves ``{id: stored state}``."""
    if fields:
        update_jobs_each([list(item) for item in fields])
    refused = {}
    for move in moves:
        if not (isinstance(move, list) and len(move) == 3):
            raise ValidationError("moves must be a list of [job ids, state, message]")
        ids, state, message = move
        refused.update(transition_jobs(ids, state, message, strict=False)["refused"])
    if release_owner is not None:
        release_leases(release_owner, list(release_ids) + list(refused))
    return {"refused": refused}


# ---------------------------------------------------------------------------
# the whitelist
# ---------------------------------------------------------------------------
OPERATIONS = {
    "create_apps": create_apps,
    "update_apps": update_apps,
    "delete_apps": delete_apps,
    "create_jobs": create_jobs,
    "update_jobs": update_jobs,
    "delete_jobs": delete_jobs,
    "transition_jobs": transition_jobs,
    "kill_jobs": kill_jobs,
    "add_dependency": add_dependency,
    "remove_dependency": remove_dependency,
    "update_jobs_each": update_jobs_each,
    "apply_batch": apply_batch,
    "recover_expired_leases": recover_expired_leases,
    "claim_jobs": claim_jobs,
    "heartbeat_leases": heartbeat_leases,
    "release_leases": release_leases,
}

from balsam.core import launch_writes  # noqa: E402  (uses helpers defined above)

OPERATIONS.update(launch_writes.OPERATIONS)


