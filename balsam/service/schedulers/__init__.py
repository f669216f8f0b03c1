"""Batch-scheduler adapters behind one small interface (see ``base``)."""

from balsam.core.launch_states import SCHEDULERS
from balsam.service.schedulers.base import SchedulerError


def get_scheduler(name):
    """The adapter called ``name`` (local, slurm, pbs, cobalt)."""
    from balsam.service.schedulers import cobalt, local, pbs, slurm

    adapters = {"local": local.LocalScheduler, "slurm": slurm.SlurmScheduler, "pbs": pbs.PBSScheduler,
                "cobalt": cobalt.CobaltScheduler}
    assert set(adapters) == set(SCHEDULERS)
    try:
        return adapters[name]()
    except KeyError:
        raise SchedulerError(f"unknown scheduler {name!r}; choose one of {', '.join(sorted(adapters))}") from None


__all__ = ["SchedulerError", "get_scheduler"]
