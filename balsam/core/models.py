"""Balsam's tables: applications, jobs, job dependencies and job events.

Every write is routed through the installed write client (``core.write_client``):
``save()``, ``delete()``, and the querysets' ``update()``, ``delete()``,
``bulk_create()``. The client applies it with the operations in
``core.operations`` -- directly, or through the dbserver. Reads go to the DB
file (the queries themselves live in ``core.queries``).
"""

import copy
import datetime
import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from balsam.core import launch_states, sql, states, write_client
from balsam.core.json_values import fields_to_wire
from balsam.wire.protocol import JOBS_PER_REQUEST
from balsam.exceptions import BalsamError, NotFound

logger = logging.getLogger(__name__)

STATE_CHOICES = [(s, s) for s in states.ALL_STATES]
_COMPUTED = object()  # a default made per object (a callable)


class RoutedQuerySet(models.QuerySet):
    """A queryset whose writes go through the write client.

    ``write_kind`` names the operations ("jobs" or "apps"); the ``_direct_*``
    methods are Django's own writes, for use by ``core.operations`` only.
    """

    write_kind = None

    def _ids(self):
        return [str(pk) for pk in self.values_list("pk", flat=True)]

    def update(self, **fields):
        ids = self._ids()
        if not ids:
            return 0
        return write_client.get().update(self.write_kind, ids, fields_to_wire(fields))

    update.alters_data = True

    def delete(self):
        ids = self._ids()
        if not ids:
            return 0, {}
        count = write_client.get().delete(self.write_kind, ids)
        return count, {self.model._meta.label: count}

    delete.alters_data = True

    def bulk_create(self, objs, batch_size=None, **kwargs):
        objs = list(objs)
        for start in range(0, len(objs), JOBS_PER_REQUEST):
            self.model._create_many(objs[start : start + JOBS_PER_REQUEST])
        return objs

    def bulk_update(self, objs, fields, batch_size=None):
        for obj in objs:
            values = {name: getattr(obj, name) for name in fields}
            write_client.get().update(self.write_kind, [str(obj.pk)], fields_to_wire(values))
        return len(objs)

    def _direct_update(self, **fields):
        return super().update(**fields)

    def _direct_bulk_create(self, objs, **kwargs):
        return super().bulk_create(objs, **kwargs)

    # Private methods are left off managers unless asked for; core.operations uses these.
    _direct_update.queryset_only = False
    _direct_bulk_create.queryset_only = False


