"""Launchers leave a record; job counts per state and the moves between
states per minute are kept in small tables by SQL triggers, so the analytics
(``balsam report``, the dashboard) never scan the job or event tables (see
``models.JobCount``, ``models.StateMinute``, docs/development/decisions.md).
State changes are added by the write operation that makes them
(``operations.aggregates``); job inserts, removals and workflow changes by
SQL triggers.

The job table's single-column state index becomes (state, state_changed_at):
the same lookups by state, and "the jobs in a state, latest first" without a
sort. Dropped and created by name, because Django would rebuild the whole job
table to drop an index it made from ``db_index``.

The per-minute table is a WITHOUT ROWID table on SQLite (made here with SQL;
Django's model state has its composite primary key). On PostgreSQL the same
counts are kept by PL/pgSQL triggers (``PG_TRIGGERS``): statement-level ones
over transition tables for inserts and removals (one upsert per statement,
not per row), a row-level one for workflow changes (PostgreSQL allows no
transition tables with a column list). A PostgreSQL DB is made by this
migration on empty tables, so it has nothing to backfill.
"""

from django.db import migrations, models

# The index Django made for BalsamJob.state(db_index=True) in 0001.
OLD_STATE_INDEX = "balsam_job_state_d5cb8193"

STATE_MINUTE_TABLE = (
    "CREATE TABLE balsam_state_minute (state varchar(32) NOT NULL, minute integer NOT NULL, "
    "workflow varchar(255) NOT NULL, entered integer NOT NULL, exited integer NOT NULL, "
    "entered_rest real NOT NULL, exited_rest real NOT NULL, PRIMARY KEY (state, minute, workflow)) WITHOUT ROWID"
)

# A time stamp's minute since the epoch, and the seconds left from it to the
# end of that minute (SQLite stores UTC text; %f is seconds with milliseconds).
_MINUTE = "CAST(strftime('%s', {t}) AS INTEGER) / 60"
_REST = "60.0 - CAST(strftime('%f', {t}) AS REAL)"


def _move(at, workflow, state, entering):
    """One upsert into the per-minute table: a job of ``workflow`` entered (or
    left) ``state`` at time ``at`` (SQL expressions)."""
    rest = _REST.format(t=at)
    counts, rests = ("1, 0", f"{rest}, 0.0") if entering else ("0, 1", f"0.0, {rest}")
    return (
        "INSERT INTO balsam_state_minute (state, minute, workflow, entered, exited, entered_rest, exited_rest) "
        f"VALUES ({state}, {_MINUTE.format(t=at)}, {workflow}, {counts}, {rests}) "
        "ON CONFLICT (state, minute, workflow) DO UPDATE SET entered = entered + excluded.entered, "
        "exited = exited + excluded.exited, entered_rest = entered_rest + excluded.entered_rest, "
        "exited_rest = exited_rest + excluded.exited_rest;"
    )


def _add_count(workflow, state, delta):
    return (
        f"INSERT INTO balsam_job_count (workflow, state, count) VALUES ({workflow}, {state}, {delta}) "
        f"ON CONFLICT (workflow, state) DO UPDATE SET count = count + ({delta});"
    )


# State changes (with their events) are added to both tables by the write
# operation that makes them (operations.aggregates, called by
# transitions.record, in bulk): triggers per row cost about as much as the
# rest of that write. These triggers count what does not pass there.
TRIGGERS = {
    "balsam_job_count_insert": (
        "CREATE TRIGGER balsam_job_count_insert AFTER INSERT ON balsam_job BEGIN "
        + _add_count("NEW.workflow", "NEW.state", 1) + " END"
    ),
    # A removed job leaves its state (no event says so).
    "balsam_job_count_delete": (
        "CREATE TRIGGER balsam_job_count_delete AFTER DELETE ON balsam_job BEGIN "
        + _add_count("OLD.workflow", "OLD.state", -1) + " "
        + _move("'now'", "OLD.workflow", "OLD.state", entering=False)
        + " END"
    ),
    # A job moved to another workflow leaves the old one and enters the new one.
    "balsam_job_workflow_change": (
        "CREATE TRIGGER balsam_job_workflow_change AFTER UPDATE OF workflow ON balsam_job "
        "WHEN OLD.workflow IS NOT NEW.workflow BEGIN "
        + _add_count("OLD.workflow", "OLD.state", -1) + " " + _add_count("NEW.workflow", "NEW.state", 1) + " "
        + _move("'now'", "OLD.workflow", "OLD.state", entering=False) + " "
        + _move("'now'", "NEW.workflow", "NEW.state", entering=True)
        + " END"
    ),
}

# The aggregates of what is already in the DB (the triggers keep them from here on).
_EVENT_SIDES = (
    "SELECT e.{side} AS state, " + _MINUTE.format(t="e.timestamp") + " AS minute, "
    "COALESCE(j.workflow, '') AS workflow, {entered} AS entered, {exited} AS exited, "
    "{entered_rest} AS entered_rest, {exited_rest} AS exited_rest "
    "FROM balsam_job_event e LEFT JOIN balsam_job j ON j.job_id = e.job_id"
)
BACKFILL = [
    "INSERT INTO balsam_job_count (workflow, state, count) "
    "SELECT workflow, state, count(*) FROM balsam_job GROUP BY workflow, state",
    "INSERT INTO balsam_state_minute (state, minute, workflow, entered, exited, entered_rest, exited_rest) "
    "SELECT state, minute, workflow, sum(entered), sum(exited), sum(entered_rest), sum(exited_rest) FROM ("
    + _EVENT_SIDES.format(side="to_state", entered=1, exited=0, entered_rest=_REST.format(t="e.timestamp"),
                          exited_rest="0.0")
    + " UNION ALL "
    + _EVENT_SIDES.format(side="from_state", entered=0, exited=1, entered_rest="0.0",
                          exited_rest=_REST.format(t="e.timestamp"))
    + ") GROUP BY state, minute, workflow",
]


