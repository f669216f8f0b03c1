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


def db_rows(db, query):
    """Rows of ``query`` read straight from the DB file with sqlite3 (no Django, no Balsam);
    on a PostgreSQL DB, through psycopg with the owner's credentials (``pg_rows``)."""
    import sqlite3

    if (Path(db) / "balsamdb").exists():
        from tests.fixtures.postgres import pg_rows

        return pg_rows(db, query)
    con = sqlite3.connect(db / "db.sqlite3")
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


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
    """One write straight to the DB file with sqlite3: how tests break or
    stage a DB on purpose (bypassing Balsam's write path)."""
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
