"""PostgreSQL: a collaborator's job events name them, whatever their process says.

On PostgreSQL every collaborator connects with a login role of their own,
named after their UNIX user (``balsam dbserver --add-user``), and writes the
tables directly (no dbserver between them and the rows). The event's
``user`` column is filled by the writing process (``core.actor``); this
trigger makes the server overwrite it with the login role for every role
that is not the cluster's superuser (the DB's owner), so a collaborator's
events name them even when written by hand. Costs one GUC read per event row.
SQLite: nothing (its collaborators write only through the owner's dbserver,
which names them by their key).
"""

from django.db import migrations

# One statement per execute (psycopg's extended protocol takes one at a time).
CREATE = ["""
CREATE OR REPLACE FUNCTION balsam_event_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('is_superuser') = 'off' THEN
        NEW."user" := session_user;
    END IF;
    RETURN NEW;
END $$""",
    "DROP TRIGGER IF EXISTS balsam_event_user ON balsam_job_event",
    """CREATE TRIGGER balsam_event_user BEFORE INSERT OR UPDATE ON balsam_job_event
       FOR EACH ROW EXECUTE FUNCTION balsam_event_user()"""]

DROP = ["DROP TRIGGER IF EXISTS balsam_event_user ON balsam_job_event",
        "DROP FUNCTION IF EXISTS balsam_event_user()"]


def _on_postgres(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0010_pg_count_shards"),
    ]

    operations = [
        migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP)),
    ]