class TrackedModel(models.Model):
    """Remembers the values loaded from the DB so ``save()`` sends only changes."""

    class Meta:
        abstract = True

    _mutable_fields = ()

    @classmethod
    def _field_plan(cls):
        """Per class, computed once: ``(name, attname, field, fixed, sent)`` for
        every concrete field. ``fixed`` is its default when that is a plain
        value, else ``_COMPUTED`` (made per object: ids, times, dicts);
        ``sent`` is the value a new row need not send (``_COMPUTED``: always send)."""
        plan = cls.__dict__.get("_field_plan_cache")
        if plan is None:
            plan = []
            for field in cls._meta.concrete_fields:
                if not field.has_default() or not callable(field.default):
                    fixed = sent = field.get_default()  # without a default: a constant None or ""
                elif field.default in (dict, list):
                    fixed, sent = _COMPUTED, field.default()
                else:
                    fixed = sent = _COMPUTED
                plan.append((field.name, field.attname, field, fixed, sent))
            plan = tuple(plan)
            cls._field_plan_cache = plan
        return plan

    @classmethod
    def _defaults(cls):
        """Per class, computed once: ``({attname: plain default}, [(attname, field)
        whose default is made per object])``."""
        cached = cls.__dict__.get("_defaults_cache")
        if cached is None:
            fixed, computed = {}, []
            for _, attname, field, value, _ in cls._field_plan():
                if value is _COMPUTED:
                    computed.append((attname, field))
                else:
                    fixed[attname] = value
            cached = cls._defaults_cache = (fixed, tuple(computed))
        return cached

    @classmethod
    def build(cls, **fields):
        """An unsaved object with ``fields`` set: what ``cls(**fields)`` makes,
        without Django's per-field ``__init__`` work (several times cheaper,
        which matters when user code adds jobs one call at a time). Field
        names must be attribute names (callers validate them)."""
        fixed, computed = cls._defaults()
        obj = cls.__new__(cls)
        obj._state = models.base.ModelState()
        values = obj.__dict__
        values.update(fixed)
        for attname, field in computed:
            if attname not in fields:
                values[attname] = field.get_default()
        values.update(fields)
        return obj

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._remember_loaded()
        return instance

    def _remember_loaded(self):
        # A C-level copy of the instance dict; extra keys are harmless
        # (changed_fields looks only at fields), but the previous snapshot
        # must not be kept alive through it.
        loaded = self.__dict__.copy()
        loaded.pop("_loaded_values", None)
        loaded.pop("_state", None)
        for name in self._mutable_fields:  # dicts or lists the caller may change in place
            value = loaded.get(name)
            if value is not None:
                loaded[name] = copy.deepcopy(value) if value else type(value)()
        self._loaded_values = loaded

    def refresh_from_db(self, *args, **kwargs):
        super().refresh_from_db(*args, **kwargs)
        self._remember_loaded()

    def changed_fields(self):
        loaded = getattr(self, "_loaded_values", {})
        values = self.__dict__
        changed = {}
        pk_attname = self._meta.pk.attname
        for name, attname, _, _, _ in self._field_plan():
            if attname == pk_attname or attname not in loaded:
                continue
            value = values.get(attname, loaded[attname])
            if value != loaded[attname]:
                changed[name] = value
        return changed

    def wire_row(self):
        """The field values to insert this object: only those that differ
        from their defaults (the writer fills in the rest)."""
        row = {}
        values = self.__dict__
        for name, attname, _, _, sent in self._field_plan():
            value = values.get(attname)
            if sent is _COMPUTED or sent != value:
                row[name] = value
        return fields_to_wire(row)

    # Fields the writer sets itself when it inserts (ids, its clock).
    _writer_fields = ("id", "created_at")

    def _insert_row(self):
        """What goes over the wire to insert this object."""
        row = self.wire_row()
        for name in self._writer_fields:
            row.pop(name, None)
        return row

    @classmethod
    def _inserted_values(cls, result):
        """{attname: value} the writer's answer for one inserted row sets (its id)."""
        return {cls._meta.pk.attname: result}

    @classmethod
    def _create_many(cls, objs):
        """Insert ``objs`` through the write path; they get what it assigned (ids, times)."""
        results = write_client.get().create(cls.write_kind, [obj._insert_row() for obj in objs])
        for obj, result in zip(objs, results):
            obj.__dict__.update(cls._inserted_values(result))
            obj._state.adding = False
            obj._remember_loaded()

    def save(self, *args, **kwargs):
        if self._state.adding:
            self._create_many([self])  # also marks it saved and remembers its values
            return
        changed = self.changed_fields()
        if changed:
            write_client.get().update(self.write_kind, [str(self.pk)], fields_to_wire(changed))
            self._remember_loaded()

    save.alters_data = True

    def delete(self, *args, **kwargs):
        count = write_client.get().delete(self.write_kind, [str(self.pk)])
        return count, {self._meta.label: count}

    delete.alters_data = True


class AppQuerySet(RoutedQuerySet):
    write_kind = "apps"


class ApplicationDefinition(TrackedModel):
    """A named executable that jobs run, with optional pre/postprocess scripts."""

    write_kind = "apps"
    _mutable_fields = ("environ_vars",)

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    executable = models.TextField()
    preprocess = models.TextField(blank=True, default="")
    postprocess = models.TextField(blank=True, default="")
    environ_vars = models.JSONField(default=dict, blank=True)

    objects = AppQuerySet.as_manager()

    class Meta:
        db_table = "balsam_app"
        ordering = ["name"]
        verbose_name = "application"

    def __str__(self):
        return self.name

    @property
    def cute_id(self):
        return f"[{self.name} | {self.pk}]"



class JobQuerySet(RoutedQuerySet):
    write_kind = "jobs"


def _new_job_id():
    return uuid.uuid4()


