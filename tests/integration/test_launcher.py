"""The launcher with real processes: transitions, handlers, DAGs, kills,
shared DBs, crash recovery and MPI (the scenarios marked ``both_backends``
also on PostgreSQL)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_until

from balsam import api
from balsam.core.models import BalsamJob

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
BALSAM = str(Path(sys.executable).with_name("balsam"))




def launcher_cmd(*args):
    return [BALSAM, "launcher", *map(str, args)]


def run_launcher(db, *args, timeout=180, env=None):
    """Run `balsam launcher ... --until-idle` to the end."""
    result = subprocess.run(launcher_cmd(*args, "--until-idle"), capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, BALSAM_DB_PATH=str(db), **(env or {})))
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def start_launcher(db, *args, env=None):
    return subprocess.Popen(launcher_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, BALSAM_DB_PATH=str(db), **(env or {})))


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, err


def py_app(name, script, **kwargs):
    return api.add_app(name, f"{sys.executable} {APPS / script}", check_paths=False, **kwargs)


def state(job):
    return BalsamJob.objects.get(pk=job.pk).state


def history(job):
    return [to for _, _, to, _ in BalsamJob.objects.get(pk=job.pk).history()]


def sleeper_pid(job, name="sleeper.pid", what="the run"):
    """The pid a fixture app recorded in ``name`` in ``job``'s directory, once it has started."""
    pid_file = Path(job.working_directory) / name
    wait_until(pid_file.exists, 60, f"{what} to start")
    return int(wait_until(lambda: pid_file.read_text().strip(), 10, "the pid"))


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --------------------------------------------------------------------------- one job, all stages
@pytest.mark.both_backends
def test_four_stage_job(db, tmp_path):
    inputs, outputs = tmp_path / "inputs", tmp_path / "outputs"
    inputs.mkdir()
    (inputs / "input.txt").write_text("3")
    py_app("compute", "compute.py", preprocess=f"{sys.executable} {APPS / 'pre_edit_args.py'}",
           postprocess=f"{sys.executable} {APPS / 'post_mark.py'}")
    job = api.add_job(name="four", workflow="w", application="compute", args="1",
                      stage_in_url=f"local:{inputs}", stage_out_url=f"local:{outputs}", stage_out_files="square*")
    run_launcher(db, "--consume-all")
    job.refresh_from_db()
    workdir = Path(job.working_directory)
    assert job.state == "JOB_FINISHED" and job.args == "3"
    assert (workdir / "pre_ran.txt").read_text() == str(job.pk)
    assert (workdir / "post_ran.txt").read_text() == str(job.pk)
    assert (outputs / "square_result.txt").read_text().strip() == "81.0"
    assert "computed 81.0" in (workdir / "four.out").read_text()
    assert job.runtime_seconds is not None and job.runtime_seconds > 0
    assert history(job) == ["CREATED", "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE",
                            "POSTPROCESSED", "JOB_FINISHED"]
    assert (workdir / "preprocess.log").read_text().startswith("# preprocess:")


# --------------------------------------------------------------------------- errors and timeouts
@pytest.mark.both_backends
def test_run_errors_with_and_without_handler(db):
    py_app("fail", "fail.py", postprocess=f"{sys.executable} {APPS / 'handler.py'}")
    unhandled = api.add_job(name="unhandled", workflow="w", application="fail")
    handled = api.add_job(name="handled", workflow="w", application="fail", post_error_handler=True)
    run_launcher(db, "--consume-all")
    assert state(unhandled) == "FAILED" and "RUN_ERROR" in history(unhandled)
    error_event = BalsamJob.objects.get(pk=unhandled.pk).events.get(to_state="RUN_ERROR")
    assert "exit code 3" in error_event.message and "something went badly wrong" in error_event.message
    assert state(handled) == "JOB_FINISHED"
    assert history(handled)[-2:] == ["RUN_ERROR", "JOB_FINISHED"]
    assert (Path(handled.working_directory) / "handler_ran.txt").read_text() == "error"


