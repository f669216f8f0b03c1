"""Helpers the benchmark scripts share (run them as scripts: this sits beside them)."""

import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

BALSAM = str(Path(sys.executable).parent / "balsam")


def log(msg):
    """Progress on stderr; the tables go to stdout."""
    print(msg, file=sys.stderr, flush=True)


def env_for(db_path):
    return dict(os.environ, BALSAM_DB_PATH=str(db_path))


def run_balsam(db_path, *args, timeout=120):
    """Run ``balsam ARGS`` against ``db_path``; its stdout, or RuntimeError with its stderr."""
    proc = subprocess.run([BALSAM, *args], env=env_for(db_path), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"balsam {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def schema_updated(db_path):
    """A DB built by an earlier run (a cached benchmark DB), its schema brought
    up to date with ``balsam init`` (a newer Balsam refuses an older DB; a
    schema update of a million-job DB may take a minute). Returns ``db_path``."""
    run_balsam(db_path, "init", str(db_path), timeout=3600)
    return db_path


def fresh_db(workdir, name, app, executable):
    """A new DB at ``workdir/name`` with one application registered."""
    db = Path(workdir) / name
    shutil.rmtree(db, ignore_errors=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    run_balsam(db, "init", str(db))
    run_balsam(db, "app", "--name", app, "--executable", executable)
    return db


def mark(passed):
    return "ok" if passed else "MISS <<<"


def median_ratio(rates, base_rates):
    """A mode's rate against a base mode's over repeated runs: the ratio of
    their medians, and each run's own ratio (the lists paired by run)."""
    ratio = statistics.median(rates) / statistics.median(base_rates)
    return ratio, [a / b for a, b in zip(rates, base_rates)]


def print_table(rows):
    """``rows`` (dicts with the same keys) as a table with a header rule."""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}

    def line(row):
        return " | ".join(str(row[c]).ljust(widths[c]) for c in cols).rstrip()

    print(line({c: c for c in cols}))
    print("-+-".join("-" * widths[c] for c in cols))
    for row in rows:
        print(line(row))


def print_verdict(missed, what="target(s) missed"):
    """The last line of a report: the names of what missed its target, or that all were met."""
    print()
    print(f"{len(missed)} {what}: {'; '.join(missed)}" if missed else "All targets met.")


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def prepare(args):
    """Make the scratch directory, and turn SIGTERM into Ctrl-C so that every
    server and process a benchmark started is stopped by its cleanup code."""
    args.workdir = Path(args.workdir).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _sigterm)