class BalsamJob(TrackedModel):
    """One task to run: what to run, with what resources, and where it stands."""

    write_kind = "jobs"
    _mutable_fields = ("environ_vars", "data")
    # Set by Balsam itself, never by a job's creator.
    SYSTEM_FIELDS = frozenset(
        {"workdir", "state", "state_changed_at", "created_at", "lease_owner", "lease_heartbeat", "lease_expires_at",
         "runtime_seconds", "queued_launch", "timeout_retries"}
    )

    job_id = models.UUIDField(primary_key=True, default=_new_job_id, editable=False)
    # Indexed through the (workflow, state) index below.
    workflow = models.CharField(max_length=255, blank=True, default="")
    name = models.CharField(max_length=255, blank=True, default="", db_index=True)
    description = models.TextField(blank=True, default="")

    # Path of the working directory under <DB>/data/, chosen once when the job is
    # created (unique, so two jobs never share a directory).
    workdir = models.CharField(max_length=600, unique=True, editable=False)
    user_workdir = models.TextField(blank=True, default="")

    parents = models.ManyToManyField(
        "self",
        symmetrical=False,
        through="JobDependency",
        through_fields=("child", "parent"),
        related_name="children",
        blank=True,
    )
    wait_for_parents = models.BooleanField(default=True)
    input_files = models.TextField(blank=True, default="*")
    stage_in_url = models.TextField(blank=True, default="")
    stage_out_files = models.TextField(blank=True, default="")
    stage_out_url = models.TextField(blank=True, default="")

    application = models.CharField(max_length=100, blank=True, default="")
    args = models.TextField(blank=True, default="")
    preprocess = models.TextField(blank=True, default="")
    postprocess = models.TextField(blank=True, default="")
    post_error_handler = models.BooleanField(default=False)
    post_timeout_handler = models.BooleanField(default=False)
    auto_timeout_retry = models.BooleanField(default=True)
    environ_vars = models.JSONField(default=dict, blank=True)

    # 0: no limit. Otherwise the launcher stops the run after this many minutes.
    wall_time_minutes = models.FloatField(default=0)
    num_nodes = models.IntegerField(default=1)
    ranks_per_node = models.IntegerField(default=1)
    threads_per_rank = models.IntegerField(default=1)
    threads_per_core = models.IntegerField(default=1)
    node_packing_count = models.IntegerField(default=1)

    # Indexed through the (state, state_changed_at) index below.
    state = models.CharField(max_length=32, choices=STATE_CHOICES, default=states.CREATED)
    state_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    runtime_seconds = models.FloatField(null=True, blank=True)
    # Reruns after the job ran past its own wall time (the launcher gives up
    # after launcher_max_timeout_retries of them).
    timeout_retries = models.IntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)

    # Launcher lease: who runs the job and when it last said so.
    lease_owner = models.CharField(max_length=255, blank=True, default="")
    lease_heartbeat = models.DateTimeField(null=True, blank=True)
    # When the lease lapses unless renewed: set by its holder with its own
    # expiry, so launchers with different expiries agree on whose lease lapsed.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The batch launch the service sized for this job (its launcher runs it).
    queued_launch = models.ForeignKey(
        "QueuedLaunch", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs", db_index=False
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "balsam_job"
        ordering = ["created_at"]
        verbose_name = "job"
        indexes = [
            models.Index(fields=["workflow", "state"], name="balsam_job_wf_state"),
            # Jobs in a state, most recently changed first (recent failures, the
            # admin's list filtered by state) without sorting them all.
            models.Index(fields=["state", "state_changed_at"], name="balsam_job_state_time"),
            # Only leased (running) jobs are indexed: the rest would all share ''.
            models.Index(fields=["lease_owner"], name="balsam_job_lease", condition=~models.Q(lease_owner="")),
            # Likewise only jobs tied to a launch: every other insert skips this index.
            models.Index(fields=["queued_launch"], name="balsam_job_launch",
                         condition=models.Q(queued_launch__isnull=False)),
        ]

    def __str__(self):
        return self.cute_id

    # ---- identity -------------------------------------------------------------
    @property
    def short_id(self):
        return self.job_id.hex[:8]

    @property
    def cute_id(self):
        return f"[{self.name} | {self.short_id}]"

    @property
    def num_ranks(self):
        return self.num_nodes * self.ranks_per_node

    @property
    def working_directory(self):
        """Absolute path of the directory the job runs in."""
        if self.user_workdir:
            return str(Path(self.user_workdir).expanduser().resolve())
        if not self.workdir:
            return ""
        return str(Path(settings.BALSAM_DB_PATH) / "data" / self.workdir)

    def create_working_path(self):
        path = Path(self.working_directory)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def read_file_in_workdir(self, filename):
        path = Path(self.working_directory) / filename
        try:
            return path.read_text()
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist in the working directory of {self.cute_id}") from None

    # ---- relations ------------------------------------------------------------
    def get_parents(self):
        return self.parents.all()

    def get_children(self):
        return self.children.all()

    def get_application(self):
        if not self.application:
            raise NotFound(f"job {self.cute_id} has no application")
        try:
            return ApplicationDefinition.objects.get(name=self.application)
        except ApplicationDefinition.DoesNotExist:
            raise NotFound(f"job {self.cute_id}: application {self.application!r} does not exist") from None

    # ---- state ----------------------------------------------------------------
    def update_state(self, new_state, message=""):
        """Move the job to ``new_state`` (validated), recording an event.

        The transition is checked against the state stored in the DB, not this
        object's copy, so a stale object can never resurrect a killed job.
        """
        new_state = states.validate_state_name(new_state)
        if self._state.adding:
            self.save()
        result = write_client.get().transition([str(self.pk)], new_state, message)
        self.state = new_state
        if self._loaded_values:
            self._loaded_values["state"] = new_state
        logger.info("%s %s -> %s %s", self.cute_id, result.get("from", {}).get(str(self.pk), "?"), new_state, message)
        return result

    def history(self, users=False):
        """(time, from_state, to_state, message) for every change, oldest first;
        the first is the creation ("created", or the note the job was made
        with, e.g. "spawned by [parent | id]"). ``users``: each with the user
        who made it last (None when unknown)."""
        columns = ("timestamp", "from_state", "to_state", "message") + (("user",) if users else ())
        events = list(self.events.order_by("id").values_list(*columns))
        if events and events[0][1] == "":
            return events
        return [(self.created_at, "", states.CREATED, "created") + ((None,) if users else ())] + events

    # ---- creation -------------------------------------------------------------
    @classmethod
    def insert(cls, fields, parents=(), note=None):
        """Insert one job from the fields the caller set and return it saved.

        The lean path behind ``dag.add_job``: only the given fields travel
        (the writer fills in defaults and the id), and the returned object is
        built once, from them and the writer's answer."""
        row = fields_to_wire(fields)
        if parents:
            row["parents"] = [str(p) for p in parents]
        if note:
            row["note"] = note
        info = write_client.get().create("jobs", [row])[0]
        job = cls.build(**{**fields, **cls._inserted_values(info)})
        job._state.adding = False
        job._remember_loaded()
        return job

    _writer_fields = SYSTEM_FIELDS

    def _insert_row(self):
        row = super()._insert_row()
        parents = getattr(self, "_pending_parents", None)
        if parents:
            row["parents"] = [str(p) for p in parents]
        note = getattr(self, "_creation_note", None)
        if note:
            row["note"] = note
        return row

    @classmethod
    def _inserted_values(cls, info):
        stamp = datetime.datetime.fromisoformat(info["created_at"])
        return {"job_id": uuid.UUID(info["job_id"]), "workdir": info["workdir"],
                "created_at": stamp, "state_changed_at": stamp}


class JobDependencyQuerySet(models.QuerySet):
    """Edges are added and removed through the write path (with cycle checks)."""

    def bulk_create(self, objs, **kwargs):
        for edge in objs:
            write_client.get().add_dependency(str(edge.parent_id), str(edge.child_id))
        return objs

    def delete(self):
        edges = list(self.values_list("parent_id", "child_id"))
        for parent, child in edges:
            write_client.get().remove_dependency(str(parent), str(child))
        return len(edges), {JobDependency._meta.label: len(edges)}

    def update(self, **fields):
        raise BalsamError("dependency edges cannot be updated; remove and add them instead")

    def _direct_bulk_create(self, objs, **kwargs):
        return super().bulk_create(objs, **kwargs)

    _direct_bulk_create.queryset_only = False


class JobDependency(models.Model):
    child = models.ForeignKey(BalsamJob, on_delete=models.CASCADE, related_name="parent_links")
    parent = models.ForeignKey(BalsamJob, on_delete=models.CASCADE, related_name="child_links")

    objects = JobDependencyQuerySet.as_manager()

    class Meta:
        db_table = "balsam_job_dependency"
        constraints = [models.UniqueConstraint(fields=["child", "parent"], name="balsam_unique_edge")]

    def save(self, *args, **kwargs):
        write_client.get().add_dependency(str(self.parent_id), str(self.child_id))
        self._state.adding = False


class JobEventQuerySet(models.QuerySet):
    def update(self, **fields):
        raise BalsamError("job events are append-only")

    def delete(self):
        raise BalsamError("job events are append-only; they go when their job is removed")


class JobEvent(models.Model):
    """One state change of one job (append-only; times in UTC)."""

    job = models.ForeignKey(BalsamJob, on_delete=models.CASCADE, related_name="events")
    timestamp = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=32)
    to_state = models.CharField(max_length=32)
    message = models.TextField(blank=True, default="")
    # Who made the change (a UNIX user name: the writing process's, or the
    # dbserver client's by its key); NULL on events from before migration 0009.
    user = models.CharField(max_length=64, null=True, blank=True)

    objects = JobEventQuerySet.as_manager()

    class Meta:
        db_table = "balsam_job_event"
        ordering = ["id"]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.from_state} -> {self.to_state} {self.message}"

    def save(self, *args, **kwargs):
        raise BalsamError("job events are written by state transitions (job.update_state), not saved directly")


