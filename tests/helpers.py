"""Small helpers shared by test modules."""

import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def wait_until(predicate, timeout, what):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def one_line_error(result, *fragments, code=None):
    """The one ``Error: ...`` line a refused command printed (exit ``code``,
    or any non-zero one), with no traceback, holding each of ``fragments``."""
    if code is None:
        assert result.returncode != 0, result.stdout
    else:
        assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def pg_connection(db):
    """A psycopg connection to the PostgreSQL DB at ``db`` (autocommit), or None for a SQLite DB."""
    if not (Path(db) / "balsamdb").exists():
        return None
    import json

    from balsam.postgres.cluster import connect
    from balsam.postgres.credentials import pg_credentials

    info = json.loads((Path(db) / "dbwriter_address").read_text())
    return connect(info["host"], info["port"], pg_credentials(db))


def _pg_marks(statement):
    """SQLite's ``?`` marks as psycopg's ``%s`` (and a literal ``%`` escaped)."""
    return statement.replace("%", "%%").replace("?", "%s")


def db_rows(db, query, params=()):
    """Rows of ``query`` read straight from the DB (sqlite3 on the file, or
    psycopg on PostgreSQL; no Django, no Balsam). ``?`` marks parameters."""
    pg = pg_connection(db)
    if pg is not None:
        with pg:
            return pg.execute(_pg_marks(query), params).fetchall() if params else pg.execute(query).fetchall()
    import sqlite3

    con = sqlite3.connect(db / "db.sqlite3")
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def _take_ctrl_c():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Popen keyword arguments for a child the test will send Ctrl-C (SIGINT): a
# suite started in the background (``cmd &``, ``nohup``) runs with SIGINT
# ignored, every child inherits that, and Python then never raises
# KeyboardInterrupt in it. A terminal's foreground process takes the signal.
TAKES_CTRL_C = {"preexec_fn": _take_ctrl_c}


def balsam_script():
    """The console script installed next to this Python."""
    return str(Path(sys.executable).with_name("balsam"))


def read_line(stream, timeout, what):
    """One line from ``stream`` (an unbuffered pipe: nothing is read ahead of
    the select), or fail after ``timeout`` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return stream.readline().decode()


class WebProcess:
    """`balsam web --port 0 ...` in a subprocess; ``port`` and ``banner`` once it serves."""

    def __init__(self, db, *args, env=None):
        self.process = subprocess.Popen(
            [balsam_script(), "web", "--port", "0", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            bufsize=0, env={**os.environ, "BALSAM_DB_PATH": str(db), **(env or {})})
        try:
            first = read_line(self.process.stdout, 60, "balsam web to start")
            if not first:
                raise AssertionError(f"balsam web exited: {self.process.stderr.read().decode()}")
            self.port = int(re.search(r":(\d+)/$", first.strip()).group(1))
            self.banner = first
            while not self.banner.endswith("Stop with Ctrl-C (or SIGTERM).\n"):
                self.banner += read_line(self.process.stdout, 10, "the rest of the banner")
        except BaseException:
            self.process.kill()  # never leave a server behind when it did not announce itself
            self.process.wait()
            raise

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.process.returncode, self.banner + out.decode(), err.decode()


def db_write(db, statement, params=()):
    """One write straight to the DB (sqlite3 on the file, or psycopg on
    PostgreSQL; ``?`` marks parameters): how tests break or stage a DB on
    purpose (bypassing Balsam's write path)."""
    pg = pg_connection(db)
    if pg is not None:
        with pg:
            pg.execute(_pg_marks(statement), params) if params else pg.execute(statement)
        return
    import sqlite3

    con = sqlite3.connect(db / "db.sqlite3")
    try:
        with con:
            con.execute(statement, params)
    finally:
        con.close()


# A process adding a job every 50 ms (through a dbserver when one serves the DB) until
# the file argv[3] exists; it logs "name start end" once each insert is acknowledged.
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from balsam import api

    api.attach()
    me, log, stop = sys.argv[1], open(sys.argv[2], "w"), Path(sys.argv[3])
    n = 0
    while not stop.exists():
        name = f"{me}-{n}"
        start = time.time()
        api.add_job(name=name, workflow="load", application="hello")
        log.write(f"{name} {start} {time.time()}\\n")  # written only once the insert was acknowledged
        log.flush()
        n += 1
        time.sleep(0.05)
""")


def acked(logs):
    """[(name, start, end)] of every acknowledged insert so far."""
    rows = []
    for path in logs:
        if not path.exists():  # the writer has not started yet
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                rows.append((parts[0], float(parts[1]), float(parts[2])))
    return rows
