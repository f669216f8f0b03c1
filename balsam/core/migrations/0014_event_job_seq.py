"""Jobs get a number in creation order (``BalsamJob.seq``), and job events are
filed under it (column ``job_seq``) instead of under the job's random id.

Why: the event table's index on the job's id put each job's events on a leaf
page of their own -- a batch of state changes for N jobs wrote N index pages
(229 of the 278 pages a launcher's write dirtied). Jobs numbered in creation
order are run, and their events written, in nearly that order, so a batch's
events share a few pages (docs/development/decisions.md).

Existing jobs are numbered in the order they were stored (SQLite: the row
order; PostgreSQL: creation time); their events move to the new column in the
same step. Events whose job is gone (none can exist while foreign keys are
enforced) are dropped. New numbers come from the writer (SQLite: the highest
plus one, under the write lock) or from a sequence (PostgreSQL: the column's
default), so no insert names them.

Hand-written per backend, not Django's operations: on SQLite Django would
rebuild the job table (dropping the 0008 count triggers) and copy the ids into
the new column as they are; on PostgreSQL it would try to cast a ``uuid`` to a
``bigint``. The model state is Django's (``SeparateDatabaseAndState``).
"""

import django.db.models.deletion
from django.db import migrations, models

SQLITE = [
    'ALTER TABLE "balsam_job" ADD COLUMN "seq" bigint NULL',
    'UPDATE "balsam_job" SET "seq" = rowid',
    'CREATE UNIQUE INDEX "balsam_job_seq_uniq" ON "balsam_job" ("seq")',
    'CREATE TABLE "balsam_job_event__new" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"timestamp" datetime NOT NULL, "from_state" varchar(32) NOT NULL, "to_state" varchar(32) NOT NULL, '
    '"message" text NOT NULL, "job_seq" bigint NOT NULL REFERENCES "balsam_job" ("seq") DEFERRABLE INITIALLY '
    'DEFERRED, "user" varchar(64) NULL)',
    'INSERT INTO "balsam_job_event__new" ("id", "timestamp", "from_state", "to_state", "message", "job_seq", "user") '
    'SELECT e."id", e."timestamp", e."from_state", e."to_state", e."message", j."seq", e."user" '
    'FROM "balsam_job_event" e JOIN "balsam_job" j ON j."job_id" = e."job_id" ORDER BY e."id"',
    # The next event id continues from the old table's counter, not from the highest id copied.
    'UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = \'balsam_job_event\')) '
    'WHERE name = \'balsam_job_event__new\'',
    'DROP TABLE "balsam_job_event"',
    'ALTER TABLE "balsam_job_event__new" RENAME TO "balsam_job_event"',
    'CREATE INDEX "balsam_job_event_job_seq" ON "balsam_job_event" ("job_seq")',
]

POSTGRES = [
    'ALTER TABLE "balsam_job" ADD COLUMN "seq" bigint',
    'CREATE SEQUENCE "balsam_job_seq_seq" OWNED BY "balsam_job"."seq"',
    'UPDATE "balsam_job" j SET "seq" = o.n FROM (SELECT "job_id", row_number() OVER '
    '(ORDER BY "created_at", "job_id") AS n FROM "balsam_job") o WHERE o."job_id" = j."job_id"',
    "SELECT setval('balsam_job_seq_seq', COALESCE((SELECT MAX(\"seq\") FROM \"balsam_job\"), 0) + 1, false)",
    'ALTER TABLE "balsam_job" ALTER COLUMN "seq" SET DEFAULT nextval(\'balsam_job_seq_seq\'), '
    'ALTER COLUMN "seq" SET NOT NULL, ADD CONSTRAINT "balsam_job_seq_uniq" UNIQUE ("seq")',
    'ALTER TABLE "balsam_job_event" ADD COLUMN "job_seq" bigint',
    'UPDATE "balsam_job_event" e SET "job_seq" = j."seq" FROM "balsam_job" j WHERE j."job_id" = e."job_id"',
    'DELETE FROM "balsam_job_event" WHERE "job_seq" IS NULL',
    'ALTER TABLE "balsam_job_event" DROP COLUMN "job_id"',  # with its foreign key and index
    'ALTER TABLE "balsam_job_event" ALTER COLUMN "job_seq" SET NOT NULL, ADD CONSTRAINT '
    '"balsam_job_event_job_seq_fk" FOREIGN KEY ("job_seq") REFERENCES "balsam_job" ("seq") '
    "DEFERRABLE INITIALLY DEFERRED",
    'CREATE INDEX "balsam_job_event_job_seq" ON "balsam_job_event" ("job_seq")',
]


