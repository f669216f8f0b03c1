"""What the admin's job-list actions do: kill, retry, reset to READY, delete.

Each takes the selected jobs, asks the write path (``core.write_client``) to
change them -- the state machine there has the last word -- and returns an
``Outcome``: how many changed, and which were skipped and why. Nothing here
knows about HTTP; the admin turns an outcome into one message.
"""

import datetime
from dataclasses import dataclass, field

from balsam.core import queries, states, write_client

SKIPPED_SHOWN = 10
RETRYABLE = (states.FAILED, states.RUN_ERROR, states.RUN_TIMEOUT)
# Where a retried job goes: a FAILED one starts over (dependency check,
# stage-in, preprocess: it may have failed before it ever ran); a run error
# or timeout nobody handles is run again in its directory.
RETRY_TARGET = {states.FAILED: states.CREATED, states.RUN_ERROR: states.RESTART_READY,
                states.RUN_TIMEOUT: states.RESTART_READY}


@dataclass(frozen=True)
class Selected:
    """One selected job as the page saw it (``rows`` reads them)."""

    pk: object
    name: str
    state: str
    lease_owner: str
    lease_expires_at: object

    @property
    def id8(self):
        return self.pk.hex[:8]

    def held(self, now):
        """The launcher holding a live lease on the job, or ''."""
        if self.lease_owner and self.lease_expires_at and self.lease_expires_at > now:
            return self.lease_owner
        return ""


def rows(queryset):
    fields = ("pk", "name", "state", "lease_owner", "lease_expires_at")
    return [Selected(*values) for values in queryset.order_by().values_list(*fields)]


@dataclass
class Outcome:
    verb: str  # past tense: "killed"
    changed: int = 0
    skipped: list = field(default_factory=list)  # [(Selected, why)]
    note: str = ""

    def skip(self, job, why):
        self.skipped.append((job, why))

    def message(self):
        """``killed 3; skipped 2: 0b01cf6f (JOB_FINISHED: final), ...`` (at most ``SKIPPED_SHOWN`` named)."""
        text = f"{self.verb} {self.changed}"
        if self.note:
            text += f" ({self.note})"
        if self.skipped:
            shown = ", ".join(f"{job.id8} ({job.state}: {why})" for job, why in self.skipped[:SKIPPED_SHOWN])
            more = len(self.skipped) - SKIPPED_SHOWN
            text += f"; skipped {len(self.skipped)}: {shown}" + (f" and {more} more" if more > 0 else "")
        return text


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def kill(selected, who):
    """USER_KILLED for the selected jobs and their unfinished descendants (the
    write kills only what the state machine allows)."""
    outcome = Outcome("killed")
    if not selected:
        return outcome
    result = write_client.get().kill([str(job.pk) for job in selected], recursive=True,
                                     message=f"killed in the web admin by {who}")
    killed = set(result["killed"])
    chosen = {str(job.pk) for job in selected}
    for job in selected:
        if str(job.pk) in killed:
            outcome.changed += 1
        else:
            outcome.skip(job, "final" if job.state in states.FINAL_STATES else "changed meanwhile")
    extra = len(killed - chosen) + len(result["settled"])
    if extra:
        outcome.note = f"and {extra} descendant(s)"
    return outcome


def retry(selected, who):
    """FAILED jobs start over (CREATED); RUN_ERROR and RUN_TIMEOUT jobs no
    launcher holds run again (RESTART_READY). Their timeout-rerun count goes
    back to 0 first, so a job that failed by running out of reruns gets them back."""
    outcome = Outcome("retried")
    now = _now()
    targets = {}
    for job in selected:
        if job.state not in RETRYABLE:
            outcome.skip(job, "only FAILED, RUN_ERROR and RUN_TIMEOUT jobs are retried")
        elif job.state != states.FAILED and job.held(now):
            outcome.skip(job, f"launcher {job.held(now)} holds it and handles it")
        else:
            targets.setdefault(RETRY_TARGET[job.state], []).append(job)
    client = write_client.get()
    for target, jobs in targets.items():
        ids = [str(job.pk) for job in jobs]
        client.update("jobs", ids, {"timeout_retries": 0})
        result = client.transition(ids, target, f"retried in the web admin by {who}", strict=False)
        refused = result["refused"]
        for job in jobs:
            if str(job.pk) in refused:
                outcome.skip(job, f"changed meanwhile to {refused[str(job.pk)]}")
            else:
                outcome.changed += 1
    return outcome


def reset_ready(selected, who):
    """READY for CREATED and AWAITING_PARENTS jobs whose parents allow it
    (``states.after_parents``: all finished, none, or not waited for). The
    dependency-resolution write checks the parents in its own transaction."""
    outcome = Outcome("made READY")
    waiting = [job for job in selected if job.state in states.WAITING_STATES]
    for job in selected:
        if job.state not in states.WAITING_STATES:
            outcome.skip(job, "not waiting for parents")
    if not waiting:
        return outcome
    result = write_client.get().resolve_dependencies([job.pk for job in waiting])
    ready = set(result["ready"])
    left = [job for job in waiting if str(job.pk) not in ready]
    parents = queries.parent_states([job.pk for job in left])
    for job in waiting:
        if str(job.pk) in ready:
            outcome.changed += 1
            continue
        mine = parents.get(job.pk, [])
        unfinished = sum(1 for s in mine if s != states.JOB_FINISHED)
        outcome.skip(job, f"{unfinished} of {len(mine)} parent(s) not finished" if mine else "changed meanwhile")
    return outcome


def delete(selected, who):
    """Remove jobs (with their events and edges), except those a live launcher
    holds: its next write would name a job that is gone. Kill those first."""
    outcome = Outcome("deleted")
    now = _now()
    free = []
    for job in selected:
        holder = job.held(now)
        if holder:
            outcome.skip(job, f"launcher {holder} holds it; kill it first")
        else:
            free.append(job)
    if free:
        outcome.changed = write_client.get().delete("jobs", [str(job.pk) for job in free])
    return outcome
