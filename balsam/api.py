"""The Python API shared by the CLI, the ``dag`` module, the launcher and the service.

Functions here resolve user references (id prefixes, names), build write
requests and hand them to the write client; they print nothing.
"""

import functools
import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from balsam import config
from balsam.core import write_client
from balsam.wire.protocol import JOBS_PER_REQUEST
from balsam.exceptions import AmbiguousId, ConfigError, NotFound, ValidationError

DUMMY_APP = "dummy"
DUMMY_WORKFLOW = "dummy"
MAX_CANDIDATES_SHOWN = 10


# ---------------------------------------------------------------------------
# attaching to a DB
# ---------------------------------------------------------------------------
def attach(cli_path=None, admin=False, current_schema=True):
    """Select the DB (``--db``, ``BALSAM_DB_PATH``, user_settings, repo default),
    check it, configure Django for it, and export ``BALSAM_DB_PATH`` for children.

    ``current_schema``: refuse (one line) a DB whose tables are older than
    this Balsam -- ``balsam init PATH`` updates them. Without the check, an
    old DB fails later on a missing column, or runs without an index a query
    now relies on (a launcher took 5 jobs/s). Commands that only copy or
    inspect the DB (``which``, ``db backup``, ``db restore``, ``doctor``)
    pass False."""
    from balsam.django_config import activate, missing_schema_updates

    selection = config.select_db(cli_path)
    if selection.is_repo_default and not config.is_balsam_db(selection.path):
        from balsam.dbdir import init_db

        init_db(selection.path)
    path = config.require_db(selection)
    os.environ["BALSAM_DB_PATH"] = str(path)
    activate(path, admin=admin)
    if current_schema:
        missing = missing_schema_updates()
        if missing:
            raise ConfigError(f"the DB at {path} is older than this Balsam ({len(missing)} schema update(s) not "
                              f"applied, the latest {missing[-1]}); update it with: balsam init {path}")
    return selection


def integrity(seconds):
    """SQLite's quick check of the attached DB, given at most ``seconds``:
    "ok", or "not finished in N s" on a large DB; raises ``DBDamaged``."""
    from balsam.core.sql import check_sound

    return "ok" if check_sound(seconds) else f"not finished in {seconds:g} s (a large DB; balsam init checks longer)"


def write_path_description():
    """Where this process's writes go, in words (for ``balsam which``)."""
    db_path = _attached_path()
    if not config.can_write(db_path) and not _is_collaborator(db_path):
        return f"read only (the DB belongs to {config.owner_name(db_path)}; you may read it)"
    return write_client.get().describe()


def require_writable(what="change this DB"):
    """``AccessDenied`` naming the owner when this user may only read the DB
    (checked before a command prints what it is about to write). A
    collaborator with a saved login writes through the owner's dbserver."""
    db_path = _attached_path()
    if not _is_collaborator(db_path):
        config.require_write_access(db_path, what)


def _is_collaborator(db_path):
    from balsam.wire.credentials import collaborator_keys

    return not config.can_write(db_path) and collaborator_keys(db_path) is not None


def _attached_path():
    from django.conf import settings

    return Path(settings.BALSAM_DB_PATH)


# ---------------------------------------------------------------------------
# finding things
# ---------------------------------------------------------------------------
def _models():
    from balsam.core import models

    return models


def _queries():
    from balsam.core import queries

    return queries


def parse_id_prefix(text):
    """``text`` as the start of a job id (hex digits; dashes dropped), or None."""
    cleaned = str(text).strip().lower().replace("-", "")
    if not cleaned or any(c not in "0123456789abcdef" for c in cleaned) or len(cleaned) > 32:
        return None
    return cleaned


def _ambiguous(what, ref, matches):
    shown = ", ".join(f"[{getattr(m, 'name', m)} | {getattr(m, 'job_id', '')}]" for m in matches[:MAX_CANDIDATES_SHOWN])
    more = f" and {len(matches) - MAX_CANDIDATES_SHOWN} more" if len(matches) > MAX_CANDIDATES_SHOWN else ""
    return AmbiguousId(f"{what} {ref!r} is ambiguous: it matches {shown}{more}")


