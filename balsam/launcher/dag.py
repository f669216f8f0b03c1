"""The user-facing DAG API: ``import balsam.launcher.dag as dag``.

Importing attaches to the active Balsam DB (``BALSAM_DB_PATH``, else the
configured default) and, inside a job launched by Balsam, loads ``current_job``.

    dag.JOB_ID        the running job's id ('' outside a job)
    dag.TIMEOUT       True when a postprocess script runs as timeout handler
    dag.ERROR         True when a postprocess script runs as error handler
    dag.current_job   the running BalsamJob, or None
    dag.parents       its parents (a QuerySet), or None
    dag.children      its children (a QuerySet), or None
    dag.add_job(**fields), dag.add_dependency(parent, child),
    dag.spawn_child(clone=False, **fields), dag.kill(job, recursive=True)
"""

import os

from balsam import api
from balsam.exceptions import BalsamError, NotFound

api.attach()

from balsam.core.models import ApplicationDefinition, BalsamJob  # noqa: E402  (needs Django set up)

JOB_ID = os.environ.get("BALSAM_JOB_ID", "")
TIMEOUT = os.environ.get("BALSAM_JOB_TIMEOUT", "") == "TRUE"
ERROR = os.environ.get("BALSAM_JOB_ERROR", "") == "TRUE"

current_job = None
parents = None
children = None
if JOB_ID:
    current_job = api.job_by_id(JOB_ID)
    if current_job is None:
        raise NotFound(f"BALSAM_JOB_ID={JOB_ID} is not a job in {os.environ['BALSAM_DB_PATH']}; was it deleted?")
    parents = current_job.parents.all()
    children = current_job.children.all()


def add_job(save=True, **fields):
    """Create a job (saved unless ``save=False``). Unknown field names raise."""
    # Made by a running job: its history says by which, as in Balsam 0.2.
    note = f"created by {current_job.cute_id}" if current_job is not None else None
    return api.add_job(save=save, creation_note=note, **fields)


def add_dependency(parent, child):
    """Make ``child`` wait for ``parent`` (jobs or ids). Duplicates and cycles raise."""
    api.add_dependency(parent, child)


def spawn_child(clone=False, **fields):
    """A new child of the current job (in its workflow); ``clone`` copies its fields."""
    if current_job is None:
        raise BalsamError("spawn_child() needs a current job: it only works inside a job run by Balsam")
    return api.spawn_child(current_job, clone=clone, **fields)


def kill(job, recursive=True):
    """Mark ``job`` (and with ``recursive`` its unfinished descendants) USER_KILLED."""
    return api.kill(job, recursive=recursive)


__all__ = [
    "JOB_ID",
    "TIMEOUT",
    "ERROR",
    "current_job",
    "parents",
    "children",
    "BalsamJob",
    "ApplicationDefinition",
    "add_job",
    "add_dependency",
    "spawn_child",
    "kill",
]
