"""Launchers leave a record; job counts per state and job events per minute
are kept in small tables by SQL triggers, so the analytics (``balsam report``,
the dashboard) never scan the job or event tables (see ``models.JobCount``,
``models.EventMinute``, docs/development/decisions.md).

The job table's single-column state index becomes (state, state_changed_at):
the same lookups by state, and "the jobs in a state, latest first" without a
sort. Dropped and created by name, because Django would rebuild the whole job
table to drop an index it made from ``db_index``.

The triggers and the backfill are SQLite's. PostgreSQL support is a later
issue: it needs the same triggers in PL/pgSQL; until then, on another backend
this migration makes the tables but neither fills nor keeps them.
"""

from django.db import migrations, models

# The index Django made for BalsamJob.state(db_index=True) in 0001.
OLD_STATE_INDEX = "balsam_job_state_d5cb8193"

# A time stamp's minute since the epoch, and the seconds left from it to the
# end of that minute (SQLite stores UTC text; %f is seconds with milliseconds).
_MINUTE = "CAST(strftime('%s', {t}) AS INTEGER) / 60"
_REST = "60.0 - CAST(strftime('%f', {t}) AS REAL)"


def _add_minute(minute_of, workflow, from_state, to_state):
    """One upsert into the event aggregate (count 1) at time ``minute_of``."""
    return (
        "INSERT INTO balsam_event_minute (minute, workflow, from_state, to_state, count, rest_seconds) "
        f"VALUES ({_MINUTE.format(t=minute_of)}, {workflow}, {from_state}, {to_state}, 1, {_REST.format(t=minute_of)}) "
        "ON CONFLICT (to_state, minute, workflow, from_state) "
        "DO UPDATE SET count = count + 1, rest_seconds = rest_seconds + excluded.rest_seconds;"
    )


def _add_count(workflow, state, delta):
    return (
        f"INSERT INTO balsam_job_count (workflow, state, count) VALUES ({workflow}, {state}, {delta}) "
        f"ON CONFLICT (workflow, state) DO UPDATE SET count = count + ({delta});"
    )


TRIGGERS = {
    # Every job event, summed per minute, workflow and move (the job's
    # workflow by primary key: the row record() has just updated).
    "balsam_event_minute_add": (
        "CREATE TRIGGER balsam_event_minute_add AFTER INSERT ON balsam_job_event BEGIN "
        + _add_minute("NEW.timestamp", "COALESCE((SELECT workflow FROM balsam_job WHERE job_id = NEW.job_id), '')",
                      "NEW.from_state", "NEW.to_state")
        + " END"
    ),
    "balsam_job_count_insert": (
        "CREATE TRIGGER balsam_job_count_insert AFTER INSERT ON balsam_job BEGIN "
        + _add_count("NEW.workflow", "NEW.state", 1) + " END"
    ),
    # A removed job leaves its state: counted down, and a REMOVED pseudo-move
    # keeps the per-minute history able to tell how many were in that state.
    "balsam_job_count_delete": (
        "CREATE TRIGGER balsam_job_count_delete AFTER DELETE ON balsam_job BEGIN "
        + _add_count("OLD.workflow", "OLD.state", -1) + " "
        + _add_minute("'now'", "OLD.workflow", "OLD.state", "'REMOVED'")
        + " END"
    ),
    "balsam_job_count_update": (
        "CREATE TRIGGER balsam_job_count_update AFTER UPDATE OF state, workflow ON balsam_job "
        "WHEN OLD.state IS NOT NEW.state OR OLD.workflow IS NOT NEW.workflow BEGIN "
        + _add_count("OLD.workflow", "OLD.state", -1) + " " + _add_count("NEW.workflow", "NEW.state", 1)
        + " END"
    ),
    # A job moved to another workflow leaves one and joins the other in its state.
    "balsam_event_minute_workflow": (
        "CREATE TRIGGER balsam_event_minute_workflow AFTER UPDATE OF workflow ON balsam_job "
        "WHEN OLD.workflow IS NOT NEW.workflow BEGIN "
        + _add_minute("'now'", "OLD.workflow", "OLD.state", "'LEFT'") + " "
        + _add_minute("'now'", "NEW.workflow", "'JOINED'", "NEW.state")
        + " END"
    ),
}

