"""``balsam db check [--repair]``: SQLite's own checks, then Balsam's invariants.

Each check yields ``Problem``s, one line each; a kind with many problems shows
the first ``MAX_SHOWN`` and a count of the rest. ``repair()`` fixes only what
is safe to fix without a user's decision (lapsed leases, children of dead
parents, applied-request ids past retention), through the write client; it
never touches a file.

SQLite's own check and Balsam's run at the same time, on two threads with a
connection each (SQLite leaves Python's lock while it reads), and both read the
file through a memory map: on a million jobs each is seconds long.
"""

import datetime
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from django.db import DatabaseError, connection
from django.utils import timezone

from balsam.core import health, sql, write_client
from balsam.core.json_values import job_id
from balsam.maintenance import pg
from balsam.wire.protocol import APPLIED_ID_RETENTION_SEC

MAX_SHOWN = 20  # lines per kind of problem; the rest are counted
INTEGRITY_CHECK_SEC = 600  # a bound, not a target: the whole file is read once
# The dbserver prunes applied ids every minute (PRUNE_PERIOD_SEC); allow it a few rounds.
APPLIED_GRACE_SEC = 300

# The repairs, by the kind of problem they fix.
LEASE, WAITING, APPLIED = "lease", "waiting", "applied-requests"


@dataclass
class Problem:
    kind: str
    message: str
    repairable: bool = False

    def line(self):
        return f"{self.kind}: {self.message}"


@dataclass
class Report:
    problems: list
    notes: list

    @property
    def healthy(self):
        return not self.problems

    def as_dict(self):
        return {"healthy": self.healthy, "problems": [asdict(p) for p in self.problems], "notes": self.notes}


def _label(name, pk):
    return f"[{name} | {pk.hex[:8]}]"


def _capped(kind, shown, total, what, repairable=False):
    """The ``Problem``s of one kind: the shown ones, then a line counting the rest."""
    problems = [Problem(kind, text, repairable) for text in shown]
    if total > len(shown):
        problems.append(Problem(kind, f"... and {total - len(shown)} more {what}", repairable))
    return problems


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------
def _integrity(notes, full):
    if pg.is_postgres():
        found, note = pg.integrity_problems(full, MAX_SHOWN)
        if note:
            notes.append(note)
        return [Problem("integrity", line) for line in found]
    pragma = "integrity_check" if full else "quick_check"
    found = sql.quick_check(INTEGRITY_CHECK_SEC, pragma=pragma, most=MAX_SHOWN)
    if found is None:
        notes.append(f"{pragma} did not finish within {INTEGRITY_CHECK_SEC} s; the file was checked in part")
        return []
    # A row may hold several lines, the first headed "*** in database main ***": one problem per line.
    lines = [line.strip() for text in found for line in text.splitlines()]
    return [Problem("integrity", line) for line in lines if line and not line.startswith("*** in database")]


def _foreign_keys():
    from balsam.core.models import JobDependency, JobEvent

    # Reported by Balsam's own checks (_edges, _states), with job ids.
    own = {JobDependency._meta.db_table, JobEvent._meta.db_table}
    shown, total = health.foreign_key_problems(10 * MAX_SHOWN)
    lines = [f"{table} row {rowid} names a missing row of {parent}" for table, rowid, parent in shown if table not in own]
    return _capped("foreign-key", lines[:MAX_SHOWN], len(lines) + total - len(shown), "rows")


def _states():
    shown, total, orphan_events = health.state_event_mismatches(MAX_SHOWN)
    problems = []
    if orphan_events:
        problems.append(Problem("foreign-key", f"events name {orphan_events} job id(s) that do not exist"))
    lines = [
        f"job {_label(name, pk)} is {state} but "
        + (f"its last event moved it to {last}" if last else "it has no event (a job without history is CREATED)")
        + f" (see: balsam show {pk.hex[:8]})"
        for pk, name, state, last in shown
    ]
    return problems + _capped("state", lines, total, "jobs whose state disagrees with their history")


def _waiting():
    shown, total = health.waiting_on_dead_parents(MAX_SHOWN)
    lines = [
        f"job {_label(name, pk)} still waits on parent {parent.hex[:8]}, which is {parent_state} and can never "
        f"finish (--repair: PARENT_KILLED)"
        for pk, name, parent, parent_state in shown
    ]
    return _capped(WAITING, lines, total, "waiting jobs of dead parents", repairable=True)


def _leases(now, lease_expiry_sec):
    shown, total = health.lapsed_running(now, lease_expiry_sec, MAX_SHOWN)
    lines = []
    for pk, name, owner, expires in shown:
        held = f"its launcher {owner} stopped heartbeating" + (f" (lease expired {expires:%Y-%m-%d %H:%M:%S} UTC)"
                                                                  if expires else "")
        lines.append(f"RUNNING job {_label(name, pk)}: "
                     + (held if owner else f"no launcher holds it for over {lease_expiry_sec:g} s")
                     + " (--repair: RESTART_READY)")
    return _capped(LEASE, lines, total, "RUNNING jobs with lapsed leases", repairable=True)


