"""The states of a batch launch, as Balsam records them whatever the
scheduler calls them, and the schedulers a launch can go to. Pure Python (no
Django): ``QueuedLaunch`` stores them and the scheduler adapters report them."""

SCHEDULERS = ("local", "slurm", "pbs", "cobalt")

PENDING = "pending-submission"  # recorded, not yet accepted by the scheduler
QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"

ALL = (PENDING, QUEUED, RUNNING, FINISHED, FAILED, CANCELLED)
# The scheduler still has it (or is about to).
ACTIVE = (PENDING, QUEUED, RUNNING)
# What a scheduler may report for a launch it knows.
IN_SCHEDULER = (QUEUED, RUNNING)
ENDED = (FINISHED, FAILED, CANCELLED)
