"""Helpers the benchmark scripts share (run them as scripts: this sits beside them)."""

import os
import shutil
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


def fresh_db(workdir, name, app, executable):
    """A new DB at ``workdir/name`` with one application registered."""
    db = Path(workdir) / name
    shutil.rmtree(db, ignore_errors=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    run_balsam(db, "init", str(db))
    run_balsam(db, "app", "--name", app, "--executable", executable)
    return db
