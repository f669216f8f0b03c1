"""Where a launcher's time goes: a py-spy profile of a long-running
``balsam launcher --consume-all`` (and its spawner and batch thread) while N
``/bin/true`` jobs, bulk-inserted into it, run with W in flight -- the set-up
of ``peers.py``'s ``balsam`` row. Prints the sampled time per job grouped by
where it was spent (the table in docs/development/decisions.md, "Where the
launcher's time goes").

    .venv/bin/python benchmarks/profile_launcher.py --py-spy PATH/py-spy --n 2000
    .venv/bin/python benchmarks/profile_launcher.py --cpu --n 3000   # CPU per job of each process, no py-spy
    PYTHONPATH=/tmp/other-tree .venv/bin/python benchmarks/profile_launcher.py ...  # another tree

py-spy comes from PyPI (``pip install py-spy`` into a scratch venv, never
``.venv``); it needs ptrace on the launcher (same user, ptrace_scope 0 or 1).
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers_drivers import BalsamRun  # noqa: E402

# (label, test of a stack's frames, innermost last): the first group whose
# test passes takes the sample.
def _innermost(frames, name):
    return bool(frames) and frames[-1].startswith(name)


GROUPS = (
    ("spawner: posix_spawn, chdir (in _spawn)", lambda f: _innermost(f, "_Children._spawn ")),
    ("spawner: output file, making the job directory", lambda f: any("_open_output" in x or x.startswith("makedirs")
                                                                     for x in f)),
    ("spawner: pipes, select, reap, other", lambda f: any("spawner.py" in x for x in f)),
    ("batch thread: state moves + events", lambda f: any(x.startswith(("transition_jobs ", "record_steps ", "record "))
                                                         for x in f)),
    ("batch thread: releases, fields, commit, other", lambda f: any(x.startswith("Batch._write ") for x in f)),
    ("loop: claims (DB)", lambda f: any(x.startswith("Launcher._claim ") for x in f)),
    ("loop: idle wait (select, tick)", lambda f: _innermost(f, "Spawner.wait ") or _innermost(f, "Launcher.run ")),
    ("loop: start runs + send to spawner", lambda f: any(x.startswith(("Launcher._start_runs ", "Supervisor.send "))
                                                         for x in f)),
    ("loop: reaping, steps, flush, checks", lambda f: any(x.startswith("Launcher.pass_once ") for x in f)),
)
OTHER = "other threads, start-up"


def group_of(stack):
    frames = [x for x in stack.split(";") if not x.startswith("process ")]
    for label, test in GROUPS:
        if test(frames):
            return label
    return OTHER


def report(raw, n, rate, elapsed=None):
    samples = collections.Counter()
    for line in open(raw):
        stack, _, count = line.rstrip().rpartition(" ")
        if stack:
            samples[group_of(stack)] += int(count)
    total = sum(samples.values())
    speed = f"{n} jobs in {elapsed:.1f} s ({n / elapsed:.0f} jobs/s); " if elapsed else f"{n} jobs; "
    print(f"{speed}{total} samples at {rate}/s (raw profile: {raw})")
    print("| where | share | ms/job |")
    print("|---|---|---|")
    for label in [label for label, _ in GROUPS] + [OTHER]:
        count = samples.get(label, 0)
        print(f"| {label} | {100 * count / total:.1f}% | {count * 1000 / rate / n:.2f} |")
    print(f"| **all** | 100% | {total * 1000 / rate / n:.2f} |")


def cpu_once(args):
    """One run (its own process: a run attaches this process to its DB):
    prints the CPU ms per job of each process, and jobs/s, as JSON."""
    run = BalsamRun(SimpleNamespace(workdir=tempfile.mkdtemp(prefix="balsam-cpu-"), template=None, dbserver=False,
                                    task="true", width=args.width, wf_filter=False, mpi_program=""))
    try:
        run.start()
        run.submit(["probe"])
        run.wait_ended(1, 300)
        before, t0 = run.cpu_parts(threads=True), time.monotonic()
        run.submit([f"t{i}" for i in range(args.n)])
        run.wait_ended(args.n + 1, 3600)
        elapsed, after = time.monotonic() - t0, run.cpu_parts(threads=True)
    finally:
        run.stop()
    result = {name: 1000 * (after[name] - before[name]) / args.n for name in before}
    print(json.dumps({"jobs/s": args.n / elapsed, **result}))


def cpu_split(args):
    """The CPU per job of each process of the run (no sampling): what the
    issue's "CPU ms/task" is made of, over ``--repeat`` runs."""
    rows = collections.defaultdict(list)
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, __file__, "--cpu-once", "--n", str(args.n), "--width", str(args.width)],
                             check=True, capture_output=True, text=True).stdout
        for name, value in json.loads(out.strip().splitlines()[-1]).items():
            rows[name].append(value)
    speed = rows.pop("jobs/s")
    print(f"{args.n} /bin/true jobs, {args.width} in flight, {args.repeat} run(s), "
          f"{statistics.median(speed):.0f} jobs/s: median (min-max)")
    print("| process | CPU ms/job |")
    print("|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")
    total = [sum(values[i] for values in rows.values()) for i in range(args.repeat)]
    print(f"| **all** | {statistics.median(total):.2f} ({min(total):.2f}-{max(total):.2f}) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true",
                        help="measure each process's CPU per job instead of sampling (no py-spy needed)")
    parser.add_argument("--repeat", type=int, default=3, help="runs for --cpu")
    parser.add_argument("--cpu-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--py-spy", help="the py-spy executable (needed unless --raw or --cpu)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--raw", help="only group this raw profile (of --n jobs) again")
    args = parser.parse_args()
    if args.raw:
        return report(args.raw, args.n, args.rate)
    if args.cpu_once:
        return cpu_once(args)
    if args.cpu:
        return cpu_split(args)
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
    report(raw, args.n, args.rate, elapsed)


if __name__ == "__main__":
    main()