class AppliedRequestManager(models.Manager):
    """The only access to the applied-request table, for the dbserver (which
    records and prunes) and its clients (which look a request up after the
    server went away). Raw SQL: it runs on every group commit."""

    def stored(self, request_ids):
        """{request id: stored result (JSON text)} for the ids among ``request_ids`` that were applied."""
        found = {}
        for chunk in sql.chunks(request_ids):
            found.update(sql.raw_fetchall(
                f"SELECT request_id, result FROM {sql.table(self.model)} WHERE request_id IN ({sql.marks(len(chunk))})",
                chunk))
        return found

    def record(self, applied, now):
        """Remember ``applied`` ([(request id, result JSON)]) as applied at ``now``
        (inside the transaction that applied them)."""
        if applied:
            stamp = connection.ops.adapt_datetimefield_value(now)
            sql.raw_executemany(
                f"INSERT INTO {sql.table(self.model)} (request_id, result, applied_at) VALUES (%s, %s, %s)",
                [(rid, result, stamp) for rid, result in applied])

    def prune(self, cutoff):
        """Forget requests applied before ``cutoff``; returns how many."""
        with sql.write_transaction():
            return self.filter(applied_at__lt=cutoff)._raw_delete(self.db)


class AppliedRequest(models.Model):
    """Ids of write requests the dbserver committed, with their results.

    Written in the same transaction as the change itself, so a client that
    retries after a crash gets the original result instead of a second apply.
    Rows older than the longest client deadline are pruned.
    """

    request_id = models.CharField(max_length=64, primary_key=True)
    result = models.TextField()
    applied_at = models.DateTimeField(db_index=True)

    objects = AppliedRequestManager()

    class Meta:
        db_table = "balsam_applied_request"