# The aggregates of what is already in the DB (the triggers keep them from here on).
BACKFILL = [
    "INSERT INTO balsam_job_count (workflow, state, count) "
    "SELECT workflow, state, count(*) FROM balsam_job GROUP BY workflow, state",
    "INSERT INTO balsam_event_minute (minute, workflow, from_state, to_state, count, rest_seconds) "
    f"SELECT {_MINUTE.format(t='e.timestamp')}, COALESCE(j.workflow, ''), e.from_state, e.to_state, count(*), "
    f"sum({_REST.format(t='e.timestamp')}) "
    "FROM balsam_job_event e LEFT JOIN balsam_job j ON j.job_id = e.job_id GROUP BY 1, 2, 3, 4",
]


def create_triggers(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return  # PostgreSQL: a later issue (see the module docstring)
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_STATE_INDEX}")
    for statement in BACKFILL:
        schema_editor.execute(statement, params=None)  # no placeholders: %s is strftime's
    for statement in TRIGGERS.values():
        schema_editor.execute(statement, params=None)  # no placeholders: %s is strftime's


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for name in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {OLD_STATE_INDEX} ON balsam_job (state)")


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0007_db_identity"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventMinute",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("minute", models.IntegerField()),
                ("workflow", models.CharField(max_length=255)),
                ("from_state", models.CharField(max_length=32)),
                ("to_state", models.CharField(max_length=32)),
                ("count", models.IntegerField()),
                ("rest_seconds", models.FloatField()),
            ],
            options={
                "db_table": "balsam_event_minute",
                "indexes": [models.Index(fields=["from_state", "minute"], name="balsam_event_minute_from")],
                "constraints": [models.UniqueConstraint(fields=("to_state", "minute", "workflow", "from_state"),
                                                        name="balsam_event_minute_key")],
            },
        ),
        migrations.CreateModel(
            name="JobCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("workflow", models.CharField(max_length=255)),
                ("state", models.CharField(max_length=32)),
                ("count", models.IntegerField()),
            ],
            options={
                "db_table": "balsam_job_count",
                "constraints": [models.UniqueConstraint(fields=("workflow", "state"), name="balsam_job_count_key")],
            },
        ),
        migrations.CreateModel(
            name="LauncherRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("owner", models.CharField(max_length=255, unique=True)),
                ("host", models.CharField(max_length=255)),
                ("pid", models.IntegerField()),
                ("job_mode", models.CharField(max_length=8)),
                ("num_nodes", models.IntegerField()),
                ("capacity", models.IntegerField()),
                ("wf_filter", models.CharField(blank=True, default="", max_length=255)),
                ("queued_launch_id", models.BigIntegerField(blank=True, null=True)),
                ("lease_expiry_sec", models.FloatField()),
                ("started_at", models.DateTimeField(db_index=True)),
                ("last_seen_at", models.DateTimeField()),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "launcher",
                "db_table": "balsam_launcher",
                "ordering": ["-started_at"],
            },
        ),
        # The state index: in the model state an AlterField (no db_index), in
        # the DB a DROP INDEX by name (in create_triggers) -- not a table rebuild.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="balsamjob",
                    name="state",
                    field=models.CharField(choices=[
                        ("CREATED", "CREATED"), ("AWAITING_PARENTS", "AWAITING_PARENTS"), ("READY", "READY"),
                        ("STAGED_IN", "STAGED_IN"), ("PREPROCESSED", "PREPROCESSED"), ("RUNNING", "RUNNING"),
                        ("RUN_DONE", "RUN_DONE"), ("POSTPROCESSED", "POSTPROCESSED"), ("JOB_FINISHED", "JOB_FINISHED"),
                        ("RUN_TIMEOUT", "RUN_TIMEOUT"), ("RUN_ERROR", "RUN_ERROR"), ("RESTART_READY", "RESTART_READY"),
                        ("FAILED", "FAILED"), ("USER_KILLED", "USER_KILLED"), ("PARENT_KILLED", "PARENT_KILLED")],
                        default="CREATED", max_length=32),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="balsamjob",
            index=models.Index(fields=["state", "state_changed_at"], name="balsam_job_state_time"),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
