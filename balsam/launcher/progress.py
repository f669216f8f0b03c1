"""What a launcher shows while it works: a live line on a terminal, periodic
log lines otherwise, and a summary at exit."""

import logging
import time

from balsam.core import states

logger = logging.getLogger(__name__)

TTY_PERIOD_SEC = 0.5
LOG_PERIOD_SEC = 10.0
COUNT_PERIOD_SEC = 2.0  # counting states scans the launcher's whole scope: not on every redraw
FAILED_STATES = (states.FAILED, states.USER_KILLED, states.PARENT_KILLED)


class Progress:
    def __init__(self, stream, is_tty, summary_stream=None):
        self.stream = stream
        self.summary_stream = summary_stream or stream
        self.is_tty = is_tty
        self.started = time.monotonic()
        self.first_finished = None
        self.last = float("-inf")  # never (time.monotonic() counts from boot)
        self.counts = {}
        self.counted = float("-inf")

    def line(self, launcher):
        counts = self.counts
        total = sum(counts.values())
        finished = counts.get(states.JOB_FINISHED, 0)
        failed = sum(counts.get(s, 0) for s in FAILED_STATES)
        if self.first_finished is None and counts:
            self.first_finished = finished
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (finished - (self.first_finished or 0)) / elapsed
        if launcher.deadline:
            left = max(0, int(launcher.deadline - time.monotonic()))
            time_left = f"{left // 60}:{left % 60:02d} left"
        else:
            time_left = "no time limit"
        return (f"{finished}/{total} finished | {len(launcher.runs)} running | {failed} failed | "
                f"{rate:.1f} jobs/s | {time_left}")

    def update(self, launcher, final=False):
        now = time.monotonic()
        period = TTY_PERIOD_SEC if self.is_tty else LOG_PERIOD_SEC
        if not final and now - self.last < period:
            return
        self.last = now
        if final or now - self.counted >= COUNT_PERIOD_SEC:
            self.counts, self.counted = launcher.state_counts(), now
        text = self.line(launcher)
        if self.is_tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.stream.flush()
        elif not final:
            self.stream.write(text + "\n")
            self.stream.flush()
        logger.info("%s", text)
        if final:
            summary = (f"launcher stopped ({launcher.stop_reason}) after {now - self.started:.1f} s: {text}")
            self.summary_stream.write(summary + "\n")
            self.summary_stream.flush()
            logger.info("%s", summary)
