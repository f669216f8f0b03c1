"""The environment jobs and their pre/post scripts run with."""

import json
import os
import sys


def job_environment(job, app_env, parent_ids, child_ids, db_path, handler=None, inherited=None):
    """Everything inherited, then the application's and the job's variables,
    then Balsam's own. ``handler`` is "ERROR" or "TIMEOUT" for a postprocess
    script run as error or timeout handler. ``inherited``: a snapshot of
    ``os.environ`` to start from (copying ``os.environ`` decodes every
    variable, which adds up over thousands of jobs)."""
    env = dict(os.environ if inherited is None else inherited)
    for name in ("BALSAM_JOB_ERROR", "BALSAM_JOB_TIMEOUT"):
        env.pop(name, None)
    # Scripts may call `balsam` or import balsam: the launcher's own install comes first.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(app_env or {})
    env.update(job.environ_vars or {})
    env.update(
        BALSAM_JOB_ID=str(job.job_id),
        BALSAM_PARENT_IDS=json.dumps([str(p) for p in parent_ids]),
        BALSAM_CHILD_IDS=json.dumps([str(c) for c in child_ids]),
        BALSAM_DB_PATH=str(db_path),
    )
    if job.threads_per_rank > 1:
        env["OMP_NUM_THREADS"] = str(job.threads_per_rank)
    if handler:
        env[f"BALSAM_JOB_{handler}"] = "TRUE"
    return env
