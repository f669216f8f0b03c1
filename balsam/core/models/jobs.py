"""The user's tables: applications, jobs, the dependency edges between jobs,
and each job's history of events."""

import datetime
import logging
import re
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from balsam.core import states, write_client
from balsam.core.json_values import fields_to_wire
from balsam.exceptions import BalsamError, NotFound
from balsam.core.models.routing import RoutedQuerySet, TrackedModel

logger = logging.getLogger(__name__)

STATE_CHOICES = [(s, s) for s in states.ALL_STATES]


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


def working_directory(workdir, user_workdir):
    """Absolute path of the directory a job runs in: the user's own
    ``user_workdir``, else its ``workdir`` under the DB's ``data/``."""
    if user_workdir:
        return str(Path(user_workdir).expanduser().resolve())
    if not workdir:
        return ""
    root = _data_roots.get(settings.BALSAM_DB_PATH)
    if root is None:
        root = _data_roots[settings.BALSAM_DB_PATH] = str(Path(settings.BALSAM_DB_PATH) / "data")
    if _PLAIN_WORKDIR.match(workdir):  # as Balsam names them: joining is what Path would make of it
        return f"{root}/{workdir}"
    return str(Path(root) / workdir)


# ``<workflow>/<name>_<id>`` as jobs.py makes them: no empty, "." or ".." parts.
_PLAIN_WORKDIR = re.compile(r"(?:[\w+-][\w.+-]*/)?[\w+-][\w.+-]*\Z")
_data_roots = {}  # BALSAM_DB_PATH -> its data/ directory (a launcher asks for every job it runs)


def _new_job_id():
    return uuid.uuid4()


class BalsamJob(TrackedModel):
    """One task to run: what to run, with what resources, and where it stands."""

    write_kind = "jobs"
    _mutable_fields = ("environ_vars", "data")
    # Set by Balsam itself, never by a job's creator.
    SYSTEM_FIELDS = frozenset(
        {"workdir", "state", "state_changed_at", "created_at", "lease_owner", "lease_heartbeat", "lease_expires_at",
         "runtime_seconds", "queued_launch", "timeout_retries", "seq"}
    )

    job_id = models.UUIDField(primary_key=True, default=_new_job_id, editable=False)
    # The job's number in creation order, given by the writer: the key its events
    # are filed under. Filed under the random id, each job's events went to a page
    # of the event index of their own, one page written per job per batch of
    # state changes; numbered in order, a batch's jobs share a few pages
    # (migration 0014, docs/development/decisions.md).
    seq = models.BigIntegerField(unique=True, editable=False)
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
            # A workflow's jobs in a state, in the order they entered it: the
            # launcher's claims and dependency passes read them in this order
            # (``queries.IN_STATE_ORDER``) and stop after a few, without sorting
            # all of them (a million jobs: a second per claim).
            models.Index(fields=["workflow", "state", "state_changed_at"], name="balsam_job_wf_state_time"),
            # Jobs in a state in the order they entered it, over every workflow
            # (claims without a workflow, recent failures, the admin's list
            # filtered by state) without sorting them all.
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
        return working_directory(self.workdir, self.user_workdir)

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
        job = cls(**{**fields, **cls._inserted_values(info)})
        job._state.adding = False
        job._remember_loaded()
        job.__dict__.pop("seq", None)  # the writer numbered it: read from the DB if ever asked for
        return job

    @classmethod
    def _create_many(cls, objs):
        super()._create_many(objs)
        for obj in objs:
            obj.__dict__.pop("seq", None)  # as in ``insert``: a deferred field, loaded on first use

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

    # Filed under the job's creation number (``BalsamJob.seq``), not its id: so
    # ``job_id`` here is that number; ``job__job_id`` is the job's id.
    job = models.ForeignKey(BalsamJob, on_delete=models.CASCADE, related_name="events", to_field="seq",
                            db_column="job_seq")
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