def get_job(ref, by_name=True):
    """The one job whose id starts with ``ref`` (dashes optional) or, with
    ``by_name``, whose name is exactly ``ref``. A name like "b" is also an id
    prefix: when the two point at different jobs the reference is ambiguous."""
    BalsamJob = _models().BalsamJob
    if isinstance(ref, BalsamJob):
        return ref
    ref = str(ref)
    matches = {}
    queries = _queries()
    prefix = parse_id_prefix(ref)
    if prefix:
        matches.update((job.pk, job) for job in queries.jobs_with_id_prefix(prefix, MAX_CANDIDATES_SHOWN + 1))
    if by_name:
        matches.update((job.pk, job) for job in queries.jobs_named(ref, MAX_CANDIDATES_SHOWN + 1))
    if len(matches) == 1:
        return next(iter(matches.values()))
    if matches:
        jobs = sorted(matches.values(), key=lambda j: j.job_id.hex)
        raise _ambiguous("job id or name" if by_name else "job id", ref, jobs)
    raise NotFound(f"no job with id or name {ref!r}" if by_name else f"no job with id {ref!r}")


def get_app(ref):
    """The application whose id or name is ``ref``."""
    App = _models().ApplicationDefinition
    if isinstance(ref, App):
        return ref
    text = str(ref).strip()
    queries = _queries()
    if text.isdigit():
        app = queries.application_by_id(int(text))
        if app:
            return app
    app = queries.application(text)
    if app is None:
        raise NotFound(f"no application with id or name {text!r}; see: balsam ls apps")
    return app


def job_by_id(text):
    """The job with exactly this id, or None."""
    found = _queries().jobs_by_id([job_uuid(text)])
    return found[0] if found else None


def job_uuid(text):
    """``text`` as a UUID, or a clear error."""
    from balsam.core.json_values import job_id

    return job_id(text)


# ---------------------------------------------------------------------------
# parsing user input
# ---------------------------------------------------------------------------
def parse_env(pairs):
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``; one clear error otherwise."""
    env = {}
    for pair in pairs or ():
        name, sep, value = str(pair).partition("=")
        name = name.strip()
        if not sep or not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise ValidationError(f"--env expects VARIABLE=value, got {pair!r}")
        env[name] = value
    return env


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def parse_value(model, attr, text):
    """Parse command-line ``text`` by the type of ``model.attr`` (``"False"`` is false)."""
    from django.core.exceptions import FieldDoesNotExist
    from django.db import models

    try:
        field = model._meta.get_field(attr)
    except FieldDoesNotExist:
        names = sorted(f.name for f in model._meta.concrete_fields)
        raise ValidationError(f"{model._meta.verbose_name} has no field {attr!r}; fields: {', '.join(names)}") from None
    text = str(text)
    if isinstance(field, models.BooleanField):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValidationError(f"{attr} must be true or false, not {text!r}")
    if isinstance(field, models.IntegerField):
        try:
            return int(text)
        except ValueError:
            raise ValidationError(f"{attr} must be a whole number, not {text!r}") from None
    if isinstance(field, models.FloatField):
        try:
            return float(text)
        except ValueError:
            raise ValidationError(f"{attr} must be a number, not {text!r}") from None
    if isinstance(field, models.JSONField):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValidationError(f"{attr} must be JSON, e.g. '{{\"KEY\": \"value\"}}', not {text!r}") from None
    return text


def resolve_command(command):
    """Check that a command line's program exists; run ``.py`` files with this Python."""
    if not command or not command.strip():
        return command
    try:
        tokens = shlex.split(command)
    except ValueError as exc:
        raise ValidationError(f"cannot parse command {command!r}: {exc}") from None
    program = os.path.expanduser(tokens[0])
    # Paths are made absolute (jobs run in their own directories, where a
    # relative path would break) but symlinks are kept: a virtualenv's
    # bin/python is a symlink whose target runs without the venv's packages.
    if program.endswith(".py"):
        if not Path(program).is_file():
            raise ValidationError(f"script {program!r} does not exist")
        return shlex.join([sys.executable, os.path.abspath(program)] + tokens[1:])
    if os.sep in program:
        if not Path(program).is_file():
            raise ValidationError(f"executable {program!r} does not exist")
        if program == tokens[0] and os.path.isabs(program):
            return command  # as the user typed it
        return shlex.join([os.path.abspath(program)] + tokens[1:])
    elif shutil.which(program) is None:
        raise ValidationError(f"executable {program!r} is not on PATH; give its full path")
    return command


