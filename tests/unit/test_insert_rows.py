"""Many rows into a SQLite table in few statements (``sql.insert_rows``:
multi-row VALUES): the rows stored must be exactly those ``executemany``
stores."""

import pytest

ROWS = 40  # more than sql.FEW_ROWS: insert_rows takes the one-statement way


def _stored(cursor, table):
    columns = [r[1] for r in cursor.execute(f"PRAGMA table_info({table})")]
    picks = ", ".join(f"{c}, typeof({c})" for c in columns)
    return cursor.execute(f"SELECT {picks} FROM {table} ORDER BY rowid").fetchall()


VALUE_SETS = {
    "text, ints, booleans, NULL, non-ASCII": lambda i: (f"name {i} é ✓ 😀 \"q\" \\ '", i * 7 - 100, i % 2 == 0, None,
                                                       "same", 1.5, 2 ** 62 + i),
    "a float that differs per row": lambda i: (f"n{i}", i, True, None, "same", i / 3, 0),
    "bytes": lambda i: (f"n{i}", i, False, bytes([i]), "same", 0.0, 0),
    "text with a NUL": lambda i: (f"n\x00{i}", i, False, None, "same", 0.0, 0),
    "an integer beyond 64 bits as text": lambda i: (f"n{i}", i, False, str(2 ** 70), "same", 0.0, -2 ** 63),
    "ints and booleans mixed in one column": lambda i: (f"n{i}", True if i % 3 else 1, i, None, "same", 2.0, 0),
    "every column the same": lambda i: ("x", 1, True, None, "same", 0.25, 5),
}


@pytest.mark.parametrize("label", list(VALUE_SETS))
def test_rows_are_stored_as_executemany_stores_them(db, label):
    from django.db import connection

    from balsam.core import sql

    make = VALUE_SETS[label]
    rows = [make(i) for i in range(ROWS)]
    cursor = connection.cursor()
    for table in ("via_insert_rows", "via_executemany"):
        cursor.execute(f"CREATE TABLE {table} (a text, b integer, c bool, d, e varchar(9), f real, g bigint)")
    statement = "INSERT INTO {} (a, b, c, d, e, f, g) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    assert sql.insert_rows(statement.format("via_insert_rows"), rows) == ROWS
    sql.raw_executemany(statement.format("via_executemany"), rows)
    raw = connection.connection.cursor()
    assert _stored(raw, "via_insert_rows") == _stored(raw, "via_executemany")


def test_a_thousand_new_jobs_reach_the_job_table_in_as_few_statements_as_the_parameter_limit_allows(db):
    """``executemany`` ran the INSERT once per job: 1,000 statement journals
    opened and closed for the job table's trigger and unique indexes (70 ms
    against 23 for one statement)."""
    from django.db import connection

    from balsam.core.models import ApplicationDefinition, BalsamJob

    ApplicationDefinition.objects.create(name="app", executable="/bin/true")
    inserts = []
    connection.ensure_connection()
    connection.connection.set_trace_callback(
        lambda text: inserts.append(text) if text.startswith("INSERT INTO \"balsam_job\"") else None)
    try:
        BalsamJob.objects.bulk_create([BalsamJob(name=f"j{i}", workflow="w", application="app") for i in range(1000)])
    finally:
        connection.connection.set_trace_callback(None)
    # The trace shows each statement as run, with its values (and again for
    # each trigger it fires): one text per chunk of rows, not one per row.
    from balsam.core import sql

    columns = len([f for f in BalsamJob._meta.concrete_fields])
    per_statement = (sql.max_params() - sql.RESERVED_PARAMS) // columns
    assert len(set(inserts)) == -(-1000 // per_statement)
    stored = connection.cursor().execute("SELECT name FROM balsam_job WHERE workflow = 'w' ORDER BY rowid").fetchall()
    assert [name for name, in stored] == [f"j{i}" for i in range(1000)]  # in the order given


def test_a_clash_in_one_statement_is_the_integrity_error_executemany_raises(db):
    from django.db import IntegrityError, connection, transaction

    from balsam.core import sql

    connection.cursor().execute("CREATE TABLE uniq (a text UNIQUE, b integer)")
    statement = "INSERT INTO uniq (a, b) VALUES (%s, %s)"
    rows = [(f"k{i}", i) for i in range(ROWS)] + [("k3", 99)]
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            sql.insert_rows(statement, rows)
    assert connection.cursor().execute("SELECT count(*) FROM uniq").fetchone() == (0,)
