"""The PostgreSQL forms of what ``balsam db`` does with SQLite's file.

- **integrity**: PostgreSQL checks every page it reads (and every row against
  its constraints when it is written); what it does not check by itself is
  that each B-tree index agrees with its table. The ``amcheck`` extension
  does: ``bt_index_check`` on every index of Balsam's tables (a lock that
  lets writers go on), and with ``--full`` also that every row of the table
  is in the index (``heapallindexed``). Creating the extension needs the
  cluster's superuser, the DB's owner; for anyone else the check is skipped
  with a note;
- **who is using it**: the other sessions on the database (the dbserver is not
  a user: it only runs the server, which must run for anything to be done);
- **giving space back**: ``VACUUM`` while others use the DB (it takes no lock
  that stops writers, marks dead rows' space reusable and returns empty pages
  at the end of each table), ``VACUUM FULL`` when nobody else is connected
  (every table rewritten compactly, under a lock that would stop everyone).
"""

from django.db import DatabaseError, connection

from balsam.core import sql
from balsam.core.models import ApplicationDefinition, BalsamJob, JobDependency, JobEvent

# A bound on each index's check, not a target: a rare lock wait must not hang `db check`.
INDEX_CHECK_TIMEOUT = "600s"


def is_postgres():
    return connection.vendor == "postgresql"


def server():
    """How this process reaches the server: ``{"host", "port", "user", "password", "dbname"}``."""
    connection.ensure_connection()
    params = connection.get_connection_params()
    return {key: params[key] for key in ("host", "port", "user", "password", "dbname")}


def other_sessions():
    """One description per other session connected to the database."""
    rows = sql.raw_fetchall(
        "SELECT usename, coalesce(nullif(application_name, ''), 'a client'), client_addr, count(*) "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", [])
    return [f"{count} session(s) of {user} ({app}{f' from {addr}' if addr else ''})"
            for user, app, addr, count in rows]


def _balsam_indexes():
    tables = [sql.table(model) for model in (BalsamJob, JobEvent, JobDependency, ApplicationDefinition)]
    rows = sql.raw_fetchall(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE a.amname = 'btree' AND t.relname = ANY(%s) AND c.relpersistence = 'p' ORDER BY c.relname", [tables])
    return [row[0] for row in rows]


def integrity_problems(full, most):
    """``(problems, note)``: one line per index that disagrees with its table (at most ``most``)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    except DatabaseError as exc:
        return [], f"PostgreSQL's index check (amcheck) skipped: {' '.join(str(exc).split())}"
    problems = []
    for index in _balsam_indexes():
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = '{INDEX_CHECK_TIMEOUT}'")
                cursor.execute("SELECT bt_index_check(%s::regclass, %s)", [index, bool(full)])
        except DatabaseError as exc:
            problems.append(f"index {index}: {' '.join(str(exc).split())}")
            if len(problems) >= most:
                break
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
    return problems, None


def vacuum(full):
    """``VACUUM (ANALYZE)`` of the database; ``full`` rewrites every table (nobody else may be connected)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)")
