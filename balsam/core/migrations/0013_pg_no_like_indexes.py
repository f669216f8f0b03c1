"""PostgreSQL: drop the ``varchar_pattern_ops`` indexes Django adds beside
every indexed or unique text column (``name``, ``workdir``), for
``LIKE 'prefix%'`` lookups. Balsam makes none: a name filter is
``name__contains`` (``LIKE '%text%'``, which no btree serves) and a working
directory is looked up whole (its unique index). Unused, they cost every
insert and every state change of a job (a state change is not a HOT update:
each of the table's indexes gets a new entry): 2 of its 9 indexes, about 5-8%
of the server's CPU in a launcher run. SQLite has no such indexes.

Django drops them with ``IF EXISTS`` should a later migration alter these
fields (and would make them again then: such a migration drops them again)."""

from django.db import migrations

LIKE_INDEXED = ("name", "workdir")


def _like_indexes(apps, schema_editor):
    job = apps.get_model("balsam", "BalsamJob")
    for name in LIKE_INDEXED:
        field = job._meta.get_field(name)
        yield job, field, schema_editor._create_index_name(job._meta.db_table, [field.column], suffix="_like")


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, _, index in _like_indexes(apps, schema_editor):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")


def make_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for job, field, _ in _like_indexes(apps, schema_editor):
        schema_editor.execute(schema_editor._create_like_index_sql(job, field))


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0012_job_wf_state_time"),
    ]

    operations = [migrations.RunPython(drop_like_indexes, make_like_indexes)]
