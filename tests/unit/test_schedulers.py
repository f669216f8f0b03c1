"""Scheduler adapters against recorded outputs: fake scheduler commands on
PATH replay what the real ones print and record how they were called."""

import os
import stat
import time
from pathlib import Path

import pytest

from balsam.service.schedulers import SchedulerError, get_scheduler
from balsam.core.launch_states import FAILED, FINISHED, QUEUED, RUNNING

OUTPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "scheduler_outputs"
LAUNCH = {"nodes": 4, "wall_minutes": 30, "queue": "debug", "project": "science"}


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """fake(name, stdout=..., code=0): a command that prints and records its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def fake(name, stdout="", code=0, stderr=""):
        script = bindir / name
        out_file = tmp_path / f"{name}.out"
        out_file.write_text(stdout)
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{calls}"\ncat "{out_file}"\n'
            + (f'echo "{stderr}" >&2\n' if stderr else "") + f"exit {code}\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    fake.calls = lambda: calls.read_text().splitlines() if calls.exists() else []
    return fake


def test_pbs(fake_bin, tmp_path):
    fake_bin("qsub", "1234.pbs01\n")
    fake_bin("qstat", (OUTPUTS / "pbs_qstat_x.txt").read_text())
    fake_bin("qdel")
    pbs = get_scheduler("pbs")
    assert pbs.submit(tmp_path / "qlaunch1.sh", LAUNCH) == "1234.pbs01"
    assert pbs.status(["1234.pbs01", "1235.pbs01", "1236.pbs01", "999.pbs01"]) == {
        "1234.pbs01": QUEUED, "1235.pbs01": RUNNING, "1236.pbs01": FINISHED, "999.pbs01": FINISHED}
    pbs.delete("1234.pbs01")
    assert fake_bin.calls() == [f"qsub {tmp_path / 'qlaunch1.sh'}", "qstat -x 1234.pbs01 1235.pbs01 1236.pbs01 999.pbs01",
                                "qdel 1234.pbs01"]


def test_cobalt_puts_resources_on_the_command_line(fake_bin, tmp_path):
    fake_bin("qsub", "314125\n")
    fake_bin("qstat", (OUTPUTS / "cobalt_qstat.txt").read_text())
    cobalt = get_scheduler("cobalt")
    assert cobalt.submit(tmp_path / "q.sh", LAUNCH) == "314125"
    assert fake_bin.calls()[0] == f"qsub -n 4 -t 30 -q debug --mode script -O {tmp_path / 'q'} -A science {tmp_path / 'q.sh'}"
    assert cobalt.status(["314125", "314126", "314127"]) == {"314125": QUEUED, "314126": RUNNING, "314127": FINISHED}


def test_slurm(fake_bin, tmp_path):
    fake_bin("sbatch", "42;cluster\n")
    fake_bin("squeue", (OUTPUTS / "squeue.txt").read_text())
    slurm = get_scheduler("slurm")
    assert slurm.submit(tmp_path / "s.sh", LAUNCH) == "42"
    assert slurm.status(["41", "42", "43", "44", "45"]) == {
        "41": QUEUED, "42": RUNNING, "43": FINISHED, "44": FAILED, "45": FINISHED}
    assert fake_bin.calls()[1] == "squeue -h -t all -j 41,42,43,44,45 -o %i %T"


def test_failing_and_missing_commands_are_one_clear_line(fake_bin, tmp_path, monkeypatch):
    fake_bin("sbatch", code=1, stderr="sbatch: error: invalid partition specified: nope")
    with pytest.raises(SchedulerError) as info:
        get_scheduler("slurm").submit(tmp_path / "s.sh", LAUNCH)
    assert str(info.value) == "sbatch failed to submit the launch: sbatch: error: invalid partition specified: nope"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SchedulerError, match="qsub is not installed or not on PATH"):
        get_scheduler("pbs").submit(tmp_path / "s.sh", LAUNCH)
    with pytest.raises(SchedulerError, match="unknown scheduler 'lsf'"):
        get_scheduler("lsf")


def test_local_runs_the_script_detached(tmp_path):
    script = tmp_path / "qlaunch1.sh"
    marker = tmp_path / "ran"
    script.write_text(f"sleep 0.3\ntouch {marker}\n")
    local = get_scheduler("local")
    launch_id = local.submit(script, LAUNCH)
    assert local.status([launch_id]) == {launch_id: RUNNING}
    deadline = time.monotonic() + 10
    while local.status([launch_id])[launch_id] == RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.status([launch_id]) == {launch_id: FINISHED} and marker.exists()
    long = tmp_path / "long.sh"
    long.write_text("sleep 60\n")
    long_id = local.submit(long, LAUNCH)
    local.delete(long_id)
    deadline = time.monotonic() + 10
    while local.status([long_id])[long_id] == RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.status([long_id]) == {long_id: FINISHED}