def _job_dirs(db_path):
    """Jobs that ran without a directory, and directories of no job under data/."""
    data = Path(db_path) / "data"
    missing, missing_count = [], 0

    def note(pk, name, path):
        nonlocal missing_count
        missing_count += 1
        if len(missing) < MAX_SHOWN:
            missing.append(f"job {_label(name, job_id(pk))} ran but its directory {path} is missing")

    for folder, count in sorted(health.ran_jobs_by_folder().items()):
        if folder and not (data / folder).is_dir():  # none of its jobs' directories can exist: no stat each
            shown = health.ran_jobs_in_folder(folder, MAX_SHOWN - len(missing))
            for pk, name, workdir in shown:
                note(pk, name, data / workdir)
            missing_count += count - len(shown)
            continue
        for pk, name, workdir in health.ran_jobs_in_folder(folder):
            if not os.path.isdir(os.path.join(data, workdir)):
                note(pk, name, data / workdir)
    for pk, name, user_workdir in health.ran_jobs_elsewhere():
        path = os.path.expanduser(user_workdir)
        if not os.path.isdir(path):
            note(pk, name, path)
    problems = _capped("directory", missing, missing_count, "jobs that ran without a directory")
    orphans = _orphan_dirs(data)
    lines = [f"{path} belongs to no job (left alone: remove it yourself if it is not needed)" for path in orphans]
    return problems + _capped("orphan-directory", lines[:MAX_SHOWN], len(lines), "directories")


def _orphan_dirs(data):
    """Directories under ``data/`` no job runs in: ``data/<name>_<id8>`` for a
    job without a workflow, ``data/<workflow>/<name>_<id8>`` otherwise."""
    if not data.is_dir():
        return []
    top = sorted(e.name for e in os.scandir(data) if e.is_dir(follow_symlinks=False))
    jobs_at_top = health.known_workdirs(top)
    orphans = []
    for name in top:
        if name in jobs_at_top:
            continue
        if not health.workflow_dir_in_use(name):
            orphans.append(data / name)
            continue
        inner = sorted(f"{name}/{e.name}" for e in os.scandir(data / name) if e.is_dir(follow_symlinks=False))
        known = health.known_workdirs(inner)
        orphans.extend(data / rel for rel in inner if rel not in known)
    return orphans


def _edges():
    shown, total = health.dangling_edges(MAX_SHOWN)
    lines = [f"edge {edge} (child {child}, parent {parent}) names a job that does not exist"
             for edge, child, parent in shown]
    return _capped("dependency", lines, total, "edges")


def _applied(now):
    retention = APPLIED_ID_RETENTION_SEC + APPLIED_GRACE_SEC
    stale = health.applied_requests_before(now - datetime.timedelta(seconds=retention))
    if not stale:
        return []
    return [Problem(APPLIED, f"{stale} applied-request ids are older than the {APPLIED_ID_RETENTION_SEC} s retention "
                             "(--repair: prune them)", True)]


def _on_own_thread(function):
    """Start ``function`` on a thread with its own DB connection (Django's
    are per thread); returns a ``wait()`` that gives its result or raises its error."""
    outcome = {}

    def run():
        try:
            sql.map_file()
            outcome["value"] = function()
        except Exception as exc:  # handed to the caller by wait()
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="balsam-db-check", daemon=True)
    thread.start()

    def wait():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return wait


def check(db_path, lease_expiry_sec, full=False):
    """Run every check on the attached DB; a damaged file reports only SQLite's
    own findings. ``full``: SQLite's ``integrity_check`` (every index against
    its table) and ``foreign_key_check`` instead of ``quick_check`` alone (the
    events' and edges' references are checked by Balsam's own checks either
    way). SQLite's check runs on a thread of its own while Balsam's run on this one."""
    notes = []
    side = _on_own_thread(lambda: _integrity(notes, full))
    now = timezone.now()
    own, failure = [], None
    try:
        sql.map_file()
        own = ((_foreign_keys() if full else []) + _states() + _waiting() + _leases(now, lease_expiry_sec) + _edges()
               + _applied(now) + _job_dirs(db_path))
    except DatabaseError as exc:  # a file damaged in a way the integrity check may not get to
        failure = exc
    try:
        integrity = side()
    except DatabaseError as exc:
        return Report([Problem("integrity", str(exc))], notes)
    if integrity:
        notes.append("Balsam's own checks skipped: the file is damaged (see docs/db-maintenance.md: restore a backup)")
        return Report(integrity, notes)
    if failure is not None:
        return Report([Problem("integrity", str(failure))], notes)
    return Report(own, notes)


def repair(report, lease_expiry_sec):
    """Fix the repairable problems of ``report`` through the write path; returns what was done, one line each."""
    kinds = {p.kind for p in report.problems if p.repairable}
    client = write_client.get()
    done = []
    if LEASE in kinds:
        recovered = client.recover_expired(lease_expiry_sec)
        done.append(f"recovered {len(recovered)} RUNNING job(s) with lapsed leases: now RESTART_READY")
    if WAITING in kinds:
        settled = client.settle_orphaned_waiters()
        done.append(f"settled {len(settled)} waiting job(s) of parents that cannot finish: now PARENT_KILLED")
    if APPLIED in kinds:
        pruned = client.prune_applied_requests(APPLIED_ID_RETENTION_SEC)
        done.append(f"pruned {pruned} applied-request id(s) past retention")
    return done
