"""Many rows into a SQLite table with one statement.

``executemany`` runs its INSERT once per row, and each run of an INSERT on a
table with triggers and unique indexes (``balsam_job``: the count trigger,
the id and the directory) opens and closes its own statement journal: 1,000
new jobs cost ~70 ms that way and ~23 ms as one ``INSERT ... SELECT`` over
``json_each`` of the rows (measured on copies of one DB, interleaved; the
event table, with neither, gains nothing and loses nothing).

The statement binds each column that has one value in every row once, and
reads the others from a JSON array of the rows. Only values JSON carries
exactly go that way -- text, integers of SQLite's 64 bits, booleans (stored
as 1 and 0, as Django stores them), NULL -- plus anything at all in a column
that is the same in every row (bound as usual). Anything else (a float that
varies from row to row, bytes, text with a NUL) makes ``insert`` return
False and the caller uses ``executemany``: the same rows stored either way.
"""

import functools
import json
import re

from django.db import connection

_JSON_EXACT = frozenset((str, int, bool, type(None)))
_INT64 = (-(1 << 63), (1 << 63) - 1)
_PLAIN_INSERT = re.compile(r"^(INSERT INTO .+?\))\s*VALUES\s*\((%s(?:,\s*%s)*)\)\s*$", re.S)
_usable = None  # whether this SQLite has json_each (it may be built without JSON before 3.38)


def insert(statement, rows):
    """``statement`` (``INSERT INTO t (columns) VALUES (%s, ...)``) for every
    row of ``rows`` (lists or tuples, at least one) as one statement; False
    if these rows or this statement cannot go that way (nothing written)."""
    head = _head(statement)
    if head is None or not _json_available():
        return False
    columns = list(zip(*rows))
    count = len(rows)
    constants, varying = {}, []
    for index, values in enumerate(columns):
        first = values[0]
        kinds = set(map(type, values))
        if len(kinds) == 1 and values.count(first) == count:
            constants[index] = first
        elif kinds <= _JSON_EXACT and (int not in kinds or _ints_fit(values)):
            varying.append(index)
        else:
            return False
    payload = json.dumps([[row[i] for i in varying] for row in rows], ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in payload:  # SQLite's JSON text would end at the NUL
        return False
    native = _statement(head, len(columns), tuple(varying))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(native, [payload, *constants.values()])
    finally:
        cursor.close()
    return True


def _ints_fit(values):
    low, high = _INT64
    return all(low <= v <= high for v in values if type(v) is int)


@functools.lru_cache(maxsize=64)
def _head(statement):
    match = _PLAIN_INSERT.match(statement)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=64)
def _statement(head, width, varying):
    """``head SELECT ...``: the varying columns from ``json_each(?1)``'s rows,
    the others bound in column order from ``?2`` on."""
    exprs, constant = [], 2
    for index in range(width):
        if index in varying:
            exprs.append(f"json_extract(row.value, '$[{varying.index(index)}]')")
        else:
            exprs.append(f"?{constant}")
            constant += 1
    return f"{head} SELECT {', '.join(exprs)} FROM json_each(?1) AS row"


def _json_available():
    global _usable
    if _usable is None:
        cursor = connection.connection.cursor()
        try:
            cursor.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')")
            _usable = cursor.fetchone() == (1,)
        except Exception:  # noqa: BLE001 -- no JSON in this SQLite: executemany it is
            _usable = False
        finally:
            cursor.close()
    return _usable