class DBIdentity(models.Model):
    """The DB's identity: a random id made when the DB is created (one row).
    The dbserver posts it, with the DB file it serves, in ``dbwriter_address``,
    so a copy of the directory is told from the original."""

    db_id = models.CharField(max_length=32)

    class Meta:
        db_table = "balsam_db_identity"


class LaunchQuerySet(RoutedQuerySet):
    write_kind = "launches"


class QueuedLaunch(TrackedModel):
    """One batch job the service (or ``balsam submit-launch``) submitted to run a launcher."""

    write_kind = "launches"

    PENDING, QUEUED, RUNNING = launch_states.PENDING, launch_states.QUEUED, launch_states.RUNNING
    FINISHED, FAILED, CANCELLED = launch_states.FINISHED, launch_states.FAILED, launch_states.CANCELLED
    ACTIVE_STATES = launch_states.ACTIVE

    scheduler = models.CharField(max_length=16)
    scheduler_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    project = models.CharField(max_length=128, blank=True, default="")
    queue = models.CharField(max_length=128)
    nodes = models.IntegerField()
    wall_minutes = models.FloatField()
    job_mode = models.CharField(max_length=8, default="serial")
    wf_filter = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=24, default=PENDING, db_index=True)
    submit_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    script_path = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = LaunchQuerySet.as_manager()

    class Meta:
        db_table = "balsam_launch"
        ordering = ["id"]
        verbose_name = "queued launch"

    def __str__(self):
        return f"launch {self.pk} ({self.scheduler} {self.scheduler_id or '-'}, {self.state})"




class ReadOnlyQuerySet(models.QuerySet):
    """Rows written only by their own write operations (or SQL triggers):
    the ORM may read them, never change them."""

    refusal = "this table is written by Balsam itself"

    def update(self, **fields):
        raise BalsamError(self.refusal)

    def delete(self):
        raise BalsamError(self.refusal)

    def bulk_create(self, objs, **kwargs):
        raise BalsamError(self.refusal)

    def _direct_update(self, **fields):
        return super().update(**fields)

    def _direct_bulk_create(self, objs, **kwargs):
        return super().bulk_create(objs, **kwargs)

    _direct_update.queryset_only = False
    _direct_bulk_create.queryset_only = False


class LauncherQuerySet(ReadOnlyQuerySet):
    refusal = "launcher records are written by launchers (register_launcher, heartbeat_leases, stop_launcher)"


