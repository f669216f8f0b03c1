"""``balsam db compact``: prune what the user chose, then give the space back.

Giving space back: when nothing else uses the DB, SQLite's ``VACUUM``
rewrites the file (the most compact result; it also makes an older DB's
``auto_vacuum`` incremental). While the DB is in use, ``VACUUM`` would hold the
write lock for minutes, so the freed pages go back in small steps of
``incremental_vacuum`` through the write path instead (``reclaim_space``: the
dbserver, when one serves the DB, runs each step between its write groups).
An older DB without incremental ``auto_vacuum`` is left as it is then: it
must be converted by one ``VACUUM`` while idle.

On PostgreSQL: ``VACUUM FULL`` when nobody else is connected, a plain
``VACUUM`` (no lock that stops writers) otherwise (``maintenance.pg``).
"""

import datetime
import re

from django.utils import timezone

from balsam.core import health, sql, write_client
from balsam.exceptions import ValidationError
from balsam.maintenance import pg
from balsam.maintenance.backup import users
from balsam.wire.protocol import APPLIED_ID_RETENTION_SEC

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhm])\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
MAX_AGE_DAYS = 100 * 366
DELETE_CHUNK = 5_000  # jobs per delete request
# Pages per reclaim step (4 MiB of 4 KiB pages): tens of milliseconds of the write lock.
RECLAIM_STEP_PAGES = 1_000


def parse_age(text):
    """``30d``, ``12h``, ``90m``, ``2w`` as a timedelta (one ``ValidationError`` line otherwise)."""
    found = _AGE.match(str(text))
    if not found:
        raise ValidationError(f"--events-older-than must be a number and a unit (w, d, h or m), e.g. 30d, not {text!r}")
    age = datetime.timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    if age > datetime.timedelta(days=MAX_AGE_DAYS):
        raise ValidationError(f"--events-older-than must be at most {MAX_AGE_DAYS} days, not {text!r}")
    return age


def _size(db_path):
    sizes = health.file_sizes()
    return sizes["db_bytes"] + sizes["wal_bytes"]


def plan(events_older_than=None, finished_workflows=False):
    """What ``compact`` would remove: ``{"events", "before", "workflows", "applied_requests"}``."""
    now = timezone.now()
    found = {"events": 0, "before": None, "workflows": {}, "applied_requests": 0}
    if events_older_than is not None:
        found["before"] = now - events_older_than
        found["events"] = health.prunable_events(found["before"])
    if finished_workflows:
        found["workflows"] = health.finished_workflows()
    found["applied_requests"] = health.applied_requests_before(now - datetime.timedelta(seconds=APPLIED_ID_RETENTION_SEC))
    return found


def compact(db_path, events_older_than=None, finished_workflows=False, dry_run=False):
    """Prune (through the write path), then give the space back: ``VACUUM``
    when nothing else uses the DB, ``incremental_vacuum`` steps through the
    write path otherwise. Returns the plan plus ``removed``, the sizes,
    ``shrunk_by`` (``"vacuum"``, ``"steps"`` or None), ``reclaimed_pages``,
    ``steps`` and, when the file could not be shrunk, ``not_vacuumed`` (what uses it)."""
    found = plan(events_older_than, finished_workflows)
    found.update(size_before=_size(db_path), dry_run=dry_run)
    if dry_run:
        return found
    client = write_client.get()
    removed = {"events": 0, "jobs": 0, "applied_requests": 0}
    if found["before"] is not None:
        before = found["before"].isoformat()
        last_id = 0
        while True:  # short transactions: writers get their turn between them
            step = client.prune_events(before, after_id=last_id)
            removed["events"] += step["removed"]
            last_id = step["last_id"]
            if not step["removed"]:
                break
    for workflow in found["workflows"]:
        ids = health.workflow_job_ids(workflow)
        for start in range(0, len(ids), DELETE_CHUNK):
            removed["jobs"] += client.delete_finished_jobs(ids[start : start + DELETE_CHUNK])
    removed["applied_requests"] = client.prune_applied_requests(APPLIED_ID_RETENTION_SEC)
    found["removed"] = removed
    found.update(_give_back(db_path, client))
    found["size_after"] = _size(db_path)
    return found


def _give_back(db_path, client):
    if pg.is_postgres():
        busy = pg.other_sessions()
        pg.vacuum(full=not busy)
        return {"shrunk_by": "vacuum" if not busy else "plain-vacuum", "reclaimed_pages": None, "steps": 0,
                **({"not_vacuumed": busy} if busy else {})}
    busy = users(db_path)
    if not busy:
        sql.vacuum()
        sql.checkpoint()  # in WAL mode the rewritten file goes through the log first
        return {"shrunk_by": "vacuum", "reclaimed_pages": None, "steps": 0}
    if sql.auto_vacuum_mode() != "incremental":
        return {"shrunk_by": None, "not_vacuumed": busy, "reclaimed_pages": 0, "steps": 0}
    freed = steps = 0
    while True:
        step = client.reclaim_space(RECLAIM_STEP_PAGES)
        freed += step["freed"]
        steps += 1
        if not step["freed"] or not step["free_pages"]:
            break
    sql.checkpoint()  # the file shrinks when the log is copied back into it
    return {"shrunk_by": "steps", "reclaimed_pages": freed, "steps": steps}
