"""``balsam db stats``: what is in a DB and how big it is, in one dict."""

import datetime

from django.utils import timezone

from balsam.core import health, queries, states

RATE_WINDOW = datetime.timedelta(hours=1)


def _iso(moment):
    return moment.isoformat(timespec="seconds") if moment else None


def db_stats(db_path):
    """Everything ``balsam db stats`` shows, JSON-able."""
    now = timezone.now()
    per_workflow = health.kept_job_counts()
    if per_workflow is None:
        per_workflow = queries.workflow_state_counts()
    by_state = {}  # summed from the per-workflow counts: one pass over the (workflow, state) index, not two
    for counts in per_workflow.values():
        for state, n in counts.items():
            by_state[state] = by_state.get(state, 0) + n
    oldest, newest = health.job_time_range()
    counts = health.row_counts(jobs=sum(by_state.values()))
    pages = health.page_usage()
    if pages:
        used = pages["pages"] - pages["free_pages"]
        pages.update(used_pages=used, used_percent=round(100 * used / pages["pages"], 1) if pages["pages"] else 0.0,
                     free_bytes=pages["free_pages"] * pages["page_size"])
    changes = health.events_since(now - RATE_WINDOW)
    return {
        "db_path": str(db_path),
        **health.file_sizes(),
        "pages": pages,
        "jobs": counts["jobs"],
        "jobs_by_state": {s: by_state[s] for s in states.ALL_STATES if by_state.get(s)},
        "jobs_by_workflow": {
            wf: {"jobs": sum(n.values()), "by_state": {s: n[s] for s in states.ALL_STATES if n.get(s)}}
            for wf, n in sorted(per_workflow.items())
        },
        "events": counts["events"],
        "dependencies": counts["dependencies"],
        "applications": counts["applications"],
        "launches": counts["launches"],
        "applied_requests": counts["applied_requests"],
        "oldest_job": _iso(oldest),
        "newest_job": _iso(newest),
        "state_changes_last_hour": changes,
        "measured_at": _iso(now),
    }
