"""The aggregates the analytics and ``db stats`` read instead of scanning
the job and event tables, kept by SQL triggers (migrations 0008, 0010)."""

from django.db import models

from balsam.core.models.routing import ReadOnlyModel, ReadOnlyQuerySet


class StateMinuteQuerySet(ReadOnlyQuerySet):
    refusal = "the per-minute state aggregate is kept by SQL triggers on the job and event tables"


class StateMinute(ReadOnlyModel):
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


class JobCountQuerySet(ReadOnlyQuerySet):
    refusal = "job counts are kept by SQL triggers on the job table"

    def totals(self):
        """``[(workflow, state, jobs)]`` with jobs > 0, by workflow and state.
        Read counts through this: on PostgreSQL a (workflow, state) has
        several rows (shards, migration 0010), any of them may be negative."""
        rows = self.values_list("workflow", "state").annotate(n=models.Sum("count")).order_by("workflow", "state")
        return [(workflow, state, n) for workflow, state, n in rows.values_list("workflow", "state", "n") if n > 0]


class JobCount(ReadOnlyModel):
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
