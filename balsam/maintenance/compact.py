"""``balsam db compact``: prune what the user chose, then give the space back."""

import datetime
import re

from django.utils import timezone

from balsam.core import health, sql, write_client
from balsam.exceptions import ValidationError
from balsam.maintenance.backup import users
from balsam.wire.protocol import APPLIED_ID_RETENTION_SEC

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhm])\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
MAX_AGE_DAYS = 100 * 366
DELETE_CHUNK = 5_000  # jobs per delete request


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
    """Prune (through the write path), then VACUUM when nothing else uses the
    DB. Returns the plan plus ``removed``, sizes and, when the file was not
    rewritten, ``not_vacuumed`` (why)."""
    found = plan(events_older_than, finished_workflows)
    found.update(size_before=_size(db_path), dry_run=dry_run)
    if dry_run:
        return found
    client = write_client.get()
    removed = {"events": 0, "jobs": 0, "applied_requests": 0}
    if found["before"] is not None:
        before = found["before"].isoformat()
        while True:  # short transactions: writers get their turn between them
            n = client.prune_events(before)
            removed["events"] += n
            if not n:
                break
    for workflow in found["workflows"]:
        ids = health.workflow_job_ids(workflow)
        for start in range(0, len(ids), DELETE_CHUNK):
            removed["jobs"] += client.delete_finished_jobs(ids[start : start + DELETE_CHUNK])
    removed["applied_requests"] = client.prune_applied_requests(APPLIED_ID_RETENTION_SEC)
    found["removed"] = removed
    busy = users(db_path)
    if busy:
        found["not_vacuumed"] = busy
    else:
        sql.vacuum()
    found["size_after"] = _size(db_path)
    return found
