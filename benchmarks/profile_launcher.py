"""Where a launcher's time goes: a py-spy profile of a long-running
``balsam launcher --consume-all`` (and its spawner and batch thread) while N
``/bin/true`` jobs, bulk-inserted into it, run with W in flight -- the set-up
of ``peers.py``'s ``balsam`` row. Prints the sampled time per job grouped by
where it was spent (the table in docs/development/decisions.md, "Where the
launcher's time goes").

    .venv/bin/python benchmarks/profile_launcher.py --py-spy PATH/py-spy --n 2000
    PYTHONPATH=/tmp/other-tree .venv/bin/python benchmarks/profile_launcher.py ...  # another tree

py-spy comes from PyPI (``pip install py-spy`` into a scratch venv, never
``.venv``); it needs ptrace on the launcher (same user, ptrace_scope 0 or 1).
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers_drivers import BalsamRun  # noqa: E402

# (label, substrings of a stack, innermost frame first): the first group whose
# substring is in the stack takes the sample.
GROUPS = (
    ("spawner: posix_spawn", ("posix_spawn",)),
    ("spawner: job directory + output file", ("_open_output", "chdir", "makedirs")),
    ("spawner: pipes, select, reap, other", ("spawner.py",)),
    ("batch thread: state moves + events", ("transition_jobs", "record_lives", "record (")),
    ("batch thread: releases, fields, commit, other", ("balsam-batch", "_write (", "apply_batch")),
    ("loop: claims (DB)", ("_claim (",)),
    ("loop: idle wait in select", ("wait (balsam/launcher/processes.py", "wait (balsam/launcher/supervisor.py")),
    ("loop: start runs + send to spawner", ("_start_runs", "send (", "_feed")),
    ("loop: reaping, steps, flush, checks", ("pass_once",)),
)


def group_of(stack):
    for label, needles in GROUPS:
        if any(n in stack for n in needles):
            return label
    return "other threads, start-up"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--py-spy", required=True, help="the py-spy executable")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="balsam-profile-")
    run = BalsamRun(SimpleNamespace(workdir=work, template=None, dbserver=False, task="true", width=args.width,
                                    wf_filter=False, mpi_program=""))
    raw = os.path.join(work, "profile.txt")
    try:
        run.start()
        run.submit(["probe"])
        run.wait_ended(1, 300)
        spy = subprocess.Popen([args.py_spy, "record", "-p", str(run.launcher.pid), "--subprocesses", "-r",
                                str(args.rate), "-f", "raw", "-o", raw, "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)  # py-spy attaches
        t0 = time.monotonic()
        run.submit([f"t{i}" for i in range(args.n)])
        run.wait_ended(args.n + 1, 3600)
        elapsed = time.monotonic() - t0
        spy.send_signal(2)
        spy.wait(timeout=60)
    finally:
        run.stop()
    samples = collections.Counter()
    for line in open(raw):
        stack, _, count = line.rstrip().rpartition(" ")
        if stack:
            samples[group_of(stack)] += int(count)
    total = sum(samples.values())
    print(f"{args.n} jobs in {elapsed:.1f} s ({args.n / elapsed:.0f} jobs/s); {total} samples at {args.rate}/s "
          f"(raw profile: {raw})")
    print("| where | share | ms/job |")
    print("|---|---|---|")
    for label, _ in GROUPS + (("other threads, start-up", ()),):
        n = samples.get(label, 0)
        print(f"| {label} | {100 * n / total:.1f}% | {n * 1000 / args.rate / args.n:.2f} |")
    print(f"| **all** | 100% | {total * 1000 / args.rate / args.n:.2f} |")


if __name__ == "__main__":
    main()
