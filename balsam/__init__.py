"""Balsam: a workflow and ensemble job manager for HPC centres.

Importing this package does no work: Django is configured only by entry points
(the CLI, the dbserver, the launcher) and by ``balsam.launcher.dag``.
"""

__version__ = "0.4.0.dev0"
