"""Prepared statements run through libpq itself (``psycopg.pq``), for the one
statement every ``dag.add_job`` on a PostgreSQL DB sends.

Why not a psycopg cursor with ``prepare=True``: for a one-row insert its
Python layer (a cursor, the query's conversion, its prepared-statement
bookkeeping, adapting each parameter, the generator that drives libpq) cost
0.23 ms of client CPU a call, here 0.13-0.16 ms -- with 32 clients adding jobs
on two cores, client CPU is what the rate is made of. The statements are
Balsam's own, with ``%s`` placeholders and values of a few plain types, so
the conversion is small enough to do here. Errors are psycopg's own classes
(``psycopg.errors.error_from_result``): Django's ``wrap_database_errors``
turns them into its own as for any query.
"""

import datetime
import itertools
import json
import re
import uuid
import weakref

from psycopg import errors, pq
from psycopg.types.json import Json, Jsonb

# psycopg connection -> {statement text: its prepared statement's name}; a
# connection Django replaces (closed, reconnected) is a new key, prepared anew.
_PREPARED = weakref.WeakKeyDictionary()
_DONE = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def execute_prepared(conn, statement, params):
    """Run ``statement`` (its parameters written ``%s``) with ``params`` on the
    psycopg connection ``conn``, preparing it there the first time; returns
    the row count. Outside a transaction it commits on its own."""
    pgconn = conn.pgconn
    names = _PREPARED.setdefault(conn, {})
    name = names.get(statement)
    if name is None:
        name = f"balsam_{len(names)}".encode()
        _check(pgconn.prepare(name, numbered(statement).encode()), conn)
        names[statement] = name
    result = pgconn.exec_prepared(name, [as_text(value) for value in params])
    _check(result, conn)
    return int(result.command_tuples or 0)


def numbered(statement):
    """``%s`` placeholders as PostgreSQL's ``$1, $2, ...`` (``%%`` is a literal %)."""
    numbers = itertools.count(1)

    def replace(match):
        if match.group() == "%%":
            return "%"
        if match.group() == "%s":
            return f"${next(numbers)}"
        raise ValueError(f"unsupported % in a prepared statement: {statement[:80]!r}")

    return re.sub(r"%%|%s|%", replace, statement)


def as_text(value):
    """A parameter in PostgreSQL's text format (the statement casts it to its column's type)."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value.encode()
    if kind is bool:
        return b"t" if value else b"f"
    if kind in (int, float):
        return repr(value).encode()
    if isinstance(value, uuid.UUID):
        return str(value).encode()
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise TypeError("a naive datetime has no meaning for timestamptz")
        return value.isoformat().encode()
    if isinstance(value, (Json, Jsonb)):
        text = (value.dumps or json.dumps)(value.obj)
        return text.encode() if isinstance(text, str) else bytes(text)
    raise TypeError(f"no text form for a parameter of type {kind.__name__}")


def _check(result, conn):
    if result.status not in _DONE:
        raise errors.error_from_result(result, encoding=conn.info.encoding)
