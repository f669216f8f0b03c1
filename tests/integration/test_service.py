"""The metascheduler end to end: the local scheduler, a real Slurm, and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from balsam import api
from balsam.core.models import BalsamJob, QueuedLaunch

BALSAM = str(Path(sys.executable).with_name("balsam"))


def balsam(db, *args, env=None, timeout=300):
    return subprocess.run([BALSAM, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, BALSAM_DB_PATH=str(db), **(env or {})))


def write_policy(db, scheduler, **queues):
    (db / "service.json").write_text(json.dumps({"scheduler": scheduler, "queues": queues}))


def assert_one_line_error(result, fragment):
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr


@pytest.mark.both_backends
def test_local_service_runs_every_job(db):
    api.make_dummies(50)
    write_policy(db, "local", local={"max_queued": 2, "max_nodes": 1, "max_minutes": 10, "jobs_per_node": 20})
    result = balsam(db, "service", "--until-idle", "--period-sec", "0.2")
    assert result.returncode == 0, result.stderr
    assert set(BalsamJob.objects.values_list("state", flat=True)) == {"JOB_FINISHED"}
    launches = list(QueuedLaunch.objects.all())
    assert len(launches) == 3 and {l.state for l in launches} == {"finished"}
    assert sum(l.jobs.count() for l in launches) == 50
    assert all(Path(l.script_path).is_file() and l.scheduler_id for l in launches)
    listing = balsam(db, "ls", "queues").stdout
    assert listing.splitlines()[0].split()[:4] == ["id", "scheduler", "sched", "id"] and "finished" in listing


def test_one_service_per_db(db):
    from filelock import FileLock

    write_policy(db, "local", local={})
    with FileLock(str(db / "service.lock")):
        result = balsam(db, "service", "--until-idle")
    assert_one_line_error(result, f"another balsam service is already running for {db}")


@pytest.mark.timeout(600)
def test_service_on_slurm_runs_50_jobs(db, slurm):
    api.make_dummies(50)
    write_policy(db, "slurm", debug={"max_queued": 2, "max_nodes": 1, "max_minutes": 10, "jobs_per_node": 25})
    result = balsam(db, "service", "--until-idle", "--period-sec", "0.5", env=slurm)
    assert result.returncode == 0, result.stderr
    assert set(BalsamJob.objects.values_list("state", flat=True)) == {"JOB_FINISHED"}
    launches = list(QueuedLaunch.objects.all())
    assert [l.state for l in launches] == ["finished", "finished"] and [l.job_mode for l in launches] == ["serial"] * 2
    squeue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True, env=dict(os.environ, **slurm)).stdout
    for launch in launches:
        assert f"{launch.scheduler_id} COMPLETED" in squeue
        assert "launcher stopped (idle" in Path(launch.script_path).with_suffix(".out").read_text()


@pytest.mark.timeout(300)
def test_submit_launch_by_hand_and_cancel_on_slurm(db, slurm):
    api.make_dummies(5)
    write_policy(db, "slurm", debug={"max_nodes": 1, "max_minutes": 10})
    result = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "debug", "-A", "science", "--job-mode", "serial",
                    env=slurm)
    assert result.returncode == 0, result.stderr
    launch = QueuedLaunch.objects.get()
    assert f"Submitted launch {launch.pk} to slurm as {launch.scheduler_id}" in result.stdout
    assert "#SBATCH --partition=debug" in Path(launch.script_path).read_text()
    assert launch.jobs.count() == 5
    cancel = balsam(db, "cancel-launch", launch.pk, env=slurm)
    assert cancel.returncode == 0, cancel.stderr
    launch.refresh_from_db()
    assert launch.state == "cancelled" and launch.end_time is not None
    assert not BalsamJob.objects.filter(queued_launch__isnull=False).exclude(state="JOB_FINISHED").exists()
    again = balsam(db, "cancel-launch", launch.pk, env=slurm)
    assert_one_line_error(again, f"launch {launch.pk} already ended (cancelled)")


# --------------------------------------------------------------------------- bad input
def test_unknown_queue_changes_nothing(db, snapshot):
    api.make_dummies(3)
    write_policy(db, "local", local={})
    before = snapshot()
    result = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "big", "-A", "p")
    assert_one_line_error(result, "queue 'big' is not in the queue policy")
    assert snapshot() == before and not (db / "qsubmit").exists()


def test_queue_bounds_are_enforced(db, snapshot):
    write_policy(db, "local", local={"max_nodes": 2, "max_minutes": 30})
    before = snapshot()
    assert_one_line_error(balsam(db, "submit-launch", "-n", 3, "-t", 5, "-q", "local"), "takes 1 to 2 nodes, not 3")
    assert_one_line_error(balsam(db, "submit-launch", "-n", 1, "-t", 90, "-q", "local"), "takes 1 to 30 minutes, not 90")
    assert snapshot() == before


@pytest.mark.timeout(300)
def test_unknown_partition_on_slurm_changes_nothing(db, slurm, snapshot):
    api.make_dummies(3)
    write_policy(db, "slurm", nope={"max_nodes": 1, "max_minutes": 10})
    before = snapshot()
    result = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "nope", env=slurm)
    assert_one_line_error(result, "sbatch failed to submit the launch")
    assert "partition" in result.stderr.lower()
    assert snapshot() == before and list((db / "qsubmit").glob("*.sh")) == []


def test_missing_submit_command_changes_nothing(db, snapshot):
    api.make_dummies(3)
    write_policy(db, "pbs", workq={"max_nodes": 1, "max_minutes": 10})
    before = snapshot()
    result = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "workq", env={"PATH": os.path.dirname(sys.executable)})
    assert_one_line_error(result, "qsub is not installed or not on PATH")
    assert snapshot() == before


def test_template_with_an_unknown_variable_changes_nothing(db, snapshot):
    api.make_dummies(3)
    write_policy(db, "local", local={})
    (db / "job-templates").mkdir()
    (db / "job-templates" / "local.sh").write_text("#!/bin/bash\necho $nodes $bogus\n")
    before = snapshot()
    result = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "local")
    assert_one_line_error(result, "uses unknown variable $bogus")
    assert snapshot() == before


def test_user_template_overrides_the_shipped_one(db):
    write_policy(db, "local", local={})
    (db / "job-templates").mkdir()
    (db / "job-templates" / "local.sh").write_text("#!/bin/bash\n# custom for launch $launch_id\necho ran > $db_path/custom.txt\n")
    result = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "local")
    assert result.returncode == 0, result.stderr
    assert "# custom for launch 1" in Path(QueuedLaunch.objects.get().script_path).read_text()


def test_launch_scripts_apply_the_dbs_umask(db):
    write_policy(db, "local", local={})
    first = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "local")
    assert first.returncode == 0, first.stderr
    (db / "settings.json").write_text(json.dumps({"umask": "0007"}))
    second = balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "local")
    assert second.returncode == 0, second.stderr
    unshared, shared = (Path(launch.script_path).read_text().splitlines() for launch in QueuedLaunch.objects.order_by("id"))
    assert not any(line.startswith("umask") for line in unshared)
    assert "umask 0007" in shared
    start = next(i for i, line in enumerate(shared) if line.startswith("exec "))
    assert shared.index("umask 0007") < start
    activate = [i for i, line in enumerate(shared) if "balsamactivate" in line and line.startswith("BALSAM_CLI=")]
    assert activate and activate[0] < start  # a server that died while the launch waited is brought back


def test_service_stops_cleanly_on_sigterm(db):
    import signal
    import time

    write_policy(db, "local", local={})
    process = subprocess.Popen([BALSAM, "service", "--period-sec", "0.2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, BALSAM_DB_PATH=str(db)))
    deadline = time.monotonic() + 60
    while not (db / "log" / "service.log").exists() or "service started" not in (db / "log" / "service.log").read_text():
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "balsam service stopped" in out


@pytest.mark.parametrize(
    "queue, fragment",
    [
        ({"max_nodes": "4"}, "max_nodes must be a whole number of at least 1, not '4'"),
        ({"min_nodes": 5, "max_nodes": 4}, "a minimum is larger than its maximum"),
        ({"jobs_per_node": 0}, "jobs_per_node must be a whole number of at least 1"),
        ({"colour": "red"}, "unknown option 'colour'"),
    ],
)
def test_bad_queue_policy_is_one_line(db, snapshot, queue, fragment):
    write_policy(db, "local", local=queue)
    before = snapshot()
    assert_one_line_error(balsam(db, "submit-launch", "-n", 1, "-t", 5, "-q", "local"), fragment)
    assert snapshot() == before


def test_jobs_longer_than_any_launch_are_not_tied(db):
    api.make_dummies(2)
    BalsamJob.objects.filter(name="dummy0").update(wall_time_minutes=120)
    write_policy(db, "local", local={"max_minutes": 30})
    result = balsam(db, "submit-launch", "-n", 1, "-t", 30, "-q", "local")
    assert result.returncode == 0, result.stderr
    assert [j.name for j in QueuedLaunch.objects.get().jobs.all()] == ["dummy1"]


def test_jobs_no_queue_can_run_are_reported(db):
    api.make_dummies(3)
    BalsamJob.objects.filter(name="dummy0").update(num_nodes=8, ranks_per_node=2)
    BalsamJob.objects.filter(name="dummy1").update(wall_time_minutes=600)
    write_policy(db, "local", local={"max_queued": 1, "max_nodes": 1, "max_minutes": 10, "jobs_per_node": 8})
    result = balsam(db, "service", "--until-idle", "--period-sec", "0.2")
    assert result.returncode == 0, result.stderr
    assert BalsamJob.objects.get(name="dummy2").state == "JOB_FINISHED"
    assert BalsamJob.objects.filter(queued_launch__isnull=True).count() == 2
    log = (db / "log" / "service.log").read_text()
    assert "2 unfinished job(s) fit no queue and will not be submitted" in log
    assert "the largest needs 8 node(s) and 600 min" in log and log.count("fit no queue") == 1
