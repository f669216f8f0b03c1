"""``balsam service``: keeps launches submitted for the DB's runnable work.

Each pass: follow every launch in the scheduler, count the unfinished jobs
no launch is tied to, and submit launches sized to them under the queue
policy. One service per DB (a file lock); SIGTERM stops it between passes.
"""

import logging
import time
from pathlib import Path

from filelock import FileLock, Timeout

from balsam.core import queries
from balsam.exceptions import BalsamError
from balsam.service import launches, templates

logger = logging.getLogger(__name__)

LOCK_NAME = "service.lock"


class Service:
    def __init__(self, db_path, policy, queue=None, project="", period_sec=10.0, until_idle=False):
        self.db_path = Path(db_path)
        self.policy = policy
        self.queue_name = queue
        self.project = project
        self.period_sec = period_sec
        self.until_idle = until_idle
        self.stopping = False
        self._unplaceable = 0

    def queues(self):
        if self.queue_name:
            queue = self.policy.queue(self.queue_name)
            if not queue.submit:
                raise BalsamError(f"queue {queue.name!r} has submit set to false in {self.policy.path}")
            return [queue]
        return [q for q in self.policy.queues.values() if q.submit]

    def pass_once(self):
        """One pass; returns True while there is work or an active launch."""
        try:
            launches.sync_launches(self.policy)
        except BalsamError as exc:  # a scheduler hiccup: try again next pass
            logger.error("could not read launch states: %s", exc)
            return True
        busy = False
        for job_mode in ("serial", "mpi"):
            for queue in self.queues():
                count, mpi_nodes = launches.untied_work(job_mode, queue.max_nodes, queue.max_minutes)
                if not count:
                    continue
                busy = True
                active = queries.active_launches(self.policy.scheduler, queue.name).count()
                if active >= queue.max_queued:
                    continue
                nodes = launches.launch_size(job_mode, count, mpi_nodes, queue)
                try:
                    launches.submit_launch(self.db_path, self.policy, queue.name, nodes, queue.max_minutes, job_mode,
                                           project=self.project)
                except BalsamError as exc:
                    logger.error("could not submit a %s launch to %s: %s", job_mode, queue.name, exc)
                break  # one queue per mode and pass
        self._report_unplaceable()
        active = queries.active_launches(self.policy.scheduler).exists()
        return busy or active

    def _report_unplaceable(self):
        """Warn (once per change) about jobs no queue could ever run: otherwise
        they would simply never be submitted, silently."""
        queues = self.queues()
        if not queues:
            return
        most_nodes = max(q.max_nodes for q in queues)
        longest = max(templates.launcher_minutes(q.max_minutes) for q in queues)
        count, nodes, minutes = launches.unplaceable_work(most_nodes, longest)
        if count and count != self._unplaceable:
            logger.warning(
                "%d unfinished job(s) fit no queue and will not be submitted: the largest needs %d node(s) and "
                "%g min (a launch runs at most %d node(s) for %g min); raise max_nodes or max_minutes in %s, "
                "or change the jobs with: balsam modify",
                count, nodes, minutes, most_nodes, longest, self.policy.path)
        self._unplaceable = count

    def run(self):
        lock = FileLock(str(self.db_path / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise BalsamError(f"another balsam service is already running for {self.db_path}") from None
        try:
            logger.info("service started: scheduler %s, queues %s", self.policy.scheduler,
                        [q.name for q in self.queues()])
            while not self.stopping:
                busy = self.pass_once()
                if self.until_idle and not busy:
                    logger.info("idle: no unfinished work and no active launch")
                    break
                deadline = time.monotonic() + self.period_sec
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            lock.release()
        logger.info("service stopped")
