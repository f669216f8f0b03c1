"""Balsam: a workflow and ensemble job manager for HPC centres.

Importing this package does no work: Django is configured only by entry points
(the CLI, the dbserver, the launcher) and by ``balsam.launcher.dag``.
"""

import logging

__version__ = "0.4.0.dev0"

# Library code logs; only entry points decide where logs go.
logging.getLogger("balsam").addHandler(logging.NullHandler())
