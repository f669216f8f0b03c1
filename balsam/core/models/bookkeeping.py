"""Balsam's own records: the requests the dbserver applied, the DB's
identity, the batch launches the service submitted, and the launchers that ran."""

from django.db import connection, models
from django.utils import timezone

from balsam.core import launch_states, sql
from balsam.core.models.routing import ReadOnlyModel, ReadOnlyQuerySet, RoutedQuerySet, TrackedModel


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


class LauncherQuerySet(ReadOnlyQuerySet):
    refusal = "launcher records are written by launchers (register_launcher, heartbeat_leases, stop_launcher)"


class LauncherRecord(ReadOnlyModel):
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
