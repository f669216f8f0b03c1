"""Jobs as plain rows: the columns a launcher works from, without a model
instance per job.

A launcher reads every job it runs once when it claims it (hundreds per
second with short tasks). Django builds a model instance per row -- field
converters, signals, the instance's own state -- which cost it more than
the query did (0.12-0.16 ms per job measured, against a few microseconds for
a row of plain values). ``JobRow`` has the same attribute names and meanings
as ``BalsamJob`` for the columns in ``JOB_ROW_FIELDS`` (``working_directory``
and ``cute_id`` too), so the launcher's code reads either. It is read-only
by convention: writes go through the write path, never through a row.
"""

import json
import uuid

from balsam.core.models.jobs import working_directory

JOB_ROW_FIELDS = (
    "job_id", "name", "workflow", "state", "application", "args", "environ_vars", "input_files", "workdir",
    "user_workdir", "num_nodes", "ranks_per_node", "threads_per_rank", "threads_per_core", "node_packing_count",
    "wall_time_minutes", "stage_in_url", "stage_out_url", "stage_out_files", "preprocess", "postprocess",
    "post_error_handler", "post_timeout_handler", "auto_timeout_retry", "timeout_retries",
)
_BOOLEANS = frozenset({"post_error_handler", "post_timeout_handler", "auto_timeout_retry"})
_ID, _ENV = JOB_ROW_FIELDS.index("job_id"), JOB_ROW_FIELDS.index("environ_vars")
_BOOL_INDEXES = tuple(JOB_ROW_FIELDS.index(name) for name in sorted(_BOOLEANS))


class JobRow:
    # No __slots__: the attributes are set in one ``dict`` update, where 25
    # ``setattr`` calls cost a launcher a tenth of its claim's CPU.

    # has_parents: whether the job had parents when it was read. A job gets
    # parents only while it waits for them (CREATED, AWAITING_PARENTS), so
    # for a job a launcher claimed this stays true.

    def __init__(self, values):
        self.__dict__.update(zip(JOB_ROW_FIELDS, values))
        self._working_directory = None

    @classmethod
    def from_db(cls, values, pk=None):
        """From a raw row in ``JOB_ROW_FIELDS`` order and then ``has_parents``, as
        either backend's driver returns it (SQLite: ids as hex text, booleans as
        0/1, JSON as text); ``pk``: its id as a ``UUID``, when the caller has it."""
        values = list(values)
        has_parents = bool(values.pop())
        if pk is not None:
            values[_ID] = pk
        elif not isinstance(values[_ID], uuid.UUID):
            values[_ID] = uuid.UUID(hex=values[_ID])
        env = values[_ENV]
        values[_ENV] = {} if env in (None, "", "{}") else (json.loads(env) if isinstance(env, (str, bytes)) else env)
        for i in _BOOL_INDEXES:
            values[i] = bool(values[i])
        row = cls(values)
        row.has_parents = has_parents
        return row

    @property
    def pk(self):
        return self.job_id

    @property
    def working_directory(self):
        if self._working_directory is None:
            self._working_directory = working_directory(self.workdir, self.user_workdir)
        return self._working_directory

    @property
    def cute_id(self):
        return f"[{self.name} | {self.job_id.hex[:8]}]"

    def __repr__(self):
        return f"<JobRow {self.cute_id} {self.state}>"
