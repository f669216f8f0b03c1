"""Balsam's tables, one module per kind (``from balsam.core.models import X``
for each):

- ``routing``: how ORM writes are routed to the write client
  (``RoutedQuerySet``, ``TrackedModel``) or refused (``ReadOnlyQuerySet``,
  ``ReadOnlyModel``);
- ``jobs``: ``ApplicationDefinition``, ``BalsamJob``, ``JobDependency``, ``JobEvent``;
- ``bookkeeping``: ``AppliedRequest``, ``DBIdentity``, ``QueuedLaunch``, ``LauncherRecord``;
- ``aggregates``: ``StateMinute``, ``JobCount``;
- ``job_rows``: ``JobRow``, a job's launcher-side columns as plain values (no model instance).

Every write is routed through the installed write client (``core.write_client``):
``save()``, ``delete()``, and the querysets' ``update()``, ``delete()``,
``bulk_create()``. The client applies it with the operations in
``core.operations`` -- directly, or through the dbserver. Reads go to the DB
file (the queries themselves live in ``core.queries``).
"""

from balsam.core.models.aggregates import JobCount, JobCountQuerySet, StateMinute, StateMinuteQuerySet
from balsam.core.models.bookkeeping import (AppliedRequest, AppliedRequestManager, DBIdentity, LauncherQuerySet,
                                            LauncherRecord, LaunchQuerySet, QueuedLaunch)
from balsam.core.models.jobs import (STATE_CHOICES, ApplicationDefinition, AppQuerySet, BalsamJob, JobDependency,
                                     JobDependencyQuerySet, JobEvent, JobEventQuerySet, JobQuerySet)
from balsam.core.models.routing import ReadOnlyModel, ReadOnlyQuerySet, RoutedQuerySet, TrackedModel

# Named by migration 0001 as the job id's default: it must stay reachable here.
from balsam.core.models.jobs import _new_job_id  # noqa: E402,F401

__all__ = [
    "AppQuerySet", "ApplicationDefinition", "AppliedRequest", "AppliedRequestManager", "BalsamJob", "DBIdentity",
    "JobCount", "JobCountQuerySet", "JobDependency", "JobDependencyQuerySet", "JobEvent", "JobEventQuerySet",
    "JobQuerySet", "LaunchQuerySet", "LauncherQuerySet", "LauncherRecord", "QueuedLaunch", "ReadOnlyModel",
    "ReadOnlyQuerySet", "RoutedQuerySet", "STATE_CHOICES", "StateMinute", "StateMinuteQuerySet", "TrackedModel",
]