@pytest.mark.both_backends
def test_timeouts_retry_handle_or_fail(db):
    py_app("slow", "slow_first_time.py", postprocess=f"{sys.executable} {APPS / 'handler.py'}")
    minutes = 1.5 / 60
    retried = api.add_job(name="retried", workflow="w", application="slow", wall_time_minutes=minutes)
    handled = api.add_job(name="handled", workflow="w", application="slow", wall_time_minutes=minutes,
                          post_timeout_handler=True)
    failed = api.add_job(name="failed", workflow="w", application="slow", wall_time_minutes=minutes,
                         auto_timeout_retry=False)
    run_launcher(db, "--consume-all")
    assert state(retried) == "JOB_FINISHED"
    assert history(retried)[4:] == ["RUNNING", "RUN_TIMEOUT", "RESTART_READY", "RUNNING", "RUN_DONE",
                                    "POSTPROCESSED", "JOB_FINISHED"]
    assert not (Path(retried.working_directory) / "handler_ran.txt").exists() or \
        (Path(retried.working_directory) / "handler_ran.txt").read_text() == "normal"
    assert state(handled) == "JOB_FINISHED" and "RESTART_READY" not in history(handled)
    assert (Path(handled.working_directory) / "handler_ran.txt").read_text() == "timeout"
    assert state(failed) == "FAILED" and history(failed)[-2:] == ["RUN_TIMEOUT", "FAILED"]


def test_a_job_that_always_overruns_fails_after_the_retry_limit(db):
    api.add_app("sleepy", "sleep 30", check_paths=False)
    job = api.add_job(name="sleepy", workflow="w", application="sleepy", wall_time_minutes=0.5 / 60)
    run_launcher(db, "--consume-all", env={"BALSAM_LAUNCHER_MAX_TIMEOUT_RETRIES": "2"})
    assert state(job) == "FAILED"
    assert history(job)[4:] == ["RUNNING", "RUN_TIMEOUT", "RESTART_READY"] * 2 + ["RUNNING", "RUN_TIMEOUT", "FAILED"]
    events = BalsamJob.objects.get(pk=job.pk).events
    assert [e.message for e in events.filter(to_state="RESTART_READY").order_by("id")] == [
        "timed out; retry 1 of 2", "timed out; retry 2 of 2"]
    assert events.get(to_state="FAILED").message == (
        "ran past its wall time 3 times; giving up (launcher_max_timeout_retries = 2)")


# --------------------------------------------------------------------------- DAGs
def _square_apps():
    for name in ("make_sides", "square", "reduce"):
        py_app(name, f"{name}.py")


@pytest.mark.both_backends
def test_static_dag_passes_data_through_input_files(db):
    _square_apps()
    sides = api.add_job(name="make_sides", workflow="dag", application="make_sides")
    reduce_job = api.add_job(name="reduce", workflow="dag", application="reduce", input_files="area*.dat")
    for i in range(3):
        square = api.add_job(name=f"square{i}", workflow="dag", application="square", args=str(i),
                             input_files="sides.dat", parents=[sides])
        api.add_dependency(square, reduce_job)
    run_launcher(db, "--wf-filter", "dag")
    assert set(BalsamJob.objects.values_list("state", flat=True)) == {"JOB_FINISHED"}
    assert float((Path(reduce_job.working_directory) / "total.dat").read_text()) == 9 + 16 + 25
    assert "AWAITING_PARENTS" in history(reduce_job)


@pytest.mark.both_backends
def test_dynamic_dag_spawns_children(db):
    _square_apps()
    py_app("spawner", "make_sides.py", postprocess=f"{sys.executable} {APPS / 'spawner_post.py'}")
    parent = api.add_job(name="sides", workflow="dyn", application="spawner")
    reduce_job = api.add_job(name="reduce", workflow="dyn", application="reduce", input_files="area*.dat",
                             parents=[parent])
    run_launcher(db, "--wf-filter", "dyn")
    count = int((Path(parent.working_directory) / "spawned.txt").read_text())
    assert 4 <= count <= 8
    assert BalsamJob.objects.get(pk=reduce_job.pk).parents.count() == count + 1
    assert set(BalsamJob.objects.values_list("state", flat=True)) == {"JOB_FINISHED"}
    expected = sum([9, 16, 25][i % 3] for i in range(count))
    assert float((Path(reduce_job.working_directory) / "total.dat").read_text()) == expected


