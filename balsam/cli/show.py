"""How jobs and applications are printed."""

import json

from balsam import api
from balsam.cli.common import table, table_lines

JOB_BLOCK_FIELDS = [
    "job_id", "name", "workflow", "application", "args", "description", "state", "working_directory",
    "num_nodes", "ranks_per_node", "threads_per_rank", "threads_per_core", "node_packing_count",
    "wall_time_minutes", "environ_vars", "input_files", "stage_in_url", "stage_out_files", "stage_out_url",
    "preprocess", "postprocess", "post_error_handler", "post_timeout_handler", "auto_timeout_retry",
    "wait_for_parents", "parents", "data", "runtime_seconds", "created_at", "state_changed_at", "lease_owner",
]
APP_BLOCK_FIELDS = ["id", "name", "executable", "description", "preprocess", "postprocess", "environ_vars"]


def _value(obj, name):
    if name == "parents":
        return ", ".join(p.hex[:8] for p in api.parent_ids(obj))
    value = getattr(obj, name)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else value


def _block(obj, names, title):
    width = max(len(n) for n in names)
    lines = [title, "-" * len(title)]
    lines.extend(f"{n.rjust(width)}: {_value(obj, n)}" for n in names)
    return "\n".join(lines)


def job_block(job):
    return _block(job, JOB_BLOCK_FIELDS, f"Job {job.cute_id}")


def app_block(app):
    return _block(app, APP_BLOCK_FIELDS, f"Application {app.name}")


def job_table_lines(rows):
    """rows: (job_id, name, workflow, application, state), any number (streamed)."""
    return table_lines(((pk.hex[:8], name, wf, app, state) for pk, name, wf, app, state in rows),
                       ["job_id", "name", "workflow", "application", "state"])


def json_array_lines(objects):
    """``json.dumps(list(objects), indent=2)``, line by line, without holding the list."""
    first = True
    for obj in objects:
        text = json.dumps(obj, indent=2).replace("\n", "\n  ")
        yield ("[\n  " if first else ",\n  ") + text
        first = False
    yield "[]" if first else "\n]"


def app_table(apps):
    return table([(a.pk, a.name, a.executable, a.description) for a in apps],
                 ["id", "name", "executable", "description"])


def history_lines(job):
    lines = [f"Job {job.name} [{job.job_id}]", "-" * 60]
    for when, from_state, to_state, message, user in job.history(users=True):
        move = f"{from_state} -> {to_state}" if from_state else to_state
        text = f"{when:%Y-%m-%d %H:%M:%S.%f} UTC  {user or '-':<12}  {move}"
        lines.append(f"{text}  {message}" if message else text)
    return "\n".join(lines)


def job_json(job):
    row = {f.name: getattr(job, f.attname) for f in job._meta.concrete_fields}
    row["job_id"] = str(job.job_id)
    for key in ("created_at", "state_changed_at", "lease_heartbeat", "lease_expires_at"):
        row[key] = row[key].isoformat() if row[key] else None
    row["working_directory"] = job.working_directory
    row["parents"] = [str(p) for p in api.parent_ids(job)]
    return row


def app_json(app):
    return {f.name: getattr(app, f.attname) for f in app._meta.concrete_fields}
