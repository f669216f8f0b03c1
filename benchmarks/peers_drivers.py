"""One measured run of one system, for ``peers.py`` (run as a script by it).

    PYTHON peers_drivers.py SYSTEM --n N --task {true,sleep,mpi} --width W --workdir DIR

``peers.py`` starts this in the run's own cpuacct cgroup, with the
interpreter the system needs: the scratch peers venv for HyperQueue and
Parsl, the project's ``.venv`` for Balsam. Each driver first brings its
system up and runs one probe task (start-up is not measured), then times N
tasks from just before the first submission to the moment all are known to
be done, with at most W in flight. The last stdout line is a JSON record:
``t0``/``t1`` (monotonic), ``c0``/``c1`` (the cgroup's CPU in ns: every
process of the run, tasks included, or null without a writable cgroup),
``failures`` (tasks that did not succeed, or whose Balsam event history is
not the full one) and, for the loop and Balsam, ``parts``: CPU seconds over
[t0, t1] by process (the loop: itself and its tasks; Balsam: the launcher,
its spawner, the tasks and this driver, which submits the jobs and watches
the DB for their end).
"""

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time

TASKS = {"true": ["/bin/true"], "sleep": ["/bin/sleep", "0.01"]}
# Every Balsam job's life, one event each (what the benchmark checks per job).
JOB_EVENTS = ("READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
POLL_SEC = 0.005  # between polls of the DB near the end: how late the last completion may be seen
MAX_POLL_SEC = 0.05  # between polls while many jobs are left


def cgroup_cpu_ns():
    """CPU of this process's cpuacct cgroup (ns), when peers.py made one for the run."""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "cpuacct" in controllers.split(",") and path.startswith("/balsam-peers-"):
                    with open(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage") as usage:
                        return int(usage.read())
    except OSError:
        pass
    return None


def task_argv(args):
    if args.task == "mpi":
        return ["mpiexec", "-n", "2", "-ppn", "2", "-hosts", os.uname().nodename, args.mpi_program]
    return TASKS[args.task]


# ---------------------------------------------------------------- the limit: a plain spawn loop
def spawn_loop(argv, n, width):
    """``n`` runs of ``argv``, ``width`` at a time, reaped with ``os.wait``; returns failures."""
    running, started, failures = {}, 0, 0  # pid -> Popen: held, so that subprocess never reaps them itself
    while started < n or running:
        while started < n and len(running) < width:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            running[proc.pid] = proc
            started += 1
        pid, status = os.wait()
        proc = running.pop(pid, None)
        if proc is not None:
            proc.returncode = os.waitstatus_to_exitcode(status)
            failures += proc.returncode != 0
    return failures


def rusage_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def cpu_parts(before, after):
    """CPU seconds of each part over the run: ``after - before`` of two ``{part: seconds}``."""
    return {part: after[part] - before[part] for part in before}


def drive_loop(args):
    argv = task_argv(args)
    spawn_loop(argv, 1, 1)

    def parts():
        return {"loop": rusage_seconds(resource.RUSAGE_SELF), "tasks": rusage_seconds(resource.RUSAGE_CHILDREN)}

    t0, c0, p0 = time.monotonic(), cgroup_cpu_ns(), parts()
    failures = spawn_loop(argv, args.n, args.width)
    return dict(t0=t0, t1=time.monotonic(), c0=c0, c1=cgroup_cpu_ns(), failures=failures, parts=cpu_parts(p0, parts()))


# ---------------------------------------------------------------- HyperQueue
def drive_hq(args):
    """HQ's client polls the server once a second, which would round each run
    up to a whole second; a sentinel task that depends on all N and writes the
    time marks the real end instead."""
    from hyperqueue import Job
    from hyperqueue.cluster import LocalCluster, WorkerConfig

    cwd = os.path.join(args.workdir, "hq-tasks")
    os.makedirs(cwd, exist_ok=True)
    stamp = os.path.join(args.workdir, "hq-done")
    clock_offset = time.time() - time.monotonic()
    cluster = LocalCluster(server_dir=os.path.join(args.workdir, "hq-server"))
    try:
        cluster.start_worker(WorkerConfig(cores=args.width))
        client = cluster.client()
        probe = Job(default_workdir=cwd)
        probe.program(TASKS["true"], stdout=None, stderr=None)
        client.wait_for_jobs([client.submit(probe)])
        t0, c0 = time.monotonic(), cgroup_cpu_ns()
        job = Job(default_workdir=cwd)
        tasks = [job.program(task_argv(args), stdout=None, stderr=None) for _ in range(args.n)]
        job.program(["/bin/date", "+%s.%N"], stdout=stamp, stderr=None, deps=tasks)
        ok = client.wait_for_jobs([client.submit(job)], raise_on_error=False)
        c1 = cgroup_cpu_ns()  # the client's last poll is idle time: close enough
        with open(stamp) as fh:
            t1 = float(fh.read()) - clock_offset
    finally:
        cluster.stop()
    return dict(t0=t0, t1=t1, c0=c0, c1=c1, failures=0 if ok else args.n)


# ---------------------------------------------------------------- Parsl
def drive_parsl(args, kind):
    import parsl
    from parsl.app.app import bash_app
    from parsl.config import Config

    run_dir = os.path.join(args.workdir, "runinfo")
    if kind == "htex":
        from parsl.executors import HighThroughputExecutor
        from parsl.launchers import SingleNodeLauncher
        from parsl.providers import LocalProvider

        executor = HighThroughputExecutor(
            label="htex", max_workers_per_node=args.width,
            cores_per_worker=min(1.0, (os.cpu_count() or 1) / args.width),
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1, launcher=SingleNodeLauncher()),
            worker_logdir_root=run_dir)
    else:
        from parsl.executors.threads import ThreadPoolExecutor

        executor = ThreadPoolExecutor(label="threads", max_threads=args.width)
    command = " ".join(task_argv(args))

    @bash_app
    def task():
        return command

    parsl.load(Config(executors=[executor], run_dir=run_dir))
    try:
        task().result()
        t0, c0 = time.monotonic(), cgroup_cpu_ns()
        futures = [task() for _ in range(args.n)]
        failures = 0
        for future in futures:
            try:
                future.result()
            except Exception:  # counted: the table says how many failed
                failures += 1
        t1, c1 = time.monotonic(), cgroup_cpu_ns()
    finally:
        parsl.dfk().cleanup()
        parsl.clear()
    return dict(t0=t0, t1=t1, c0=c0, c1=c1, failures=failures)


# ---------------------------------------------------------------- Balsam
class BalsamRun:
    """A fresh DB (or a copy of ``--template``, optionally behind a dbserver) and a long-running launcher; jobs go in with one bulk insert."""

    def __init__(self, args):
        self.args = args
        self.db = os.path.join(args.workdir, "db")
        self.env = dict(os.environ, BALSAM_DB_PATH=self.db)
        self.balsam = os.path.join(os.path.dirname(sys.executable), "balsam")
        self.launcher = None
        self.serving = False
        self._launcher_process = self._spawner = None  # psutil's, for cpu_parts

    def cli(self, *words):
        subprocess.run([self.balsam, *words], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        args = self.args
        if args.template:  # a DB with a backlog in another workflow, built once by peers.py
            shutil.copytree(args.template, self.db)
            # Write the copy out now: else the kernel writes its 600 MB back during
            # the timed run, which then pays for the copy, not for the backlog.
            os.sync()
        else:
            self.cli("init", self.db)
        if args.dbserver:
            self.serving = True
            self.cli("dbserver", "--path", self.db, "--host", "127.0.0.1")
        executable = args.mpi_program if args.task == "mpi" else " ".join(TASKS[args.task])
        self.cli("app", "--name", "task", "--executable", executable)
        os.environ["BALSAM_DB_PATH"] = self.db
        import balsam.launcher.dag as dag  # needs BALSAM_DB_PATH first

        self.dag = dag
        mode = ["--job-mode", "mpi"] if args.task == "mpi" else ["--job-mode", "serial", "--max-ranks-per-node",
                                                                  str(args.width)]
        scope = ["--wf-filter", "bench"] if args.wf_filter else ["--consume-all"]
        self.launcher = subprocess.Popen([self.balsam, "launcher", *scope, *mode], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.db_file = sqlite3.connect(f"file:{self.db}/db.sqlite3?mode=ro", uri=True, timeout=30)

    def submit(self, names):
        fields = dict(ranks_per_node=2) if self.args.task == "mpi" else dict(node_packing_count=self.args.width)
        self.dag.BalsamJob.objects.bulk_create([
            self.dag.BalsamJob(name=name, workflow="bench", application="task", **fields) for name in names])

    def wait_ended(self, count, timeout):
        deadline = time.monotonic() + timeout
        # The job counts Balsam keeps in the same transaction as each state change
        # (one row per workflow and state): counting the job rows themselves cost
        # this driver up to 0.3 ms a poll at 5,000 jobs, CPU billed to the run.
        query = ("SELECT coalesce(sum(count), 0) FROM balsam_job_count WHERE workflow = 'bench' "
                 "AND state IN ('JOB_FINISHED', 'FAILED')")
        # Each poll is CPU billed to the run (0.03-0.04 ms per task at one every 5 ms): the
        # wait between polls is an eighth of the time the jobs left take at the rate seen so
        # far (POLL_SEC to MAX_POLL_SEC). Jobs end in batches, so the last ones may be seen
        # late by up to an eighth of what their batch was worth: a few ms in a run of seconds.
        start, first = time.monotonic(), self.db_file.execute(query).fetchone()[0]
        ended = first
        while ended < count:
            if time.monotonic() > deadline or self.launcher.poll() is not None:
                raise SystemExit(f"Error: the launcher did not finish {count} jobs (exit {self.launcher.poll()})")
            rate = (ended - first) / max(time.monotonic() - start, 1e-3)
            left_sec = (count - ended) / rate if rate > 0 else 0.0
            time.sleep(min(MAX_POLL_SEC, max(POLL_SEC, left_sec / 8)))
            ended = self.db_file.execute(query).fetchone()[0]

    def cpu_parts(self, threads=False):
        """``{part: CPU seconds}`` so far: the launcher (``threads``: its
        loop, the main thread, apart from its batch thread and any others),
        its spawner (found once, after the probe), the tasks (the processes
        the spawner reaped, and any the launcher did) and this driver."""
        import psutil

        if self._spawner is None:
            self._launcher_process = psutil.Process(self.launcher.pid)
            self._spawner, = [child for child in self._launcher_process.children()
                              if "balsam.launcher.spawner" in child.cmdline()]
        launcher, spawner = self._launcher_process.cpu_times(), self._spawner.cpu_times()
        parts = {"launcher": launcher.user + launcher.system}
        if threads:
            times = {t.id: t.user_time + t.system_time for t in self._launcher_process.threads()}
            loop = times.pop(self.launcher.pid)  # Linux: the main thread's id is the process id
            parts = {"launcher loop": loop, "launcher batch and others": sum(times.values())}
        return {**parts, "spawner": spawner.user + spawner.system,
                "tasks": (spawner.children_user + spawner.children_system
                          + launcher.children_user + launcher.children_system),
                "driver": rusage_seconds(resource.RUSAGE_SELF)}

    def failures(self):
        """Jobs not JOB_FINISHED, or whose history is not exactly JOB_EVENTS."""
        # Events name their job by its number since migration 0014; a baseline tree may be older.
        columns = {row[1] for row in self.db_file.execute("PRAGMA table_info(balsam_job_event)")}
        join = "e.job_seq = j.seq" if "job_seq" in columns else "e.job_id = j.job_id"
        rows = self.db_file.execute(
            "SELECT j.state, group_concat(e.to_state) FROM balsam_job j LEFT JOIN balsam_job_event e "
            f"ON {join} AND e.to_state <> 'CREATED' WHERE j.workflow = 'bench' GROUP BY j.job_id"
        ).fetchall()
        full = sorted(JOB_EVENTS)
        return sum(state != "JOB_FINISHED" or sorted((events or "").split(",")) != full for state, events in rows)

    def stop(self):
        if self.launcher is not None:
            self.launcher.terminate()
            self.launcher.wait(timeout=120)
        if self.serving:
            subprocess.run([self.balsam, "dbserver", "--stop", "--path", self.db], env=self.env,
                           stdout=subprocess.DEVNULL)


def drive_balsam(args):
    run = BalsamRun(args)
    try:
        run.start()
        run.submit(["probe"])
        run.wait_ended(1, 300)
        t0, c0, p0 = time.monotonic(), cgroup_cpu_ns(), run.cpu_parts()
        run.submit([f"t{i}" for i in range(args.n)])
        run.wait_ended(args.n + 1, 3600)
        t1, c1, p1 = time.monotonic(), cgroup_cpu_ns(), run.cpu_parts()
        failures = run.failures()
    finally:
        run.stop()
    return dict(t0=t0, t1=t1, c0=c0, c1=c1, failures=failures, parts=cpu_parts(p0, p1))


DRIVERS = {
    "loop": drive_loop,
    "hyperqueue": drive_hq,
    "parsl-threads": lambda args: drive_parsl(args, "threads"),
    "parsl-htex": lambda args: drive_parsl(args, "htex"),
    "balsam": drive_balsam,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(DRIVERS))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--task", choices=["true", "sleep", "mpi"], required=True)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--mpi-program", default="")
    parser.add_argument("--dbserver", action="store_true")
    parser.add_argument("--template", help="copy this DB instead of making an empty one")
    parser.add_argument("--wf-filter", action="store_true", help="launcher --wf-filter bench, not --consume-all")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    record = DRIVERS[args.system](args)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