# --------------------------------------------------------------------------- kills
def _kill_when(db, job, predicate, launcher):
    wait_until(predicate, 60, "the job to get going")
    api.kill(job)
    killed_at = time.monotonic()
    return killed_at


@pytest.mark.both_backends
def test_kill_during_preprocess(db):
    py_app("quick", "make_sides.py", preprocess=f"{sys.executable} {APPS / 'slow_pre.py'}")
    job = api.add_job(name="victim", workflow="w", application="quick")
    launcher = start_launcher(db, "--consume-all")
    try:
        pid = sleeper_pid(job, "pre.pid", "the preprocess script")
        api.kill(job)
        wait_until(lambda: gone(pid), 2.5, "the preprocess script to be stopped")
    finally:
        stop(launcher)
    assert state(job) == "USER_KILLED"
    assert "STAGED_IN" in history(job) and "RUN_DONE" not in history(job)
    assert not (Path(job.working_directory) / "pre_done.txt").exists()


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", ["serial", "mpi"])
def test_kill_during_a_run(db, mode, mpi_available):
    if mode == "mpi":
        mpi_available()
    py_app("sleeper", "sleeper.py")
    job = api.add_job(name="victim", workflow="w", application="sleeper", args="30")
    launcher = start_launcher(db, "--consume-all", "--job-mode", mode)
    try:
        pid = sleeper_pid(job)
        # The RUNNING move is written by the batch thread (spaced writes): it may land just after the start.
        wait_until(lambda: state(job) == "RUNNING", 10, "the job to be RUNNING")
        api.kill(job)
        wait_until(lambda: gone(pid), 2.5, "the run to be stopped")
        time.sleep(1)
        assert state(job) == "USER_KILLED"
    finally:
        code, err = stop(launcher)
    assert code == 0, err
    assert state(job) == "USER_KILLED" and "RUN_DONE" not in history(job)
    assert not (Path(job.working_directory) / "slept.txt").exists()


# --------------------------------------------------------------------------- sharing and recovery
@pytest.mark.both_backends
@pytest.mark.timeout(600)
def test_two_launchers_run_every_job_exactly_once(db, tmp_path):
    count_file = tmp_path / "executions.txt"
    api.add_app("count", str(APPS / "count.sh"), environ_vars={"COUNT_FILE": str(count_file)}, check_paths=False)
    rows = [{"name": f"c{i}", "workflow": "w", "application": "count", "node_packing_count": 4} for i in range(500)]
    ids = api.add_jobs(rows)
    env = {"BALSAM_LAUNCHER_LEASE_EXPIRY_SEC": "30"}
    first = start_launcher(db, "--consume-all", "--until-idle", "--max-ranks-per-node", "4", env=env)
    second = start_launcher(db, "--consume-all", "--until-idle", "--max-ranks-per-node", "4", env=env)
    results = [p.communicate(timeout=500) for p in (first, second)]
    assert first.returncode == second.returncode == 0, [r[1][-1000:] for r in results]
    executions = count_file.read_text().split()
    assert sorted(executions) == sorted(ids), "every job must run exactly once"
    assert set(BalsamJob.objects.values_list("state", flat=True)) == {"JOB_FINISHED"}
    owners = {e.message for e in BalsamJob.objects.get(pk=ids[0]).events.filter(to_state="RUNNING")}
    assert len(owners) == 1


