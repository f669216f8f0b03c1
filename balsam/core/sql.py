"""SQL plumbing shared by the reads (``core.queries``) and the writes
(``core.operations``): the write transaction, raw statements for the hot
paths (per-row values in one ``update_rows``), id lists cut to the backend's
parameter limit, and table names.

Every SQL string in Balsam names its tables through ``table()`` (the models'
``_meta.db_table``), never a literal.
"""

import functools
import sqlite3
import threading
import time
from contextlib import contextmanager

from django.db import DatabaseError, connection, transaction

from balsam.exceptions import DBDamaged

# PostgreSQL's wire protocol counts bind parameters in 16 bits; Django
# reports no limit for it.
UNLIMITED_BACKEND_PARAMS = 65535
# Parameters a statement keeps for itself besides its id list (a state, a
# time stamp, an owner...).
RESERVED_PARAMS = 16

_param_limits = {}


# PostgreSQL: the transaction-level advisory lock every serialized write
# takes (any constant; "Balsam" in ASCII).
WRITE_LOCK_KEY = 0x42616C73616D


@contextmanager
def write_transaction(serialize=True):
    """A transaction that takes SQLite's write lock when it begins (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can fail half way with
    "database is locked" when another writer got in between; one that holds
    the lock from the start just waits its turn (the busy timeout). Inside a
    caller's transaction this is a savepoint of it.

    On PostgreSQL the same one-writer-at-a-time rule is an advisory lock
    taken first in the transaction (the operations read states and then
    write, as they were written for SQLite). ``serialize=False`` leaves it
    out, for the operations that lock only the rows they change (a lease
    claim with ``SKIP LOCKED``): many launchers claim at once, none waits.
    """
    _writing.depth = getattr(_writing, "depth", 0) + 1
    try:
        if connection.in_atomic_block or connection.vendor != "sqlite":
            with transaction.atomic():
                if connection.vendor == "postgresql" and serialize:
                    # Re-entrant: a nested write (a savepoint) takes it again at no cost.
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
                yield
            return
        connection.ensure_connection()
        previous = connection.transaction_mode
        connection.transaction_mode = "IMMEDIATE"
        try:
            with transaction.atomic():
                connection.transaction_mode = previous
                yield
        finally:
            connection.transaction_mode = previous
    finally:
        _writing.depth -= 1


_writing = threading.local()


def claimable(queryset):
    """The rows of ``queryset`` locked for this transaction, skipping those
    another transaction has locked: PostgreSQL's ``FOR UPDATE SKIP LOCKED``
    (two launchers never take the same job and never wait on each other).
    SQLite has no row locks: its one writer at a time already makes a claim
    safe, and Django leaves the clause out there."""
    if connection.vendor != "postgresql":
        return queryset
    return queryset.select_for_update(skip_locked=True, of=("self",))


def needs_own_transaction():
    """Whether a write started here would land inside someone else's open
    transaction: a user's ``transaction.atomic()`` or one Django opens itself
    (a related manager's ``add``/``remove``/``clear``). SQLite began that one
    deferred; a read in it followed by a write fails with "database is locked"
    when another process wrote in between, whatever the busy timeout. The
    write path's own nesting (the dbserver's group) is not such a case."""
    return connection.in_atomic_block and not getattr(_writing, "depth", 0)


def in_own_transaction(function, serialize=True):
    """``function()`` in a write transaction of its own, on a connection of
    its own (a helper thread's), committed when it returns: as a write sent to
    the dbserver would be. Returns its result or raises its exception."""
    outcome = {}

    def run():
        try:
            with write_transaction(serialize):
                outcome["result"] = function()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            connection.close()  # the thread's own connection

    worker = threading.Thread(target=run, name="balsam-write")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def max_params():
    """Bind parameters one statement may carry on this backend. SQLite's is
    a compile-time option of the library (999 in old builds, 32766 since
    3.32), read from the open connection once per process."""
    vendor = connection.vendor
    limit = _param_limits.get(vendor)
    if limit is None:
        limit = connection.features.max_query_params
        if vendor == "sqlite":
            connection.ensure_connection()
            limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        limit = _param_limits[vendor] = limit or UNLIMITED_BACKEND_PARAMS
    return limit


