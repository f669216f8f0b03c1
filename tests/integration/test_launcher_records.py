"""A real launcher leaves a record of itself (``balsam_launcher``): registered
at start, seen with its heartbeats, stopped at a clean shutdown; a SIGKILLed
one stops being seen. Directly and through a dbserver. And ``balsam report``
on what it ran, as whole processes."""

import json
import re
import socket

import pytest

from balsam import analytics, api
from balsam.core.models import BalsamJob, LauncherRecord, QueuedLaunch
from tests.helpers import wait_until
from tests.integration.test_launcher import py_app, start_launcher


@pytest.mark.parametrize("mode", ["direct", "dbserver"])
def test_a_launcher_records_itself_and_its_clean_stop(request, db, balsam_cmd, mode):
    if mode == "dbserver":
        request.getfixturevalue("dbserver")
    api.add_app("hello", "echo")
    launch = QueuedLaunch(scheduler="local", queue="local", nodes=1, wall_minutes=10)
    launch.save()
    ids = api.add_jobs([{"name": f"j{i}", "workflow": "w", "application": "hello"} for i in range(4)])
    from balsam.core import write_client

    assert write_client.get().tie_jobs(launch.pk, 10) == 4
    launcher = start_launcher(db, "--wf-filter", "w", "--until-idle", "--max-ranks-per-node", "3",
                              env={"BALSAM_QUEUED_LAUNCH_ID": str(launch.pk)})
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, err[-2000:]
    assert set(BalsamJob.objects.filter(pk__in=ids).values_list("state", flat=True)) == {"JOB_FINISHED"}

    record = LauncherRecord.objects.get()
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}:{launcher.pid}:[0-9a-f]{{6}}", record.owner)
    assert (record.host, record.pid, record.job_mode, record.num_nodes, record.capacity) == (
        socket.gethostname(), launcher.pid, "serial", 1, 3)
    assert (record.wf_filter, record.queued_launch_id, record.lease_expiry_sec) == ("w", launch.pk, 180)
    assert record.started_at <= record.last_seen_at == record.stopped_at
    seen = analytics.launchers()[0]
    assert (seen.owner, seen.alive, seen.jobs_held) == (record.owner, False, 0)

    # What it ran, reported by whole `balsam report` processes.
    finished = json.loads(balsam_cmd("report", "throughput", "--json", check=True).stdout)
    assert finished["bucket_seconds"] == 60 and sum(p["value"] for p in finished["points"]) == pytest.approx(4)
    used = json.loads(balsam_cmd("report", "utilization", "--wf", "w", "--json", check=True).stdout)
    assert {p["capacity"] for p in used["points"]} - {None} and all(
        p["capacity"] is None or 0 < p["capacity"] <= 3 for p in used["points"])


@pytest.mark.timeout(120)
def test_a_sigkilled_launcher_stops_being_seen(db):
    py_app("sleeper", "sleeper.py")
    api.add_job(name="long", workflow="w", application="sleeper", args="60")
    # A 2 s lease: heartbeats every 2/3 s, and dead 2 s after the last one.
    doomed = start_launcher(db, "--consume-all", env={"BALSAM_LAUNCHER_LEASE_EXPIRY_SEC": "2"})
    try:
        wait_until(lambda: BalsamJob.objects.filter(state="RUNNING").exists(), 60, "the job to run")
        first = wait_until(LauncherRecord.objects.first, 10, "the launcher's record")
        wait_until(lambda: LauncherRecord.objects.get().last_seen_at > first.started_at, 10, "a heartbeat")
        seen = analytics.launchers()[0]
        assert seen.alive and seen.jobs_held == 1 and seen.pid == doomed.pid
    finally:
        doomed.kill()
        doomed.communicate()
    wait_until(lambda: not analytics.launchers()[0].alive, 10, "the launcher to be seen dead")
    record = LauncherRecord.objects.get()
    assert record.stopped_at is None
    assert analytics.launchers()[0].jobs_held == 1  # until its lease is recovered