# ---------------------------------------------------------------------------
# applications
# ---------------------------------------------------------------------------
def add_app(name, executable, description="", preprocess="", postprocess="", environ_vars=None, check_paths=True):
    App = _models().ApplicationDefinition
    if check_paths:
        executable = resolve_command(executable)
        preprocess = resolve_command(preprocess)
        postprocess = resolve_command(postprocess)
    app = App(
        name=name,
        executable=executable,
        description=description or "",
        preprocess=preprocess or "",
        postprocess=postprocess or "",
        environ_vars=environ_vars or {},
    )
    app.save()
    return app


QSUB_WORKFLOW = "qsub"


def command_app(command):
    """The application that runs ``command`` as it is, for ``balsam qsub``
    (0.2's jobs with a command instead of an application): one per distinct
    command line, named after its hash, made on first use."""
    command = resolve_command(command)
    if not command or not command.strip():
        raise ValidationError("qsub needs the command to run")
    name = "qsub-" + hashlib.sha256(command.encode()).hexdigest()[:12]
    app = _queries().application(name)
    if app is None:
        try:
            app = add_app(name, command, description="made by balsam qsub", check_paths=False)
        except ValidationError:  # made meanwhile by another qsub of the same command
            app = _queries().application(name)
            if app is None:
                raise
    return app


def modify_app(ref, attr, text):
    App = _models().ApplicationDefinition
    app = get_app(ref)
    value = parse_value(App, attr, text)
    if attr in ("executable", "preprocess", "postprocess"):
        value = resolve_command(value)
    write_client.get().update("apps", [app.pk], {attr: value})
    app.refresh_from_db()
    return app, value


def remove_apps(apps):
    ids = [app.pk for app in apps]
    return write_client.get().delete("apps", ids) if ids else 0


# ---------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def job_field_names():
    """Fields a new job may be given (``parents``: ids or jobs it waits for)."""
    from balsam.core.operations.validation import JOB_CREATE_FIELDS

    return frozenset(JOB_CREATE_FIELDS | {"parents"})


def _job_fields(fields):
    """``fields`` without ``parents``, and the parents' ids; unknown field names
    are refused with the list of known ones."""
    parents = fields.pop("parents", None)
    known = job_field_names()
    if not known.issuperset(fields):
        unknown = sorted(set(fields) - known)
        raise ValidationError(f"unknown job field {unknown[0]!r}; job fields: {', '.join(sorted(known))}")
    return fields, [get_job(p, by_name=False).pk for p in parents or ()]


def new_job(creation_note=None, **fields):
    """An unsaved BalsamJob, its fields already checked (the write checks them
    again): a bad value is reported before the job is shown or confirmed.
    ``creation_note`` becomes the first line of its history when it is saved."""
    from balsam.core.operations.validation import JOB_CREATE_FIELDS, clean_fields

    fields, parents = _job_fields(fields)
    clean_fields(_models().BalsamJob, fields, JOB_CREATE_FIELDS)
    job = _models().BalsamJob(**fields)
    if parents:
        job._pending_parents = parents
    job._creation_note = creation_note
    return job


def add_job(save=True, creation_note=None, **fields):
    if not save:
        return new_job(creation_note, **fields)
    fields, parents = _job_fields(fields)
    return _models().BalsamJob.insert(fields, parents, creation_note)


def add_jobs(rows, progress=None):
    """Insert many jobs (dicts of fields) in chunks; returns their ids.

    ``progress(n)`` is called after each chunk with the number just inserted.
    """
    client = write_client.get()
    ids = []
    for start in range(0, len(rows), JOBS_PER_REQUEST):
        chunk = rows[start : start + JOBS_PER_REQUEST]
        created = client.create("jobs", chunk)
        ids.extend(item["job_id"] for item in created)
        if progress:
            progress(len(chunk))
    return ids