class LauncherRecord(models.Model):
    """A launcher that ran on this DB: who it was (its lease owner name),
    where, with how many run slots, and when it was last heard from. Written
    by the launcher through the write path: registered when it starts,
    ``last_seen_at`` renewed with every lease heartbeat, ``stopped_at`` set
    when it shuts down cleanly. A killed launcher simply stops being seen."""

    owner = models.CharField(max_length=255, unique=True)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    job_mode = models.CharField(max_length=8)
    num_nodes = models.IntegerField()
    # Jobs it can run at once: its SerialSlots/MPISlots capacity.
    capacity = models.IntegerField()
    wf_filter = models.CharField(max_length=255, blank=True, default="")
    # The batch launch it runs in (BALSAM_QUEUED_LAUNCH_ID); a plain id, not a
    # foreign key: the record outlives the launch's row.
    queued_launch_id = models.BigIntegerField(null=True, blank=True)
    # Its own lease expiry: it is alive while last seen less than this long ago.
    lease_expiry_sec = models.FloatField()
    started_at = models.DateTimeField(db_index=True)
    last_seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = LauncherQuerySet.as_manager()

    class Meta:
        db_table = "balsam_launcher"
        ordering = ["-started_at"]
        verbose_name = "launcher"

    def __str__(self):
        return f"launcher {self.owner}"

    def save(self, *args, **kwargs):
        raise BalsamError(LauncherQuerySet.refusal)

    def delete(self, *args, **kwargs):
        raise BalsamError(LauncherQuerySet.refusal)


class StateMinuteQuerySet(ReadOnlyQuerySet):
    refusal = "the per-minute state aggregate is kept by SQL triggers on the job and event tables"


class StateMinute(models.Model):
    """How many jobs of a workflow entered and left each state in one minute:
    the job event table summed per (state, minute, workflow), kept by SQL
    triggers (migration 0008) so that the analytics never scan the event
    table. An event counts once as an exit from its ``from_state`` and once
    as an entry into its ``to_state``.

    The ``*_rest`` columns sum, over those events, the seconds from the event
    to the end of its minute: with them a state's time-weighted job count
    over a minute is exact (``balsam.analytics``). A removed job leaves its
    state at its removal, and a job moved to another workflow leaves the old
    one and enters the new one, so the number of jobs in a state can be
    counted back from today's. History stays after its jobs are removed: it
    happened. On SQLite a WITHOUT ROWID table: a state's minutes are one
    range of its primary key."""

    pk = models.CompositePrimaryKey("state", "minute", "workflow")
    state = models.CharField(max_length=32)
    minute = models.IntegerField()  # minutes since the epoch (UTC)
    workflow = models.CharField(max_length=255)
    entered = models.IntegerField()
    exited = models.IntegerField()
    entered_rest = models.FloatField()
    exited_rest = models.FloatField()

    objects = StateMinuteQuerySet.as_manager()

    class Meta:
        db_table = "balsam_state_minute"

    def save(self, *args, **kwargs):
        raise BalsamError(StateMinuteQuerySet.refusal)


class JobCountQuerySet(ReadOnlyQuerySet):
    refusal = "job counts are kept by SQL triggers on the job table"

    def totals(self):
        """``[(workflow, state, jobs)]`` with jobs > 0, by workflow and state.
        Read counts through this: on PostgreSQL a (workflow, state) has
        several rows (shards, migration 0010), any of them may be negative."""
        rows = self.values_list("workflow", "state").annotate(n=models.Sum("count")).order_by("workflow", "state")
        return [(workflow, state, n) for workflow, state, n in rows.values_list("workflow", "state", "n") if n > 0]


class JobCount(models.Model):
    """How many jobs each workflow has in each state, kept by SQL triggers on
    the job table (migration 0008): counting a million jobs by state takes a
    look at a few rows instead of a scan of an index. Rows whose count went
    back to 0 stay (read them as 0). Read them with ``objects.totals()``:
    PostgreSQL keeps shards of each count (migration 0010)."""

    workflow = models.CharField(max_length=255)
    state = models.CharField(max_length=32)
    count = models.IntegerField()

    objects = JobCountQuerySet.as_manager()

    class Meta:
        db_table = "balsam_job_count"
        constraints = [models.UniqueConstraint(fields=["workflow", "state"], name="balsam_job_count_key")]

    def save(self, *args, **kwargs):
        raise BalsamError(JobCountQuerySet.refusal)
