"""The environment jobs and their pre/post scripts run with."""

import json
import os
import sys


def base_environment(inherited=None):
    """What every job's environment starts from: ``inherited`` (default
    ``os.environ``) with the launcher's own install first on PATH -- scripts
    may call `balsam` or import balsam -- and no handler flags. A launcher
    makes it once: copying and decoding ``os.environ`` per job adds up over
    thousands of jobs."""
    env = dict(os.environ if inherited is None else inherited)
    for name in ("BALSAM_JOB_ERROR", "BALSAM_JOB_TIMEOUT"):
        env.pop(name, None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def job_variables(job, app_env, parent_ids, child_ids, db_path, handler=None):
    """What a job's process gets on top of the base environment (see
    ``base_environment``): the application's and the job's variables, then
    Balsam's own. ``handler`` is "ERROR" or "TIMEOUT" for a postprocess script
    run as error or timeout handler."""
    env = dict(app_env or {})
    if job.environ_vars:
        env.update(job.environ_vars)
    env["BALSAM_JOB_ID"] = str(job.job_id)
    env["BALSAM_PARENT_IDS"] = json.dumps([str(p) for p in parent_ids]) if parent_ids else "[]"
    env["BALSAM_CHILD_IDS"] = json.dumps([str(c) for c in child_ids]) if child_ids else "[]"
    env["BALSAM_DB_PATH"] = str(db_path)
    if job.threads_per_rank > 1:
        env["OMP_NUM_THREADS"] = str(job.threads_per_rank)
    if handler:
        env[f"BALSAM_JOB_{handler}"] = "TRUE"
    return env
