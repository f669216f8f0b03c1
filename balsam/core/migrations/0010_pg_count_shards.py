"""PostgreSQL: job counts in shards, and the application check as a function.

Every job insert updated the one count row of its (workflow, state) in a
statement-level trigger (0008), and held that row's lock until its commit
had been flushed: concurrent ``dag.add_job`` calls, which take no write lock
(``operations.needs_write_lock``), queued on it one WAL flush at a time.
Here the count table gets a ``shard`` column and the insert trigger adds to
the shard of its server process (``1 + pid % 64``): concurrent inserts from
different connections update different rows. The writes that run under the
write lock anyway (state changes in ``operations.aggregates``, removals and
workflow changes in the other triggers) keep shard 0. Readers add the shards
up (``JobCount.objects.totals``); a shard alone may be negative.

``balsam_require_apps(names)`` raises (SQLSTATE 23503, an integrity error)
unless every named application exists: ``jobs.create_jobs_in_one_round_trip``
sends it with the insert, so a missing application rolls the insert back
within the same round trip.

SQLite is unchanged: one writer at a time, no hot row to share. Django's
model state keeps the (workflow, state) constraint of 0008; on PostgreSQL the
table's unique key is (workflow, state, shard).
"""

import importlib

from django.db import migrations

SHARDS = 64

PG_FORWARD = [
    "ALTER TABLE balsam_job_count ADD COLUMN shard smallint NOT NULL DEFAULT 0",
    "ALTER TABLE balsam_job_count DROP CONSTRAINT balsam_job_count_key",
    "ALTER TABLE balsam_job_count ADD CONSTRAINT balsam_job_count_shard_key UNIQUE (workflow, state, shard)",
    """CREATE OR REPLACE FUNCTION balsam_add_count(wf text, st text, delta integer)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO balsam_job_count AS c (workflow, state, shard, count) VALUES (wf, st, 0, delta)
        ON CONFLICT (workflow, state, shard) DO UPDATE SET count = c.count + excluded.count;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION balsam_job_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO balsam_job_count AS c (workflow, state, shard, count)
        SELECT workflow, state, 1 + pg_backend_pid() % {SHARDS}, count(*) FROM new_rows
        GROUP BY workflow, state ORDER BY workflow, state
        ON CONFLICT (workflow, state, shard) DO UPDATE SET count = c.count + excluded.count;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION balsam_require_apps(wanted text[]) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM unnest(wanted) AS w(name)
                   WHERE NOT EXISTS (SELECT 1 FROM balsam_app a WHERE a.name = w.name)) THEN
            RAISE EXCEPTION 'an application named in the request does not exist' USING ERRCODE = '23503';
        END IF;
    END $$""",
]

PG_BACKWARD = [
    "DROP FUNCTION IF EXISTS balsam_require_apps(text[])",
    # The shards of each (workflow, state) back into one row.
    "CREATE TEMPORARY TABLE balsam_count_totals AS "
    "SELECT workflow, state, sum(count)::integer AS count FROM balsam_job_count GROUP BY workflow, state",
    "DELETE FROM balsam_job_count",
    "ALTER TABLE balsam_job_count DROP CONSTRAINT balsam_job_count_shard_key",
    "ALTER TABLE balsam_job_count DROP COLUMN shard",
    "INSERT INTO balsam_job_count (workflow, state, count) SELECT workflow, state, count FROM balsam_count_totals",
    "DROP TABLE balsam_count_totals",
    "ALTER TABLE balsam_job_count ADD CONSTRAINT balsam_job_count_key UNIQUE (workflow, state)",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in PG_FORWARD:
            schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        previous = importlib.import_module("balsam.core.migrations.0008_launchers_and_aggregates")
        restored = [f for f in previous.PG_FUNCTIONS if "balsam_add_count(" in f.split("RETURNS")[0]
                    or "balsam_job_count_insert(" in f.split("RETURNS")[0]]
        for statement in PG_BACKWARD + restored:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0009_event_user"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