@pytest.mark.both_backends
@pytest.mark.timeout(300)
def test_a_sigkilled_launcher_is_recovered_by_the_next(db):
    py_app("sleeper", "sleeper.py")
    jobs = [api.add_job(name=f"s{i}", workflow="w", application="sleeper", args="2", node_packing_count=4)
            for i in range(6)]
    env = {"BALSAM_LAUNCHER_LEASE_EXPIRY_SEC": "2"}
    doomed = start_launcher(db, "--consume-all", "--max-ranks-per-node", "4", env=env)
    wait_until(lambda: BalsamJob.objects.filter(state="RUNNING").count() >= 2, 60, "jobs to run")
    doomed.kill()
    doomed.communicate()
    stuck = set(BalsamJob.objects.filter(state="RUNNING").values_list("pk", flat=True))
    assert stuck
    run_launcher(db, "--consume-all", "--max-ranks-per-node", "4", env=env)
    assert {state(j) for j in jobs} == {"JOB_FINISHED"}
    for pk in stuck:
        assert "RESTART_READY" in [e.to_state for e in BalsamJob.objects.get(pk=pk).events.all()]


def test_a_sigkilled_launcher_takes_its_runs_with_it(db):
    # A run that outlived its launcher would race the rerun of its job by the
    # launcher that recovers it.
    py_app("sleeper", "sleeper.py")
    job = api.add_job(name="orphan", workflow="w", application="sleeper", args="60")
    doomed = start_launcher(db, "--consume-all")
    pid = sleeper_pid(job)
    doomed.kill()
    doomed.communicate()
    wait_until(lambda: gone(pid), 5, "the run to be stopped")
    assert state(job) == "RUNNING"  # until its lease expires and a launcher recovers it


# --------------------------------------------------------------------------- how processes start
def test_a_command_that_cannot_start_fails_its_job_with_the_reason(db):
    api.add_app("missing", "/no/such/program --flag", check_paths=False)
    job = api.add_job(name="doomed", workflow="w", application="missing")
    run_launcher(db, "--consume-all")
    stored = BalsamJob.objects.get(pk=job.pk)
    assert stored.state == "FAILED"
    message = stored.events.get(to_state="FAILED").message
    assert message == "cannot start the run: [Errno 2] No such file or directory: '/no/such/program'"


def test_a_bare_command_name_is_found_on_the_jobs_own_path(db, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "say-hello").write_text("#!/bin/sh\necho hello from $0\n")
    (tools / "say-hello").chmod(0o755)
    api.add_app("hello", "say-hello", environ_vars={"PATH": f"{tools}:{os.environ['PATH']}"}, check_paths=False)
    job = api.add_job(name="greet", workflow="w", application="hello")
    run_launcher(db, "--consume-all")
    assert state(job) == "JOB_FINISHED"
    assert f"hello from {tools / 'say-hello'}" in (Path(job.working_directory) / "greet.out").read_text()


def test_the_launcher_replaces_a_killed_spawner_and_carries_on(db):
    py_app("sleeper", "sleeper.py")
    job = api.add_job(name="survivor", workflow="w", application="sleeper", args="3")
    launcher = start_launcher(db, "--consume-all", "--until-idle")
    try:
        first_run = sleeper_pid(job)
        spawner, = [p for p in psutil.Process(launcher.pid).children()
                    if "balsam.launcher.spawner" in " ".join(p.cmdline())]
        spawner.kill()
        wait_until(lambda: gone(first_run), 5, "the lost run to be stopped")
        out, err = launcher.communicate(timeout=120)
    finally:
        stop(launcher)
    assert launcher.returncode == 0, err
    assert state(job) == "JOB_FINISHED"
    lost = BalsamJob.objects.get(pk=job.pk).events.get(to_state="RUN_TIMEOUT")
    assert lost.message == "lost when the launcher's process spawner died"
    assert history(job).count("RUNNING") == 2


def test_jobs_hold_no_descriptors_of_the_launcher(db):
    py_app("fds", "open_fds.py")
    job = api.add_job(name="fds", workflow="w", application="fds")
    run_launcher(db, "--consume-all")
    assert state(job) == "JOB_FINISHED"
    leaked = (Path(job.working_directory) / "open_fds.txt").read_text().split("\n")
    assert [line for line in leaked if line.strip()] == []


# --------------------------------------------------------------------------- MPI
@pytest.fixture
def mpi_available():
    def check():
        if shutil.which("mpicc") and shutil.which("mpirun"):
            return
        if os.environ.get("CI") == "true":
            pytest.fail("MPICH (mpicc, mpirun) is missing; .ci/system-deps installs Debian's mpich")
        pytest.skip("MPICH (mpicc, mpirun) is not installed")

    return check


