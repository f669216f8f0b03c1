"""Small helpers shared by test modules."""

import time


def wait_until(predicate, timeout, what):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def db_rows(db, query):
    """Rows of ``query`` read straight from the DB file with sqlite3 (no Django, no Balsam)."""
    import sqlite3

    con = sqlite3.connect(db / "db.sqlite3")
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()