def chunk_size(per_item=1):
    """How many items fit one statement, each taking ``per_item`` parameters
    (an id used twice in a query takes two)."""
    return max(1, (max_params() - RESERVED_PARAMS) // per_item)


def chunks(items, per_item=1):
    """``items`` in lists that fit one statement."""
    items = list(items)
    size = chunk_size(per_item)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batches(queue):
    """Pop up to one statement's worth of items from the left of ``queue`` (a deque)."""
    return [queue.popleft() for _ in range(min(len(queue), chunk_size()))]


def pk_params(pks):
    """Job ids as the DB stores them (32 hex digits on SQLite). One lookup of
    the backend's features per call: through Django's connection proxy it
    costs more than the conversion."""
    if connection.features.has_native_uuid_field:
        return list(pks)
    return [pk.hex for pk in pks]


def table(model):
    """The quoted table name of ``model`` for raw SQL."""
    return connection.ops.quote_name(model._meta.db_table)


def marks(count):
    """``%s, %s, ...``: the placeholders of an IN list."""
    return ", ".join(["%s"] * count)


def raw_executemany(sql, rows):
    """``executemany`` on the DB-API connection, inside Django's transaction.

    For the statements run on every write (inserts, state changes, applied
    request ids): Django's cursor wrapper rewrites placeholders and runs debug
    hooks on every call, which costs more than SQLite's own work here.
    Errors are still Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(_native_sql(sql, connection.vendor), rows)
            return cursor.rowcount
        finally:
            cursor.close()


def _insert_values(statement, rows):
    """SQLite: ``statement`` (one row's ``VALUES (%s, ...)``) for all ``rows``
    as multi-row ``VALUES`` statements, as many rows each as the parameter
    limit allows. ``executemany`` runs the INSERT once per row, and each run
    on a table with triggers and unique indexes (the job table) opens and
    closes its own statement journal: 1,000 new jobs cost ~70 ms that way and
    ~23 ms in one statement. The values are bound as ``executemany`` binds
    them, so the rows stored are the same. (It replaced an ``INSERT ...
    SELECT`` over the rows as JSON: as fast for jobs, and a launcher's batch
    of events went in with 15% less of its writer's CPU.)"""
    head, _, values = statement.rpartition("VALUES")
    values = values.strip()
    per = max(1, (max_params() - RESERVED_PARAMS) // len(rows[0]))
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        raw_executemany(f"{head}VALUES {', '.join([values] * len(chunk))}", [[v for row in chunk for v in row]])
    return len(rows)


def column_type(field):
    """``field``'s PostgreSQL column type without a length (``varchar``, not
    ``varchar(100)``): a value cast to it is typed whatever the driver sent,
    and storing it still checks the length (an explicit cast to
    ``varchar(100)`` would cut it instead)."""
    return field.db_type(connection).split("(")[0]


def update_rows(model, fields, rows, assignments="", params=()):
    """Set ``fields`` of each row of ``model`` to its own values: ``rows``
    are ``[value of each field..., primary key]`` (column values, as stored);
    ``assignments`` (with ``params``) are set on every row as well. A key
    given twice gets its last values.

    SQLite: an ``executemany``, a statement per row (an ``UPDATE ... FROM`` a
    ``VALUES`` list measured 26-29 ms for 1,000 rows against 17-19).
    PostgreSQL: one ``UPDATE ... FROM (VALUES ...)`` per chunk, where an
    ``executemany`` is a statement per row, each parsed and planned by the
    server (Django's cursors bind on the client): ~45 us each."""
    quote = connection.ops.quote_name
    pk, table_name = model._meta.pk, table(model)
    every_row = [assignments] if assignments else []
    if connection.vendor != "postgresql":
        sets = ", ".join([f"{quote(f.column)} = %s" for f in fields] + every_row)
        raw_executemany(f"UPDATE {table_name} SET {sets} WHERE {quote(pk.column)} = %s",
                        [[*row[:-1], *params, row[-1]] for row in rows])
        return
    rows = list({row[-1]: row for row in rows}.values())  # UPDATE ... FROM uses one match per row, unpredictably
    names = [f"v{i}" for i in range(len(fields))] + ["id"]
    sets = ", ".join([f"{quote(f.column)} = v.{name}" for f, name in zip(fields, names)] + every_row)
    typed = "(" + ", ".join(f"CAST(%s AS {column_type(f)})" for f in [*fields, pk]) + ")"  # whatever the driver sent
    for chunk in chunks(rows, per_item=len(names)):
        raw_executemany(f"UPDATE {table_name} AS t SET {sets} FROM (VALUES {', '.join([typed] * len(chunk))}) "
                        f"AS v({', '.join(names)}) WHERE t.{quote(pk.column)} = v.id",
                        [[*params, *(value for row in chunk for value in row)]])  # SET's parameters come first


FEW_ROWS = 16  # up to this many rows an executemany (PostgreSQL: one round trip, COPY takes three)


def insert_rows(statement, rows):
    """A plain ``INSERT INTO t (columns) VALUES (%s, ...)`` of many rows.
    SQLite: one multi-row ``VALUES`` statement per chunk of rows that fits
    the parameter limit (``_insert_values``). PostgreSQL: one ``COPY t
    (columns) FROM STDIN``: the server parses one statement and fires its
    statement-level count triggers once, where ``executemany`` would run (and
    fire them) once per row, and a long multi-row VALUES list costs the
    driver more to parse than the rows cost to send."""
    rows = rows if isinstance(rows, list) else list(rows)
    if len(rows) <= FEW_ROWS:
        return raw_executemany(statement, rows)
    if connection.vendor == "sqlite":
        return _insert_values(statement, rows)
    head, _, _ = statement.rpartition("VALUES")
    copy_sql = head.replace("INSERT INTO", "COPY", 1).rstrip() + " FROM STDIN"
    connection.ensure_connection()
    count = 0
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            with cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        finally:
            cursor.close()
    return count


def one_round_trip(statements, params):
    """PostgreSQL, outside any transaction: ``statements`` (several, joined
    by ``;``) sent as ONE simple-protocol query with the parameters merged
    in by the client. The server runs such a query as one implicit
    transaction: all of it commits, or an error rolls all of it back, and the
    answer comes after the commit (its WAL flushed). One round trip in place
    of BEGIN, each statement and COMMIT. Errors are Django's."""
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors:
        with psycopg.ClientCursor(connection.connection) as cursor:
            cursor.execute(statements, params)


def prepared_execute(statement, params):
    """PostgreSQL, outside any transaction: one statement with its parameters
    bound by the server (the extended protocol), prepared on this connection
    the first time its text is seen: later calls send only the parameters,
    and the server reuses the statement's parsed and planned form instead of
    parsing a literal text each time (``one_round_trip``). It runs as its own
    implicit transaction, answered after the commit. Returns the row count.
    Errors are Django's. (Through libpq itself: ``postgres.prepared``.)"""
    from balsam.postgres.prepared import execute_prepared

    connection.ensure_connection()
    with connection.wrap_database_errors:
        return execute_prepared(connection.connection, statement, params)


def plain_values(queryset):
    """The rows of a ``values_list`` ``queryset`` as the driver returns them,
    without Django's per-value converters (SQLite's ids stay 32 hex digits):
    for queries whose values go straight back into SQL, such as the ids a
    claim then updates. The query is still built and compiled by Django."""
    statement, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def raw_fetchall(sql, params):
    """``execute`` + ``fetchall`` the same way as ``raw_executemany``."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_native_sql(sql, connection.vendor), params)
            return cursor.fetchall()
        finally:
            cursor.close()


@functools.lru_cache(maxsize=64)
def _native_sql(sql, vendor):
    """Our SQL is written with ``%s`` placeholders; SQLite's own driver wants ``?``."""
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


def quick_check(seconds, pragma="quick_check", most=10):
    """SQLite's ``PRAGMA quick_check`` (or ``integrity_check``, which also
    compares every index with its table), given at most ``seconds`` (it reads
    the whole file): ``[]`` when the file is sound, up to ``most`` problems
    found otherwise, ``None`` when time ran out first. Other backends: ``[]``."""
    if pragma not in ("quick_check", "integrity_check"):
        raise ValueError(f"not an integrity pragma: {pragma}")
    if connection.vendor != "sqlite":
        return []
    deadline = time.monotonic() + seconds
    try:
        connection.ensure_connection()
        raw = connection.connection
        raw.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            rows = raw.execute(f"PRAGMA {pragma}({int(most)})").fetchall()
        finally:
            raw.set_progress_handler(None, 0)
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None
        return [str(exc)]
    except (sqlite3.DatabaseError, DatabaseError) as exc:  # "file is not a database", "malformed"
        return [str(exc)]
    problems = [row[0] for row in rows]
    return [] if problems == ["ok"] else problems


def check_sound(seconds):
    """``quick_check`` the attached DB file: raises ``DBDamaged`` (naming the
    file and how to recover) when it is damaged; returns False when time ran
    out before the whole file was read, True when it was."""
    problems = quick_check(seconds)
    if problems:
        # SQLite's problem texts may hold line breaks; the error is one line.
        raise DBDamaged.of(connection.settings_dict["NAME"], "; ".join(" ".join(p.split()) for p in problems[:3]))
    return problems is not None


MAP_BYTES = 1 << 40  # more than any DB file: SQLite maps what the file holds


def map_file():
    """Let this connection read the SQLite file through a memory map
    (``mmap_size``) instead of copying each page into its cache: a read that
    visits a large DB in random order (``db check``) goes twice as fast.
    Only for reads (the write path never maps)."""
    if connection.vendor != "sqlite":
        return
    connection.ensure_connection()
    with connection.wrap_database_errors:
        connection.connection.execute(f"PRAGMA mmap_size={MAP_BYTES}").fetchall()


def auto_vacuum_mode():
    """SQLite's ``auto_vacuum`` of the attached DB: ``"none"``, ``"full"`` or
    ``"incremental"`` (Balsam makes new DBs incremental); None on other backends."""
    if connection.vendor != "sqlite":
        return None
    mode = raw_fetchall("PRAGMA auto_vacuum", [])[0][0]
    return {0: "none", 1: "full", 2: "incremental"}.get(mode, str(mode))


def free_pages():
    """Pages on SQLite's free list (0 on other backends)."""
    if connection.vendor != "sqlite":
        return 0
    return raw_fetchall("PRAGMA freelist_count", [])[0][0]


def incremental_vacuum(pages):
    """Give up to ``pages`` free pages back to the file system (SQLite's
    ``incremental_vacuum``, on a DB whose ``auto_vacuum`` is incremental),
    inside the caller's write transaction: it moves pages from the end of the
    file into free slots and shortens the file, so a bounded step holds the
    write lock only briefly. Returns how many were freed."""
    before = free_pages()
    steps = min(int(pages), before)
    with connection.cursor() as cursor:
        # One page per statement: Python's sqlite3 steps a statement that
        # returns no rows only once, and each step of this pragma frees one page.
        for _ in range(steps):
            cursor.execute("PRAGMA incremental_vacuum(1)")
    return before - free_pages()


def checkpoint(busy_ms=200):
    """Copy the write-ahead log back into the DB file and truncate both (the
    file shrinks only then after a vacuum). A passive checkpoint first, which
    waits for nobody; then a truncating one, which must wait for readers of
    the log and meanwhile holds writers off: it waits at most ``busy_ms`` and
    gives up (the log is truncated at a later checkpoint). Returns whether the
    log was truncated."""
    if connection.vendor != "sqlite":
        return False
    connection.ensure_connection()
    raw = connection.connection
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    timeout = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    try:
        busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(timeout)}")
    return not busy


def vacuum():
    """SQLite's ``VACUUM``: rewrite the file without its free pages, and make
    its ``auto_vacuum`` incremental (a DB made before Balsam set it at ``init``
    is converted so; afterwards ``incremental_vacuum`` shrinks it while in use).
    Not a change of any row, and it cannot run inside a transaction, so it is
    no write operation: ``db compact`` calls it only when nothing else uses the
    DB (it holds the write lock for as long as it takes)."""
    if connection.vendor != "sqlite":
        return
    connection.ensure_connection()
    connection.connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
    connection.connection.execute("VACUUM")