def test_mpi_job_runs_two_ranks(db, tmp_path, mpi_available):
    mpi_available()
    binary = tmp_path / "hello_mpi"
    subprocess.run(["mpicc", "-o", str(binary), str(APPS / "hello_mpi.c")], check=True)
    api.add_app("hello_mpi", str(binary), check_paths=False)
    job = api.add_job(name="mpi", workflow="w", application="hello_mpi", num_nodes=1, ranks_per_node=2)
    run_launcher(db, "--consume-all", "--job-mode", "mpi")
    assert state(job) == "JOB_FINISHED"
    output = (Path(job.working_directory) / "mpi.out").read_text()
    hostname = os.uname().nodename
    assert f"rank 0 of 2 on {hostname}" in output and f"rank 1 of 2 on {hostname}" in output


# --------------------------------------------------------------------------- command line
def test_launcher_needs_exactly_one_scope(balsam_cmd):
    result = balsam_cmd("launcher", "--until-idle")
    assert result.returncode == 2
    assert "give exactly one of --consume-all, --wf-filter NAME or --job-file FILE" in result.stderr


def test_job_file_limits_the_launcher(db, tmp_path):
    py_app("sides", "make_sides.py")
    wanted = [api.add_job(name=f"in{i}", workflow="w", application="sides") for i in range(3)]
    other = api.add_job(name="out", workflow="w", application="sides")
    job_file = tmp_path / "jobs.txt"
    job_file.write_text("\n".join(str(j.pk) for j in wanted + wanted[:1]))
    run_launcher(db, "--job-file", job_file)
    assert [state(j) for j in wanted] == ["JOB_FINISHED"] * 3 and state(other) == "CREATED"


# --------------------------------------------------------------------------- shutdown and display
def test_sigterm_times_out_running_jobs_and_exits_cleanly(db):
    py_app("sleeper", "sleeper.py")
    job = api.add_job(name="long", workflow="w", application="sleeper", args="60")
    launcher = start_launcher(db, "--consume-all")
    pid = sleeper_pid(job)
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    assert "launcher stopped (signal SIGTERM)" in out
    assert state(job) == "RUN_TIMEOUT"
    assert wait_until(lambda: gone(pid), 5, "the run to be killed")
    assert BalsamJob.objects.get(pk=job.pk).lease_owner == ""


def test_time_limit_stops_the_launcher(db):
    py_app("sleeper", "sleeper.py")
    job = api.add_job(name="long", workflow="w", application="sleeper", args="60")
    began = time.monotonic()
    result = subprocess.run(launcher_cmd("--consume-all", "--time-limit-minutes", 0.05), capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, BALSAM_DB_PATH=str(db)))
    assert result.returncode == 0 and time.monotonic() - began < 30
    assert "launcher stopped (time limit reached)" in result.stdout
    assert state(job) == "RUN_TIMEOUT"


def test_live_progress_on_a_terminal(db):
    import pty

    py_app("sides", "make_sides.py")
    for i in range(3):
        api.add_job(name=f"j{i}", workflow="w", application="sides")
    primary, secondary = pty.openpty()
    process = subprocess.Popen(launcher_cmd("--consume-all", "--until-idle"), stdin=secondary, stdout=secondary,
                               stderr=secondary, env=dict(os.environ, BALSAM_DB_PATH=str(db)))
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(primary)
    text = output.decode(errors="replace")
    assert process.returncode == 0
    assert "\r\x1b[2K" in text and "3/3 finished | 0 running | 0 failed" in text


def test_launcher_writes_through_the_dbserver(db, dbserver):
    _square_apps()
    sides = api.add_job(name="make_sides", workflow="dag", application="make_sides")
    square = api.add_job(name="square0", workflow="dag", application="square", args="1", input_files="sides.dat",
                         parents=[sides])
    run_launcher(db, "--consume-all")
    assert state(square) == "JOB_FINISHED"
    from balsam.dbserver.control import status

    assert status(db)["commits"] > 5  # the launcher's writes went through the server