# PostgreSQL: the same counting in PL/pgSQL. A time stamp's minute since the
# epoch and the seconds left to the end of that minute, as _MINUTE and _REST.
PG_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION balsam_minute_move(st text, at timestamptz, wf text, n integer, entering boolean)
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        epoch double precision := extract(epoch FROM at);
        m integer := floor(epoch / 60);
        rest double precision := n * ((m + 1) * 60 - epoch);
    BEGIN
        INSERT INTO balsam_state_minute AS s (state, minute, workflow, entered, exited, entered_rest, exited_rest)
        VALUES (st, m, wf, CASE WHEN entering THEN n ELSE 0 END, CASE WHEN entering THEN 0 ELSE n END,
                CASE WHEN entering THEN rest ELSE 0.0 END, CASE WHEN entering THEN 0.0 ELSE rest END)
        ON CONFLICT (state, minute, workflow) DO UPDATE SET entered = s.entered + excluded.entered,
            exited = s.exited + excluded.exited, entered_rest = s.entered_rest + excluded.entered_rest,
            exited_rest = s.exited_rest + excluded.exited_rest;
    END $$""",
    """CREATE OR REPLACE FUNCTION balsam_add_count(wf text, st text, delta integer)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO balsam_job_count AS c (workflow, state, count) VALUES (wf, st, delta)
        ON CONFLICT (workflow, state) DO UPDATE SET count = c.count + excluded.count;
    END $$""",
    """CREATE OR REPLACE FUNCTION balsam_job_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO balsam_job_count AS c (workflow, state, count)
        SELECT workflow, state, count(*) FROM new_rows GROUP BY workflow, state ORDER BY workflow, state
        ON CONFLICT (workflow, state) DO UPDATE SET count = c.count + excluded.count;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION balsam_job_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE r record;
    BEGIN
        FOR r IN SELECT workflow, state, count(*)::integer AS n FROM old_rows GROUP BY workflow, state
                 ORDER BY workflow, state LOOP
            PERFORM balsam_add_count(r.workflow, r.state, -r.n);
            PERFORM balsam_minute_move(r.state, now(), r.workflow, r.n, false);
        END LOOP;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION balsam_job_workflow_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM balsam_add_count(OLD.workflow, OLD.state, -1);
        PERFORM balsam_add_count(NEW.workflow, NEW.state, 1);
        PERFORM balsam_minute_move(OLD.state, now(), OLD.workflow, 1, false);
        PERFORM balsam_minute_move(NEW.state, now(), NEW.workflow, 1, true);
        RETURN NULL;
    END $$""",
]
PG_TRIGGERS = {
    "balsam_job_count_insert": (
        "CREATE TRIGGER balsam_job_count_insert AFTER INSERT ON balsam_job REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION balsam_job_count_insert()"
    ),
    "balsam_job_count_delete": (
        "CREATE TRIGGER balsam_job_count_delete AFTER DELETE ON balsam_job REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION balsam_job_count_delete()"
    ),
    "balsam_job_workflow_change": (
        "CREATE TRIGGER balsam_job_workflow_change AFTER UPDATE OF workflow ON balsam_job FOR EACH ROW "
        "WHEN (OLD.workflow IS DISTINCT FROM NEW.workflow) EXECUTE FUNCTION balsam_job_workflow_change()"
    ),
}
PG_FUNCTION_NAMES = ["balsam_job_workflow_change()", "balsam_job_count_delete()", "balsam_job_count_insert()",
                     "balsam_add_count(text, text, integer)",
                     "balsam_minute_move(text, timestamptz, text, integer, boolean)"]


def create_pg_triggers(schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_STATE_INDEX}")
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_STATE_INDEX}_like")
    for statement in PG_FUNCTIONS + list(PG_TRIGGERS.values()):
        schema_editor.execute(statement, params=None)


def drop_pg_triggers(schema_editor):
    for name in PG_TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON balsam_job")
    for signature in PG_FUNCTION_NAMES:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {signature}")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {OLD_STATE_INDEX} ON balsam_job (state)")


def create_state_minute_table(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(STATE_MINUTE_TABLE)
    else:  # the model is not in the state yet (SeparateDatabaseAndState runs this first): the same SQL
        schema_editor.execute(STATE_MINUTE_TABLE.replace(" WITHOUT ROWID", "").replace(" real ", " double precision "))


def drop_state_minute_table(apps, schema_editor):
    schema_editor.execute("DROP TABLE balsam_state_minute")


def create_triggers(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        return create_pg_triggers(schema_editor)
    if connection.vendor != "sqlite":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_STATE_INDEX}")
    for statement in BACKFILL:
        schema_editor.execute(statement, params=None)  # no placeholders: %s is strftime's
    for statement in TRIGGERS.values():
        schema_editor.execute(statement, params=None)  # no placeholders: %s is strftime's


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        return drop_pg_triggers(schema_editor)
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
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StateMinute",
                    fields=[
                        ("pk", models.CompositePrimaryKey("state", "minute", "workflow", blank=True, editable=False,
                                                          primary_key=True, serialize=False)),
                        ("state", models.CharField(max_length=32)),
                        ("minute", models.IntegerField()),
                        ("workflow", models.CharField(max_length=255)),
                        ("entered", models.IntegerField()),
                        ("exited", models.IntegerField()),
                        ("entered_rest", models.FloatField()),
                        ("exited_rest", models.FloatField()),
                    ],
                    options={"db_table": "balsam_state_minute"},
                ),
            ],
            database_operations=[migrations.RunPython(create_state_minute_table, drop_state_minute_table)],
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