# Back to 0013's shape (for tests of older migrations, and a downgrade).
SQLITE_BACK = [
    'CREATE TABLE "balsam_job_event__old" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"timestamp" datetime NOT NULL, "from_state" varchar(32) NOT NULL, "to_state" varchar(32) NOT NULL, '
    '"message" text NOT NULL, "job_id" char(32) NOT NULL REFERENCES "balsam_job" ("job_id") DEFERRABLE INITIALLY '
    'DEFERRED, "user" varchar(64) NULL)',
    'INSERT INTO "balsam_job_event__old" ("id", "timestamp", "from_state", "to_state", "message", "job_id", "user") '
    'SELECT e."id", e."timestamp", e."from_state", e."to_state", e."message", j."job_id", e."user" '
    'FROM "balsam_job_event" e JOIN "balsam_job" j ON j."seq" = e."job_seq" ORDER BY e."id"',
    'UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = \'balsam_job_event\')) '
    'WHERE name = \'balsam_job_event__old\'',
    'DROP TABLE "balsam_job_event"',
    'ALTER TABLE "balsam_job_event__old" RENAME TO "balsam_job_event"',
    'CREATE INDEX "balsam_job_event_job_id_6c24f9b5" ON "balsam_job_event" ("job_id")',
    'DROP INDEX "balsam_job_seq_uniq"',
    'ALTER TABLE "balsam_job" DROP COLUMN "seq"',
]

POSTGRES_BACK = [
    'ALTER TABLE "balsam_job_event" ADD COLUMN "job_id" uuid',
    'UPDATE "balsam_job_event" e SET "job_id" = j."job_id" FROM "balsam_job" j WHERE j."seq" = e."job_seq"',
    'ALTER TABLE "balsam_job_event" DROP COLUMN "job_seq"',
    'ALTER TABLE "balsam_job_event" ALTER COLUMN "job_id" SET NOT NULL, ADD CONSTRAINT '
    '"balsam_job_event_job_id_fk" FOREIGN KEY ("job_id") REFERENCES "balsam_job" ("job_id") '
    "DEFERRABLE INITIALLY DEFERRED",
    'CREATE INDEX "balsam_job_event_job_id_6c24f9b5" ON "balsam_job_event" ("job_id")',
    'ALTER TABLE "balsam_job" DROP COLUMN "seq"',  # with its sequence and unique constraint
]


def _run(sqlite, postgres):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor not in ("sqlite", "postgresql"):
            raise RuntimeError(f"migration 0014 knows SQLite and PostgreSQL, not {vendor}")
        for statement in sqlite if vendor == "sqlite" else postgres:
            schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0013_pg_no_like_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(_run(SQLITE, POSTGRES), _run(SQLITE_BACK, POSTGRES_BACK))],
            state_operations=[
                migrations.AddField(
                    model_name="balsamjob",
                    name="seq",
                    field=models.BigIntegerField(editable=False, unique=True),
                    preserve_default=False,
                ),
                migrations.AlterField(
                    model_name="jobevent",
                    name="job",
                    field=models.ForeignKey(db_column="job_seq", on_delete=django.db.models.deletion.CASCADE,
                                            related_name="events", to="balsam.balsamjob", to_field="seq"),
                ),
            ],
        ),
    ]