def add_dependency(parent, child):
    parent, child = get_job(parent), get_job(child)
    write_client.get().add_dependency(str(parent.pk), str(child.pk))
    return parent, child


def spawn_child(parent, clone=False, **fields):
    """A new job that depends on ``parent`` (and on ``parent``'s parents, as in
    the original Balsam). ``clone`` copies ``parent``'s fields first."""
    parent = get_job(parent)
    base = {}
    if clone:
        skip = parent.SYSTEM_FIELDS | {"job_id"}
        base = {f.name: getattr(parent, f.attname) for f in parent._meta.concrete_fields if f.name not in skip}
    else:
        base["workflow"] = parent.workflow
    base.update(fields)
    parent_ids = _queries().parent_ids(parent.pk) + [parent.pk]
    base["parents"] = [str(p) for p in dict.fromkeys(parent_ids)]
    return add_job(creation_note=f"spawned by {parent.cute_id}", **base)


def kill(job, recursive=True):
    job = get_job(job)
    return write_client.get().kill([str(job.pk)], recursive=recursive)


def modify_job(ref, attr, text):
    """Set one field from command-line text; ``state`` goes through the state machine."""
    BalsamJob = _models().BalsamJob
    job = get_job(ref)
    if attr == "state":
        job.update_state(text, "state changed from the command line")
        return job, job.state
    value = parse_value(BalsamJob, attr, text)
    write_client.get().update("jobs", [str(job.pk)], {attr: value})
    job.refresh_from_db()
    return job, value


def remove_jobs(ids):
    return write_client.get().delete("jobs", [str(i) for i in ids]) if ids else 0


MAX_DUMMIES = 10**8


def check_dummy_count(count):
    if count < 0:
        raise ValidationError(f"the number of dummy jobs must not be negative, not {count}")
    if count > MAX_DUMMIES:
        raise ValidationError(f"the number of dummy jobs must be at most {MAX_DUMMIES:,}, not {count:,}")
    return count


def make_dummies(count, progress=None):
    """Add ``count`` trivial jobs in workflow "dummy" (for testing and benchmarks)."""
    check_dummy_count(count)
    if _queries().application(DUMMY_APP) is None:
        add_app(DUMMY_APP, "echo", description="prints its arguments (used by make_dummies)")
    ids = []
    for start in range(0, count, JOBS_PER_REQUEST):  # rows made a request at a time: memory stays flat
        rows = [{"name": f"dummy{i}", "workflow": DUMMY_WORKFLOW, "application": DUMMY_APP, "args": "hello",
                 "wall_time_minutes": 0} for i in range(start, min(count, start + JOBS_PER_REQUEST))]
        ids += add_jobs(rows, progress=progress)
    return ids


# ---------------------------------------------------------------------------
# listings and summaries (what the CLI shows)
# ---------------------------------------------------------------------------
def find_jobs(name_contains=None, id_prefix=None, state=None, workflow=None):
    """Jobs matching every given filter (a queryset, oldest first). ``id_prefix``
    must already be parsed (``parse_id_prefix``)."""
    return _queries().jobs_matching(name_contains, id_prefix, state, workflow)


def job_ids(name=None):
    """Ids of every job, or of the jobs named exactly ``name``."""
    return _queries().job_ids(name)


def find_apps(name=None):
    """Every application, or the one named exactly ``name`` (a list)."""
    return _queries().applications(name)


def parent_ids(job):
    """Ids of ``job``'s parents (of a new, unsaved job: the ones it will get)."""
    if job._state.adding:
        return list(getattr(job, "_pending_parents", None) or [])
    return _queries().parent_ids(job.pk)


def dependency_edges(job_ids):
    """``[(child, parent)]`` among ``job_ids`` (for trees)."""
    return _queries().edges_among(job_ids)


def state_counts(queryset=None):
    """{state: jobs} over ``queryset`` (default: every job)."""
    return _queries().state_counts(queryset)


def workflow_counts(workflow=None):
    """{workflow: {state: jobs}}."""
    return _queries().workflow_state_counts(workflow)


def launches():
    """Every batch launch, oldest first, each with ``tied``: its job count."""
    return list(_queries().launches_with_job_counts())


def tied_job_count(launch_id):
    return _queries().tied_job_count(launch_id)
