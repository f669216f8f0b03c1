"""The DB's service settings: which scheduler, and the queue policy.

``<DB>/service.json``::

    {"scheduler": "slurm",
     "queues": {"debug": {"max_queued": 2, "min_nodes": 1, "max_nodes": 4,
                          "min_minutes": 5, "max_minutes": 30, "jobs_per_node": 16,
                          "submit": true}}}

Without the file: the scheduler named by ``scheduler`` in user_settings.py and,
for the local scheduler, one queue "local".
"""

import json
from dataclasses import dataclass, fields
from pathlib import Path

from balsam.config import load_settings
from balsam.exceptions import ConfigError

FILE_NAME = "service.json"


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    max_queued: int = 1
    min_nodes: int = 1
    max_nodes: int = 1
    min_minutes: float = 1
    max_minutes: float = 60
    jobs_per_node: int = 8
    submit: bool = True


@dataclass(frozen=True)
class ServicePolicy:
    scheduler: str
    queues: dict
    path: Path

    def queue(self, name):
        if name in self.queues:
            return self.queues[name]
        known = ", ".join(sorted(self.queues)) or "none"
        raise ConfigError(f"queue {name!r} is not in the queue policy ({self.path}); known queues: {known}")

    def check(self, queue, nodes, minutes):
        """One clear line if a launch of this size breaks the queue's bounds."""
        policy = self.queue(queue)
        if not policy.min_nodes <= nodes <= policy.max_nodes:
            raise ConfigError(f"queue {queue!r} takes {policy.min_nodes} to {policy.max_nodes} nodes, not {nodes}")
        if not policy.min_minutes <= minutes <= policy.max_minutes:
            raise ConfigError(
                f"queue {queue!r} takes {policy.min_minutes:g} to {policy.max_minutes:g} minutes, not {minutes:g}")
        return policy


def load_policy(db_path):
    path = Path(db_path) / FILE_NAME
    if not path.exists():
        scheduler = load_settings().scheduler
        queues = {"local": QueuePolicy("local", max_nodes=1)} if scheduler == "local" else {}
        return ServicePolicy(scheduler, queues, path)
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"scheduler", "queues"}:
        raise ConfigError(f"{path} must be an object with 'scheduler' and 'queues'")
    known = {f.name for f in fields(QueuePolicy)} - {"name"}
    queues = {}
    for name, options in (data.get("queues") or {}).items():
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"{path}: queue {name!r} has unknown option {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}")
        try:
            queues[name] = _checked(QueuePolicy(name, **options), path)
        except TypeError as exc:
            raise ConfigError(f"{path}: queue {name!r}: {exc}") from None
    return ServicePolicy(data.get("scheduler") or load_settings().scheduler, queues, path)


def _checked(policy, path):
    where = f"{path}: queue {policy.name!r}"
    for name in ("max_queued", "min_nodes", "max_nodes", "jobs_per_node"):
        value = getattr(policy, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {name} must be a whole number of at least 1, not {value!r}")
    for name in ("min_minutes", "max_minutes"):
        value = getattr(policy, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where}: {name} must be a positive number of minutes, not {value!r}")
    if not isinstance(policy.submit, bool):
        raise ConfigError(f"{where}: submit must be true or false, not {policy.submit!r}")
    if policy.min_nodes > policy.max_nodes or policy.min_minutes > policy.max_minutes:
        raise ConfigError(f"{where}: a minimum is larger than its maximum")
    return policy
